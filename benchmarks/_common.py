"""Result rows and small helpers shared by the benchmarks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes:
        benchmark: what was measured (numbered as in the issue).
        subject: the SDK figure's name.
        value: the SDK figure (a throughput, a ratio, seconds, MiB...).
        unit: the unit of `value` and `baseline`.
        baseline: the same-run baseline figure, or None when there is none.
        baseline_name: what the baseline is.
        ratio: value / baseline (or the figure the target is judged on), or None.
        target: the target, in words ("ratio <= 1.05"), or "" when reported only.
        met: whether the target is met; None when reported only.
        note: anything needed to read the row.
    """

    benchmark: str
    subject: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


async def run_concurrently(call: Callable[[int], Awaitable[object]], total: int, concurrency: int) -> float:
    """Run `call(i)` for i in range(total), `concurrency` at a time; return calls per second."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)
