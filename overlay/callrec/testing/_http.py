"""A small, fast HTTP/1.1 server on asyncio streams: parse requests, write responses.

Keep-alive, pipelining, Content-Length and chunked bodies both ways. How a
response goes on the wire (delays, partial bodies, resets) is a `Delivery`,
so faults never touch sockets themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.1 request we accept."""


def first_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


@dataclass(slots=True)
class Request:
    """One parsed request. `path` and `query` are raw (still percent-encoded)."""

    method: str
    target: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass(slots=True)
class Response:
    """Status, headers and the full body. The writer adds framing headers."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


@dataclass(slots=True)
class Delivery:
    """How to put a response on the wire. The default is a plain, complete answer."""

    delay: float = 0.0
    stall_then_close: float | None = None
    reset_before: bool = False
    body_limit: int | None = None
    declare_length: bool = True
    reset_after_limit: bool = False
    chunked: bool = False
    trickle: tuple[int, float] | None = None
    on_cut: Callable[[], None] | None = None


Handler = Callable[[Request], tuple[Response, Delivery]]


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None on a clean end of stream between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("truncated request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise BadRequest("malformed request line") from exc
    if not version.startswith("HTTP/1."):
        raise BadRequest("unsupported HTTP version")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        headers.append((name, value.strip()))
    path, _, query = target.partition("?")
    request = Request(method, target, path, query, version, headers, b"")
    transfer_encoding = (request.header("transfer-encoding") or "").lower()
    if "chunked" in transfer_encoding:
        request.body = await _read_chunked(reader)
    else:
        length = request.header("content-length")
        if length:
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise BadRequest("bad Content-Length")
            request.body = await reader.readexactly(int(length))
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest("bad chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise BadRequest("body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection so the peer gets a RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def send(
    writer: asyncio.StreamWriter, response: Response, plan: Delivery, *, head_only: bool, keep_alive: bool
) -> bool:
    """Write `response` as `plan` says; return whether the connection may carry another request."""
    if plan.delay:
        await asyncio.sleep(plan.delay)
    if plan.stall_then_close is not None:
        await asyncio.sleep(plan.stall_then_close)
        return False
    if plan.reset_before:
        reset(writer)
        return False

    status = response.status
    has_body = status >= 200 and status not in _NO_BODY_STATUSES
    body = response.body if has_body else b""
    cut = plan.body_limit is not None
    chunked = plan.chunked and has_body and plan.declare_length
    keep = keep_alive and not cut and plan.declare_length
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if has_body:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif plan.declare_length:
            lines.append(f"Content-Length: {len(body)}")
    if not keep:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    if head_only:
        body = b""
    if plan.body_limit is not None:
        body = body[: plan.body_limit]
    if plan.trickle is None and not chunked:
        writer.write(head + body)
        await writer.drain()
    else:
        writer.write(head)
        step, interval = plan.trickle if plan.trickle is not None else (_CHUNK, 0.0)
        for start in range(0, len(body), step):
            piece = body[start : start + step]
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            if interval:
                await asyncio.sleep(interval)
        if chunked and not head_only and not cut:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
    if cut:
        if plan.on_cut is not None:
            plan.on_cut()
        if plan.reset_after_limit:
            reset(writer)
        return False
    return keep


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler) -> None:
    """Answer requests on one connection until either side closes it."""
    try:
        while True:
            try:
                request = await read_request(reader)
            except BadRequest as exc:
                message = str(exc).encode()
                bad = Response(400, [("Content-Type", "text/plain")], message)
                await send(writer, bad, Delivery(), head_only=False, keep_alive=False)
                break
            if request is None:
                break
            try:
                response, plan = handler(request)
            except Exception as exc:  # a bug in the fake must not look like a network fault
                message = f"callrec fake server error: {exc!r}".encode()
                response, plan = Response(500, [("Content-Type", "text/plain")], message), Delivery()
                request.headers.append(("Connection", "close"))
            if not await send(
                writer, response, plan, head_only=request.method == "HEAD", keep_alive=request.keep_alive
            ):
                break
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        if not writer.transport.is_closing():
            writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
