"""One client shared by many threads (sync) or tasks (async), with 503s injected along the way.

Every call must come back with the right recording and leg, and a URL the fake's
storage honours, however the retries interleave.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import callrec
import httpx
import pytest
from callrec.testing import FakeServer, faults

from .conftest import async_client, sync_client

CALLS = 1000
IDS = [f"call_{n}/x?{n}" for n in range(25)]  # ids that need percent-encoding, too
#: 100 503s among 200 normal answers, consumed by whichever requests come first. Scattered (seeded),
#: not every third: with a period of 3 and 15 threads in lockstep, one thread met a 503 on every
#: try and ran out of retries (about 1 run in 100); no client can recover from that.
_PLACES = set(random.Random(11).sample(range(300), 100))
OUTAGE: list[faults.Fault | tuple[faults.Fault, ...]] = [faults.Status(503) if i in _PLACES else () for i in range(300)]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with FakeServer(validate_requests=False) as server:
        for rid in IDS:
            for leg in ("main", "supervisor"):
                server.add_recording("feather", rid, leg=leg, data=f"feather {rid} {leg}".encode())
            server.add_recording("siro", rid, data=f"siro {rid}".encode())
        yield server


LEGS: tuple[Literal["main"], Literal["supervisor"]] = ("main", "supervisor")


def plan(n: int) -> tuple[str, Literal["main", "supervisor"]]:
    return IDS[n % len(IDS)], LEGS[n // len(IDS) % 2]


def check_urls_work(fake: FakeServer, results: list[callrec.SignedUrl]) -> None:
    """Each distinct (id, leg) URL fetches that recording's bytes from the fake storage."""
    sample = {(r.provider, r.recording_id, r.leg): r for r in results}
    with httpx.Client() as http:
        for (provider, rid, leg), result in sample.items():
            expected = f"feather {rid} {leg}" if provider == "feather" else f"siro {rid}"
            assert http.get(result.url).content == expected.encode()


def test_sync_client_shared_by_16_threads_returns_the_right_url_for_every_call_through_503s(
    fake: FakeServer,
) -> None:
    fake.reset()
    fake.feather.queue(*OUTAGE)
    with sync_client(fake, "feather", max_retries=8) as client, ThreadPoolExecutor(16) as pool:
        assert isinstance(client, callrec.FeatherClient)
        futures = [
            pool.submit(functools.partial(client.recording_url, rid, leg=leg)) for rid, leg in map(plan, range(CALLS))
        ]
        results = [f.result() for f in futures]
    for n, result in enumerate(results):
        assert (result.recording_id, result.leg) == plan(n)
    assert fake.feather.pending == 0
    assert len(fake.requests_to("feather")) == CALLS + 100
    check_urls_work(fake, results)


async def test_async_client_shared_by_200_tasks_returns_the_right_url_for_every_call_through_503s(
    fake: FakeServer,
) -> None:
    fake.reset()
    fake.siro.queue(*OUTAGE)
    async with async_client(fake, "siro", max_retries=8) as client:
        assert isinstance(client, callrec.AsyncSiroClient)

        async def worker(first: int) -> list[tuple[int, callrec.SignedUrl]]:
            return [(n, await client.recording_url(plan(n)[0])) for n in range(first, CALLS, 200)]

        batches = await asyncio.gather(*(worker(first) for first in range(200)))
    results = sorted((pair for batch in batches for pair in batch), key=lambda pair: pair[0])
    assert [n for n, _ in results] == list(range(CALLS))
    for n, result in results:
        assert (result.recording_id, result.leg, result.provider) == (plan(n)[0], None, "siro")
    assert fake.siro.pending == 0
    assert len(fake.requests_to("siro")) == CALLS + 100
    check_urls_work(fake, [result for _, result in results])
