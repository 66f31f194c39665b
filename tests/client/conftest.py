"""Helpers for policy tests on httpx.MockTransport (no sockets)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import callrec
import httpx
import pytest
from budget_clock import skip_budget_waits
from callrec import _io_async, _io_sync

Handler = Callable[[httpx.Request], httpx.Response]

FEATHER_OK = {"url": "https://storage.example/rec.m4a?X-Amz-Signature=deadbeef", "expiresAt": "2030-01-01T00:00:00Z"}
SIRO_OK = {"data": {"error": False, "url": "https://storage.example/r.m4a?sig=cafe", "expiration": 1893456000000}}


class Script:
    """A MockTransport that answers from a list (the last answer repeats) and counts requests."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Record backoff sleeps instead of sleeping."""
    slept: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(_io_sync, "sleep", slept.append)
    monkeypatch.setattr(_io_async, "sleep", fake_asleep)
    skip_budget_waits(monkeypatch)
    return slept


def make_client(vendor: str, script: Script, **kwargs: Any) -> callrec.FeatherClient | callrec.SiroClient:
    http = httpx.Client(transport=httpx.MockTransport(script))
    if vendor == "feather":
        return callrec.FeatherClient("test-key", http_client=http, **kwargs)
    return callrec.SiroClient("test-token", http_client=http, **kwargs)


def make_async_client(
    vendor: str, script: Script, **kwargs: Any
) -> callrec.AsyncFeatherClient | callrec.AsyncSiroClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    if vendor == "feather":
        return callrec.AsyncFeatherClient("test-key", http_client=http, **kwargs)
    return callrec.AsyncSiroClient("test-token", http_client=http, **kwargs)


def ok(vendor: str) -> httpx.Response:
    return httpx.Response(200, json=FEATHER_OK if vendor == "feather" else SIRO_OK)
