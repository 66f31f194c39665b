"""Run callrec.testing's FakeServer with a fixed latency on every Feather API answer.

Usage: `python -m benchmarks._latency_server --latency 0.05 --no-validate --no-record`
(the other options are `python -m callrec.testing`'s). Prints the same KEY=value lines.
"""

from __future__ import annotations

import argparse
import sys

from callrec.testing import FakeServer, faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._latency_server", description=__doc__)
    parser.add_argument("--latency", type=float, required=True, help="seconds before each Feather API answer")
    args, rest = parser.parse_known_args(argv)
    original_start = FakeServer.start

    def start(self: FakeServer) -> FakeServer:
        server = original_start(self)
        server.feather.always(faults.Latency(args.latency))
        server.siro.always(faults.Latency(args.latency))
        return server

    FakeServer.start = start  # type: ignore[method-assign]  # the CLI builds the server; add the fault as it starts
    from callrec.testing import main as fake_main

    return fake_main(rest)


if __name__ == "__main__":
    sys.exit(main())
