"""Reliability tests drive the real clients against callrec.testing's FakeServer on loopback."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import callrec
import pytest
from budget_clock import skip_budget_waits
from callrec.testing import FakeServer
from fake_clients import instant_backoff

VendorName: TypeAlias = Literal["feather", "siro"]
Mode: TypeAlias = Literal["sync", "async"]
SyncClient: TypeAlias = callrec.FeatherClient | callrec.SiroClient
AsyncClient: TypeAlias = callrec.AsyncFeatherClient | callrec.AsyncSiroClient


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff lengths are policy (tests/client); here they would only slow the suite down."""
    instant_backoff(monkeypatch)
    skip_budget_waits(monkeypatch)


def sync_client(fake: FakeServer, vendor: VendorName, **kw: Any) -> SyncClient:
    if vendor == "feather":
        return callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)
    return callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)


def async_client(fake: FakeServer, vendor: VendorName, **kw: Any) -> AsyncClient:
    if vendor == "feather":
        return callrec.AsyncFeatherClient(fake.feather_api_key, base_url=fake.feather_base_url, **kw)
    return callrec.AsyncSiroClient(fake.siro_token, base_url=fake.siro_base_url, **kw)
