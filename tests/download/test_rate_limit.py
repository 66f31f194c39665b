"""Bulk exports and shared clients against a rate-limited API on loopback (faults.RateLimit).

What is asserted is the outcome (no item failed) and the share of requests answered 429, never the wall time:
throughput against the limit is the benchmark's (``make bench``, benchmarks/rate_limit.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import callrec
import pytest
from callrec.testing import FakeServer, faults

from .conftest import afeather, feather

LIMIT = 50.0  # requests per second the fake API allows (burst 5, then 429 + Retry-After: 1)
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(2048)


@pytest.fixture
def limited() -> Iterator[FakeServer]:
    with FakeServer(record_requests=False) as fake:
        for i in range(120):
            fake.add_recording("feather", f"r{i}", data=AUDIO)
        fake.feather.always(faults.RateLimit(LIMIT, burst=5))
        yield fake


def share_429(fake: FakeServer, served: int) -> float:
    return fake.feather.throttled / (served + fake.feather.throttled)


def bulk(
    fake: FakeServer, flavour: str, ids: list[str], dest: Path, rate_limit: float | None
) -> list[callrec.BulkItem]:
    if flavour == "sync":
        with feather(fake, rate_limit=rate_limit) as client:
            return client.download_many(ids, dest, concurrency=16)

    async def go() -> list[callrec.BulkItem]:
        async with afeather(fake, rate_limit=rate_limit) as client:
            return await client.download_many(ids, dest, concurrency=16)

    return asyncio.run(go())


# Each row: (rate_limit given to the client, the largest share of API requests answered 429 it may see).
# Told the limit, the client never exceeds it: nothing is throttled. Not told, it finds the limit from the
# throttling: the first concurrent burst (16 requests against a bucket of 5) is answered 429, then the rate holds.
# Before the request budget, the same runs saw 52-86% of requests answered 429 and up to two thirds of items fail.
BULK_ROWS = [(LIMIT, 0.02), (None, 0.25)]


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(("rate_limit", "max_share"), BULK_ROWS, ids=["rate_limit=limit", "adaptive"])
def test_download_many_under_a_rate_limit_fails_no_item(
    limited: FakeServer, flavour: str, rate_limit: float | None, max_share: float, tmp_path: Path
) -> None:
    ids = [f"r{i}" for i in range(100)]
    items = bulk(limited, flavour, ids, tmp_path, rate_limit)
    assert [i.status for i in items] == ["downloaded"] * 100, [i.error for i in items if i.error][:3]
    assert share_429(limited, 100) <= max_share


# Single calls keep max_retries=2, so a call fails only if three of its own attempts in a row are throttled.
SHARED_ROWS = [(LIMIT, 0.02), (None, 0.5)]


@pytest.mark.parametrize(("rate_limit", "max_share"), SHARED_ROWS, ids=["rate_limit=limit", "adaptive"])
def test_sixteen_threads_on_one_client_stop_stampeding(
    limited: FakeServer, rate_limit: float | None, max_share: float
) -> None:
    errors: list[BaseException] = []
    with feather(limited, rate_limit=rate_limit) as client:

        def worker(k: int) -> None:
            for i in range(k, 100, 16):
                try:
                    client.recording_url(f"r{i}")
                except callrec.CallrecError as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        throttled = client.rate_stats().throttled
    assert errors == []
    assert throttled == limited.feather.throttled  # every 429 the server sent was seen by the budget
    assert share_429(limited, 100) <= max_share


@pytest.mark.parametrize(("rate_limit", "max_share"), SHARED_ROWS, ids=["rate_limit=limit", "adaptive"])
def test_sixty_four_tasks_on_one_client_stop_stampeding(
    limited: FakeServer, rate_limit: float | None, max_share: float
) -> None:
    async def go() -> list[object]:
        async with afeather(limited, rate_limit=rate_limit) as client:
            gate = asyncio.Semaphore(64)

            async def one(i: int) -> object:
                async with gate:
                    try:
                        return await client.recording_url(f"r{i}")
                    except callrec.CallrecError as exc:
                        return exc

            return await asyncio.gather(*(one(i) for i in range(100)))

    results = asyncio.run(go())
    assert [r for r in results if isinstance(r, Exception)] == []
    assert share_429(limited, 100) <= max_share


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_bulk_item_keeps_waiting_while_others_are_served_but_fails_when_nothing_is(
    flavour: str, tmp_path: Path
) -> None:
    """Throttling alone never fails a bulk item while the API serves others; an API that throttles everything
    is failing, and its items fail after max_retries as before."""
    with FakeServer() as fake:
        fake.add_recording("feather", "r0", data=AUDIO)
        fake.feather.always(faults.Status(429, retry_after="0.05"))
        (item,) = bulk(fake, flavour, ["r0"], tmp_path / "a", None)
        assert item.status == "failed" and isinstance(item.error, callrec.RateLimitError)
        assert len(fake.requests_to("feather")) == 3  # max_retries=2: nobody was served, so every 429 counted
