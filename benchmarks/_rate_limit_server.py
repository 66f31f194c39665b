"""Run callrec.testing's FakeServer with `count` small Feather recordings and the API rate-limited.

Usage: `python -m benchmarks._rate_limit_server --count 3000 --per-second 200 [--burst 5]`
(`--per-second 0`: no limit). Prints the same KEY=value lines as `python -m callrec.testing`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from callrec.testing import FakeServer, faults

#: A small recording: what is measured is the API's pacing, not storage.
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(4096)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._rate_limit_server", description=__doc__)
    parser.add_argument("--count", type=int, required=True, help="recordings r0 .. r<count-1>")
    parser.add_argument("--per-second", type=float, required=True, help="API requests/s allowed (0: unlimited)")
    parser.add_argument("--burst", type=int, default=5)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeServer(validate_requests=False, record_requests=False) as fake:
        for i in range(args.count):
            fake.add_recording("feather", f"r{i}", data=AUDIO)
        if args.per_second > 0:
            fake.feather.always(faults.RateLimit(args.per_second, burst=args.burst, retry_after=1))
        for key, value in fake.env().items():
            print(f"{key}={value}")
        print("CALLREC_FAKE_READY=1", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
