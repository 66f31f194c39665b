"""3: async bulk URL minting against a server that answers after a fixed latency."""

from __future__ import annotations

import asyncio

import callrec

from ._common import run_concurrently


async def _sdk(base: str, key: str, total: int, concurrency: int) -> float:
    async with callrec.AsyncFeatherClient(key, base_url=base) as client:
        # Open the pool's connections outside the timing.
        await asyncio.gather(*(client.recording_url("call_demo") for _ in range(concurrency)))
        return await run_concurrently(lambda _i: client.recording_url("call_demo"), total, concurrency)


def measure(base: str, key: str, total: int, concurrency: int) -> float:
    """Calls per second of AsyncFeatherClient.recording_url at `concurrency`."""
    return asyncio.run(_sdk(base, key, total, concurrency))
