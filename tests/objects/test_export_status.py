"""``callrec.status`` / ``callrec status``: per shard and in total, from the manifest and the leases, only reads;
on a bucket (moto behind the recording proxy) and a folder, with a run still going."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import callrec
import pytest
from callrec._bulk import shard_of
from callrec._cli import main
from callrec.testing import FakeServer, faults
from click.testing import CliRunner

from .conftest import S3
from .test_object_export import download_many

IDS = [f"s{i}" for i in range(12)]


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_status_of_a_sharded_partly_failed_partly_running_bucket_export_reports_each_shard(
    fake: FakeServer, s3: S3
) -> None:
    missing = next(rid for rid in IDS if shard_of(rid, 3) == 1)
    for rid in IDS:
        if rid != missing:
            fake.add_recording("feather", rid)
    for k in (1, 2):
        download_many(fake, "sync", IDS, s3.url("e/"), shard=(k, 3))
    fake.storage.always(faults.Latency(0.5))
    third = threading.Thread(
        target=download_many, args=(fake, "sync", IDS, s3.url("e/")), kwargs={"shard": (3, 3), "concurrency": 1}
    )
    third.start()
    try:
        wait_for(lambda: "e/.callrec/3-of-3/lease.json" in s3.objects("e/.callrec/"))
        s3.proxy.clear()
        found = callrec.status(s3.url("e/"))
        # only reads (the running shard's own writes to its fleet board are not status's)
        writes = [r for r in s3.proxy.requests if r.method not in ("GET", "HEAD")]
        assert [r.method for r in writes if not r.key.startswith("e/.callrec/fleet/")] == []
        out = CliRunner().invoke(main_cli(), ["status", s3.url("e/"), "--json"])
    finally:
        third.join()
    per = {s.shard: s for s in found.shards}
    assert list(per) == ["1-of-3", "2-of-3", "3-of-3"]
    expected = {k: sum(1 for rid in IDS if shard_of(rid, 3) == k) for k in (1, 2, 3)}
    assert (per["1-of-3"].done, per["1-of-3"].failed, per["1-of-3"].last_error) == (
        expected[1] - 1,
        1,
        "BadRequestError",
    )
    assert (per["2-of-3"].done, per["2-of-3"].failed, per["2-of-3"].lease) == (expected[2], 0, None)
    running = per["3-of-3"]
    assert running.running and running.lease is not None and running.done < expected[3]
    assert running.lease.owner == f"{socket.gethostname()}:{os.getpid()}"
    assert running.lease.written_at is not None and running.lease.expires_at is not None
    assert (running.lease.expires_at - running.lease.written_at).total_seconds() == 600 + 1
    assert found.failed == 1 and found.orphans == 0
    assert found.done == sum(s.done for s in found.shards)
    data = json.loads(out.output)
    assert data["shards"][2]["running"] is True and data["shards"][1]["lease"] is None
    assert data["done"] == found.done and data["failed"] == 1

    after = callrec.status(s3.url("e/"))
    assert [s.running for s in after.shards] == [False, False, False] and after.done == len(IDS) - 1


def main_cli() -> object:
    from callrec._cli import cli

    return cli


def test_status_of_a_folder_while_a_run_holds_it_and_the_text_output(fake: FakeServer, tmp_path: Path) -> None:
    for rid in IDS[:6]:
        fake.add_recording("feather", rid)
    download_many(fake, "sync", IDS[:3], tmp_path)
    fake.storage.always(faults.Latency(0.4))
    run = threading.Thread(
        target=download_many, args=(fake, "sync", IDS[3:6], tmp_path), kwargs={"shard": (1, 1), "concurrency": 1}
    )
    run.start()
    try:
        wait_for(lambda: (tmp_path / "manifest-1-of-1.jsonl").exists())
        found = callrec.status(tmp_path)
        runner = CliRunner()
        text = runner.invoke(main_cli(), ["status", str(tmp_path)])
    finally:
        run.join()
    per = {s.shard: s for s in found.shards}
    assert per["all"].done == 3 and not per["all"].running
    assert per["1-of-1"].running and per["1-of-1"].lease is not None
    assert per["1-of-1"].lease.owner.endswith(f":{os.getpid()}")
    lines = text.output.splitlines()
    assert text.exit_code == 0 and lines[0].startswith(f"{tmp_path}: ") and "orphans 0" in lines[0]
    assert lines[1].split()[0] == "all" and lines[1].endswith("free")
    assert lines[2].split()[0] == "1-of-1" and "held by" in lines[2]


def test_status_of_nothing_is_exit_2(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        callrec.status(tmp_path)
    assert main(["status", str(tmp_path / "nope")]) == 2
