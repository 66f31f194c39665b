"""Long runs you can watch without a terminal: status lines every ``--stats`` seconds through the ``callrec``
logger, ``--json`` lines per item and a summary, ``--log-format json``; and ``ExportProgress`` in the Python API,
the one source all of them read."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import callrec
import pytest
from callrec.testing import FakeServer, faults
from fake_clients import feather
from test_cli import assert_clean, run

IDS = [f"w{i}" for i in range(14)]
STATUS = re.compile(
    r"^callrec: (\d+)/14 done \(\d+%\): downloaded (\d+), skipped (\d+), failed (\d+); [\d.]+ req/s, throttled \d+, "
    r"[\d.]+ MiB/s; elapsed [\dhms.]+(, eta [\dhms.]+)?$"
)


@pytest.fixture
def slow(callrec_env: FakeServer) -> FakeServer:
    for rid in IDS[:-1]:
        callrec_env.add_recording("feather", rid)
    callrec_env.storage.always(faults.Latency(0.25))  # 13 recordings, 2 at a time: about 1.7 s of work
    return callrec_env


def test_stats_lines_come_every_second_with_growing_counts_and_the_last_equals_the_summary(
    slow: FakeServer, tmp_path: Path
) -> None:
    ids = "".join(f"{rid}\n" for rid in IDS)  # the last one is missing: a failure
    result = run("download-many", "feather", "-", "-d", str(tmp_path), "--concurrency", "2", "--stats", "0.5",
                 stdin=ids)  # fmt: skip
    assert result.code == 1 and result.out.strip() == "downloaded 13, skipped 0, failed 1, throttled 0"
    lines = result.err.splitlines()
    statuses = [STATUS.match(line) for line in lines if not line.startswith("callrec: failed:")]
    assert all(statuses) and len(statuses) >= 3, lines  # at 0.5 s, 1.0 s, ... and the last
    done = [int(m.group(1)) for m in statuses if m]
    assert done == sorted(done) and done[-1] == 14
    last = statuses[-1]
    assert last is not None and last.group(2, 3, 4) == ("13", "0", "1")
    assert lines[-1].startswith("callrec: failed: w13 (main): BadRequestError")
    assert_clean(result, slow)


def test_stats_0_prints_no_status_line(slow: FakeServer, tmp_path: Path) -> None:
    result = run("download-many", "feather", "-", "-d", str(tmp_path), "--stats", "0", stdin="w0\n")
    assert (result.code, result.err) == (0, "")


def test_json_lines_match_the_items_and_json_log_lines_parse(slow: FakeServer, tmp_path: Path) -> None:
    ids = "".join(f"{rid}\n" for rid in IDS)
    result = run("--log-format", "json", "download-many", "feather", "-", "-d", str(tmp_path), "--concurrency", "4",
                 "--stats", "0.5", "--json", stdin=ids)  # fmt: skip
    assert result.code == 1
    out = [json.loads(line) for line in result.out.splitlines()]  # every line parses
    *items, summary = out
    assert {i["type"] for i in items} == {"item"} and summary["type"] == "summary"
    assert sorted(i["recording_id"] for i in items) == sorted(IDS)
    by_id = {i["recording_id"]: i for i in items}
    assert by_id["w13"]["status"] == "failed" and by_id["w13"]["error"] == "BadRequestError"
    ok = by_id["w0"]
    assert ok["status"] == "downloaded" and ok["bytes"] > 0 and len(ok["sha256"]) == 64
    assert Path(ok["path"]).read_bytes() == slow.add_recording("feather", "w0")  # the same bytes again
    assert (summary["downloaded"], summary["skipped"], summary["failed"]) == (13, 0, 1)
    err = [json.loads(line) for line in result.err.splitlines()]  # stderr: JSON too
    statuses = [e for e in err if e["kind"] == "status"]
    assert statuses and statuses[-1]["done"] == 14 and statuses[-1]["failed"] == 1
    assert {"time", "level", "message", "downloaded", "api_rate", "throttled", "mib_per_s", "eta"} <= set(statuses[-1])
    failures = [e for e in err if e["kind"] == "failed"]
    assert [f["recording_id"] for f in failures] == ["w13"] and failures[0]["level"] == "ERROR"
    assert_clean(result, slow)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_export_progress_can_be_polled_while_the_run_goes(slow: FakeServer, tmp_path: Path, mode: str) -> None:
    import asyncio

    from fake_clients import afeather

    progress = callrec.ExportProgress()
    seen: list[callrec.ProgressSnapshot] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.1):
            seen.append(progress.snapshot())

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        if mode == "sync":
            with feather(slow) as client:
                items = client.download_many(IDS, tmp_path, concurrency=2, progress=progress)
        else:

            async def go() -> list[callrec.BulkItem]:
                async with afeather(slow) as client:
                    return await client.download_many(IDS, tmp_path, concurrency=2, progress=progress)

            items = asyncio.run(go())
    finally:
        stop.set()
        poller.join()
    final = progress.snapshot()
    assert (final.done, final.total, final.downloaded, final.failed) == (14, 14, 13, 1)
    assert final.bytes == sum(i.result.bytes for i in items if i.result is not None)
    assert len(seen) >= 5 and [s.done for s in seen] == sorted(s.done for s in seen)
    assert any(0 < s.done < 14 for s in seen) and final.as_dict()["done"] == 14


def test_verify_prints_status_lines_and_json_lines_for_every_entry(slow: FakeServer, tmp_path: Path) -> None:
    slow.storage.always(faults.Latency(0))
    ids = "".join(f"{rid}\n" for rid in IDS[:-1])
    assert run("download-many", "feather", "-", "-d", str(tmp_path), "--stats", "0", stdin=ids).code == 0
    (tmp_path / "feather-w3-main.wav").write_bytes(b"RIFF changed")
    result = run("--log-format", "json", "verify", str(tmp_path), "--json", "--stats", "0.001")
    assert result.code == 1
    *entries, summary = [json.loads(line) for line in result.out.splitlines()]
    assert len(entries) == 13 and {e["status"] for e in entries} == {"ok", "size"}
    assert [e["recording_id"] for e in entries if e["status"] == "size"] == ["w3"]
    assert (summary["checked"], summary["size"], summary["orphans"]) == (13, 1, 0)
    err = [json.loads(line) for line in result.err.splitlines()]
    last = [e for e in err if e["kind"] == "status"][-1]
    assert (last["done"], last["total"], last["skipped"], last["failed"]) == (13, 13, 12, 1)
    assert last["message"].startswith("13/13 checked (100%): ok 12, problems 1")
