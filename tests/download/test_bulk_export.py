"""Bulk export you can stop, rerun from anywhere and trust: sync and async, API and command line."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callrec
import pytest
from budget_clock import skip_budget_waits
from callrec.testing import FakeServer, faults

FLAVOURS = ["sync", "async"]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        for i in range(4):
            server.add_recording("feather", f"c{i}")
        yield server


def client_for(fake: FakeServer, flavour: str, **kw: Any) -> Any:
    cls = callrec.FeatherClient if flavour == "sync" else callrec.AsyncFeatherClient
    return cls(fake.feather_api_key, base_url=fake.feather_base_url, **kw)


def bulk(
    fake: FakeServer, flavour: str, ids: list[str], dest: Any, client_kw: dict[str, Any] | None = None, **kw: Any
) -> list[callrec.BulkItem]:
    client = client_for(fake, flavour, **(client_kw or {}))
    if flavour == "sync":
        with client:
            items: list[callrec.BulkItem] = client.download_many(ids, dest, **kw)
            return items

    async def go() -> list[callrec.BulkItem]:
        async with client:
            items: list[callrec.BulkItem] = await client.download_many(ids, dest, **kw)
            return items

    return asyncio.run(go())


def manifest(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


IDS = ["c0", "c1", "c2", "c3"]


# -- 1. a rerun from anywhere ----------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_rerun_from_another_directory_skips_everything(
    fake: FakeServer, flavour: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    first = bulk(fake, flavour, IDS, "exports")  # relative to home
    assert [r.status for r in first] == ["downloaded"] * 4
    assert {e["path"] for e in manifest(home / "exports")} == {f"feather-{i}-main.wav" for i in IDS}
    fake.clear_requests()
    monkeypatch.chdir(elsewhere)
    again = bulk(fake, flavour, IDS, home / "exports")  # absolute, from another directory
    assert [r.status for r in again] == ["skipped"] * 4
    assert {r.result.path for r in again} == {home / "exports" / f"feather-{i}-main.wav" for i in IDS}
    monkeypatch.chdir(home)
    third = bulk(fake, flavour, IDS, "exports")  # and the original directory still works
    assert [r.status for r in third] == ["skipped"] * 4
    assert fake.requests == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_later_failure_never_erases_a_verified_success(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    bulk(fake, flavour, ["c0"], tmp_path)
    fake.storage.always(faults.NonAudio())
    (failed,) = bulk(fake, flavour, ["c0"], tmp_path, overwrite=True)  # fails; the file stays as it was
    assert failed.status == "failed" and isinstance(failed.error, callrec.DownloadError)
    assert [e["status"] for e in manifest(tmp_path)] == ["downloaded", "failed"]
    fake.storage.clear()
    fake.clear_requests()
    (again,) = bulk(fake, flavour, ["c0"], tmp_path)
    assert again.status == "skipped" and fake.requests == []


def test_manifests_written_by_earlier_versions_are_still_honoured(fake: FakeServer, tmp_path: Path) -> None:
    (item,) = bulk(fake, "sync", ["c0"], tmp_path)
    path = item.result.path
    entry = manifest(tmp_path)[0]
    for old_style in (str(path.resolve()), f"some/cwd/relative/{path.name}"):
        (tmp_path / "manifest.jsonl").write_text(json.dumps({**entry, "path": old_style}) + "\n")
        (again,) = bulk(fake, "sync", ["c0"], tmp_path)
        assert again.status == "skipped", old_style


def test_cli_rerun_from_home_skips_what_a_cron_job_exported(fake: FakeServer, tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(IDS) + "\n")
    out = tmp_path / "exports"
    env = {**os.environ, **fake.env()}
    cron = tmp_path / "cron"
    cron.mkdir()
    first = subprocess.run(
        [sys.executable, "-m", "callrec", "download-many", "feather", str(ids_file), "-d", "exports", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    fake.clear_requests()
    again = subprocess.run(
        [sys.executable, "-m", "callrec", "download-many", "feather", str(ids_file), "-d", str(out), "--json"],
        cwd=cron, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["skipped"] == 4  # JSON lines: the summary is last
    assert fake.requests == []


# -- 2. one retry policy ---------------------------------------------------------------------------


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(callrec._io_sync, "sleep", slept.append)
    monkeypatch.setattr(callrec._io_async, "sleep", asleep)
    skip_budget_waits(monkeypatch)
    return slept


@pytest.mark.usefixtures("instant")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("status", "max_retries", "requests"),
    [(501, 2, 1), (503, 2, 3), (503, 0, 1), (429, 1, 2), (404, 2, 1)],
    ids=["501-not-retried", "503-max2", "503-max0", "429-max1", "404"],
)
def test_each_api_request_follows_the_clients_policy_and_no_more(
    fake: FakeServer, flavour: str, status: int, max_retries: int, requests: int, tmp_path: Path
) -> None:
    fake.feather.always(faults.Status(status))
    (item,) = bulk(fake, flavour, ["c0"], tmp_path, client_kw={"max_retries": max_retries})
    assert item.status == "failed" and item.attempts == 1
    assert isinstance(item.error, callrec.APIStatusError) and item.error.status_code == status
    assert len(fake.requests_to("feather")) == requests


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("max_retries", "storage_requests"), [(0, 1), (1, 4), (2, 6)])
def test_a_download_failing_after_its_url_was_minted_is_tried_once_more(
    fake: FakeServer, flavour: str, max_retries: int, storage_requests: int, tmp_path: Path, instant: list[float]
) -> None:
    fake.storage.always(faults.Status(503, retry_after="7"))
    (item,) = bulk(fake, flavour, ["c0"], tmp_path, client_kw={"max_retries": max_retries})
    assert item.status == "failed" and isinstance(item.error, callrec.DownloadError)
    # per try: 1 + max_retries storage requests; the item is tried again once (never with max_retries=0)
    assert len(fake.requests_to("storage")) == storage_requests
    assert item.attempts == (1 if max_retries == 0 else 2)
    assert len(fake.requests_to("feather")) == item.attempts  # a fresh URL for the second try
    # the storage host's Retry-After, between storage requests and between item tries alike
    assert set(instant) == ({7.0} if max_retries else set())
    assert parts(tmp_path) == []


# -- 3. structured concurrency ---------------------------------------------------------------------


class BarBroke(Exception):
    pass


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_failing_on_item_stops_every_download_and_leaves_no_partial_file(
    fake: FakeServer, flavour: str, tmp_path: Path
) -> None:
    ids = [f"s{i}" for i in range(12)]
    for rid in ids:
        fake.add_recording("feather", rid, data=b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(200_000))
    fake.add_recording("feather", "fast")
    fake.storage.queue(())  # "fast" is served at once...
    fake.storage.always(faults.Trickle(chunk_size=4096, interval=0.01))  # ...the rest slowly

    def on_item(item: callrec.BulkItem) -> None:
        raise BarBroke(item.recording_id)

    with pytest.raises(BarBroke):
        bulk(fake, flavour, ["fast", *ids], tmp_path, concurrency=4, on_item=on_item)
    # When the call returns nothing is still running: no partial file, and no file appears later.
    assert parts(tmp_path) == []
    files = sorted(p.name for p in tmp_path.iterdir())
    time.sleep(0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    assert len([f for f in files if f.endswith(".wav")]) < 4  # the slow ones were stopped, not finished
    started = {r.path.split("/")[2] for r in fake.requests_to("storage")}
    assert len(started) <= 1 + 4  # items not started when it failed never started


# -- 4. folders are created ------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_missing_destination_folders_are_created(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    items = bulk(fake, flavour, ["c0"], tmp_path / "a" / "b")
    assert items[0].status == "downloaded" and (tmp_path / "a" / "b" / "feather-c0-main.wav").is_file()
    client = client_for(fake, flavour)
    if flavour == "sync":
        with client:
            result = client.download("c1", f"{tmp_path}/x/y/")
    else:

        async def go() -> Any:
            async with client:
                return await client.download("c1", f"{tmp_path}/x/y/")

        result = asyncio.run(go())
    assert result.path == tmp_path / "x" / "y" / "feather-c1-main.wav"


def test_cli_creates_the_dir(fake: FakeServer, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callrec", "download-many", "feather", "-", "-d", "new/dir"],
        input="c0\n", cwd=tmp_path, env={**os.environ, **fake.env()}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "dir" / "feather-c0-main.wav").is_file()


# -- 5. one run per folder -------------------------------------------------------------------------


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """Another run's lock on the folder's manifest."""
    with (tmp_path / "manifest.jsonl").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield tmp_path


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_second_run_into_the_same_folder_fails_fast(fake: FakeServer, flavour: str, held: Path) -> None:
    with pytest.raises(callrec.ExportLockedError, match="another download_many run"):
        bulk(fake, flavour, IDS, held)
    assert fake.requests == []
    assert (held / "manifest.jsonl").read_text() == ""


def test_cli_second_run_fails_fast_with_one_line(fake: FakeServer, held: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callrec", "download-many", "feather", "-", "-d", str(held)],
        input="c0\n", env={**os.environ, **fake.env()}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "another download_many run" in done.stderr
    assert fake.requests == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_lock_is_released_when_a_run_ends(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    bulk(fake, flavour, ["c0"], tmp_path)
    with (tmp_path / "manifest.jsonl").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held


def hold_commits(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """(a commit has started, let it go on): every commit waits for the second event."""
    from callrec._destinations import folder

    started, go_on = threading.Event(), threading.Event()
    original = folder.commit

    def held(*args: Any, **kwargs: Any) -> None:
        started.set()
        go_on.wait(10)
        original(*args, **kwargs)

    monkeypatch.setattr(folder, "commit", held)
    return started, go_on


def test_a_cancellation_during_a_commit_lets_it_finish_with_its_manifest_line(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the commit's worker thread went on after the cancellation and put the file in place without its
    # manifest line, so a rerun without overwrite refused it (FileExistsError) instead of skipping it.
    started, go_on = hold_commits(monkeypatch)

    async def run() -> None:
        async with client_for(fake, "async") as client:
            task = asyncio.create_task(client.download_many(["c0"], tmp_path))
            try:
                assert await asyncio.to_thread(started.wait, 10), "no commit started"
                task.cancel()
                await asyncio.sleep(0.05)
                waited = not task.done()
            finally:
                go_on.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert waited, "the cancellation did not wait for the commit"

    asyncio.run(run())
    monkeypatch.undo()
    files = sorted(p.name for p in tmp_path.iterdir() if p.name != "manifest.jsonl")
    assert files == ["feather-c0-main.wav"] and parts(tmp_path) == []
    [line] = manifest(tmp_path)
    assert (line["recording_id"], line["status"], line["path"]) == ("c0", "downloaded", "feather-c0-main.wav")
    before = len(fake.requests_to("storage"))
    [item] = bulk(fake, "async", ["c0"], tmp_path)
    assert item.status == "skipped" and len(fake.requests_to("storage")) == before


def test_a_cancelled_async_download_still_commits_a_file_it_was_committing(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, go_on = hold_commits(monkeypatch)

    async def run() -> None:
        async with client_for(fake, "async") as client:
            task = asyncio.create_task(client.download("c1", tmp_path))
            try:
                assert await asyncio.to_thread(started.wait, 10), "no commit started"
                task.cancel()
            finally:
                go_on.set()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    [file] = tmp_path.iterdir()
    assert file.name == "feather-c1-main.wav" and file.stat().st_size > 0  # whole, under its final name, no .part
