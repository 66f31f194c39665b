"""Download tests run the real clients against callrec.testing's fake server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callrec
import pytest
from callrec import _io_async, _io_sync
from callrec.testing import FakeServer

#: A recording large enough to span many chunks (and a few Range resumes).
BIG = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8192  # ~2 MiB


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff sleeps are policy (tested on MockTransport); here they only slow the suite."""

    async def instant(_seconds: float) -> None:
        return None

    monkeypatch.setattr(_io_sync, "sleep", lambda _s: None)
    monkeypatch.setattr(_io_async, "sleep", instant)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def feather(fake: FakeServer, **kw: Any) -> callrec.FeatherClient:
    return callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)


def siro(fake: FakeServer, **kw: Any) -> callrec.SiroClient:
    return callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)


def afeather(fake: FakeServer, **kw: Any) -> callrec.AsyncFeatherClient:
    return callrec.AsyncFeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)


def asiro(fake: FakeServer, **kw: Any) -> callrec.AsyncSiroClient:
    return callrec.AsyncSiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)


def leftovers(folder: Path) -> list[str]:
    """Temporary files a download left behind (there must never be any)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))
