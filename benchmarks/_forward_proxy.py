"""A forward proxy on loopback for the benchmark's proxied download (tests/forward_proxy.py's, run standalone).

Usage: `python -m benchmarks._forward_proxy`; prints `PROXY_URL=http://127.0.0.1:PORT`, then CALLREC_FAKE_READY=1.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from forward_proxy import ForwardProxy  # the tests' proxy: one implementation


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    proxy = ForwardProxy()
    print(f"PROXY_URL={proxy.url}")
    print("CALLREC_FAKE_READY=1", flush=True)
    stop.wait()
    proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
