"""FileSink: writing and hashing on a background thread, against real temporary files."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, cast

import pytest
from callrec import _sink
from callrec._sink import FileSink


def sink_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "callrec-sink"]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Any:
    before = set(sink_threads())
    yield
    assert set(sink_threads()) <= before, "a sink thread outlived its test"


def new_file(tmp_path: Path, name: str = "rec.part") -> tuple[IO[bytes], Path]:
    path = tmp_path / name
    return path.open("w+b"), path


class Wrapped:
    """A real file whose writes can be held back (``gate``) or fail after ``fail_after`` bytes."""

    def __init__(self, file: IO[bytes], *, gate: threading.Event | None = None, fail_after: int | None = None) -> None:
        self.file = file
        self.gate = gate
        self.fail_after = fail_after
        self.seen = 0
        self.writing = threading.Event()

    def write(self, data: bytes) -> int:
        self.writing.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail_after is not None and self.seen + len(data) > self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.seen += len(data)
        return self.file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def chunks(total: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out, left = [], total
    while left:
        size = min(left, rng.choice([1, 100, 4096, 65536, 300_000]))
        out.append(rng.randbytes(size))
        left -= size
    return out


def test_digest_and_size_are_of_exactly_the_bytes_written(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    parts = chunks(3_000_000)
    sink = FileSink(file, path, max_pending=256 * 1024)
    for part in parts:
        sink.write(part)
    size, digest = sink.finish()
    data = b"".join(parts)
    assert size == sink.written == len(data)
    assert digest == sink.hexdigest() == hashlib.sha256(data).hexdigest()
    assert not file.closed  # the caller commits (rename) and closes
    file.close()
    assert path.read_bytes() == data


def test_finish_fsyncs_after_the_last_byte_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file, path = new_file(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(_sink.os, "fsync", fsync)
    sink = FileSink(file, path)
    sink.write(b"x" * 1000)
    sink.write(b"y" * 1000)
    sink.finish()
    file.close()
    assert synced == [2000]


def test_memory_is_bounded_write_blocks_while_max_pending_bytes_wait(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    slow = Wrapped(file, gate=gate)
    sink = FileSink(cast(IO[bytes], slow), path, max_pending=100_000)
    done = threading.Event()
    peak = 0

    def produce() -> None:
        nonlocal peak
        for _ in range(50):
            sink.write(b"z" * 30_000)
            peak = max(peak, sink.pending)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    slow.writing.wait(5)
    time.sleep(0.2)
    assert not done.is_set()  # the thread is held back, so the producer is too
    assert sink.pending <= 100_000 + 30_000  # max_pending plus the chunk being handed over
    gate.set()
    producer.join(5)
    assert done.is_set() and peak <= 130_000
    assert sink.finish() == (1_500_000, hashlib.sha256(b"z" * 1_500_000).hexdigest())
    file.close()


def test_put_never_blocks_and_full_says_when_to_wait(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    sink = FileSink(cast(IO[bytes], Wrapped(file, gate=gate)), path, max_pending=10_000)
    for _ in range(5):
        sink.put(b"a" * 5_000)  # returns at once although nothing can be written
    assert sink.full and sink.pending == 25_000
    gate.set()
    sink.wait_for_room()
    assert sink.pending <= 5_000
    sink.finish()
    file.close()
    assert path.read_bytes() == b"a" * 25_000


def test_a_failed_write_surfaces_on_the_next_write_and_on_finish(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    sink = FileSink(cast(IO[bytes], Wrapped(file, fail_after=150_000)), path, max_pending=64 * 1024)

    def write_until_it_fails() -> None:
        for _ in range(100):
            sink.write(b"q" * 50_000)

    with pytest.raises(OSError, match="No space left") as caught:
        write_until_it_fails()
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space left"):
        sink.put(b"more")
    with pytest.raises(OSError, match="No space left"):
        sink.finish()
    sink.abort()
    assert not path.exists()


def test_a_failure_wakes_a_caller_blocked_for_room(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    sink = FileSink(cast(IO[bytes], Wrapped(file, gate=gate, fail_after=0)), path, max_pending=10)
    sink.put(b"0123456789abcdef")
    threading.Timer(0.1, gate.set).start()
    with pytest.raises(OSError, match="No space left"):
        sink.wait_for_room()
    sink.abort()


def test_abort_stops_the_thread_and_removes_the_file(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    slow = Wrapped(file, gate=gate)
    sink = FileSink(cast(IO[bytes], slow), path, max_pending=1 << 20)
    for _ in range(10):
        sink.put(b"w" * 100_000)
    slow.writing.wait(5)
    threading.Timer(0.1, gate.set).start()  # the write in progress finishes; the rest is dropped
    sink.abort()
    assert not sink_threads()
    assert not path.exists() and file.closed
    sink.abort()  # idempotent
    with pytest.raises(RuntimeError, match="finished or aborted"):
        sink.put(b"late")


def test_a_thread_that_cannot_start_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    file, path = new_file(tmp_path)
    with pytest.raises(RuntimeError, match="can't start"):
        FileSink(file, path)
    assert file.closed and not path.exists()


def test_abort_after_finish_removes_the_uncommitted_file(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    sink = FileSink(file, path)
    sink.write(b"data")
    sink.finish()
    sink.abort()
    assert not path.exists()


def test_restart_truncates_and_rehashes_after_the_queued_bytes(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    sink = FileSink(file, path)
    sink.write(b"old bytes from a response we threw away " * 1000)
    sink.restart()
    assert sink.written == 0
    sink.write(b"fresh")
    assert sink.finish() == (5, hashlib.sha256(b"fresh").hexdigest())
    file.close()
    assert path.read_bytes() == b"fresh"


def test_resume_appends_and_seeds_the_hash_with_the_bytes_already_there(tmp_path: Path) -> None:
    path = tmp_path / "partial.part"
    head = random.Random(2).randbytes(3_000_000)
    path.write_bytes(head)
    sink = FileSink.resume(path)
    assert sink.written == len(head)  # known at once: the Range request can go out immediately
    sink.write(b"tail")
    assert sink.finish() == (len(head) + 4, hashlib.sha256(head + b"tail").hexdigest())
    sink.file.close()
    assert path.read_bytes() == head + b"tail"


def test_resume_then_restart_discards_the_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "partial.part"
    path.write_bytes(b"stale" * 1000)
    sink = FileSink.resume(path)
    sink.restart()
    sink.write(b"new")
    assert sink.finish() == (3, hashlib.sha256(b"new").hexdigest())
    sink.file.close()
    assert path.read_bytes() == b"new"


def test_writeback_starts_on_each_range_as_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ranges: list[tuple[int, int]] = []

    def record(fd: int, offset: int, count: int, flags: int) -> None:
        assert flags == _sink._SYNC_FILE_RANGE_WRITE
        assert os.fstat(fd).st_size >= offset + count  # only bytes already handed to the kernel
        ranges.append((offset, count))

    monkeypatch.setattr(_sink, "_libc_sync_file_range", lambda: record)
    file, path = new_file(tmp_path)
    sink = FileSink(file, path, writeback_every=100_000)
    for _ in range(25):
        sink.write(b"r" * 10_000)
    sink.finish()
    file.close()
    assert ranges == [(0, 100_000), (100_000, 100_000)]


def test_writeback_the_filesystem_refuses_is_dropped_and_the_data_still_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def refuse(fd: int, offset: int, count: int, flags: int) -> None:
        calls.append(offset)
        raise OSError(errno.ESPIPE, "Illegal seek")

    monkeypatch.setattr(_sink, "_libc_sync_file_range", lambda: refuse)
    file, path = new_file(tmp_path)
    sink = FileSink(file, path, writeback_every=1000)
    for _ in range(10):
        sink.write(b"s" * 1000)
    assert sink.finish()[0] == 10_000
    file.close()
    assert calls == [0]  # tried once, then never again
    assert path.read_bytes() == b"s" * 10_000


async def test_an_async_driver_puts_without_blocking_and_waits_in_a_thread(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    sink = FileSink(file, path, max_pending=200_000)
    parts = chunks(2_000_000, seed=3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(ticker())
    try:
        for part in parts:
            sink.put(part)
            if sink.full:
                await asyncio.to_thread(sink.wait_for_room)
        size, digest = await asyncio.to_thread(sink.finish)
    finally:
        beat.cancel()
    file.close()
    assert (size, digest) == (2_000_000, hashlib.sha256(b"".join(parts)).hexdigest())
    assert ticks > 0


def test_bad_max_pending_is_refused(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    with pytest.raises(ValueError, match="max_pending"):
        FileSink(file, path, max_pending=0)
    file.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")
def test_libc_sync_file_range_starts_writeback_on_a_real_file(tmp_path: Path) -> None:
    sync_file_range = _sink._libc_sync_file_range()
    assert sync_file_range is not None
    file, _ = new_file(tmp_path)
    file.write(b"d" * 100_000)
    file.flush()
    sync_file_range(file.fileno(), 0, 100_000, _sink._SYNC_FILE_RANGE_WRITE)
    with pytest.raises(OSError, match="Invalid argument"):
        sync_file_range(file.fileno(), -1, 10, _sink._SYNC_FILE_RANGE_WRITE)
    file.close()


# -- buffers (the storage transport's readinto) and hashing on the caller's thread --------------------


def test_put_buffer_writes_the_filled_part_and_recycles_the_buffer_once_written_and_hashed(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    sink = FileSink(file, path)
    first = sink.buffer()
    assert len(first) == _sink.BUFFER_SIZE
    first[:5] = b"hello"
    sink.put_buffer(first, 5)
    sink.wait_for_room()  # nothing to wait for; the chunk may still be queued
    deadline = time.monotonic() + 5
    while sink.pending and time.monotonic() < deadline:
        time.sleep(0.001)
    assert sink.pending == 0
    second = sink.buffer()
    assert second is first  # recycled, not allocated again
    second[:6] = b" world"
    sink.put_buffer(second, 6)
    size, digest = sink.finish()
    file.close()
    assert (size, digest) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert path.read_bytes() == b"hello world"


def test_a_buffer_counts_its_whole_size_against_max_pending(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    slow = Wrapped(file, gate=gate)
    sink = FileSink(cast(IO[bytes], slow), path, max_pending=2 * _sink.BUFFER_SIZE)
    for _ in range(3):
        buffer = sink.buffer()
        sink.put_buffer(buffer, 10)  # 10 bytes used, 1 MiB held
    assert sink.pending == 3 * _sink.BUFFER_SIZE and sink.full
    gate.set()
    assert sink.finish()[0] == 30
    file.close()


def test_a_finished_sinks_buffers_go_to_the_next_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sink, "_kept", [])  # whatever earlier tests left
    file, path = new_file(tmp_path)
    sink = FileSink(file, path)
    buffer = sink.buffer()
    sink.put_buffer(buffer, 1)
    sink.finish()
    file.close()
    other_file, other_path = new_file(tmp_path, "other.part")
    other = FileSink(other_file, other_path)
    assert other.buffer() is buffer
    other.abort()


def test_while_the_writer_is_held_up_the_callers_wait_hashes_in_order(tmp_path: Path) -> None:
    file, path = new_file(tmp_path)
    gate = threading.Event()
    slow = Wrapped(file, gate=gate)
    sink = FileSink(cast(IO[bytes], slow), path, max_pending=4 * 100_000)
    hashed_by: list[str] = []
    real = hashlib.sha256()

    class Recording:
        def update(self, data: bytes) -> None:
            hashed_by.append(threading.current_thread().name)
            real.update(data)

        def hexdigest(self) -> str:
            return real.hexdigest()

    sink._hash = Recording()
    parts = [bytes([n]) * 100_000 for n in range(8)]
    waiter_done = threading.Event()

    def produce() -> None:
        for part in parts:
            sink.write(part)  # blocks in wait_for_room once 400 kB wait: then it hashes
        waiter_done.set()

    producer = threading.Thread(target=produce, name="the-caller")
    producer.start()
    slow.writing.wait(5)  # the writer is stuck in its first write
    deadline = time.monotonic() + 5
    while hashed_by.count("the-caller") < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert hashed_by.count("the-caller") >= 2, "wait_for_room only waited"
    gate.set()
    producer.join(5)
    assert waiter_done.is_set()
    size, digest = sink.finish()
    file.close()
    assert (size, digest) == (800_000, hashlib.sha256(b"".join(parts)).hexdigest())
    assert path.read_bytes() == b"".join(parts)


def test_resume_then_restart_waits_for_the_seed_before_truncating(tmp_path: Path) -> None:
    path = tmp_path / "rec.part"
    path.write_bytes(b"old" * 100_000)
    sink = FileSink.resume(path)
    sink.restart()  # the writer must not truncate while the old bytes are still being read back
    sink.write(b"new")
    size, digest = sink.finish()
    sink.file.close()
    assert (size, digest) == (3, hashlib.sha256(b"new").hexdigest())
    assert path.read_bytes() == b"new"
