#!/usr/bin/env python3
"""Write overlay/callrec/_sync_client.py from _async_client.py by token substitution.

Usage: python scripts/unasync.py [--check]

The sync driver is the async one with ``async``/``await`` removed and the
async names swapped for their sync twins (as httpcore's scripts/unasync.py
does), so no decision can exist in one flavour only. ``--check`` exits 1 with
a diff when the committed file differs from what this script writes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "overlay" / "callrec" / "_async_client.py"
TARGET = ROOT / "overlay" / "callrec" / "_sync_client.py"

#: Whole-word substitutions, applied in order.
SUBS = [
    ("AsyncClientBase", "SyncClientBase"),
    ("AsyncFeatherClient", "FeatherClient"),
    ("AsyncSiroClient", "SiroClient"),
    ("asyncio_detailed", "sync_detailed"),
    ("AsyncLink", "Link"),
    ("AsyncClient", "Client"),
    ("_io_async", "_io_sync"),
    ("aiter_raw", "iter_raw"),
    ("aiter_bytes", "iter_bytes"),
    ("aclose", "close"),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("StopAsyncIteration", "StopIteration"),
]
#: Keyword forms, applied before the names.
KEYWORDS = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
]
HEADER = "# Generated from _async_client.py by scripts/unasync.py. Do not edit: edit the async source and run it.\n"
_DOCSTRING = re.compile(r'\A"""The async (driver|clients):.*?"""\n', re.S)
SYNC_DOCSTRING = '''"""The sync clients: the driver and FeatherClient / SiroClient.

Written from ``_async_client.py`` by ``scripts/unasync.py``; see ``_client.py`` for why.
"""
'''


def _ruff(args: list[str], text: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    cmd = [str(ruff) if ruff.exists() else "ruff", *args, "--stdin-filename", str(TARGET), "-"]
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"unasync: ruff {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _ruff_format(text: str) -> str:
    # Renamed names sort differently (imports, __all__) and lines that lost "async "/"await "
    # may now fit on one line: sort and format as `make lint` checks.
    return _ruff(["format"], _ruff(["check", "--fix-only", "--select", "I,RUF022", "--quiet"], text))


def unasync(text: str) -> str:
    """The sync twin of the async driver's source."""
    text = _DOCSTRING.sub(SYNC_DOCSTRING, text, count=1)
    for pattern, replacement in KEYWORDS:
        text = re.sub(pattern, replacement, text)
    for old, new in SUBS:
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return _ruff_format(HEADER + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail with a diff if _sync_client.py is stale")
    args = parser.parse_args(argv)
    want = unasync(SOURCE.read_text(encoding="utf-8"))
    if not args.check:
        TARGET.write_text(want, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    have = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if have == want:
        print("unasync: _sync_client.py is up to date")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            have.splitlines(keepends=True), want.splitlines(keepends=True), "committed", "from _async_client.py"
        )
    )
    print("unasync: _sync_client.py is stale; run `python scripts/unasync.py` and commit", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
