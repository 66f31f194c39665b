"""Writing a download to its temporary file on background threads: the bytes, their sha256, fsync.

The thread that reads the socket (or the event loop) hands each chunk to a :class:`FileSink`. The sink's
writer thread writes it and passes it to the sink's hasher thread, which hashes it while the next chunk is
written; file writes and ``hashlib`` release the GIL, so reading, writing and hashing overlap (on one
thread, write + sha256 bounded a 512 MiB loopback download at ~950 MiB/s; benchmarks/RESULTS.md). The
writer also asks the kernel to start writing each few MiB to disk as they come (``sync_file_range``,
Linux), so the final ``fsync`` has little left to wait for.

Guarantees: the digest is of exactly the bytes written, in order; at most ``max_pending`` bytes (plus
one chunk) wait in memory, until both threads are done with them; a failure on either thread is raised
by the caller's next ``put``, ``write``, ``wait_for_room`` or ``finish``; ``abort`` stops both threads and
removes the file.

Usage (sync)::

    sink = FileSink(file, temp)
    try:
        for chunk in response.iter_raw():
            sink.write(chunk)  # blocks only while max_pending bytes are waiting
        size, sha256 = sink.finish()  # written, flushed and fsynced; the file stays open
    except BaseException:
        sink.abort()
        raise

Usage with buffers (the storage transport's ``readinto``; no allocation or copy per chunk)::

    buffer = sink.buffer()  # a recycled bytearray of BUFFER_SIZE bytes
    size = body.readinto(buffer)
    sink.put_buffer(buffer, size)  # the sink writes buffer[:size], then recycles the buffer
    if sink.full:
        sink.wait_for_room()

Usage (async): ``sink.put(chunk)`` never blocks; when ``sink.full`` is true, ``await
asyncio.to_thread(sink.wait_for_room)``, which returns once the queue is down to half, so the event loop
hands off to a worker thread at most once per ``max_pending / 2`` bytes. ``await asyncio.to_thread(sink.finish)``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

__all__ = ["BUFFER_SIZE", "MAX_PENDING", "WRITEBACK_EVERY", "FileSink", "Hasher", "SinkFile"]

#: Bytes that may wait for the sink's thread before ``write`` blocks (plus the chunk being handed over).
#: A 512 MiB benchmark download ran at 543/573/606/616 MiB/s with 1/2/4/8 MiB; 4 MiB keeps a bulk
#: run's worst case at 4 MiB per concurrent download (benchmarks/RESULTS.md).
MAX_PENDING: Final = 4 << 20
#: Start writeback each time this many bytes have been written since the last start. Same benchmark:
#: 591/607/563 MiB/s with 2/8/32 MiB, 492 MiB/s without (the final fsync then waits ~0.25 s, not ~0.01 s).
WRITEBACK_EVERY: Final = 8 << 20
#: Size of the buffers ``buffer()`` hands out. Freshly allocated memory is slow to fill on some VMs (page
#: faults), so written buffers are recycled: the prototype went from ~930 to ~1,020 MiB/s with that alone.
BUFFER_SIZE: Final = 1 << 20
#: Buffers kept for the next download once a sink is done (8 MiB at most): a bulk run of small files would
#: otherwise allocate (and the kernel zero) a fresh 1 MiB for every file.
_KEPT_BUFFERS: Final = 8
_kept: list[bytearray] = []
_kept_lock = threading.Lock()
#: Read-back size when seeding the hash from a partial file.
_SEED_BLOCK = 1 << 20
#: sync_file_range(2) flag: start writeback of dirty pages in the range, do not wait for it.
_SYNC_FILE_RANGE_WRITE: Final = 2

SyncFileRange = Callable[[int, int, int, int], None]


@functools.cache
def _libc_sync_file_range() -> SyncFileRange | None:
    """libc's sync_file_range (Linux), or None where there is none.

    The os module does not expose it (CPython has no binding; os.posix_fadvise's DONTNEED also starts
    writeback on Linux but then drops the cached pages, which a caller may want to read next). Loaded
    on first use so `import callrec` does not pay for ctypes.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int

    def sync_file_range(fd: int, offset: int, count: int, flags: int) -> None:
        if function(fd, offset, count, flags) != 0:  # ctypes releases the GIL for the call
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return sync_file_range


class SinkFile(Protocol):
    """What the sink writes to: a binary file, or an upload that behaves like one (``_destinations.objects``)."""

    def write(self, data: bytes | memoryview, /) -> int: ...

    def seek(self, offset: int, /) -> int: ...

    def truncate(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


class Hasher(Protocol):
    """The part of a ``hashlib`` object the sink uses."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Op:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_RESTART: Final = _Op("restart")
_FINISH: Final = _Op("finish")
_SEED: Final = _Op("seed")


class _Chunk:
    """Queued bytes, released (pending bytes counted down, buffer recycled) once written and hashed."""

    __slots__ = ("cost", "data", "owners")

    def __init__(self, data: bytes | memoryview, cost: int) -> None:
        self.data = data
        self.cost = cost  # memory held: a buffer's whole size, however much of it is filled
        self.owners = 2  # the write and the hash


class FileSink:
    """Writes and hashes one download's bytes into ``file`` on a background thread, helped by the caller's.

    The sink owns the file from construction: :meth:`abort` (or a failure to start the thread) closes and
    removes it; after :meth:`finish` the caller renames and closes it.

    Args:
        file: open for writing, positioned where the next byte goes (its end).
        path: the file's path, removed by :meth:`abort`.
        written: bytes already in the file and already fed to ``sha256`` (a resume).
        sha256: the hash of those bytes; a new ``hashlib.sha256()`` when None.
        max_pending: bytes that may wait in memory before ``write`` blocks.
        writeback_every: start writeback each time this many bytes are written (0: never).
    """

    def __init__(
        self,
        file: SinkFile,
        path: Path,
        *,
        written: int = 0,
        sha256: Hasher | None = None,
        max_pending: int = MAX_PENDING,
        writeback_every: int = WRITEBACK_EVERY,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1 byte")
        self.file = file
        self.path = path
        self.max_pending = max_pending
        self._sync_range = _libc_sync_file_range() if writeback_every > 0 else None
        self._writeback_every = writeback_every if self._sync_range is not None else 0
        self._hash: Hasher = sha256 if sha256 is not None else hashlib.sha256()
        self._written = written  # bytes accepted by put(), as the caller counts them
        self._position = written  # bytes the thread has written (its view)
        self._synced_to = written  # start of the range not yet handed to writeback
        self._cond = threading.Condition()
        # Every chunk is in both queues: written in order by the sink's thread, hashed in order by
        # whichever thread is free (one at a time: ``_hashing``), released when both are done.
        self._to_write: collections.deque[_Chunk | _Op] = collections.deque()
        self._to_hash: collections.deque[_Chunk | _Op] = collections.deque()
        self._hashing = False
        self._seeded = threading.Event()  # a resumed file's old bytes are hashed (set at once otherwise)
        self._seeded.set()
        self._spare: list[bytearray] = []  # released buffers, for buffer()
        self._pending = 0
        self._error: BaseException | None = None
        self._closed = False  # no more put(): finishing, finished or aborted
        self._stopping = False  # abort() or a failure: the threads drop everything
        self._digest: str | None = None
        self._seed_size = 0
        self._thread = threading.Thread(target=self._run, name="callrec-sink", daemon=True)
        try:
            self._thread.start()
        except BaseException:  # e.g. "can't start new thread": the sink owns the file from here on
            self._closed = self._stopping = True
            self._remove_file()
            raise

    @classmethod
    def resume(cls, path: Path, *, max_pending: int = MAX_PENDING, writeback_every: int = WRITEBACK_EVERY) -> FileSink:
        """Continue a partial file: new bytes go after the existing ones, whose hash is read back first.

        ``written`` is known at once (the file's size), so the caller can ask for the rest right away.
        """
        file = path.open("r+b")
        try:
            size = file.seek(0, os.SEEK_END)
            sink = cls(file, path, written=size, max_pending=max_pending, writeback_every=writeback_every)
        except BaseException:
            file.close()
            raise
        with sink._cond:  # nothing else is queued yet: the old bytes are hashed before any new one
            sink._seed_size = size
            sink._seeded.clear()
            sink._to_hash.appendleft(_SEED)
            sink._cond.notify_all()
        return sink

    # -- the caller's side ----------------------------------------------

    @property
    def written(self) -> int:
        """Bytes in the file once the queue drains (including those present at a resume)."""
        return self._written

    @property
    def pending(self) -> int:
        """Bytes handed over but not yet written and hashed."""
        return self._pending

    @property
    def full(self) -> bool:
        """Whether a caller that must not block should wait for room (``wait_for_room``) before the next put."""
        return self._pending > self.max_pending or self._error is not None

    def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` without blocking; raise the thread's failure if it had one."""
        if chunk:
            self._enqueue(chunk, len(chunk))
        else:
            self._check_open_locked()

    def buffer(self) -> bytearray:
        """A buffer of ``BUFFER_SIZE`` bytes to fill and hand back with ``put_buffer`` (recycled once released)."""
        with self._cond:
            if self._spare:
                return self._spare.pop()
        with _kept_lock:
            if _kept:
                return _kept.pop()
        return bytearray(BUFFER_SIZE)

    def _keep_buffers(self) -> None:
        """The thread has ended: hand the sink's spare buffers to the next download."""
        with self._cond:
            spare, self._spare = self._spare, []
        with _kept_lock:
            _kept.extend(spare[: _KEPT_BUFFERS - len(_kept)])

    def put_buffer(self, buffer: bytearray, size: int) -> None:
        """Queue ``buffer[:size]`` without blocking; the buffer is the sink's until ``buffer()`` returns it."""
        if size:
            self._enqueue(memoryview(buffer)[:size], len(buffer))
        else:
            self._check_open_locked()

    def _enqueue(self, data: bytes | memoryview, cost: int) -> None:
        chunk = _Chunk(data, cost)
        with self._cond:
            self._check_open()
            self._to_write.append(chunk)
            self._to_hash.append(chunk)
            self._pending += cost
            self._written += len(data)
            self._cond.notify_all()

    def write(self, chunk: bytes) -> None:
        """Queue ``chunk``, then block while more than ``max_pending`` bytes wait."""
        self.put(chunk)
        if self._pending > self.max_pending:
            self.wait_for_room()

    def wait_for_room(self) -> None:
        """Block until at most half of ``max_pending`` waits, hashing queued chunks meanwhile when nobody is.

        Raises the sink's failure if it had one.
        """
        while True:
            with self._cond:
                if self._pending <= self.max_pending // 2 or self._error is not None or self._stopping:
                    break
                if self._hashing or not self._to_hash:
                    self._cond.wait()
                    continue
            self._hash_next()
        self._check_open_locked()

    def restart(self) -> None:
        """Start the file over: once the queued bytes are written, truncate it to zero and reset the hash."""
        with self._cond:
            self._check_open()
            self._to_write.append(_RESTART)
            self._to_hash.append(_RESTART)
            self._written = 0
            self._cond.notify_all()

    def finish(self) -> tuple[int, str]:
        """Write and hash everything queued, flush and fsync; return (size, sha256 hex digest). The file stays open."""
        with self._cond:
            self._check_open()
            self._closed = True
            self._to_write.append(_FINISH)
            self._cond.notify_all()
        self._thread.join()
        self._keep_buffers()
        if self._error is not None:
            raise self._error
        self._make_durable()
        self._digest = self._hash.hexdigest()
        return self._position, self._digest

    def hexdigest(self) -> str:
        """The sha256 of the file, once :meth:`finish` returned."""
        if self._digest is None:
            raise RuntimeError("the sink has not finished")
        return self._digest

    def abort(self) -> None:
        """Stop the thread, drop what is queued, close and remove the file. Never raises; safe to repeat."""
        with self._cond:
            self._closed = self._stopping = True
            self._to_write.clear()
            self._to_hash.clear()
            self._pending = 0
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
            self._keep_buffers()
        self._remove_file()

    def _make_durable(self) -> None:
        """Every written byte on disk (a subclass writing elsewhere makes it durable its own way)."""
        self.file.flush()
        os.fsync(self.file.fileno())

    def _remove_file(self) -> None:
        """Throw away what was written (``abort``, or a failure to start)."""
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise RuntimeError("the sink is finished or aborted")

    def _check_open_locked(self) -> None:
        with self._cond:
            self._check_open()

    # -- the sink's thread (and the hashing both threads share) ----------

    def _release(self, chunk: _Chunk) -> None:
        """One of the write and the hash is done with ``chunk`` (the condition held)."""
        chunk.owners -= 1
        if chunk.owners:
            return
        self._pending -= chunk.cost
        if isinstance(chunk.data, memoryview):
            buffer = chunk.data.obj
            chunk.data.release()
            self._spare.append(buffer)  # type: ignore[arg-type]  # one of buffer()'s
        if self._pending <= self.max_pending // 2:
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        """Surfaced by the caller's next call, never swallowed; everything queued is dropped."""
        with self._cond:
            if self._error is None:
                self._error = exc
            self._stopping = True
            self._to_write.clear()
            self._to_hash.clear()
            self._pending = 0
            self._cond.notify_all()
        self._seeded.set()

    def _hash_next(self) -> None:
        """Hash the next chunk in order (or apply a restart or the seed), unless another thread is hashing."""
        with self._cond:
            if self._hashing or not self._to_hash or self._stopping:
                return
            item = self._to_hash.popleft()
            self._hashing = True
        try:
            if isinstance(item, _Chunk):
                self._hash.update(item.data)
            elif item is _RESTART:
                self._hash = hashlib.sha256()
            elif item is _SEED:
                try:
                    self._seed()
                finally:
                    self._seeded.set()
        except BaseException as exc:
            self._fail(exc)
        finally:
            with self._cond:
                self._hashing = False
                if isinstance(item, _Chunk) and not self._stopping:
                    self._release(item)
                self._cond.notify_all()

    def _run(self) -> None:
        """Write every chunk in order; hash while there is nothing to write; at the end, hash the rest."""
        try:
            while True:
                with self._cond:
                    while not self._to_write and not self._stopping and (self._hashing or not self._to_hash):
                        self._cond.wait()
                    if self._stopping:
                        return
                    item = self._to_write.popleft() if self._to_write else None
                if item is None:
                    self._hash_next()
                elif isinstance(item, _Chunk):
                    self._write(item.data)
                    with self._cond:
                        self._release(item)
                elif item is _RESTART:
                    self._hash_queued(self._seeded.is_set)  # a resumed file's old bytes, read back first
                    self.file.seek(0)
                    self.file.truncate()
                    self._position = self._synced_to = 0
                elif item is _FINISH:
                    self._hash_queued(lambda: not self._to_hash)
                    return
        except BaseException as exc:
            self._fail(exc)

    def _hash_queued(self, enough: Callable[[], bool]) -> None:
        """Hash queued items in order (waiting while another thread hashes) until ``enough()`` or a stop."""
        while True:
            with self._cond:
                while self._hashing and not self._stopping:
                    self._cond.wait()
                if self._stopping or enough():
                    return
            self._hash_next()

    def _write(self, chunk: bytes | memoryview) -> None:
        self.file.write(chunk)
        self._position += len(chunk)
        if self._writeback_every and self._position - self._synced_to >= self._writeback_every:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Have the kernel start writing the bytes since the last call to disk, without waiting for them."""
        assert self._sync_range is not None
        self.file.flush()
        try:
            self._sync_range(
                self.file.fileno(), self._synced_to, self._position - self._synced_to, _SYNC_FILE_RANGE_WRITE
            )
        except OSError:
            self._writeback_every = 0  # unsupported here (some filesystems); fsync still does the job
        self._synced_to = self._position

    def _seed(self) -> None:
        """Hash the bytes a resumed file already holds, reading them back."""
        offset, fd = 0, self.file.fileno()
        while offset < self._seed_size:
            block = os.pread(fd, min(_SEED_BLOCK, self._seed_size - offset), offset)
            if not block:
                raise OSError(f"{self.path} shrank while its hash was being seeded")
            self._hash.update(block)
            offset += len(block)
