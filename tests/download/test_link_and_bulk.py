"""Links stay fresh with one shared refresh; bulk export is bounded, resumable and keeps a manifest."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import callrec
import pytest
from callrec import _signed_url
from callrec.testing import FakeServer, faults

from .conftest import afeather, asiro, feather, siro


class Clock:
    """Stands in for the time module inside callrec._signed_url, so expiry can be fast-forwarded."""

    def __init__(self) -> None:
        self.skip = 0.0

    def time(self) -> float:
        return time.time() + self.skip


def test_link_reuses_a_valid_url_and_remints_near_expiry(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(_signed_url, "time", clock)
    fake.add_recording("feather", "c1")
    with feather(fake) as client:
        link = client.link("c1", margin=60)
        first = link.get()
        clock.skip = fake.url_ttl - 90  # 90 s left: still outside the margin
        assert link.get() is first
        assert len(fake.requests_to("feather")) == 1
        clock.skip = fake.url_ttl - 30  # 30 s left: inside the margin
        second = link.get()
    assert second is not first
    assert link.mints == 2
    assert len(fake.requests_to("feather")) == 2


def test_concurrent_threads_share_one_refresh(fake: FakeServer) -> None:
    fake.add_recording("siro", "r1")
    fake.siro.always(faults.Latency(0.2))
    with siro(fake) as client:
        link = client.link("r1")
        results: list[callrec.SignedUrl] = []
        threads = [threading.Thread(target=lambda: results.append(link.get())) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 16
    assert len({id(r) for r in results}) == 1
    assert len(fake.requests_to("siro")) == 1


async def test_concurrent_tasks_share_one_refresh(fake: FakeServer) -> None:
    fake.add_recording("feather", "c1", leg="supervisor")
    fake.feather.always(faults.Latency(0.1))
    async with afeather(fake) as client:
        link = client.link("c1", leg="supervisor")
        results = await asyncio.gather(*(link.get() for _ in range(50)))
    assert len({id(r) for r in results}) == 1
    assert results[0].leg == "supervisor"
    assert len(fake.requests_to("feather")) == 1


def test_link_validates_input_before_any_request(fake: FakeServer) -> None:
    with feather(fake) as client:
        with pytest.raises(ValueError, match="recording_id"):
            client.link("")
        with pytest.raises(ValueError, match="margin"):
            client.link("c1", margin=-1)
    assert fake.requests == []


def manifest(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


async def test_download_many_continues_past_failures_and_rerun_skips_done(fake: FakeServer, tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(6)]
    for rid in ids[:5]:
        fake.add_recording("siro", rid)
    # r0 gets the client's 3 tries (max_retries=2) and no more: an API error is final for the item.
    fake.siro.queue(faults.Status(503), faults.Status(503), faults.Status(503))
    async with asiro(fake) as client:
        results = await client.download_many([*ids, "r1", ""], tmp_path, concurrency=1)
    assert [r.recording_id for r in results] == ids
    by_id = {r.recording_id: r for r in results}
    assert [by_id[i].status for i in ids] == ["failed"] + ["downloaded"] * 4 + ["failed"]
    assert isinstance(by_id["r0"].error, callrec.ServiceUnavailableError)
    assert isinstance(by_id["r5"].error, callrec.NotFoundError)
    assert by_id["r0"].attempts == 1
    assert [r.path for r in fake.requests_to("siro")].count("/v1/core/recordings/r0/signedUrl") == 3
    lines = manifest(tmp_path)
    assert sorted((e["recording_id"], e["status"]) for e in lines) == sorted(
        [(i, "downloaded") for i in ids[1:5]] + [("r0", "failed"), ("r5", "failed")]
    )
    # The failed ones become available; a rerun downloads only them and skips the rest.
    fake.add_recording("siro", "r5")
    fake.clear_requests()
    async with asiro(fake) as client:
        again = await client.download_many(ids, tmp_path)
    assert [r.status for r in again] == ["downloaded"] + ["skipped"] * 4 + ["downloaded"]
    assert len(fake.requests_to("storage")) == 2


def test_sync_download_many_interrupted_job_rerun(fake: FakeServer, tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(10)]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.NonAudio())  # the "interruption": every download fails
    with feather(fake) as client:
        first = client.download_many(ids[:4], tmp_path, concurrency=4)
    assert all(r.status == "failed" and isinstance(r.error, callrec.DownloadError) for r in first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl"]
    fake.storage.clear()
    seen: list[str] = []
    with feather(fake) as client:
        second = client.download_many(ids, tmp_path, concurrency=4)
        third = client.download_many(ids, tmp_path, concurrency=4, on_item=lambda item: seen.append(item.status))
    assert [r.status for r in second] == ["downloaded"] * 10
    assert [r.status for r in third] == ["skipped"] * 10
    assert seen == ["skipped"] * 10, "on_item reports every finished item"
    assert {r.result.path for r in third if r.result} == {r.result.path for r in second if r.result}


def test_skip_requires_the_file_at_its_recorded_size(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1")
    with feather(fake) as client:
        (done,) = client.download_many(["c1"], tmp_path)
        assert done.result is not None
        done.result.path.unlink()  # someone deleted it
        (again,) = client.download_many(["c1"], tmp_path)
    assert again.status == "downloaded"


def test_download_many_rejects_bad_input_before_any_request(fake: FakeServer, tmp_path: Path) -> None:
    with feather(fake) as client:
        with pytest.raises(ValueError, match="concurrency"):
            client.download_many(["c1"], tmp_path, concurrency=0)
        with pytest.raises(ValueError, match="recording_id"):
            client.download_many(["c1", ".."], tmp_path)
        (tmp_path / "a-file").write_bytes(b"")
        with pytest.raises(NotADirectoryError, match="not a folder"):
            client.download_many(["c1"], tmp_path / "a-file")
    assert fake.requests == []


async def test_download_many_never_exceeds_its_concurrency(fake: FakeServer, tmp_path: Path) -> None:
    for i in range(12):
        fake.add_recording("feather", f"c{i}")
    fake.feather.always(faults.Latency(0.05))
    in_flight = peak = 0
    async with afeather(fake) as client:
        real = client._download

        async def counting(*args: object, **kwargs: object) -> object:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await real(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                in_flight -= 1

        client._download = counting  # type: ignore[method-assign]
        results = await client.download_many([f"c{i}" for i in range(12)], tmp_path, concurrency=4)
    assert [r.status for r in results] == ["downloaded"] * 12
    assert peak == 4
