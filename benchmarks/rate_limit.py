"""7: bulk export against a rate-limited API: download_many with and without `rate_limit`, sync and async.

The API (callrec.testing in its own process) allows R requests/s, a token bucket holding 5, and answers
429 with `Retry-After: 1` beyond that. The ideal is N / R seconds; the figure is recordings/s against R.
`fleet()` runs W processes on shards 1/W..W/W of the same ids against one such API (a limit they share).

Usage (one fleet worker, as `fleet()` starts it):
`python -m benchmarks.rate_limit --worker BASE_URL KEY COUNT K W RATE_LIMIT|none FLAVOUR CONCURRENCY FOLDER|own`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
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


#: Where the exports write: tmpfs when the machine has one, so the disk (each file and its folder are fsynced) is
#: not what is measured; the rows' notes say which.
FOLDER_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@contextmanager
def server(count: int, per_second: float) -> Iterator[dict[str, str]]:
    argv = [sys.executable, "-m", "benchmarks._rate_limit_server", "--count", str(count)]
    with _servers._child([*argv, "--per-second", str(per_second)]) as info:
        yield info


def export(
    info: Mapping[str, str],
    flavour: str,
    count: int,
    concurrency: int,
    rate_limit: float | None,
    shard: tuple[int, int] | None = None,
    into: str | None = None,
) -> Run:
    """download_many of r0..r<count-1> (or one shard of them) into ``into`` (a fleet's shared folder) or a fresh
    folder, timed."""
    ids = [f"r{i}" for i in range(count)]
    key, base = info["FEATHER_API_KEY"], info["FEATHER_BASE_URL"]
    fresh = tempfile.TemporaryDirectory(prefix="callrec-bench-rl-", dir=FOLDER_ROOT) if into is None else None
    with fresh if fresh is not None else contextlib.nullcontext(into) as folder:
        started = time.perf_counter()
        if flavour == "sync":
            with callrec.FeatherClient(key, base_url=base, rate_limit=rate_limit) as client:
                items = client.download_many(ids, Path(folder), concurrency=concurrency, shard=shard)
                throttled = client.rate_stats().throttled
        else:

            async def go() -> tuple[list[callrec.BulkItem], int]:
                async with callrec.AsyncFeatherClient(key, base_url=base, rate_limit=rate_limit) as client:
                    done = await client.download_many(ids, Path(folder), concurrency=concurrency, shard=shard)
                    return done, client.rate_stats().throttled

            items, throttled = asyncio.run(go())
        seconds = time.perf_counter() - started
    return Run(seconds, throttled, sum(item.status == "failed" for item in items), len(items))


def fleet(
    info: Mapping[str, str],
    workers: int,
    flavour: str,
    count: int,
    concurrency: int,
    rate_limit: float | None,
    *,
    shared: bool = True,
) -> Run:
    """``workers`` processes, each exporting its shard with ``rate_limit`` (None: the fleet finds the limit: one
    scout, then shares, through the destination's board), into one folder (``shared``, as shards of one export
    are) or each into its own (no board: each finds a rate alone).

    The run's time is the slowest worker's; throttled and failed are summed.
    """
    argv = [sys.executable, "-m", "benchmarks.rate_limit", "--worker", info["FEATHER_BASE_URL"]]
    argv += [info["FEATHER_API_KEY"], str(count)]
    tail = ["none" if rate_limit is None else str(rate_limit), flavour, str(concurrency)]
    env = _servers._env()
    with tempfile.TemporaryDirectory(prefix="callrec-bench-fleet-", dir=FOLDER_ROOT) as folder:
        into = folder if shared else "own"
        procs = [
            subprocess.Popen([*argv, str(k), str(workers), *tail, into], stdout=subprocess.PIPE, text=True, env=env)
            for k in range(1, workers + 1)
        ]
        runs = [Run(**json.loads(proc.communicate()[0].strip().splitlines()[-1])) for proc in procs]
    return Run(
        max(run.seconds for run in runs),
        sum(run.throttled for run in runs),
        sum(run.failed for run in runs),
        sum(run.count for run in runs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rate_limit", description=__doc__)
    parser.add_argument("--worker", nargs=9, required=True, metavar="ARG", help="see the usage line above")
    base, key, count, k, workers, rate_limit, flavour, concurrency, into = parser.parse_args(argv).worker
    info = {"FEATHER_BASE_URL": base, "FEATHER_API_KEY": key}
    limit = None if rate_limit == "none" else float(rate_limit)
    shard = (int(k), int(workers))
    run = export(info, flavour, int(count), int(concurrency), limit, shard, None if into == "own" else into)
    print(json.dumps({"seconds": run.seconds, "throttled": run.throttled, "failed": run.failed, "count": run.count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
