"""Run a `FakeServer` in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

_DEMO_RECORDINGS = ("feather:call_demo", "feather:call_demo:supervisor", "siro:rec_demo")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m callrec.testing",
        description=(
            "Run the callrec fake of the Feather AI and Siro APIs and their storage. "
            "Prints one KEY=value line per URL and credential, then CALLREC_FAKE_READY=1."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="Feather API on PORT, Siro on PORT+1, storage on PORT+2, elsewhere on PORT+3 (default: ephemeral)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of the two APIs (default: %(default)s)")
    parser.add_argument(
        "--storage-host", default="127.0.0.2", help="address of storage and elsewhere (default: %(default)s)"
    )
    parser.add_argument(
        "--recording",
        action="append",
        metavar="VENDOR:ID[:LEG][=FILE]",
        help=f"register a recording (repeatable; FILE's bytes or a WAV tone); default: {', '.join(_DEMO_RECORDINGS)}",
    )
    parser.add_argument("--feather-api-key", help="the accepted Feather key (default: random)")
    parser.add_argument("--siro-token", help="the accepted Siro token (default: random)")
    parser.add_argument("--url-ttl", type=float, default=3600.0, help="signed URL lifetime in seconds")
    parser.add_argument("--no-validate", action="store_true", help="skip OpenAPI request validation (faster)")
    parser.add_argument("--no-record", action="store_true", help="do not keep a log of requests (for long benchmarks)")
    return parser


def _content_type(path: Path) -> str:
    return {".m4a": "audio/mp4", ".mp4": "audio/mp4", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}.get(
        path.suffix.lower(), "audio/wav"
    )


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the fake server until SIGINT/SIGTERM; return the exit status.

    Usage: `python -m callrec.testing --port 8600`
    """
    from ._server import FakeServer

    args = _parser().parse_args(argv)
    out = stdout if stdout is not None else sys.stdout
    fake = FakeServer(
        validate_requests=not args.no_validate,
        url_ttl=args.url_ttl,
        feather_api_key=args.feather_api_key,
        siro_token=args.siro_token,
        host=args.host,
        storage_host=args.storage_host,
        port=args.port,
        record_requests=not args.no_record,
    )
    for spec in args.recording or _DEMO_RECORDINGS:
        key, _, file = spec.partition("=")
        vendor, _, rest = key.partition(":")
        recording_id, _, leg = rest.partition(":")
        if vendor not in ("feather", "siro") or not recording_id or leg not in ("", "main", "supervisor"):
            _parser().error(f"bad --recording {spec!r}")
        data = Path(file).read_bytes() if file else None
        content_type = _content_type(Path(file)) if file else "audio/wav"
        fake.add_recording(vendor, recording_id, leg=leg or "main", data=data, content_type=content_type)  # type: ignore[arg-type]  # checked above

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with fake:
            lines = {
                **fake.env(),
                "CALLREC_FAKE_STORAGE_ORIGIN": fake.storage_origin,
                "CALLREC_FAKE_ELSEWHERE_ORIGIN": fake.elsewhere_origin,
                "CALLREC_FAKE_READY": "1",
            }
            for key, value in lines.items():
                print(f"{key}={value}", file=out, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
