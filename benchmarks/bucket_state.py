"""9: what a bucket export's state costs as it grows: PUTs per recording on a first run, the requests and seconds
a rerun spends before its first API request, ``verify`` and ``verify --quick``, and the memory of ``export()``.

Requests are counted at the tests' recording proxy (``tests/objects/store_proxy.py``) in front of moto's server,
which runs in its own process (so neither moto's CPU nor its memory is the client's). Times are wall-clock
(``time.perf_counter``) on loopback: they say what moto costs per request here, not what S3 does (20-30 ms a GET).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import callrec

from . import objects


@dataclass(frozen=True)
class StateCost:
    count: int
    first_puts: int
    first_seconds: float
    rerun_requests: int
    rerun_seconds: float
    verify_requests: int
    verify_seconds: float
    quick_requests: int
    quick_seconds: float


def measure(base: str, key: str, ids: list[str], endpoint: str, concurrency: int) -> StateCost:
    """A first run, a rerun (everything skipped), verify and verify --quick, through a counting proxy."""
    from tests.objects.store_proxy import StoreProxy

    proxy = StoreProxy(endpoint)
    dest = f"s3://{objects.BUCKET}/state/"
    saved = os.environ["AWS_ENDPOINT_URL"]
    os.environ["AWS_ENDPOINT_URL"] = proxy.url
    try:

        async def first() -> float:
            async with callrec.AsyncFeatherClient(key, base_url=base) as client:
                started = time.perf_counter()
                summary = await client.export(ids, dest, concurrency=concurrency)
                if summary.downloaded != len(ids):
                    raise RuntimeError(f"first run: {summary}")
                return time.perf_counter() - started

        first_seconds = asyncio.run(first())
        first_puts = sum(1 for r in proxy.requests if r.method == "PUT")

        proxy.clear()
        before_api: list[tuple[int, float]] = []

        async def rerun() -> None:
            async with callrec.AsyncFeatherClient(key, base_url=base) as client:
                started = time.perf_counter()

                def on_item(_item: callrec.BulkItem) -> None:
                    if not before_api:
                        before_api.append((len(proxy.requests), time.perf_counter() - started))

                summary = await client.export(ids, dest, concurrency=concurrency, on_item=on_item)
                if summary.skipped != len(ids):
                    raise RuntimeError(f"rerun: {summary}")

        asyncio.run(rerun())

        def timed_verify(quick: bool) -> tuple[int, float]:
            proxy.clear()
            started = time.perf_counter()
            report = callrec.verify(dest, quick=quick)
            if not report.ok or report.checked != len(ids):
                raise RuntimeError(f"verify: {report.checked} checked, {len(report.problems)} problems")
            return len(proxy.requests), time.perf_counter() - started

        verify_requests, verify_seconds = timed_verify(False)
        quick_requests, quick_seconds = timed_verify(True)
    finally:
        os.environ["AWS_ENDPOINT_URL"] = saved
        proxy.close()
    return StateCost(
        len(ids),
        first_puts,
        first_seconds,
        before_api[0][0],
        before_api[0][1],
        verify_requests,
        verify_seconds,
        quick_requests,
        quick_seconds,
    )


_MEMORY_CHILD = """
import json, sys, callrec
base, key, dest, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ids = (f"small_{i}" for i in range(count))
with callrec.FeatherClient(key, base_url=base) as client:
    summary = client.export(ids, dest, concurrency=8)
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"downloaded": summary.downloaded, "skipped": summary.skipped, "peak_rss_kib": hwm}))
"""


def export_rss(base: str, key: str, dest: str, count: int) -> dict[str, Any]:
    """Peak RSS (VmHWM) of ``export()`` over ``count`` ids read from a generator, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, base, key, dest, str(count)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]
