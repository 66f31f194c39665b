"""The storage transport: a small HTTP/1.1 client whose bodies go from the socket straight into the caller's buffer.

Why not httpx's own transport for downloads: httpcore hands every socket read to h11, which copies it into
its receive buffer, out again, and httpcore copies it once more (``bytes()``), all in Python, holding the
GIL the sink's writer thread needs. On a 512 MiB loopback download that capped ``FeatherClient.download``
at 0.52-0.55x ``curl -o``; reading with ``recv_into`` into the sink's recycled buffers brings it to curl's
speed with the same fsync and sha256 guarantees (benchmarks/RESULTS.md, "Issue 12, speed").

What it is, and is not:

- HTTP/1.1 over TCP or TLS, one request per connection at a time, connections kept alive per (scheme,
  host, port) for ``KEEPALIVE_EXPIRY`` seconds and dropped before reuse if the server closed them or
  left bytes behind. TLS trusts what httpx trusts (``httpx.create_ssl_context()``: certifi, or
  SSL_CERT_FILE / SSL_CERT_DIR).
- h11 writes the request and parses the status line and headers, and reads every body that is not framed
  by Content-Length (chunked, read until close), so framing is judged exactly as httpx judges it. A body
  framed by Content-Length is read by ``Body.readinto`` (offered to callrec's drivers as the response
  extension ``READ_INTO``) or, for everything else (error bodies), by iterating it.
- No proxies: ``_transport`` uses it only when the environment names none (httpx's transport otherwise).
  No redirects, cookies or decompression: the httpx client above it does those, or callrec refuses them.
- Failures are httpx's exceptions (ConnectError, ConnectTimeout, ReadError, ReadTimeout, WriteError,
  WriteTimeout, RemoteProtocolError), with the socket's or h11's text, which never holds the URL.

``AsyncStorageTransport`` runs the same code on worker threads: the event loop hops to a thread for the request
head, and once more for a whole body: the async driver reads it on a worker exactly as the sync driver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, TypeVar

import h11
import httpx

from ._transport import BODY_READER, MIN_FILL

__all__ = ["KEEPALIVE_EXPIRY", "AsyncStorageTransport", "Body", "StorageTransport"]

#: Seconds an idle connection is kept (httpx's default).
KEEPALIVE_EXPIRY: Final = 5.0
#: Idle connections kept per (scheme, host, port); httpx keeps 20 in all by default.
_MAX_IDLE_PER_ORIGIN: Final = 20
#: Bytes asked of the socket while h11 parses (heads, chunked and close-delimited bodies).
_READ_SIZE: Final = 256 * 1024
#: Bytes per chunk when a Content-Length body is iterated instead of read into a buffer.
_ITER_SIZE: Final = 64 * 1024
#: As httpcore: the largest status line and headers accepted.
_MAX_HEAD: Final = 100 * 1024
#: Threads for the async transport (httpx's default connection limit).
_MAX_THREADS: Final = 100

_Origin = tuple[str, str, int]
T = TypeVar("T")


class _Mapped:
    """Re-raise socket and h11 failures as the httpx exception httpx's own transport raises."""

    def __init__(self, timeout: type[httpx.TransportError], error: type[httpx.TransportError]) -> None:
        self.timeout, self.error = timeout, error

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        if isinstance(exc, TimeoutError | socket.timeout):
            raise self.timeout(str(exc) or "timed out") from None
        if isinstance(exc, h11.RemoteProtocolError):
            raise httpx.RemoteProtocolError(str(exc)) from None
        if isinstance(exc, OSError):
            raise self.error(f"{type(exc).__name__}: {exc}") from None


_CONNECT: Final = _Mapped(httpx.ConnectTimeout, httpx.ConnectError)
_READ: Final = _Mapped(httpx.ReadTimeout, httpx.ReadError)
_WRITE: Final = _Mapped(httpx.WriteTimeout, httpx.WriteError)


def _still_usable(sock: socket.socket) -> bool:
    """An idle connection is reusable while it has nothing to read: no close from the server, no stray bytes."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        poller = select.poll()
    except AttributeError:  # Windows
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


class StorageTransport(httpx.BaseTransport):
    """An httpx transport for storage GETs (see the module docstring)."""

    def __init__(self) -> None:
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: dict[_Origin, list[tuple[socket.socket, float]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- connections ----------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                context = httpx.create_ssl_context()  # httpx's trust: certifi, SSL_CERT_FILE, SSL_CERT_DIR
                context.set_alpn_protocols(["http/1.1"])
                self._ssl_context = context
            return self._ssl_context

    def _checkout(self, origin: _Origin) -> socket.socket | None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the storage transport is closed")
            idle = self._idle.get(origin, [])
            while idle:
                sock, since = idle.pop()
                if time.monotonic() - since < KEEPALIVE_EXPIRY and _still_usable(sock):
                    return sock
                sock.close()
        return None

    def _checkin(self, origin: _Origin, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if self._closed or len(idle) >= _MAX_IDLE_PER_ORIGIN:
                sock.close()
            else:
                idle.append((sock, time.monotonic()))

    def _connect(self, origin: _Origin, request: httpx.Request, timeouts: dict[str, float | None]) -> socket.socket:
        scheme, host, port = origin  # host: the ASCII form (IDNA), brackets-free for IPv6
        with _CONNECT:
            sock = socket.create_connection((host, port), timeout=timeouts.get("connect"))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                server_hostname = request.extensions.get("sni_hostname") or host
                with _CONNECT:
                    sock = self._ssl().wrap_socket(sock, server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
        return sock

    # -- one exchange ---------------------------------------------------

    def exchange(self, request: httpx.Request) -> tuple[h11.Response, Body]:
        """Send ``request`` and read the status line and headers; the body is left to read."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"the storage transport speaks http and https, not {url.scheme!r}")
        origin = (url.scheme, url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        sock = self._checkout(origin) or self._connect(origin, request, timeouts)
        try:
            conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
            try:
                data = conn.send(h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw))
                content = request.read()
                if content:
                    data += conn.send(h11.Data(data=content))
                data += conn.send(h11.EndOfMessage())
            except h11.LocalProtocolError as exc:
                raise httpx.LocalProtocolError(str(exc)) from None
            sock.settimeout(timeouts.get("write"))
            with _WRITE:
                sock.sendall(data)
            sock.settimeout(timeouts.get("read"))
            while True:
                event = _next_event(conn, sock)
                if isinstance(event, h11.Response):
                    break
                if not isinstance(event, h11.InformationalResponse):  # pragma: no cover - h11 allows nothing else
                    raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} before the response")
        except BaseException:
            sock.close()
            raise
        return event, Body(self, origin, sock, conn, event, head_only=request.method == "HEAD")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        event, body = self.exchange(request)
        return _response(request, event, body, body if body.framed_by_length else None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for sock, _ in connections:
                sock.close()


def _response(request: httpx.Request, event: h11.Response, stream: Any, reader: Any) -> httpx.Response:
    extensions: dict[str, Any] = {"http_version": b"HTTP/" + event.http_version, "reason_phrase": event.reason}
    if reader is not None:
        extensions[BODY_READER] = reader
    return httpx.Response(
        status_code=event.status_code,
        headers=event.headers.raw_items(),
        stream=stream,
        request=request,
        extensions=extensions,
    )


def _next_event(conn: h11.Connection, sock: socket.socket) -> Any:
    """h11's next event, reading the socket when h11 needs more."""
    while True:
        with _READ:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = sock.recv(_READ_SIZE)
            if not data and conn.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            conn.receive_data(data)


def _keeps_alive(event: h11.Response) -> bool:
    if event.http_version != b"1.1":
        return False
    tokens = b",".join(value for name, value in event.headers if name == b"connection")
    return b"close" not in {token.strip().lower() for token in tokens.split(b",")}


class Body(httpx.SyncByteStream):
    """One response body. ``readinto`` (Content-Length bodies) or iteration; ``close`` frees the connection."""

    def __init__(
        self,
        transport: StorageTransport,
        origin: _Origin,
        sock: socket.socket,
        conn: h11.Connection,
        event: h11.Response,
        *,
        head_only: bool,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._sock: socket.socket | None = sock
        self._conn = conn
        self._keep_alive = _keeps_alive(event)
        self._busy = threading.Lock()  # held by the thread in readinto(); close() from another thread waits for it
        self._closing = False
        self._failure: httpx.TransportError | None = None
        self._prefix = b""  # body bytes that arrived with the headers
        self._left = 0  # body bytes still on the socket (Content-Length framing)
        self.expected: int | None = None
        framed = not head_only and event.status_code not in (204, 304) and event.status_code >= 200
        length = [v for n, v in event.headers if n == b"content-length"]
        chunked = any(n == b"transfer-encoding" for n, _ in event.headers)
        self.framed_by_length = framed and bool(length) and not chunked
        if self.framed_by_length:
            self.expected = int(length[0])  # h11 has checked it (digits, duplicates agree)
            self._take_prefix()

    def _take_prefix(self) -> None:
        """Take from h11 the body bytes it already holds; from here on the socket is read directly."""
        parts = []
        with _READ:
            while True:
                event = self._conn.next_event()  # never reads the socket
                if isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                    continue
                break
        self._prefix = b"".join(parts)
        assert self.expected is not None
        self._left = self.expected - len(self._prefix)
        if isinstance(event, h11.EndOfMessage):
            self._h11_body_ended()

    @property
    def remaining(self) -> int:
        """Body bytes not yet returned by ``readinto`` (Content-Length framing)."""
        return self._left + len(self._prefix)

    @property
    def received(self) -> int:
        assert self.expected is not None
        return self.expected - self._left - len(self._prefix)

    def readinto(self, buffer: bytearray | memoryview, min_fill: int = MIN_FILL) -> int:
        """Read the next body bytes into ``buffer``: at least ``min_fill`` (or all that is left); 0 once complete.

        A connection closed before Content-Length bytes arrived is ``httpx.RemoteProtocolError``, as in httpx;
        a failure after some bytes were read returns those bytes and is raised by the next call.
        """
        if not self.framed_by_length:
            raise TypeError("readinto needs a body framed by Content-Length")
        with self._busy:
            try:
                return self._readinto(buffer, min_fill)
            finally:
                if self._closing:
                    self._release(reuse=False)

    def _readinto(self, buffer: bytearray | memoryview, min_fill: int) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        if self._prefix:
            filled = min(len(self._prefix), len(view))
            view[:filled] = self._prefix[:filled]
            self._prefix = self._prefix[filled:]
        if self._failure is not None:
            raise self._failure
        sock = self._sock
        while filled < min(len(view), min_fill) and self._left > 0:
            try:
                if sock is None:
                    raise httpx.ReadError("the response was closed")
                want = min(len(view) - filled, self._left)
                with _READ:
                    got = sock.recv_into(view[filled : filled + want], want)
                if not got:
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body: "
                        f"received {self.received} bytes, expected {self.expected}"
                    )
            except httpx.TransportError as exc:
                self._closing = True
                if not filled:
                    raise
                self._failure = exc  # the bytes read so far are returned; the next call raises
                break
            filled += got
            self._left -= got
        if self._left == 0 and not self._prefix:
            self._done()
        return filled

    def __iter__(self) -> Iterator[bytes]:
        if self.framed_by_length:
            buffer = bytearray(_ITER_SIZE)
            while filled := self.readinto(buffer):
                yield bytes(buffer[:filled])
            return
        while self._sock is not None:
            event = _next_event(self._conn, self._sock)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._h11_body_ended()
            else:  # ConnectionClosed: a close-delimited body ended
                self.close()

    def _h11_body_ended(self) -> None:
        """h11 read the whole body: bytes after it (h11 pauses on them) make the connection unusable again."""
        self._keep_alive = (
            self._keep_alive and self._conn.our_state is h11.DONE and self._conn.next_event() is h11.NEED_DATA
        )
        self._done()

    def _done(self) -> None:
        """The body was read to its end: the connection goes back to the pool (or is closed)."""
        self._release(reuse=self._keep_alive)

    def _release(self, *, reuse: bool) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if reuse:
            sock.settimeout(None)
            self._transport._checkin(self._origin, sock)
        else:
            sock.close()

    def interrupt(self) -> None:
        """Wake a read blocked in another thread: it fails, and the connection is closed."""
        self._closing = True
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Free the connection: back to the pool when the body was read to its end, closed otherwise.

        While another thread is in ``readinto`` the read is interrupted and that thread closes the socket
        when it returns, so a descriptor is never closed under a blocked read.
        """
        if self._busy.acquire(blocking=False):
            try:
                self._release(reuse=False)
            finally:
                self._busy.release()
        else:
            self.interrupt()


# -- async ----------------------------------------------------------------------------------------


class AsyncStorageTransport(httpx.AsyncBaseTransport):
    """``StorageTransport`` for the async clients: each blocking step runs on a worker thread.

    The event loop waits on a thread once for the head and, through ``AsyncBody.in_worker``, once for a whole
    body (iterating a body, as for error bodies, waits once per chunk). Cancelling a wait interrupts the read
    (the socket is shut down) and the connection is closed once the worker is out of it.
    """

    def __init__(self) -> None:
        self._sync = StorageTransport()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=_MAX_THREADS, thread_name_prefix="callrec-storage")
            return self._executor

    async def run(self, func: Callable[[], T], on_cancel: Callable[[Future[T]], None]) -> T:
        """``func()`` on a worker thread; if the wait is cancelled, ``on_cancel(future)`` cleans up."""
        future = self._threads().submit(func)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            on_cancel(future)
            raise

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        event, body = await self.run(lambda: self._sync.exchange(request), _close_when_done)
        stream = AsyncBody(self, body)
        return _response(request, event, stream, stream if body.framed_by_length else None)

    async def aclose(self) -> None:
        self._sync.close()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


def _close_when_done(future: Future[tuple[h11.Response, Body]]) -> None:
    """The wait for a head was cancelled: close the connection once the worker has it."""

    def close(done: Future[tuple[h11.Response, Body]]) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result()[1].close()

    future.add_done_callback(close)


class AsyncBody(httpx.AsyncByteStream):
    """A ``Body`` for the event loop: its blocking reads run on the transport's worker threads."""

    def __init__(self, transport: AsyncStorageTransport, body: Body) -> None:
        self._transport = transport
        self._body = body

    def _interrupted(self, future: Future[Any]) -> None:
        self._body.interrupt()
        future.add_done_callback(lambda _: self._body.close())

    @property
    def body(self) -> Body:
        """The sync body, to read from the function given to ``in_worker``."""
        return self._body

    async def in_worker(self, func: Callable[[], T]) -> T:
        """Run ``func`` (a loop reading ``body``) on a worker thread; a cancelled wait interrupts its read."""
        return await self._transport.run(func, self._interrupted)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = iter(self._body)
        while chunk := await self._transport.run(lambda: next(chunks, b""), self._interrupted):
            yield chunk

    async def aclose(self) -> None:
        self._body.close()
