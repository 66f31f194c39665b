"""A fake clock for request budgets, for tests that patch the backoff sleeps away."""

from __future__ import annotations

import time

import pytest
from callrec import _budget, _io_async, _io_sync

#: How far the fake clock is ahead of the real one; it only ever grows, so a shared client's budget never sees
#: time go backwards between tests.
_OFFSET = [0.0]


def skip_budget_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits for a request budget (``_io_*.pace``) advance the budgets' clock instead of sleeping.

    For tests that patch the backoff sleeps away: without this, a budget paused by a throttled answer would make
    them wait for real. Returns the list of budget waits, in order.
    """
    waits: list[float] = []
    offset = _OFFSET
    offset[0] += 3600.0  # an hour "passes" between tests: a pause left by a client another test shared is over

    def advance(seconds: float) -> None:
        waits.append(seconds)
        offset[0] += seconds

    async def aadvance(seconds: float) -> None:
        advance(seconds)

    monkeypatch.setattr(_budget, "monotonic", lambda: time.monotonic() + offset[0])
    monkeypatch.setattr(_io_sync, "pace", advance)
    monkeypatch.setattr(_io_async, "pace", aadvance)
    return waits
