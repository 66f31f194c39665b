"""Downloads through the FileSink: large reads, disk failures and cancellation leave nothing behind."""

from __future__ import annotations

import asyncio
import errno
import threading
from pathlib import Path
from typing import IO, Any

import pytest
from callrec import _async_client, _download, _io_async, _sync_client, _transport
from callrec.testing import FakeServer, faults

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


def record_chunk_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    original = _download.Transfer.on_chunk

    def on_chunk(self: _download.Transfer, chunk: bytes) -> None:
        sizes.append(len(chunk))
        original(self, chunk)

    monkeypatch.setattr(_download.Transfer, "on_chunk", on_chunk)
    return sizes


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_storage_reads_up_to_256_kib_at_a_time(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake.add_recording("feather", "big", data=BIG * 4)
    monkeypatch.setattr(_io_async, "storage_transport", _transport.async_storage_transport)  # not aiohttp's
    sizes = record_chunk_sizes(monkeypatch)
    result = download(fake, mode, "big", tmp_path)
    assert result.bytes == len(BIG * 4) == sum(sizes)
    assert max(sizes) > 64 * 1024, "httpcore's fixed 64 KiB reads: the large-read wrapper is not in place"
    assert max(sizes) <= _transport.STORAGE_READ_SIZE


def test_a_proxy_in_the_environment_leaves_the_storage_transport_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert _transport.storage_transport() is None  # httpx mounts environment proxies only when it picks
    assert _transport.async_storage_transport() is None


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
        file, temp = _download.open_temp(folder, stem)
        return DiskFull(file, room=1 << 20), temp

    monkeypatch.setattr(_sync_client if mode == "sync" else _async_client, "open_temp", open_temp)
    with pytest.raises(OSError, match="No space left"):
        download(fake, mode, "big", tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not sink_threads()


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
