"""Download tests run the real clients against callrec.testing's fake server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from callrec.testing import FakeServer
from fake_clients import afeather, asiro, feather, instant_backoff, siro

__all__ = ["BIG", "afeather", "asiro", "feather", "leftovers", "siro"]

#: A recording large enough to span many chunks (and a few Range resumes).
BIG = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8192  # ~2 MiB


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    instant_backoff(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def leftovers(folder: Path) -> list[str]:
    """Temporary files a download left behind (there must never be any)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))
