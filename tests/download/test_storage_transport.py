"""callrec's storage transport (``_storage_http``, on urllib3) against real servers on loopback, plain and TLS.

Each server answers with bytes written by the test, so framing, keep-alive, cuts and stalls are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from callrec._storage_http import AsyncStorageTransport, StorageTransport
from callrec._transport import BODY_READER

Answer = Callable[[socket.socket, int], None]  # (connection, index of the request) -> writes the answer


class Server:
    """HTTP/1.1 on 127.0.0.1: reads each request head, calls ``answer``; counts connections and requests."""

    def __init__(self, answer: Answer, *, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn:
                pending = b""
                while True:
                    while b"\r\n\r\n" not in pending:
                        data = conn.recv(65536)
                        if not data:
                            return
                        pending += data
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    with self._lock:
                        self.requests.append(head)
                        index = len(self.requests) - 1
                    self.answer(conn, index)
        except OSError:
            return

    def close(self) -> None:
        self._listener.close()


def ok(body: bytes, *extra: bytes) -> bytes:
    headers = [b"HTTP/1.1 200 OK", b"Content-Type: audio/wav", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


BODY = bytes(range(256)) * 4096  # 1 MiB


def read_all(response: httpx.Response, size: int = 256 * 1024) -> bytes:
    body = response.extensions[BODY_READER]
    out = bytearray()
    buffer = bytearray(size)
    while filled := body.readinto(buffer):
        out += buffer[:filled]
    return bytes(out)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer: Answer, **kw: ssl.SSLContext) -> Server:
        servers.append(Server(answer, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_content_length_body_is_read_into_the_callers_buffer_and_the_connection_is_reused(serve) -> None:
    server = serve(lambda conn, _: conn.sendall(ok(BODY)))
    with httpx.Client(transport=StorageTransport()) as client:
        for _ in range(3):
            with client.stream("GET", f"{server.url}/rec.wav?X-Amz-Signature=s%2Fig") as response:
                assert response.status_code == 200
                assert read_all(response) == BODY
    assert (server.connections, len(server.requests)) == (1, 3)
    # The signed URL's path and query go out byte for byte (the signature covers them).
    assert server.requests[0].split(b"\r\n")[0] == b"GET /rec.wav?X-Amz-Signature=s%2Fig HTTP/1.1"


@pytest.mark.parametrize(
    ("answer", "connections"),
    [
        (ok(BODY), 1),
        (ok(BODY, b"Connection: close"), 2),
        (ok(BODY) + b"junk", 2),  # bytes after the body: that connection is not reused
    ],
    ids=["keep-alive", "connection-close", "junk-after-body"],
)
def test_a_connection_is_reused_only_when_the_server_left_it_clean(serve, answer: bytes, connections: int) -> None:
    def send(conn: socket.socket, _: int) -> None:
        conn.sendall(answer)
        if b"Connection: close" in answer:
            conn.shutdown(socket.SHUT_WR)

    server = serve(send)
    with httpx.Client(transport=StorageTransport()) as client:
        for _ in range(2):
            with client.stream("GET", f"{server.url}/rec.wav") as response:
                assert read_all(response) == BODY
            time.sleep(0.05)  # the junk (or the close) reaches the idle socket
    assert server.connections == connections


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(serve) -> None:
    def send_and_close(conn: socket.socket, _: int) -> None:
        conn.sendall(ok(BODY))
        conn.shutdown(socket.SHUT_RDWR)  # as a server whose keep-alive timeout passed

    server = serve(send_and_close)
    with httpx.Client(transport=StorageTransport()) as client:
        for _ in range(2):
            with client.stream("GET", f"{server.url}/rec.wav") as response:
                assert read_all(response) == BODY
            time.sleep(0.05)
    assert (server.connections, len(server.requests)) == (2, 2)


def test_a_body_cut_short_returns_what_arrived_then_raises(serve) -> None:
    def cut(conn: socket.socket, _: int) -> None:
        conn.sendall(ok(BODY)[: -len(BODY) // 2])
        conn.shutdown(socket.SHUT_RDWR)

    server = serve(cut)
    with httpx.Client(transport=StorageTransport()) as client, client.stream("GET", f"{server.url}/r") as response:
        body = response.extensions[BODY_READER]
        buffer = bytearray(len(BODY))
        got = 0
        failure: Exception | None = None
        while failure is None:
            try:
                filled = body.readinto(memoryview(buffer)[got:])
            except httpx.RemoteProtocolError as exc:
                failure = exc
            else:
                assert filled > 0
                got += filled
        assert f"expected {len(BODY)}" in str(failure)
        assert bytes(buffer[:got]) == BODY[: len(BODY) - len(BODY) // 2]  # every byte that came, for the resume


def test_a_stalled_body_is_a_read_timeout(serve) -> None:
    server = serve(lambda conn, _: conn.sendall(ok(BODY)[:1000]))  # then nothing
    with (
        httpx.Client(transport=StorageTransport(), timeout=0.3) as client,
        client.stream("GET", f"{server.url}/r") as response,
        pytest.raises(httpx.ReadTimeout),
    ):
        read_all(response)


def test_a_refused_connection_is_a_connect_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with httpx.Client(transport=StorageTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/r?X-Amz-Signature=secret")


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"hello world",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nread until close", b"read until close"),
        (b"HTTP/1.1 503 Slow Down\r\nContent-Length: 5\r\n\r\nerror", b"error"),
    ],
    ids=["chunked", "close-delimited", "error-with-length"],
)
def test_other_framings_are_read_by_urllib3_when_iterated(serve, answer: bytes, body: bytes) -> None:
    def send(conn: socket.socket, _: int) -> None:
        conn.sendall(answer)
        if b"Content-Length" not in answer:
            conn.shutdown(socket.SHUT_WR)

    server = serve(send)
    with httpx.Client(transport=StorageTransport()) as client, client.stream("GET", f"{server.url}/r") as response:
        assert (BODY_READER in response.extensions) is (b"Content-Length" in answer)
        assert response.read() == body


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(serve, ca: trustme.CA) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return serve(lambda conn, _: conn.sendall(ok(BODY)), tls=context)


def test_tls_trusts_what_httpx_trusts_and_reads_into_the_buffer(
    tls_server: Server, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # httpx.create_ssl_context() honours it, as httpx does
    with httpx.Client(transport=StorageTransport()) as client:
        for _ in range(2):
            with client.stream("GET", f"{tls_server.url}/rec.wav") as response:
                assert read_all(response, 1 << 20) == BODY
    assert (tls_server.connections, len(tls_server.requests)) == (1, 2)


def test_tls_refuses_a_certificate_it_does_not_trust(tls_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with (
        httpx.Client(transport=StorageTransport()) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED") as caught,
    ):
        client.get(f"{tls_server.url}/rec.wav?X-Amz-Signature=secret")
    assert "secret" not in str(caught.value)
    assert tls_server.requests == []


def test_async_bodies_are_read_on_a_worker_and_a_cancelled_read_closes_the_connection(serve) -> None:
    closed = threading.Event()

    def stall(conn: socket.socket, _: int) -> None:
        conn.sendall(ok(BODY)[:1000])
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            if conn.recv(1) == b"":  # the client shut the connection down
                closed.set()

    server = serve(stall)

    async def main() -> float:
        async with (
            httpx.AsyncClient(transport=AsyncStorageTransport(), timeout=10) as client,
            client.stream("GET", f"{server.url}/r") as response,
        ):
            reader = response.extensions[BODY_READER]
            task = asyncio.create_task(reader.in_worker(lambda: reader.body.readinto(bytearray(1 << 20))))
            await asyncio.sleep(0.2)  # the worker is blocked in recv (the event loop is not)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - started

    cancelled_in = asyncio.run(main())
    assert closed.wait(2), "the connection of a cancelled read stayed open"
    assert cancelled_in < 1.0
    assert server.connections == 1
