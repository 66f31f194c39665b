"""Downloads and bulk exports into a bucket: moto's S3 server on loopback, the fake vendor APIs, no mocks.

Every promise of the README's "Exporting to object storage and across workers", sync and async alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import callrec
import pytest
from callrec.testing import FakeServer, faults
from fake_clients import afeather, feather

from .conftest import S3

#: Larger than one part (8 MiB): goes as a multipart upload to a staging object, then a create-only copy.
LARGE = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * (4096 * 20)  # 20 MiB
IDS = [f"c{i}" for i in range(6)]


def download(fake: FakeServer, mode: str, rid: str, dest: Any, **kw: Any) -> callrec.DownloadResult:
    client_kw = {k: kw.pop(k) for k in ("max_retries",) if k in kw}
    if mode == "sync":
        with feather(fake, **client_kw) as client:
            return client.download(rid, dest, **kw)

    async def run() -> callrec.DownloadResult:
        async with afeather(fake, **client_kw) as client:
            return await client.download(rid, dest, **kw)

    return asyncio.run(run())


def download_many(fake: FakeServer, mode: str, ids: list[str], dest: Any, **kw: Any) -> list[callrec.BulkItem]:
    client_kw = {k: kw.pop(k) for k in ("max_retries",) if k in kw}
    if mode == "sync":
        with feather(fake, **client_kw) as client:
            return client.download_many(ids, dest, **kw)

    async def run() -> list[callrec.BulkItem]:
        async with afeather(fake, **client_kw) as client:
            return await client.download_many(ids, dest, **kw)

    return asyncio.run(run())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def manifest_entries(store: Any, prefix: str) -> list[dict[str, Any]]:
    """Every manifest entry under ``prefix`` (every shard's batches), read straight from the store."""
    keys = [k for k in store.objects(prefix) if "/.callrec/" in f"/{k}" and "/manifest/" in k]
    return [json.loads(line) for key in sorted(keys) for line in store.get(key).decode().splitlines()]


# -- one recording ---------------------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(
    ("size", "multipart"),
    [pytest.param("small", False, id="one-PUT"), pytest.param("large", True, id="multipart-then-copy")],
)
def test_a_download_into_a_prefix_lands_as_one_complete_object_named_as_in_a_folder(
    fake: FakeServer, s3: S3, mode: str, size: str, multipart: bool
) -> None:
    data = fake.add_recording("feather", "call/1", data=LARGE if size == "large" else None)
    result = download(fake, mode, "call/1", s3.url("exports/"))
    name = result.location.rsplit("/", 1)[1]
    assert name.startswith("feather-call_1_") and name.endswith("-main.wav")  # the folder's naming rule
    assert result.location == f"s3://{s3.bucket}/exports/{name}" and result.path is None
    assert (result.bytes, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert s3.objects() == {f"exports/{name}": len(data)}  # no staging object, no manifest for a single download
    assert s3.get(f"exports/{name}") == data
    assert s3.unfinished_uploads() == []
    parts = [r for r in s3.proxy.requests if "partNumber" in r.query]
    assert bool(parts) is multipart
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"exports/{name}")
    assert head["ContentType"] == ("binary/octet-stream" if multipart else "audio/wav")


@MODES
def test_a_key_without_a_trailing_slash_is_the_object_s_own_name(fake: FakeServer, s3: S3, mode: str) -> None:
    data = fake.add_recording("feather", "c1")
    result = download(fake, mode, "c1", s3.url("calls/mine.wav"))
    assert result.location == f"s3://{s3.bucket}/calls/mine.wav"
    assert s3.objects() == {"calls/mine.wav": len(data)}


@MODES
@pytest.mark.parametrize("size", ["small", "large"])
def test_an_existing_object_is_refused_before_any_request_and_replaced_only_with_overwrite(
    fake: FakeServer, s3: S3, mode: str, size: str
) -> None:
    first = fake.add_recording("feather", "c1", data=LARGE if size == "large" else None)
    download(fake, mode, "c1", s3.url("x/"))
    second = fake.add_recording("feather", "c1", data=first[:-1000])
    fake.clear_requests()
    s3.proxy.clear()
    with pytest.raises(FileExistsError, match=rf"s3://{s3.bucket}/x/feather-c1-main.wav exists"):
        download(fake, mode, "c1", s3.url("x/"))
    assert fake.requests == []  # neither the API nor storage was asked
    assert s3.proxy.writes() == []
    assert s3.get("x/feather-c1-main.wav") == first

    result = download(fake, mode, "c1", s3.url("x/"), overwrite=True)
    assert s3.get("x/feather-c1-main.wav") == second and result.bytes == len(second)
    assert s3.recordings() == {"x/feather-c1-main.wav": len(second)} and s3.unfinished_uploads() == []


@MODES
@pytest.mark.parametrize("size", ["small", "large"])
def test_an_object_that_appears_during_the_download_is_not_overwritten(
    fake: FakeServer, s3: S3, mode: str, size: str
) -> None:
    """The create-only write itself refuses (If-None-Match), not only the check before the request."""
    fake.add_recording("feather", "c1", data=LARGE if size == "large" else None)
    fake.storage.queue(faults.Latency(0.5))
    other = b"someone else's"
    threading.Timer(
        0.2, lambda: s3.client.put_object(Bucket=s3.bucket, Key="x/feather-c1-main.wav", Body=other)
    ).start()
    with pytest.raises(FileExistsError):
        download(fake, mode, "c1", s3.url("x/"))
    assert s3.get("x/feather-c1-main.wav") == other
    assert s3.objects() == {"x/feather-c1-main.wav": len(other)} and s3.unfinished_uploads() == []


@MODES
def test_expiry_mid_download_re_signs_and_resumes_into_the_same_upload(fake: FakeServer, s3: S3, mode: str) -> None:
    data = fake.add_recording("feather", "c1", data=LARGE)
    fake.storage.queue(faults.ExpireMidDownload(after_bytes=len(data) // 2))
    result = download(fake, mode, "c1", s3.url("x/"))
    assert result.url_refreshes == 1 and s3.get("x/feather-c1-main.wav") == data
    ranges = [r.header("range") for r in fake.requests_to("storage")]
    assert ranges[-1] is not None and ranges[-1].startswith("bytes=")


# -- failures leave nothing -------------------------------------------------------------------------------------------


def _part_2(request: Any) -> bool:
    return request.method == "PUT" and request.query.get("partNumber") == ["2"]


@MODES
@pytest.mark.parametrize("fault", ["storage cut", "upload part refused", "cancelled"])
def test_a_failure_mid_transfer_leaves_no_object_and_no_unfinished_upload(
    fake: FakeServer, s3: S3, mode: str, fault: str
) -> None:
    data = fake.add_recording("feather", "c1", data=LARGE)
    kw: dict[str, Any] = {}
    if fault == "storage cut":
        fake.storage.always(faults.ShortBody(missing=len(data) // 4))  # cut after the first part went
        kw["max_retries"] = 0
        expected: type[BaseException] = callrec.DownloadError
    elif fault == "upload part refused":
        s3.proxy.fail(_part_2, 403)
        expected = callrec.DownloadError
    else:

        def stop(done: int, _total: int | None) -> None:
            if done > len(data) * 3 // 4:
                raise KeyboardInterrupt  # Ctrl-C in the sync client; the async task is cancelled instead

        kw["progress"] = stop
        expected = KeyboardInterrupt
    if mode == "async" and fault == "cancelled":
        # 1 MiB every 50 ms: the cancellation lands mid-body, not after the body (a commit under way finishes).
        fake.storage.always(faults.Trickle(chunk_size=1 << 20, interval=0.05))

        async def run() -> None:
            async with afeather(fake) as client:
                task = asyncio.create_task(client.download("c1", s3.url("x/")))
                while not any("partNumber" in r.query for r in s3.proxy.requests):
                    await asyncio.sleep(0.01)
                task.cancel()
                await task

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(run())
    else:
        with pytest.raises(expected):
            download(fake, mode, "c1", s3.url("x/"), **kw)
    assert any("uploadId" in r.query or "uploads" in r.query for r in s3.proxy.requests)  # a multipart upload began
    assert s3.objects() == {} and s3.unfinished_uploads() == []


# -- bulk -------------------------------------------------------------------------------------------------------------

RERUN = textwrap.dedent(
    """
    import json, sys, callrec
    with callrec.FeatherClient() as client:
        kw = json.loads(sys.stdin.read() or "{}")
        kw["shard"] = tuple(kw["shard"]) if kw.get("shard") else None
        items = client.download_many(sys.argv[2:], sys.argv[1], **kw)
    print(json.dumps([[i.recording_id, i.status, i.result.location if i.result else None] for i in items]))
    """
)


def run_elsewhere(fake: FakeServer, s3: S3, dest: str, ids: list[str], **kw: Any) -> list[list[Any]]:
    """download_many in a new Python process (another machine, as far as the bucket can tell)."""
    env = {**os.environ, **fake.env(), **s3.env()}
    done = subprocess.run(
        [sys.executable, "-c", RERUN, dest, *ids],
        input=json.dumps(kw),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@MODES
def test_a_bulk_export_then_a_rerun_from_another_process_skips_everything_with_no_download_and_no_upload(
    fake: FakeServer, s3: S3, mode: str
) -> None:
    sizes = {}
    for rid in IDS:
        sizes[rid] = len(fake.add_recording("feather", rid, data=LARGE if rid == "c0" else None))
    items = download_many(fake, mode, IDS, s3.url("exports/"), concurrency=3)
    assert [i.status for i in items] == ["downloaded"] * len(IDS)
    assert s3.recordings("exports/") == {f"exports/feather-{rid}-main.wav": sizes[rid] for rid in IDS}
    state = list(s3.objects("exports/.callrec/"))
    # One manifest batch; the lease released, the large recording's pending entry deleted once the batch held it.
    assert len(state) == 1 and state[0].startswith("exports/.callrec/all/manifest/"), state
    entries = {e["recording_id"]: e for e in map(json.loads, s3.get(state[0]).decode().splitlines())}
    entry = entries["c1"]
    assert entry["path"] == "feather-c1-main.wav" and entry["bytes"] == sizes["c1"]
    assert entry["sha256"] == hashlib.sha256(s3.get("exports/feather-c1-main.wav")).hexdigest()
    head = s3.client.head_object(Bucket=s3.bucket, Key="exports/feather-c1-main.wav")
    assert entry["e_tag"] == head["ETag"].strip('"')
    assert head["Metadata"] == {"callrec_id": "c1", "callrec_leg": "main", "callrec_sha256": entry["sha256"]}

    fake.clear_requests()
    s3.proxy.clear()
    again = run_elsewhere(fake, s3, s3.url("exports/"), IDS)
    assert [status for _, status, _ in again] == ["skipped"] * len(IDS)
    assert again[1][2] == f"s3://{s3.bucket}/exports/feather-c1-main.wav"
    assert fake.requests_to("storage") == [] and fake.requests == []
    assert [r for r in s3.proxy.writes() if "/.callrec/" not in f"/{r.key}"] == []
    assert {r.key for r in s3.proxy.writes()} == {"exports/.callrec/all/lease.json"}  # taken, then released


@MODES
def test_a_deleted_object_is_downloaded_again_on_a_rerun(fake: FakeServer, s3: S3, mode: str) -> None:
    for rid in IDS[:3]:
        fake.add_recording("feather", rid)
    download_many(fake, mode, IDS[:3], s3.url("e/"))
    s3.client.delete_object(Bucket=s3.bucket, Key="e/feather-c1-main.wav")
    items = download_many(fake, mode, IDS[:3], s3.url("e/"))
    assert [i.status for i in items] == ["skipped", "downloaded", "skipped"]


@MODES
def test_a_second_run_on_a_prefix_gets_export_locked_before_any_request(fake: FakeServer, s3: S3, mode: str) -> None:
    for rid in IDS:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.3))
    first = threading.Thread(target=download_many, args=(fake, "sync", IDS, s3.url("e/")), kwargs={"concurrency": 1})
    first.start()
    try:
        deadline = time.monotonic() + 10
        while "e/.callrec/all/lease.json" not in s3.objects("e/") and time.monotonic() < deadline:
            time.sleep(0.02)
        with FakeServer() as other:  # the second run's own view of the APIs and storage
            other.add_recording("feather", "c0")
            with pytest.raises(callrec.ExportLockedError, match="holds the lease"):
                download_many(other, mode, IDS, s3.url("e/"))
            assert other.requests == []
    finally:
        first.join()
    # Another shard is another lease: it runs alongside.
    assert len(download_many(fake, mode, IDS, s3.url("e/"), shard=(1, 2))) > 0


@MODES
def test_a_stale_lease_of_a_crashed_run_expires_and_is_taken_over(fake: FakeServer, s3: S3, mode: str) -> None:
    for rid in IDS[:2]:
        fake.add_recording("feather", rid)
    crashed = {"token": "dead", "owner": "gone:1", "ttl": 1.0}  # expiry: its Last-Modified + 1 s, store clock
    s3.client.put_object(Bucket=s3.bucket, Key="e/.callrec/all/lease.json", Body=json.dumps(crashed).encode())
    time.sleep(2.2)  # + Last-Modified's one-second resolution
    items = download_many(fake, mode, IDS[:2], s3.url("e/"))
    assert [i.status for i in items] == ["downloaded", "downloaded"]
    assert "e/.callrec/all/lease.json" not in s3.objects()  # released at the end

    live = {"token": "alive", "owner": "busy:2", "ttl": 60.0}
    s3.client.put_object(Bucket=s3.bucket, Key="e/.callrec/all/lease.json", Body=json.dumps(live).encode())
    with pytest.raises(callrec.ExportLockedError, match="busy:2"):
        download_many(fake, mode, IDS[:2], s3.url("e/"))


def test_a_run_renews_its_lease_and_a_lost_lease_fails_the_items_it_had_left(
    fake: FakeServer, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rid in IDS[:3]:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.5))
    key = "e/.callrec/all/lease.json"

    def steal() -> None:
        time.sleep(0.9)  # the run has renewed at least once by now (every 1/3 s)
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b'{"token": "t", "owner": "thief", "ttl": 600}')

    thief = threading.Thread(target=steal)
    thief.start()
    with pytest.raises(callrec.ExportLockedError, match="lost its lease"):
        download_many(fake, "sync", IDS[:3], s3.url("e/"), concurrency=1, lease_seconds=1.0)
    thief.join()
    assert len([r for r in s3.proxy.writes() if r.key == key and r.method == "PUT"]) >= 3  # taken + renewed
    recordings = {k.rsplit("/", 1)[1].removesuffix(".wav") for k in s3.recordings("e/")}
    entries = {f"feather-{e['recording_id']}-main" for e in manifest_entries(s3, "e/")}
    assert recordings == entries and len(recordings) < 3  # no recording without its manifest entry
    assert json.loads(s3.get(key))["owner"] == "thief"  # the other run's lease is left alone


# -- shards -----------------------------------------------------------------------------------------------------------


def test_three_shards_from_three_processes_cover_every_id_exactly_once(fake: FakeServer, s3: S3) -> None:
    ids = [f"r{i}" for i in range(24)]
    for rid in ids:
        fake.add_recording("feather", rid)
    env = {**os.environ, **fake.env(), **s3.env()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RERUN, s3.url("e/"), *ids],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(json.dumps({"shard": [k, 3]}), timeout=120)[0] for k, p in zip((1, 2, 3), procs, strict=True)]
    assert [p.returncode for p in procs] == [0, 0, 0]
    per_shard = [[rid for rid, status, _ in json.loads(out) if status == "downloaded"] for out in outs]
    assert all(per_shard)  # each shard got some
    assert sorted(rid for shard in per_shard for rid in shard) == sorted(ids)  # every id once
    assert s3.recordings("e/") == {f"e/feather-{rid}-main.wav": len(fake.add_recording("feather", rid)) for rid in ids}
    shards = {k.split("/")[2] for k in s3.objects("e/.callrec/")}
    assert shards == {"1-of-3", "2-of-3", "3-of-3"}
    # An unsharded rerun merges the three manifests: everything is skipped.
    fake.clear_requests()
    again = download_many(fake, "sync", ids, s3.url("e/"))
    assert {i.status for i in again} == {"skipped"} and fake.requests == []
    assert callrec.verify(s3.url("e/")).checked == len(ids)


def test_a_shard_takes_the_same_ids_on_every_machine(fake: FakeServer, s3: S3) -> None:
    from callrec._bulk import in_shard

    ids = [f"r{i}" for i in range(24)]
    for rid in ids:
        fake.add_recording("feather", rid)
    here = list(in_shard(ids, (2, 3)))
    there = run_elsewhere(fake, s3, s3.url("e/"), ids, shard=[2, 3])
    assert [rid for rid, status, _ in there if status == "downloaded"] == here


# -- verify -----------------------------------------------------------------------------------------------------------


def test_verify_names_a_deleted_and_a_changed_object(fake: FakeServer, s3: S3) -> None:
    for rid in IDS[:4]:
        fake.add_recording("feather", rid)
    download_many(fake, "sync", IDS[:4], s3.url("e/"))
    assert callrec.verify(s3.url("e/")).ok
    s3.client.delete_object(Bucket=s3.bucket, Key="e/feather-c1-main.wav")
    body = bytearray(s3.get("e/feather-c2-main.wav"))
    body[100] ^= 0xFF
    s3.client.put_object(Bucket=s3.bucket, Key="e/feather-c2-main.wav", Body=bytes(body))
    s3.client.put_object(Bucket=s3.bucket, Key="e/feather-c3-main.wav", Body=b"short")
    s3.proxy.clear()
    quick = callrec.verify(s3.url("e/"), quick=True)
    assert [r for r in s3.proxy.requests if r.key.endswith(".wav")] == []  # quick: the listing, no recording read
    report = callrec.verify(s3.url("e/"))
    for found in (quick, report):
        assert found.checked == 4 and not found.ok
        # c2 was rewritten with other bytes of the same size: its ETag says so, from the listing, with no read.
        assert [(p.recording_id, p.problem) for p in found.problems] == [
            ("c1", "missing"),
            ("c2", "e_tag"),
            ("c3", "size"),
        ]
        assert found.problems[0].location == f"s3://{s3.bucket}/e/feather-c1-main.wav"


def test_an_obstore_store_object_is_a_destination_too(fake: FakeServer, s3: S3) -> None:
    from obstore.store import S3Store

    data = fake.add_recording("feather", "c1", data=LARGE)
    store = S3Store(s3.bucket, prefix="mine", client_options={"allow_http": True})  # built without callrec's options
    with feather(fake) as client:
        result = client.download("c1", store)
        with pytest.raises(FileExistsError):
            client.download("c1", store)
        fake.add_recording("feather", "c2")
        first = client.download_many(["c2"], store)
        again = client.download_many(["c2"], store)
    assert result.location == f"s3://{s3.bucket}/mine/feather-c1-main.wav"
    assert set(s3.recordings()) == {"mine/feather-c1-main.wav", "mine/feather-c2-main.wav"}
    assert s3.get("mine/feather-c1-main.wav") == data
    assert [i.status for i in first + again] == ["downloaded", "skipped"]
