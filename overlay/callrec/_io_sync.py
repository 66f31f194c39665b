"""How the sync clients wait, bound time, hand work to threads and run many tasks.

The same names as ``_io_async``; ``scripts/unasync.py`` turns
``_async_client.py`` into ``_sync_client.py`` by swapping that module for
this one, so the two drivers differ only here.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, ParamSpec, TypeVar

import httpx

from ._download import BodyReader, Stopped, Transfer, read_body
from ._transport import storage_transport as sync_storage_transport

__all__ = [
    "acquire",
    "api_transport",
    "check_http_client",
    "deadline_scope",
    "for_each_bounded",
    "interruptible",
    "map_bounded",
    "new_client",
    "now",
    "pace",
    "read_storage_body",
    "run_to_completion",
    "sleep",
    "stopped",
    "storage_transport",
    "to_thread",
]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


def sleep(seconds: float) -> None:
    """Backoff sleep (a seam for tests of the retry table)."""
    time.sleep(seconds)


def pace(seconds: float) -> None:
    """Wait for the client's request budget (``_budget``): a real wait, never patched away by retry tables."""
    time.sleep(seconds)


@contextlib.contextmanager
def deadline_scope(seconds: float) -> Iterator[None]:
    """Nothing to do: a blocked read is bounded by the per-attempt timeout, itself capped to the deadline."""
    yield


def to_thread(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Already on a thread of its own: call it."""
    return func(*args, **kwargs)


def run_to_completion(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Already on a thread of its own, which nothing interrupts mid-call: call it."""
    return func(*args, **kwargs)


def acquire(func: Callable[[], R], release: Callable[[R], None]) -> R:
    """Take it here: an interrupt (Ctrl-C) before ``func`` returns leaves nothing taken to release."""
    return func()


def now() -> float:
    """A monotonic clock, for durations (telemetry)."""
    return time.monotonic()


def api_transport() -> httpx.BaseTransport | None:
    """httpx's own transport."""
    return None


def check_http_client(http_client: object) -> None:
    if http_client is not None and not isinstance(http_client, httpx.Client):
        raise TypeError("http_client must be an httpx.Client (use the Async* clients with httpx.AsyncClient)")


def new_client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(**kwargs)


_worker = threading.local()


class _Run:
    """One map_bounded() run: its stop flag, and the interrupts of the storage requests its workers have open."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._interrupts: set[Callable[[], None]] = set()
        self._lock = threading.Lock()

    def register(self, interrupt: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._interrupts.add(interrupt)
        if self.stop.is_set():
            interrupt()
        return lambda: self._discard(interrupt)

    def _discard(self, interrupt: Callable[[], None]) -> None:
        with self._lock:
            self._interrupts.discard(interrupt)

    def stopping(self) -> None:
        self.stop.set()
        with self._lock:
            interrupts = list(self._interrupts)
        for interrupt in interrupts:
            interrupt()


def stopped() -> bool:
    """True in a map_bounded() worker once its run is stopping: a download then ends at its next read."""
    run: _Run | None = getattr(_worker, "run", None)
    return run is not None and run.stop.is_set()


def interruptible(interrupt: Callable[[], None]) -> Callable[[], None]:
    """Register a storage request's interrupt with this worker's run (a stopping run calls it); -> unregister."""
    run: _Run | None = getattr(_worker, "run", None)
    return run.register(interrupt) if run is not None else _nothing


def _nothing() -> None:
    return None


def map_bounded(func: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R]:
    """``func`` over ``items`` on ``concurrency`` threads, results in order.

    The first failure (or a KeyboardInterrupt) stops the run: items not started
    never start, in-flight ones stop at once (their storage reads are interrupted: ``interruptible``), and the
    exception is raised as itself once they have all ended.
    """
    run_state = _Run()

    def run(item: T) -> R:
        if run_state.stop.is_set():
            raise Stopped
        _worker.run = run_state
        try:
            return func(item)
        finally:
            _worker.run = None

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="callrec-bulk") as pool:
        futures = [pool.submit(run, item) for item in items]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                error = future.exception() if future.done() and not future.cancelled() else None
                if error is not None and not isinstance(error, Stopped):
                    raise error
        except BaseException:
            run_state.stopping()
            for future in futures:
                future.cancel()
            raise
        return [future.result() for future in futures]


def for_each_bounded(
    func: Callable[[T], R], items: Iterable[T], concurrency: int, deliver: Callable[[R], None]
) -> None:
    """``func`` over ``items`` as they come on ``concurrency`` threads, each result to ``deliver`` as it finishes;
    ``items`` is read only as fast as work frees up, and nothing is kept (a million ids, flat memory).

    The first failure (or a KeyboardInterrupt) stops the run as in ``map_bounded``: nothing more is started,
    in-flight items stop at once, and the exception is raised as itself once they have all ended.
    """
    run_state = _Run()
    slots = threading.BoundedSemaphore(concurrency)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(item: T) -> None:
        try:
            if run_state.stop.is_set():
                return
            _worker.run = run_state
            try:
                result = func(item)
            finally:
                _worker.run = None
            with lock:  # one deliver at a time, as the event loop gives the async flavour
                deliver(result)
        except Stopped:
            pass
        except BaseException as exc:
            with lock:
                failures.append(exc)
            run_state.stopping()
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="callrec-bulk") as pool:
        try:
            for item in items:
                while not slots.acquire(timeout=0.1):
                    if run_state.stop.is_set():
                        break
                if run_state.stop.is_set():
                    break
                pool.submit(contextvars.copy_context().run, run, item)  # the caller's span, in the worker
        except BaseException:
            run_state.stopping()
            raise
    if failures:
        raise failures[0]


def read_storage_body(reader: BodyReader, transfer: Transfer) -> None:
    """Read the body here, on the caller's thread (which hashes while the sink is full)."""
    read_body(reader, transfer, transfer.progress)


def storage_transport() -> httpx.BaseTransport:
    """The storage transport (urllib3; ``_storage_http``)."""
    return sync_storage_transport()
