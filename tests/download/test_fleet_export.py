"""The shards of one export, each with no ``rate_limit``, against one rate-limited loopback API (faults.RateLimit):
one scout finds the limit while the others send nothing, then each paces at its share (``_fleet``).

Asserted: counts and who sent when (each client's own request count when the limit was published), never the
wall time; the throughput is ``make bench``'s (benchmarks/rate_limit.py, "4 processes at 60/s"). A sync and an
async worker share each run, each of them the scout once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callrec
import pytest
from callrec import _fleet
from callrec._bulk import shard_of
from callrec.testing import FakeServer, faults

from .conftest import afeather, feather

LIMIT = 40.0
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(512)
_ALL = [f"r{i}" for i in range(1600)]
#: Shard k of 2's ids: the scout's shard outlasts the 8-17 s it takes to find the limit (the first probe climbs
#: slowly from as low as 0.8x of it: ~600 recordings at ~36/s) and then the small shard's run at half the limit;
#: the other's is small, so that the run ends soon after (its requests are the point, not its length).
BIG = {k: [rid for rid in _ALL if shard_of(rid, 2) == k][:720] for k in (1, 2)}
SMALL = {k: BIG[k][:60] for k in (1, 2)}
IDS = sorted(set(_ALL))


@pytest.fixture
def limited() -> Iterator[FakeServer]:
    with FakeServer(record_requests=False) as fake:
        for rid in IDS:
            fake.add_recording("feather", rid, data=AUDIO)
        fake.feather.always(faults.RateLimit(LIMIT, burst=5))
        yield fake


class Published(logging.Handler):
    """Each worker's requests so far, taken when the scout logs that it published the limit."""

    def __init__(self, clients: dict[str, Any]) -> None:
        super().__init__()
        self.clients = clients
        self.at: dict[str, int] | None = None
        self.by: str | None = None
        self.shares: list[tuple[str, float]] = []  # (worker, requests/s) as each was set
        self.alone: list[tuple[str, float]] = []  # (worker, the limit it went on from) once its peers ended

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "pacing at its share" in message:
            self.shares.append((message.split()[2].rstrip(":"), float(message.split()[-2])))
        if "alone on the board" in message:  # "... fleet 1/2: alone on the board: adaptive from the limit, 39.5/s"
            self.alone.append((message.split()[2].rstrip(":"), float(message.split()[-1].removesuffix("/s"))))
        if "found the limit" in message and self.at is None:
            self.by = message.split()[2].rstrip(":")
            self.at = {tag: client.rate_stats().requests for tag, client in self.clients.items()}


@pytest.mark.parametrize("first", ["sync", "async"])
def test_two_shards_one_scouts_alone_then_both_pace_at_half_the_limit(
    limited: FakeServer, tmp_path: Path, first: str
) -> None:
    ids = BIG[1] + SMALL[2] if first == "sync" else SMALL[1] + BIG[2]
    sync_client = feather(limited)
    async_client = afeather(limited)
    tags = {"sync": "1/2", "async": "2/2"}
    handler = Published({tags["sync"]: sync_client, tags["async"]: async_client})
    logger = logging.getLogger("callrec")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    results: dict[str, list[callrec.BulkItem]] = {}
    errors: list[BaseException] = []

    def run_sync() -> None:
        try:
            with sync_client:
                results["sync"] = sync_client.download_many(ids, tmp_path, concurrency=16, shard=(1, 2))
        except BaseException as exc:
            errors.append(exc)

    def run_async() -> None:
        async def go() -> None:
            async with async_client:
                results["async"] = await async_client.download_many(ids, tmp_path, concurrency=16, shard=(2, 2))

        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    runners = {"sync": run_sync, "async": run_async}
    second = "async" if first == "sync" else "sync"
    try:
        threads = [threading.Thread(target=runners[first])]
        threads[0].start()
        time.sleep(0.3)  # the first has claimed the scout by now
        threads.append(threading.Thread(target=runners[second]))
        threads[1].start()
        for thread in threads:
            thread.join(timeout=240)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert errors == []
    items = results["sync"] + results["async"]
    assert len(items) == len(ids) and {item.status for item in items} == {"downloaded"}
    # one scout, the one that started first; the other had sent nothing when the limit was published
    assert handler.by == tags[first] and handler.at is not None
    assert handler.at[tags[first]] > 0 and handler.at[tags[second]] == 0
    board = tmp_path / ".callrec" / "fleet" / "feather-2"
    limit = json.loads((board / "limit.json").read_bytes())
    assert limit["by"] == tags[first] and 0.75 * LIMIT <= limit["limit"] <= 1.05 * LIMIT
    assert sorted(os.listdir(board)) == ["limit.json"]  # no claim, no running marker left
    # both paced at half of it; the small shard ended first, and the scout, alone, went on adaptively from the
    # whole limit (not a ceiling: a higher limit could still be found)
    half = limit["limit"] / 2
    for who in (tags[first], tags[second]):
        assert any(w == who and rate == pytest.approx(half, rel=0.01) for w, rate in handler.shares), handler.shares
    assert len(handler.alone) == 1 and handler.alone[0][0] == tags[first], handler.alone
    assert handler.alone[0][1] == pytest.approx(limit["limit"], rel=0.01)
    served = len(ids) + limited.feather.throttled  # every recording's URL once, plus the throttled attempts
    assert limited.feather.throttled / served <= 0.05  # the scout's first burst and probe; the shares hold
    assert sync_client.rate_stats().limit is None and async_client.rate_stats().limit is None  # their own rates back


def test_a_worker_cancelled_while_it_waits_for_the_scout_sends_nothing_and_leaves_no_marker(
    limited: FakeServer, tmp_path: Path
) -> None:
    board = tmp_path / ".callrec" / "fleet" / "feather-2"
    board.mkdir(parents=True)
    (board / "scout.json").write_text(json.dumps({"token": "alive", "by": "1/2"}))  # a live scout's (fresh) claim
    client = afeather(limited)

    async def go() -> None:
        async with client:
            task = asyncio.ensure_future(client.download_many(IDS, tmp_path, concurrency=16, shard=(2, 2)))
            for _ in range(200):
                if (board / "running-2").exists():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # holding: no request goes
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    assert client.rate_stats().requests == 0
    assert sorted(os.listdir(board)) == ["scout.json"]  # the live scout's claim, untouched; our marker gone
    assert not any(p.suffix == ".wav" for p in tmp_path.iterdir())


_SCOUT = """
import sys, time, callrec
from callrec import _fleet
base, key, folder = sys.argv[1:4]
with callrec.FeatherClient(key, base_url=base) as client:
    client.download_many([f"r{i}" for i in range(900)], folder, concurrency=4, shard=(1, 2))
"""


def test_a_scout_killed_before_it_found_the_limit_is_taken_over_once_its_claim_is_stale(
    limited: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board = tmp_path / ".callrec" / "fleet" / "feather-2"
    scout = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_SCOUT),
            limited.feather_base_url,
            limited.feather_api_key,
            str(tmp_path),
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (board / "scout.json").exists():
            assert time.monotonic() < deadline and scout.poll() is None, "the scout never claimed"
            time.sleep(0.02)
    finally:
        scout.send_signal(signal.SIGKILL)  # mid-scouting: its claim and marker stay, never rewritten
        scout.wait()
    assert json.loads((board / "scout.json").read_bytes())["by"] == "1/2"
    for name in ("scout.json", "running-1"):  # as if STALE s had passed since the kill
        stamp = (board / name).stat().st_mtime - _fleet.STALE - 1
        os.utime(board / name, (stamp, stamp))
    caplog.set_level(logging.INFO, logger="callrec")
    mine = BIG[2][:200]
    with feather(limited) as client:
        items = client.download_many(mine, tmp_path, concurrency=16, shard=(2, 2))
    assert len(items) == len(mine) and {item.status for item in items} == {"downloaded"}
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("callrec fleet 2/2")]
    assert "callrec fleet 2/2: the scout stopped; finding the limit instead" in messages
    assert not any("waiting for the scout" in m for m in messages)
    assert "running-2" not in os.listdir(board) and "scout.json" not in os.listdir(board)


def test_shards_told_their_share_pace_at_it_and_write_no_board(limited: FakeServer, tmp_path: Path) -> None:
    ids = SMALL[1] + SMALL[2]
    with feather(limited, rate_limit=LIMIT / 2) as client:
        first = client.download_many(ids, tmp_path, concurrency=16, shard=(1, 2))

    async def second() -> list[callrec.BulkItem]:
        async with afeather(limited, rate_limit=LIMIT / 2) as client:
            return await client.download_many(ids, tmp_path, concurrency=16, shard=(2, 2))

    items = first + asyncio.run(second())
    assert len(items) == len(ids) and {item.status for item in items} == {"downloaded"}
    assert not (tmp_path / ".callrec").exists()
    assert limited.feather.throttled == 0
