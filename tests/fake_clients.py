"""Clients on callrec.testing's fake server, and instant backoff: shared by the download, object and reliability
suites (imported as a top-level module, as forward_proxy is)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import callrec
import pytest
from callrec import _io_async, _io_sync
from callrec.testing import FakeServer


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autouse where a conftest imports it: no backoff sleep (see ``instant_backoff``)."""
    instant_backoff(monkeypatch)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """The vendors' fake APIs and storage (callrec.testing), one per test."""
    with FakeServer() as server:
        yield server


def instant_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff sleeps are policy (tested on MockTransport); against loopback servers they only slow a suite."""

    async def instant(_seconds: float) -> None:
        return None

    monkeypatch.setattr(_io_sync, "sleep", lambda _s: None)
    monkeypatch.setattr(_io_async, "sleep", instant)


def feather(fake: FakeServer, **kw: Any) -> callrec.FeatherClient:
    return callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)


def siro(fake: FakeServer, **kw: Any) -> callrec.SiroClient:
    return callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)


def afeather(fake: FakeServer, **kw: Any) -> callrec.AsyncFeatherClient:
    return callrec.AsyncFeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)


def asiro(fake: FakeServer, **kw: Any) -> callrec.AsyncSiroClient:
    return callrec.AsyncSiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)
