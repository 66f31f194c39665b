"""callrec benchmarks: `make bench` (or `python -m benchmarks`) prints one table and writes RESULTS.md.

Every figure is a ratio or a throughput measured against a baseline in the same run, on loopback
servers running in their own processes so the client is what is measured.
"""
