"""Download tests run the real clients against callrec.testing's fake server on loopback."""

from __future__ import annotations

from pathlib import Path

from fake_clients import afeather, asiro, fake, feather, no_backoff, siro

__all__ = ["BIG", "afeather", "asiro", "fake", "feather", "leftovers", "no_backoff", "siro"]

#: A recording large enough to span many chunks (and a few Range resumes).
BIG = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8192  # ~2 MiB


def leftovers(folder: Path) -> list[str]:
    """Temporary files a download left behind (there must never be any)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))
