"""Bucket state under faults from outside the code: a process killed with SIGKILL, a store that applies a write and
answers 500, renewals refused, a clock ten minutes ahead, a cancellation during start-up, ids that collide.

Every case of the issue "Bucket exports you can trust at a million recordings", on moto's S3 behind the recording
proxy (``store_proxy``); the same promises on Azurite and the GCS double are in ``test_store_matrix``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import callrec
import pytest
from callrec.testing import FakeServer, faults
from fake_clients import afeather, feather

from .conftest import S3
from .store_proxy import StoreRequest
from .test_object_export import LARGE, MODES, download_many, manifest_entries

libfaketime = pytest.importorskip("libfaketime")


CHILD = textwrap.dedent(
    """
    import json, sys, callrec
    kw = json.loads(sys.argv[2])
    try:
        with callrec.FeatherClient() as client:
            items = client.download_many(sys.argv[3:], sys.argv[1], **kw)
    except callrec.ExportLockedError as exc:
        print(json.dumps({"locked": str(exc)}))
    else:
        print(json.dumps({"items": [[i.recording_id, i.status] for i in items]}))
    """
)


def child(fake: FakeServer, s3: S3, dest: str, ids: list[str], env: dict[str, str] | None = None, **kw: Any) -> Any:
    """download_many in another process (another machine, as far as the bucket can tell)."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, dest, json.dumps(kw), *ids],
        env={**os.environ, **fake.env(), **s3.env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: Any) -> None:
    """SIGKILL: no handler, no finally, no atexit runs in the child."""
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def is_lease_put(request: StoreRequest) -> bool:
    return request.method == "PUT" and request.key.endswith("/lease.json")


# -- 1. a recording stored without its manifest entry -----------------------------------------------------------------


@MODES
def test_a_run_killed_between_its_recordings_and_their_manifest_batch_is_adopted_on_the_rerun(
    fake: FakeServer, s3: S3, mode: str
) -> None:
    ids = [f"k{i}" for i in range(12)]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.15))
    proc = child(fake, s3, s3.url("e/"), ids, concurrency=2, lease_seconds=2.0)
    try:
        wait_for(lambda: len(s3.recordings("e/")) >= 3)
    finally:
        kill(proc)
    time.sleep(3.2)  # its lease expires (2 s after its last write, + Last-Modified's one-second resolution)
    stored = set(s3.recordings("e/"))
    known = {f"e/{entry['path']}" for entry in manifest_entries(s3, "e/")}
    assert stored - known, "the kill must land before the batch holding these entries (5 s)"
    fake.clear_requests()
    fake.storage.always(faults.Latency(0))

    items = download_many(fake, mode, ids, s3.url("e/"), concurrency=4)
    by_status = {i.recording_id: i.status for i in items}
    assert "failed" not in by_status.values(), [i.error for i in items if i.error]
    adopted = {f"e/feather-{rid}-main.wav" for rid, status in by_status.items() if status == "skipped"}
    assert adopted >= stored - known  # every orphan adopted, none downloaded again
    downloads = {r.path.rsplit("/", 1)[1] for r in fake.requests_to("storage")}
    assert not any(key.rsplit("/", 1)[1].removesuffix(".wav").removeprefix("feather-") in downloads for key in adopted)
    report = callrec.verify(s3.url("e/"))
    assert report.ok and report.orphans == () and report.checked == len(ids)


def test_a_killed_multipart_upload_leaves_no_staging_object_after_the_rerun(fake: FakeServer, s3: S3) -> None:
    """A SIGKILL mid-multipart leaves an upload no client of obstore can list (S3's ListMultipartUploads is not in
    its API): the README asks for an AbortIncompleteMultipartUpload lifecycle rule. What callrec can reach, the
    staging objects under ``.callrec/<shard>/uploads/``, is gone after the next run of the shard."""
    fake.add_recording("feather", "big", data=LARGE)
    fake.storage.always(faults.Trickle(chunk_size=1 << 20, interval=0.15))
    proc = child(fake, s3, s3.url("e/"), ["big"], lease_seconds=2.0)
    try:
        wait_for(lambda: s3.unfinished_uploads() != [])
    finally:
        kill(proc)
    time.sleep(3.2)
    # A staging object a run completed but did not copy yet: what a kill between the two leaves.
    s3.client.put_object(Bucket=s3.bucket, Key="e/.callrec/all/uploads/deadbeef", Body=b"x" * 10)
    fake.storage.always(faults.Latency(0))
    items = download_many(fake, "sync", ["big"], s3.url("e/"))
    assert [i.status for i in items] == ["downloaded"]
    assert [k for k in s3.objects("e/.callrec/") if "/uploads/" in k] == []
    # The killed run's upload stays (and its parts are billed) until the lifecycle rule aborts it.
    assert len(s3.unfinished_uploads()) == 1 and s3.unfinished_uploads()[0].startswith("e/.callrec/all/uploads/")


# -- 2, 3, 4, 5. leases -------------------------------------------------------------------------------------------------


def test_renewals_refused_stop_the_run_before_another_run_may_take_its_lease(fake: FakeServer, s3: S3) -> None:
    ids = [f"r{i}" for i in range(20)]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.2))

    lease_seen: list[float] = []

    def refuse_renewals() -> None:
        wait_for(lambda: "e/.callrec/all/lease.json" in s3.objects("e/.callrec/"))
        lease_seen.append(time.monotonic())  # no earlier than the write that took it was sent
        # Its renewals and its release (obstore deletes with DeleteObjects: a POST ?delete naming the keys).
        s3.proxy.fail(lambda r: (r.key.endswith("/lease.json") and r.is_write) or "delete" in r.query, 500, once=False)

    refuser = threading.Thread(target=refuse_renewals)
    refuser.start()
    committed: list[float] = []
    started = time.monotonic()
    with pytest.raises(callrec.ExportLockedError, match="could not renew its lease"):
        download_many(
            fake,
            "sync",
            ids,
            s3.url("e/"),
            concurrency=1,
            lease_seconds=1.5,
            on_item=lambda item: committed.append(time.monotonic()),
        )
    refuser.join()
    # Nothing committed past its validity: 1.25 s after the write that took the lease was sent.
    assert committed and committed[-1] < lease_seen[0] + 1.25 and len(committed) < len(ids)
    assert time.monotonic() - started < 1.5 + 2.0  # and the run ended (a renewal stuck in obstore is not waited for)
    # Nothing it stored lacks its entry, and the lease is still there: another run must wait for its expiry.
    assert set(s3.recordings("e/")) == {f"e/{e['path']}" for e in manifest_entries(s3, "e/")}
    s3.proxy.clear()
    time.sleep(2.6)  # its lease expires on the store's clock (1.5 s + Last-Modified's resolution) if still there
    items = download_many(fake, "sync", ids, s3.url("e/"), concurrency=8)
    assert "failed" not in {i.status for i in items} and callrec.verify(s3.url("e/")).ok


def test_a_run_whose_clock_is_660_s_ahead_does_not_take_over_a_live_lease(fake: FakeServer, s3: S3) -> None:
    ids = [f"s{i}" for i in range(10)]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.4))  # one at a time: the first run holds its lease for about 4 s
    first = threading.Thread(target=download_many, args=(fake, "sync", ids, s3.url("e/")), kwargs={"concurrency": 1})
    first.start()
    try:
        wait_for(lambda: "e/.callrec/all/lease.json" in s3.objects("e/.callrec/"))
        skewed = {**libfaketime.get_reload_information()[1], "FAKETIME": "+660s"}
        out, err = child(fake, s3, s3.url("e/"), ["s0"], env=skewed).communicate(timeout=60)
        assert "holds the lease" in json.loads(out)["locked"], err
        # The child's clock was ahead (libfaketime, LD_PRELOAD): the lease's expiry was judged on the store's.
        check = subprocess.run(
            [sys.executable, "-c", "import time; print(time.time())"],
            env={**os.environ, **skewed},
            text=True,
            capture_output=True,
            check=True,
        )
        assert float(check.stdout) - time.time() > 600
    finally:
        first.join()


def test_a_lease_write_the_store_applied_but_answered_500_is_recognised_as_ours(fake: FakeServer, s3: S3) -> None:
    fake.add_recording("feather", "a")
    s3.proxy.fail(is_lease_put, 500, apply=True)  # obstore retries; the retry gets 412 for our own lease
    items = download_many(fake, "sync", ["a"], s3.url("e/"))
    assert [i.status for i in items] == ["downloaded"]
    assert "e/.callrec/all/lease.json" not in s3.objects("e/")  # released: the prefix is not blocked
    assert len([r for r in s3.proxy.requests if is_lease_put(r)]) >= 2


def test_cancelling_an_async_download_many_during_its_start_up_releases_its_lease(fake: FakeServer, s3: S3) -> None:
    fake.add_recording("feather", "a")
    # The listing that follows the lease is held, so the cancellation lands while the lease is taken.
    s3.proxy.delay(lambda r: r.method == "GET" and "list-type" in r.query, 1.0)

    async def run() -> None:
        async with afeather(fake) as client:
            task = asyncio.ensure_future(client.download_many(["a"], s3.url("e/")))
            while "e/.callrec/all/lease.json" not in s3.objects("e/.callrec/"):
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert "e/.callrec/all/lease.json" not in s3.objects("e/.callrec/")
            items = await client.download_many(["a"], s3.url("e/"))  # the same process, at once
            assert [i.status for i in items] == ["downloaded"]

    asyncio.run(run())
    assert fake.requests_to("storage") != []


# -- 6, 7, 8. names, merges, overwrite -----------------------------------------------------------------------------------


@MODES
def test_two_long_ids_sharing_120_characters_get_two_names_and_overwrite_keeps_both(
    fake: FakeServer, s3: S3, mode: str
) -> None:
    first, second = "x" * 120 + "1", "x" * 120 + "2"
    fake.add_recording("feather", first, data=b"ID3" + b"1" * 300)
    fake.add_recording("feather", second, data=b"ID3" + b"2" * 400)
    items = download_many(fake, mode, [first, second], s3.url("e/"))
    assert [i.status for i in items] == ["downloaded", "downloaded"]
    names = sorted(s3.recordings("e/"))
    assert len(names) == 2 and all(len(n.rsplit("_", 1)[1].split("-")[0]) == 16 for n in names)  # 64-bit digests
    download_many(fake, mode, [second], s3.url("e/"), overwrite=True)
    assert sorted(s3.recordings("e/").values()) == [303, 403]  # the first recording is still there


def test_entries_merge_by_time_whichever_shard_wrote_them(fake: FakeServer, s3: S3) -> None:
    ids = [f"m{i}" for i in range(8)]
    for rid in ids:
        fake.add_recording("feather", rid, data=b"ID3" + b"a" * 100)
    download_many(fake, "sync", ids, s3.url("e/"))  # into .callrec/all
    for rid in ids:
        fake.add_recording("feather", rid, data=b"ID3" + b"b" * 200)  # the vendor re-encoded them
    download_many(fake, "sync", ids, s3.url("e/"), shard=(2, 2), overwrite=True)  # into .callrec/2-of-2
    report = callrec.verify(s3.url("e/"))
    assert report.ok, report.problems  # "all" sorts before "2-of-2"; the newer entry wins anyway
    items = download_many(fake, "sync", ids, s3.url("e/"))
    assert {i.status for i in items} == {"skipped"}


def test_a_rerun_does_not_skip_an_object_rewritten_with_other_bytes_of_the_same_size(fake: FakeServer, s3: S3) -> None:
    fake.add_recording("feather", "a", data=b"ID3" + b"a" * 100)
    [first] = download_many(fake, "sync", ["a"], s3.url("e/"))
    assert first.result is not None
    key = first.result.location.removeprefix(f"s3://{s3.bucket}/")
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"ID3" + b"z" * 100)
    items = download_many(fake, "sync", ["a"], s3.url("e/"))
    # Not skipped (the ETag moved), and not replaced either: it is not ours any more (no overwrite).
    assert items[0].status == "failed" and isinstance(items[0].error, FileExistsError)
    assert s3.get(key) == b"ID3" + b"z" * 100
    assert download_many(fake, "sync", ["a"], s3.url("e/"), overwrite=True)[0].status == "downloaded"


# -- 10, 11. URLs and verify -------------------------------------------------------------------------------------------


def test_a_percent_escaped_prefix_is_written_where_it_says_and_named_so(fake: FakeServer, s3: S3) -> None:
    fake.add_recording("feather", "a")
    with feather(fake) as client:
        result = client.download("a", s3.url("my%20exports/"))
        with pytest.raises(ValueError, match="segments"):
            client.download("a", s3.url("x/%2e%2e/y/"))
        with pytest.raises(ValueError, match="escaped"):
            client.download("a", s3.url("x%2Fy/"))
    key = result.location.removeprefix(f"s3://{s3.bucket}/")
    assert key.startswith("my exports/") and key in s3.objects()
    assert len(fake.requests_to("feather")) == 1  # the refusals sent nothing


def test_verify_of_a_prefix_with_no_export_is_an_error_and_exit_2(fake: FakeServer, s3: S3) -> None:
    with pytest.raises(FileNotFoundError, match="no callrec export"):
        callrec.verify(s3.url("typo/"))
    done = subprocess.run(
        [sys.executable, "-m", "callrec", "verify", s3.url("typo/")],
        env={**os.environ, **s3.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no callrec export" in done.stderr


# -- cost: PUTs per recording and a rerun's start-up, counted at the proxy ---------------------------------------------


def test_a_first_run_sends_at_most_1_05_puts_a_recording_and_a_rerun_n_over_500_plus_30_requests(
    fake: FakeServer, s3: S3
) -> None:
    n = 1200
    ids = [f"n{i:05d}" for i in range(n)]
    for rid in ids:
        fake.add_recording("feather", rid, data=b"ID3" + rid.encode())
    items = download_many(fake, "sync", ids, s3.url("e/"), concurrency=16)
    assert {i.status for i in items} == {"downloaded"}
    puts = [r for r in s3.proxy.requests if r.method == "PUT"]
    assert len(puts) <= 1.05 * n, len(puts)

    s3.proxy.clear()
    fake.clear_requests()
    first_api: list[int] = []

    def on_item(_item: callrec.BulkItem) -> None:
        if not first_api:
            first_api.append(len(s3.proxy.requests))

    with feather(fake) as client:
        again = client.download_many(ids, s3.url("e/"), on_item=on_item)
    assert {i.status for i in again} == {"skipped"} and fake.requests == []
    assert first_api[0] <= n / 500 + 30, first_api


def test_the_folder_keeps_a_replaced_recording_when_its_manifest_line_cannot_be_written(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """overwrite=True replaced the old file: withdrawing the new one would leave no copy at all."""
    from callrec._destinations import folder

    fake.add_recording("feather", "a", data=b"ID3" + b"1" * 50)
    download_many(fake, "sync", ["a"], tmp_path)
    fake.add_recording("feather", "a", data=b"ID3" + b"2" * 60)

    record = folder.Manifest.record

    def full_disk(self: Any, item: Any) -> None:  # the line that goes with the commit; a failure's line is kept
        if item.status == "downloaded":
            raise OSError(28, "No space left on device")
        record(self, item)

    monkeypatch.setattr(folder.Manifest, "record", full_disk)
    items = download_many(fake, "sync", ["a"], tmp_path, overwrite=True)
    assert items[0].status == "failed"
    assert [p.read_bytes() for p in tmp_path.glob("feather-a-main.*")] == [b"ID3" + b"2" * 60]
