"""Show callrec end to end against the embedded fake server: no network, no credentials, a few seconds.

Mints a signed URL from Feather and from Siro, downloads both recordings with progress and
prints where they went. Run by `make demo`; by hand: `.venv/bin/python scripts/demo.py [--dir DIR]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from callrec import DownloadResult, FeatherClient, SignedUrl, SiroClient
from callrec.testing import FakeServer

Progress = Callable[[int, "int | None"], None]


def _expiry(url: SignedUrl) -> str:
    left = url.expires_in()
    if url.expires_at is None or left is None:
        return "unknown expiry"
    return f"expires {url.expires_at.isoformat(timespec='seconds')} (in {int(left.total_seconds() // 60)} min)"


@contextmanager
def _progress(label: str, fancy: bool) -> Iterator[Progress]:
    """A rich progress bar on a terminal; plain lines (start, half, done) otherwise."""
    if fancy:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        with Progress(TextColumn("  {task.description}"), BarColumn(), DownloadColumn()) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    marks: set[str] = set()

    def plain(done: int, total: int | None) -> None:
        mark = "done" if total is not None and done >= total else "half" if total and done * 2 >= total else "start"
        if mark not in marks:
            marks.add(mark)
            print(f"  {label}: {done}/{total if total is not None else '?'} bytes", flush=True)

    yield plain


def run(folder: Path, fancy: bool) -> None:
    started = time.monotonic()
    # Recordings of a few hundred KiB so the progress has something to show.
    audio = b"RIFF" + b"\x00" * 4 + b"WAVEfmt " + bytes(400_000)
    with FakeServer(validate_requests=False) as fake:
        fake.add_recording("feather", "call_demo")
        fake.add_recording("siro", "rec_demo", data=audio)
        print(f"Fake Feather and Siro APIs on {fake.feather_base_url} and {fake.siro_base_url} (loopback only)\n")
        env = fake.env()
        with (
            FeatherClient(env["FEATHER_API_KEY"], base_url=env["FEATHER_BASE_URL"]) as feather,
            SiroClient(env["SIRO_AUTH_TOKEN"], base_url=env["SIRO_BASE_URL"]) as siro,
        ):
            urls = [feather.recording_url("call_demo"), siro.recording_url("rec_demo")]
            print("Signed URLs (the query string is a secret, so callrec prints it redacted):")
            for url in urls:
                leg = f" leg={url.leg}" if url.leg else ""
                print(f"  {url.provider:<8} {url.recording_id}{leg}  {_expiry(url)}\n           {url}")
            print("\nDownloads:")
            results: list[DownloadResult] = []
            with _progress("feather call_demo", fancy) as progress:
                results.append(feather.download("call_demo", folder, progress=progress))
            with _progress("siro rec_demo", fancy) as progress:
                results.append(siro.download("rec_demo", folder, progress=progress))
    print("\nFiles:")
    for result in results:
        print(f"  {result.path}  {result.bytes} bytes  sha256 {result.sha256[:16]}...")
    print(f"\nSaved in {folder} ({time.monotonic() - started:.1f} s); the URLs above expire within the hour.")
    print("Next: `.venv/bin/callrec --help`, or `.venv/bin/callrec fake-server` for a server to point it at.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, help="where to save the recordings (default: a new temporary folder)")
    args = parser.parse_args(argv)
    folder: Path = args.dir or Path(tempfile.mkdtemp(prefix="callrec-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    run(folder, fancy=sys.stdout.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
