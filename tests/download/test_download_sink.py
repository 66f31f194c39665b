"""Downloads through the FileSink: large reads, disk failures and cancellation leave nothing behind."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import callrec
import pytest
from callrec import _download, _io_async, _io_sync, _sink, _transport
from callrec._destinations import folder as folder_destination
from callrec._destinations.folder import open_temp as real_open_temp
from callrec.testing import FakeServer, faults
from forward_proxy import ForwardProxy

from .conftest import BIG, afeather, feather, leftovers


def sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "callrec-sink" and t.is_alive()]


def download(fake: FakeServer, mode: str, recording_id: str, dest: Path) -> Any:
    if mode == "sync":
        with feather(fake) as client:
            return client.download(recording_id, dest)

    async def run() -> Any:
        async with afeather(fake) as client:
            return await client.download(recording_id, dest)

    return asyncio.run(run())


def record_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """(sizes handed over as filled buffers, sizes handed over as bytes chunks), as the download makes them."""
    filled: list[int] = []
    chunks: list[int] = []
    on_filled, on_chunk = _download.Transfer.on_filled, _download.Transfer.on_chunk

    def record_filled(self: _download.Transfer, buffer: bytearray, size: int, progress: Any) -> None:
        assert len(buffer) == _sink.BUFFER_SIZE
        filled.append(size)
        on_filled(self, buffer, size, progress)

    def record_chunk(self: _download.Transfer, chunk: bytes) -> None:
        chunks.append(len(chunk))
        on_chunk(self, chunk)

    monkeypatch.setattr(_download.Transfer, "on_filled", record_filled)
    monkeypatch.setattr(_download.Transfer, "on_chunk", record_chunk)
    return filled, chunks


def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_storage_bodies_are_read_straight_into_the_sinks_buffers(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    no_proxy(monkeypatch)
    fake.add_recording("feather", "big", data=BIG * 4)
    filled, chunks = record_reads(monkeypatch)
    result = download(fake, mode, "big", tmp_path)
    assert result.bytes == len(BIG * 4) == sum(filled)
    assert chunks == [], "bytes went through iter_raw, not the storage transport's readinto"
    assert result.sha256 == hashlib.sha256(BIG * 4).hexdigest()
    assert result.path.read_bytes() == BIG * 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_under_a_proxy_storage_bodies_take_httpx_and_the_same_guarantees(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # httpx's own transport (what a proxy in the environment selects); the sink is the same.
    monkeypatch.setattr(_io_sync, "storage_transport", lambda: None)
    monkeypatch.setattr(_io_async, "storage_transport", lambda: None)
    fake.add_recording("feather", "big", data=BIG * 4)
    filled, chunks = record_reads(monkeypatch)
    result = download(fake, mode, "big", tmp_path)
    assert filled == [] and sum(chunks) == result.bytes == len(BIG * 4)
    assert result.sha256 == hashlib.sha256(BIG * 4).hexdigest()
    assert result.path.read_bytes() == BIG * 4


@pytest.fixture
def forward_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    no_proxy(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_storage_downloads_go_through_the_environments_proxy_on_the_one_transport(
    fake: FakeServer, tmp_path: Path, forward_proxy: ForwardProxy, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One storage transport in every environment: under a proxy, the same urllib3 transport routes through it."""
    fake.add_recording("feather", "call_1", data=BIG)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the API stays direct; storage (127.0.0.2) takes the proxy
    result = download(fake, mode, "call_1", tmp_path)
    assert result.path.read_bytes() == BIG
    assert [line.split(" ")[0] for line in forward_proxy.lines] == ["GET"]
    assert forward_proxy.lines[0].startswith(f"GET {fake.storage_origin}/feather/call_1/main")
    assert type(_transport.storage_transport()).__name__ == "StorageTransport"
    assert type(_transport.async_storage_transport()).__name__ == "AsyncStorageTransport"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_proxy_sends_storage_direct(
    fake: FakeServer, tmp_path: Path, forward_proxy: ForwardProxy, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_recording("feather", "call_1", data=BIG)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,127.0.0.2")
    assert download(fake, mode, "call_1", tmp_path).path.read_bytes() == BIG
    assert forward_proxy.lines == []


class DiskFull:
    """A temp file that runs out of space after ``room`` bytes."""

    def __init__(self, file: IO[bytes], room: int) -> None:
        self.file, self.room = file, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_full_disk_mid_download_raises_and_leaves_no_file_and_no_thread(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    fake.add_recording("feather", "big", data=BIG * 8)

    def open_temp(folder: Path, stem: str) -> tuple[Any, Path]:
        file, temp = real_open_temp(folder, stem)
        return DiskFull(file, room=1 << 20), temp

    monkeypatch.setattr(folder_destination, "open_temp", open_temp)
    with pytest.raises(callrec.DownloadError, match="No space left") as caught:
        download(fake, mode, "big", tmp_path)
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    assert not sink_threads()


class FileTooBig(DiskFull):
    def write(self, data: bytes) -> int:
        raise OSError(errno.EFBIG, "File too large")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_file_too_large_is_a_download_error_with_the_os_error_as_cause(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    fake.add_recording("feather", "big", data=BIG)

    def open_temp(folder: Path, stem: str) -> tuple[Any, Path]:
        file, temp = real_open_temp(folder, stem)
        return FileTooBig(file, room=0), temp

    monkeypatch.setattr(folder_destination, "open_temp", open_temp)
    with pytest.raises(callrec.DownloadError) as caught:
        download(fake, mode, "big", tmp_path)
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.EFBIG
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_manifest_line_that_cannot_be_written_takes_the_file_back_out(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """ENOSPC on the manifest after the rename: the item fails and the folder holds no file its manifest does not
    know, so a rerun downloads it instead of refusing an unknown file."""
    fake.add_recording("feather", "c0", data=BIG)

    record = folder_destination.Manifest.record

    def full(self: Any, item: Any) -> None:
        if item.status == "downloaded":  # the commit's line; the failure's line (space freed meanwhile) goes in
            raise OSError(errno.ENOSPC, "No space left on device")
        record(self, item)

    monkeypatch.setattr(folder_destination.Manifest, "record", full)
    with feather(fake) as client:
        (item,) = client.download_many(["c0"], tmp_path) if mode == "sync" else asyncio.run(_amany(fake, tmp_path))
    assert item.status == "failed" and isinstance(item.error, callrec.DownloadError)
    assert isinstance(item.error.__cause__, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl"]
    monkeypatch.undo()
    with feather(fake) as client:
        (again,) = client.download_many(["c0"], tmp_path)
    assert again.status == "downloaded" and again.result is not None and again.result.path.read_bytes() == BIG


async def _amany(fake: FakeServer, folder: Path) -> list[Any]:
    async with afeather(fake) as client:
        return await client.download_many(["c0"], folder)


def test_cancelling_an_async_download_mid_body_leaves_no_file_and_no_thread(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "slow", data=BIG)
    fake.storage.always(faults.Trickle(64 * 1024, 0.02))

    async def run() -> None:
        async with afeather(fake) as client:
            task = asyncio.create_task(client.download("slow", tmp_path))
            while not leftovers(tmp_path) or not sink_threads():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # some chunks are in
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    assert list(tmp_path.iterdir()) == []
    assert not sink_threads()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_progress_is_reported_in_order_on_the_callers_thread_before_download_returns(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # Async bodies are read on a worker thread; progress calls are handed back to the event loop's thread.
    no_proxy(monkeypatch)
    data = BIG * 4
    fake.add_recording("feather", "big", data=data)
    calls: list[tuple[int, int | None, str]] = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total, threading.current_thread().name))

    if mode == "sync":
        with feather(fake) as client:
            client.download("big", tmp_path, progress=progress)
            seen_at_return = len(calls)
    else:

        async def run() -> int:
            async with afeather(fake) as client:
                await client.download("big", tmp_path, progress=progress)
                return len(calls)

        seen_at_return = asyncio.run(run())
    assert seen_at_return == len(calls) > 1
    assert [done for done, _, _ in calls] == sorted({done for done, _, _ in calls})  # strictly increasing
    assert calls[-1][:2] == (len(data), len(data))
    assert {name for _, _, name in calls} == {threading.current_thread().name}  # MainThread: the caller's / the loop's


def test_a_cancelled_async_download_makes_no_progress_call_afterwards(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_proxy(monkeypatch)
    fake.add_recording("feather", "big", data=BIG * 4)
    fake.storage.queue(faults.Trickle(chunk_size=64 * 1024, interval=0.05))
    calls: list[int] = []

    async def run() -> int:
        async with afeather(fake) as client:
            task = asyncio.create_task(client.download("big", tmp_path, progress=lambda done, _: calls.append(done)))
            while not calls:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            at_cancel = len(calls)
            await asyncio.sleep(0.3)  # the worker's last reads would have reported by now
            assert len(calls) == at_cancel
            return at_cancel

    assert asyncio.run(run()) >= 1
    assert list(tmp_path.iterdir()) == []


def test_a_progress_call_already_on_its_way_is_dropped_when_the_wait_is_cancelled(tmp_path: Path) -> None:
    # The worker reported, then the wait was cancelled before the event loop ran the report: it must not run.
    calls: list[int] = []

    class Body:
        def __init__(self) -> None:
            self.remaining = 10
            self._chunks = [b"x" * 10]

        def readinto(self, buffer: bytearray, min_fill: int) -> int:
            if not self._chunks:
                return 0
            chunk = self._chunks.pop()
            buffer[: len(chunk)] = chunk
            self.remaining = 0
            return len(chunk)

    class Reader:
        body = Body()

        async def in_worker(self, func: Any) -> None:
            func()  # the reading loop ran (its progress report is scheduled on the loop) ...
            raise asyncio.CancelledError  # ... and the wait is cancelled before the loop ran it

    async def run() -> None:
        sink = _sink.FileSink(*real_open_temp(tmp_path, "rec"))
        transfer = _download.Transfer(
            sink, progress=lambda done, _: calls.append(done), deadline=time.monotonic() + 60, max_retries=0
        )
        try:
            with pytest.raises(asyncio.CancelledError):
                await _io_async.read_storage_body(Reader(), transfer)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)  # scheduled callbacks run here
        finally:
            sink.abort()

    asyncio.run(run())
    assert calls == []
