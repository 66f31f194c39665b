"""The storage transport: httpx's transport interface over urllib3, for every storage request, proxy or not.

urllib3 2.x does the HTTP: connection pools per origin (kept alive; ``_pool``: closed by ``close()``, TLS with
httpx's trust made on first https use), proxies from the environment
(``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, via ``urllib.request``), and a stale keep-alive connection
retried once on a fresh one (a GET is idempotent; nothing else is retried here, and redirects are returned,
never followed). This module adds only what a download needs around it, and opens no socket itself:

- **Deadlines in every phase.** A request carries its download's deadline (``DEADLINE``, a monotonic time).
  Connect is bounded by a connect timeout no longer than what is left; the response head (any number of
  ``100 Continue``) and every body read by one process-wide watchdog, which shuts the connection's socket down
  when the deadline passes, so a server that trickles a byte before each read timeout cannot hold a read past it.
  Between reads (one socket read each) the caller checks its clock and its stop flag again.
- **Body bytes without a copy.** A Content-Length body is read with ``readinto1`` of the buffered reader under
  urllib3's ``http.client`` response, straight into the sink's buffer (one socket read per call), and the
  ``http.client`` response is closed at the body's end as ``http.client`` does itself, so the connection goes
  back to urllib3's pool ready for its next request. urllib3's own ``read1``/``readinto`` return a new ``bytes``
  per chunk (allocated, then copied once more): the 512 MiB benchmark download ran at 760-815 MiB/s that way
  (0.61-0.70x ``curl -o``) and at 1,000-1,150 MiB/s without the copy, the speed of the pipeline that hashes and
  writes. urllib3's ``HTTPResponse`` holds its ``http.client`` response as ``_fp``: where that is not a
  ``http.client.HTTPResponse`` over an ``io.BufferedReader`` (another urllib3), urllib3's ``read1`` is used.
- **Interrupts from another thread** (a cancelled task, a stopped bulk run): ``Body.interrupt`` shuts the socket
  down at the socket level (``socket.socket.shutdown``: ``SSLSocket.shutdown`` would drop the TLS layer and let
  the next read return ciphertext) and marks the body, so no read returns a byte after it: a read in progress
  fails, later ones fail at once. urllib3's ``HTTPResponse.shutdown()`` has that TLS hazard, hence our own
  (``_pool.Guard``). ``close()`` stops every request in flight the same way, and closes their bodies.
- **Fork**: a child process forgets the parent's pools (``_pool``): a pooled socket shared by two processes would
  mix their bytes into one body. The watchdog thread is started again on first use.
- **Failures** are httpx's exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadError``, ``ReadTimeout``,
  ``RemoteProtocolError``, ``ProxyError``) with urllib3's reason, never the URL (urllib3's ``MaxRetryError``
  text holds the path and query, so it is never shown).

``AsyncStorageTransport`` runs the same code on the event loop's worker threads, and interrupts it when the
waiting task is cancelled; the task's cancellation is raised only once the worker has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import http.client
import io
import itertools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
import urllib3
from urllib3 import exceptions as u3

from ._extensions import BODY_READER, DEADLINE, INTERRUPTIBLE, MIN_FILL
from ._pool import Guard, Pools, sending
from ._redact import redact_text

__all__ = ["AsyncStorageTransport", "Body", "Guard", "StorageTransport", "in_thread"]

T = TypeVar("T")

#: No retries in urllib3: statuses, Retry-After and redirects are callrec's policy (``_download.Transfer``), and
#: the one retry this transport makes itself is narrower than urllib3's "read" retries (see ``_stale``).
_RETRY: Final = urllib3.Retry(
    total=0,
    connect=0,
    read=0,
    redirect=0,
    status=0,
    other=0,
    respect_retry_after_header=False,
    raise_on_status=False,
    raise_on_redirect=False,
)
#: Response extension: the Body, whatever its framing (for the async transport).
_BODY: Final = "callrec_storage_body"
#: The most one socket read asks for: urllib3 returns a new bytes object per read, copied into the caller's
#: buffer, so this bounds the heap a read costs.
_READ_SIZE: Final = 256 * 1024
#: Bytes per chunk when a body is iterated (error bodies) rather than read into a buffer.
_ITER_SIZE: Final = 64 * 1024


# -- deadlines -------------------------------------------------------------------------------------


class _Watchdog:
    """Calls each registered function once its time has come, on one daemon thread per process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, Callable[[], None]] = {}  # what is still to be called (cancelled ones are dropped)
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, func: Callable[[], None]) -> Callable[[], None]:
        """Call ``func`` at monotonic time ``when``; returns the function that cancels it."""
        key = next(self._ids)
        with self._cond:
            heapq.heappush(self._heap, (when, key))
            self._due[key] = func
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callrec-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

        def cancel() -> None:
            with self._cond:
                self._due.pop(key, None)

        return cancel

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._due:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                when, key = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                func = self._due.pop(key)
            with contextlib.suppress(Exception):
                func()

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the thread does not exist in the child


_WATCHDOG = _Watchdog()


# -- the sync transport ----------------------------------------------------------------------------


os.register_at_fork(after_in_child=_WATCHDOG.after_fork)  # the pools forget themselves (``_pool``)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, as httpx and requests read it (None: direct)."""
    import urllib.request  # here, not at `import callrec`: it costs ~15 ms

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class StorageTransport(httpx.BaseTransport):
    """Storage requests through urllib3 (see the module docstring); responses offer ``Body`` as BODY_READER."""

    def __init__(self) -> None:
        self._pools = Pools()

    def handle_request(self, request: httpx.Request, guard: Guard | None = None) -> httpx.Response:
        guard = guard or Guard()
        url = str(request.url)
        timeouts = request.extensions.get("timeout", {})
        deadline: float | None = request.extensions.get(DEADLINE)
        connect = timeouts.get("connect")
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0.001)
            connect = left if connect is None else min(connect, left)
        timeout = urllib3.Timeout(connect=connect, read=timeouts.get("read"))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        register = request.extensions.get(INTERRUPTIBLE)
        unregister = register(guard.interrupt) if register is not None else None
        cancel = _WATCHDOG.at(deadline, lambda: guard.interrupt("the deadline passed")) if deadline else None
        bodies: list[Body] = []  # the response's, once there is one: close() then closes it whole

        def stop(reason: str) -> None:
            guard.interrupt(reason)
            for body in bodies:
                body.close()

        untrack = self._pools.track(stop)
        sending.guard = guard
        failure: httpx.TransportError | None = None
        try:
            manager = self._pools.manager(_proxy_for(url))
            for attempt in (1, 2):
                guard.check()
                try:
                    raw = manager.urlopen(
                        request.method,
                        url,
                        headers=headers,
                        retries=_RETRY,
                        redirect=False,
                        assert_same_host=False,
                        preload_content=False,
                        decode_content=False,
                        enforce_content_length=True,
                        timeout=timeout,
                    )
                    break
                except (u3.HTTPError, OSError) as exc:
                    if attempt == 1 and isinstance(exc, u3.MaxRetryError) and _stale(exc.reason, guard):
                        continue
                    failure = _mapped(exc, guard)
                    break
            if failure is None and guard.interrupted:
                raw.close()  # its socket was shut down: not back to the pool as if it were reusable
                raw.release_conn()
                failure = httpx.ReadError(guard.reason)
        except httpx.TransportError as exc:  # a closed transport, or an interrupt (from the connection, see _pool)
            failure = exc
        finally:
            sending.guard = None
            if failure is not None:
                for done in (cancel, unregister, untrack):
                    if done is not None:
                        done()
        if failure is not None:
            raise failure
        on_close = [f for f in (cancel, unregister, untrack) if f is not None]
        body = Body(raw, guard, on_close=on_close, method=request.method)
        bodies.append(body)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1", _BODY: body}
        if body.expected is not None:
            extensions[BODY_READER] = body  # a Content-Length body reads into the caller's buffer
        return httpx.Response(
            raw.status, headers=list(raw.headers.items()), stream=body, request=request, extensions=extensions
        )

    def close(self) -> None:
        """Close every connection: pooled ones now, and those of requests in flight (their reads fail at once)."""
        self._pools.close()


def _stale(reason: BaseException | None, guard: Guard) -> bool:
    """A kept-alive connection the server closed just as it was reused: no answer at all, not even a status
    line. Retried once (urllib3 and httpcore do the same for idempotent requests); anything else is not."""
    if guard.interrupted or not guard.reused or not isinstance(reason, u3.ProtocolError):
        return False
    cause = reason.args[1] if len(reason.args) > 1 else None
    import http.client

    # The server's FIN (an idle timeout's clean close) seen as we sent: RemoteDisconnected, or a broken pipe. A
    # reset is not retried here: it is also how a failing server answers, and the retry policy covers it.
    return isinstance(cause, http.client.RemoteDisconnected | BrokenPipeError)


def _buffered_reader(
    raw: urllib3.BaseHTTPResponse,
) -> tuple[http.client.HTTPResponse, io.BufferedReader] | tuple[None, None]:
    """The ``http.client`` response under urllib3's and its buffered socket reader, where they are what we expect."""
    response = getattr(raw, "_fp", None)
    if isinstance(response, http.client.HTTPResponse) and isinstance(response.fp, io.BufferedReader):
        return response, response.fp
    return None, None


def _mapped(exc: BaseException, guard: Guard) -> httpx.TransportError:
    """A urllib3 or socket failure as the httpx exception callrec's policy reads; never the URL.

    Raise the result outside the ``except`` block that caught ``exc``: urllib3's exceptions (``MaxRetryError``)
    hold the path and query, and must not ride along as ``__context__``.
    """
    reason = exc.reason if isinstance(exc, u3.MaxRetryError) and exc.reason is not None else exc
    if guard.interrupted:
        return httpx.ReadError(guard.reason)
    return _httpx_error(reason)


def _httpx_error(exc: BaseException) -> httpx.TransportError:
    cls: type[httpx.TransportError]
    if isinstance(exc, u3.ProxyError):
        cls = httpx.ProxyError
    elif isinstance(exc, u3.NewConnectionError | u3.NameResolutionError | u3.SSLError | ConnectionRefusedError):
        cls = httpx.ConnectError  # before ConnectTimeoutError: urllib3's NewConnectionError subclasses it
    elif isinstance(exc, u3.ConnectTimeoutError):
        cls = httpx.ConnectTimeout
    elif isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        cls = httpx.ReadTimeout
    elif isinstance(exc, u3.ProtocolError | u3.IncompleteRead | u3.InvalidChunkLength | u3.HeaderParsingError):
        cls = httpx.RemoteProtocolError
    else:
        cls = httpx.ReadError
    text = redact_text(str(exc)) or type(exc).__name__
    return cls(f"{type(exc).__name__}: {text}")


class Body(httpx.SyncByteStream):
    """One response body: ``readinto`` into the caller's buffer, or iteration; ``close`` frees the connection."""

    def __init__(
        self, raw: urllib3.BaseHTTPResponse, guard: Guard, *, on_close: list[Callable[[], None]], method: str
    ) -> None:
        self._raw = raw
        self._guard = guard
        self._on_close = on_close
        self._busy = threading.Lock()  # held while reading; close() from another thread interrupts instead
        self._closed = False
        self._failure: httpx.TransportError | None = None
        length = raw.headers.get("content-length")
        no_body = method == "HEAD" or raw.status in (204, 304) or raw.status < 200
        self.expected: int | None = 0 if no_body else (int(length) if length and length.isdigit() else None)
        self._left = self.expected
        self._http_response: http.client.HTTPResponse | None = None
        self._reader: io.BufferedReader | None = None
        if self.expected:
            self._http_response, self._reader = _buffered_reader(raw)
        if no_body:
            self._finish(reuse=True)

    @property
    def remaining(self) -> int:
        """Body bytes not yet read (Content-Length framing; 0 once complete)."""
        return self._left or 0

    def readinto(self, buffer: bytearray | memoryview, min_fill: int = MIN_FILL) -> int:
        """Read the next body bytes into ``buffer``: at least ``min_fill`` (or all that is left); 0 once complete.

        Each socket read is one ``read1``. A body cut before its Content-Length is ``httpx.RemoteProtocolError``;
        a failure after some bytes were read returns those bytes and is raised by the next call; after an
        interrupt no byte is returned.
        """
        if self._left is None:
            raise TypeError("readinto needs a body framed by Content-Length")
        with self._busy:
            view = memoryview(buffer).cast("B")
            filled = 0
            if self._failure is not None:
                raise self._failure
            while filled < min(len(view), min_fill) and self._left > 0:
                try:
                    self._guard.check()
                    got = self._readinto1(view[filled : filled + min(len(view) - filled, self._left)])
                    self._guard.check()  # a read the interrupt woke returns nothing we trust
                    if not got:
                        raise httpx.RemoteProtocolError("the body ended early")
                except httpx.TransportError as exc:
                    self._finish(reuse=False)
                    error = exc
                    if isinstance(exc, httpx.RemoteProtocolError) and not self._guard.interrupted:
                        error = httpx.RemoteProtocolError(  # as httpx words it, whichever layer saw it
                            "peer closed connection without sending complete message body: "
                            f"received {self.received + filled} bytes, expected {self.expected}"
                        )
                    if not filled or self._guard.interrupted:
                        raise error from None
                    self._failure = error  # the bytes read so far are returned; the next call raises
                    break
                filled += got
                self._left -= got
            if self._left == 0:
                if self._http_response is not None:
                    self._http_response.close()  # read to its end: http.client would close it itself
                self._finish(reuse=True)
            return filled

    def _readinto1(self, view: memoryview) -> int:
        """One socket read (at most) into ``view``; failures mapped as ``_read1`` maps them."""
        if self._reader is None:
            data = self._read1(min(len(view), _READ_SIZE))
            view[: len(data)] = data
            return len(data)
        failure: httpx.TransportError | None = None
        try:
            return self._reader.readinto1(view)
        except (OSError, ValueError) as exc:  # ValueError: the reader was closed under us
            failure = _mapped(exc, self._guard)
        raise failure

    def _read1(self, size: int) -> bytes:
        """One socket read (at most), failures mapped to httpx's exceptions without urllib3's as context."""
        failure: httpx.TransportError | None = None
        try:
            return self._raw.read1(size)
        except (u3.HTTPError, OSError) as exc:
            failure = _mapped(exc, self._guard)
        raise failure

    @property
    def received(self) -> int:
        return (self.expected or 0) - (self._left or 0)

    def __iter__(self) -> Iterator[bytes]:
        if self._left is not None:
            buffer = bytearray(_ITER_SIZE)
            while filled := self.readinto(buffer):
                yield bytes(buffer[:filled])
            return
        try:
            while True:  # chunked or read-until-close (error bodies): urllib3 frames it
                self._guard.check()
                with self._busy:
                    data = self._read1(_ITER_SIZE)
                self._guard.check()
                if not data:
                    self._finish(reuse=True)
                    return
                yield data
        except BaseException:
            self._finish(reuse=False)
            raise

    def interrupt(self, reason: str = "the read was interrupted") -> None:
        """Wake a read blocked in another thread; it fails, and so does every later read."""
        self._guard.interrupt(reason)

    def _finish(self, *, reuse: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for done in self._on_close:
            done()
        if reuse and not self._guard.detach():  # an interrupt from now on finds no connection to shut down
            self._raw.release_conn()
        else:
            self._raw.close()  # the connection is closed, not reused
            self._raw.release_conn()

    def close(self) -> None:
        """Free the connection: back to the pool when the body was read to its end, closed otherwise.

        While another thread is reading, the read is interrupted and that thread frees the connection.
        """
        if self._busy.acquire(blocking=False):
            try:
                self._finish(reuse=self._left == 0)
            finally:
                self._busy.release()
        else:
            self.interrupt()


# -- async ----------------------------------------------------------------------------------------


async def in_thread(func: Callable[[], T], interrupt: Callable[[], None]) -> T:
    """``func()`` on the event loop's worker threads. If the wait is cancelled, ``interrupt()`` wakes the worker
    and the cancellation is raised once it has returned: nothing of the task runs on after it."""
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(None, func)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        interrupt()
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([work])
        if not work.cancelled():
            work.exception()  # retrieved: the worker's error after an interrupt is not news
        raise


class AsyncStorageTransport(httpx.AsyncBaseTransport):
    """``StorageTransport`` for the async clients: the head and each body read on the event loop's threads."""

    def __init__(self) -> None:
        self._sync = StorageTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        guard = Guard()
        response = await in_thread(lambda: self._sync.handle_request(request, guard), guard.interrupt)
        body = response.extensions[_BODY]
        stream = AsyncBody(body)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if BODY_READER in response.extensions:
            extensions[BODY_READER] = stream
        return httpx.Response(
            response.status_code, headers=response.headers, stream=stream, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        self._sync.close()


class AsyncBody(httpx.AsyncByteStream):
    """A ``Body`` for the event loop: its blocking reads run on worker threads, interrupted on cancellation."""

    def __init__(self, body: Body) -> None:
        self._body = body

    @property
    def body(self) -> Body:
        """The sync body, for the function given to ``in_worker``."""
        return self._body

    async def in_worker(self, func: Callable[[], T]) -> T:
        """Run ``func`` (a loop reading ``body``) on a worker thread; a cancelled wait interrupts its read."""
        return await in_thread(func, self._body.interrupt)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = iter(self._body)
        while chunk := await in_thread(lambda: next(chunks, b""), self._body.interrupt):
            yield chunk

    async def aclose(self) -> None:
        self._body.close()
