"""7: bulk export against a rate-limited API: download_many with and without `rate_limit`, sync and async.

The API (callrec.testing in its own process) allows R requests/s, a token bucket holding 5, and answers
429 with `Retry-After: 1` beyond that. The ideal is N / R seconds; the figure is recordings/s against R.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import callrec

from . import _servers


@dataclass(frozen=True)
class Run:
    """One export: how long it took, how many API answers were throttled, how many items failed."""

    seconds: float
    throttled: int
    failed: int
    count: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def share_429(self) -> float:
        """Throttled answers among all API requests (each item makes one that is served)."""
        return self.throttled / (self.count + self.throttled)


@contextmanager
def server(count: int, per_second: float) -> Iterator[dict[str, str]]:
    argv = [sys.executable, "-m", "benchmarks._rate_limit_server", "--count", str(count)]
    with _servers._child([*argv, "--per-second", str(per_second)]) as info:
        yield info


def export(info: Mapping[str, str], flavour: str, count: int, concurrency: int, rate_limit: float | None) -> Run:
    """download_many of r0..r<count-1> into a fresh folder, timed."""
    ids = [f"r{i}" for i in range(count)]
    key, base = info["FEATHER_API_KEY"], info["FEATHER_BASE_URL"]
    with tempfile.TemporaryDirectory(prefix="callrec-bench-rl-") as folder:
        started = time.perf_counter()
        if flavour == "sync":
            with callrec.FeatherClient(key, base_url=base, rate_limit=rate_limit) as client:
                items = client.download_many(ids, Path(folder), concurrency=concurrency)
                throttled = client.rate_stats().throttled
        else:

            async def go() -> tuple[list[callrec.BulkItem], int]:
                async with callrec.AsyncFeatherClient(key, base_url=base, rate_limit=rate_limit) as client:
                    done = await client.download_many(ids, Path(folder), concurrency=concurrency)
                    return done, client.rate_stats().throttled

            items, throttled = asyncio.run(go())
        seconds = time.perf_counter() - started
    return Run(seconds, throttled, sum(item.status == "failed" for item in items), count)
