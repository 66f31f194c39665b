"""How the async clients wait, bound time, hand work to threads and run many tasks.

``_io_sync`` has the same names for the sync clients; ``scripts/unasync.py``
turns ``_async_client.py`` into ``_sync_client.py`` by swapping this module
for that one (among other tokens), so the two drivers differ only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import httpx

from ._download import Transfer, read_body
from ._transport import async_storage_transport, async_transport

if TYPE_CHECKING:
    from ._storage_http import AsyncBody

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


async def sleep(seconds: float) -> None:
    """Backoff sleep (a seam for tests of the retry table)."""
    await asyncio.sleep(seconds)


async def pace(seconds: float) -> None:
    """Wait for the client's request budget (``_budget``): a real wait, never patched away by retry tables."""
    await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def deadline_scope(seconds: float) -> AsyncIterator[None]:
    """Interrupt whatever is awaited inside once ``seconds`` pass (TimeoutError)."""
    async with asyncio.timeout(seconds):
        yield


async def to_thread(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Blocking file work (fsync, rename, manifest lines) off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


async def run_to_completion(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``func`` on a worker thread, finished even if the caller is cancelled meanwhile; the cancellation is then
    raised once it has finished (a thread cannot be stopped halfway, and a commit must not be left half done)."""
    work = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(work)  # a second cancellation waits too
        raise


async def acquire(func: Callable[[], R], release: Callable[[R], None]) -> R:
    """``func`` (taking a lock or a lease) on a worker thread; if the caller is cancelled meanwhile, the thread is
    waited for and what it took is released (``release``) before the cancellation is raised: nothing is left held
    by a task that no longer exists (a lease kept alive by its renewal thread for the life of the process)."""
    work = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(work)
        if not work.cancelled() and work.exception() is None:
            await run_to_completion(release, work.result())
        raise


def now() -> float:
    """A monotonic clock, for durations (telemetry)."""
    return time.monotonic()


def api_transport() -> httpx.AsyncBaseTransport | None:
    """The transport of the API client callrec creates (aiohttp when installed; see _transport)."""
    return async_transport()


def check_http_client(http_client: object) -> None:
    if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
        raise TypeError("http_client must be an httpx.AsyncClient (use the sync clients with httpx.Client)")


def stopped() -> bool:
    """Asyncio stops a task by cancelling it at its next await: nothing to poll."""
    return False


def interruptible(interrupt: Callable[[], None]) -> Callable[[], None]:
    """Nothing to register: a cancelled task interrupts its storage read itself (``_storage_http.in_thread``)."""
    return _nothing


def _nothing() -> None:
    return None


def new_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(**kwargs)


async def map_bounded(func: Callable[[T], Awaitable[R]], items: Sequence[T], concurrency: int) -> list[R]:
    """``func`` over ``items``, at most ``concurrency`` at a time, results in order.

    Structured: the first failure (or a cancellation) cancels every other item
    and is raised as itself once they have all stopped.
    """
    gate = asyncio.Semaphore(concurrency)
    results: list[Any] = [None] * len(items)

    async def run(index: int, item: T) -> None:
        async with gate:
            results[index] = await func(item)

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(items):
                group.create_task(run(index, item))
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return results


async def for_each_bounded(
    func: Callable[[T], Awaitable[R]], items: Iterable[T], concurrency: int, deliver: Callable[[R], None]
) -> None:
    """``func`` over ``items`` as they come, at most ``concurrency`` at a time, each result to ``deliver`` as it
    finishes; ``items`` is read only as fast as work frees up, and nothing is kept (a million ids, flat memory).

    Structured like ``map_bounded``: the first failure (or a cancellation) cancels every other item and is raised
    as itself once they have all stopped.
    """
    gate = asyncio.Semaphore(concurrency)

    async def run(item: T) -> None:
        try:
            deliver(await func(item))
        finally:
            gate.release()

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                await gate.acquire()
                group.create_task(run(item))
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None


async def read_storage_body(reader: AsyncBody, transfer: Transfer) -> None:
    """Read the body on a worker thread, as the sync driver does on its own.

    One event-loop round trip for the whole body, however long; the worker also hashes while the sink is full.
    Progress calls are handed to the event loop, in order, and none is made once the wait was cancelled. A
    progress callback that raises stops the read (the body is interrupted) and its exception is raised here,
    as in the sync clients. A cancelled wait interrupts the worker's read (``AsyncBody.in_worker``) and is
    raised once the worker has returned.
    """
    progress = transfer.progress
    loop = asyncio.get_running_loop()
    cancelled = False
    failure: list[BaseException] = []

    def deliver(done: int, total: int | None) -> None:
        if progress is None or cancelled or failure:
            return
        try:
            progress(done, total)
        except BaseException as exc:  # the caller's: raised from the download, never left to the loop's handler
            failure.append(exc)
            reader.body.interrupt("the progress callback raised")

    def report(done: int, total: int | None) -> None:
        loop.call_soon_threadsafe(deliver, done, total)

    try:
        await reader.in_worker(lambda: read_body(reader.body, transfer, None if progress is None else report))
    except asyncio.CancelledError:
        cancelled = True
        raise
    except Exception:
        if failure:
            raise failure[0] from None
        raise
    await asyncio.sleep(0)  # the last progress calls scheduled by the worker run before we return
    if failure:
        raise failure[0]


def storage_transport() -> httpx.AsyncBaseTransport:
    """The storage transport (urllib3; ``_storage_http``), its blocking steps on the event loop's threads."""
    return async_storage_transport()
