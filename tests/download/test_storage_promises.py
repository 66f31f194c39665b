"""Regression tests for the storage transport's promises (issue 18): a deadline in every phase, interrupts
that reach a blocked read, callbacks that raise, TLS after an interrupt, fork, stale keep-alive, resumes.

Each runs against a real server on loopback that stalls or trickles where the promise is at stake.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import callrec
import httpx
import pytest
import trustme
from callrec import _download
from callrec._storage_http import AsyncStorageTransport, StorageTransport
from callrec._transport import BODY_READER, DEADLINE
from callrec.testing import FakeServer, faults

from .conftest import BIG, afeather, feather, leftovers
from .test_storage_transport import BODY, Server, ok

FLAVOURS = ["sync", "async"]


def download(fake: FakeServer, flavour: str, rid: str, dest: Path, **kw: Any) -> Any:
    if flavour == "sync":
        with feather(fake) as client:
            return client.download(rid, dest, **kw)

    async def go() -> Any:
        async with afeather(fake) as client:
            return await client.download(rid, dest, **kw)

    return asyncio.run(go())


def timed(func: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        func()
    except BaseException as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# -- 1. the deadline bounds every phase -------------------------------------------------------------------------------

# Each row: the storage fault, and the phase it holds. A per-read timeout (30 s) bounds none of them.
PHASES = [
    (faults.Trickle(chunk_size=1, interval=0.05), "a body trickling a byte every 50 ms"),
    (faults.StallBeforeHeaders(8), "no response head at all"),
    ((faults.Latency(8),), "a response head that comes late"),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("fault", "phase"), PHASES, ids=[p for _f, p in PHASES])
def test_the_download_deadline_bounds_every_phase(
    fake: FakeServer, tmp_path: Path, flavour: str, fault: Any, phase: str
) -> None:
    fake.add_recording("feather", "c0", data=BIG)
    fake.storage.always(*(fault if isinstance(fault, tuple) else (fault,)))
    error, seconds = timed(lambda: download(fake, flavour, "c0", tmp_path, deadline=1))
    assert isinstance(error, callrec.DownloadError) and "deadline" in str(error), (phase, error)
    assert seconds < 3.0, f"{phase}: the 1 s deadline took {seconds:.1f} s"
    assert leftovers(tmp_path) == []


def _continue_forever(conn: socket.socket, _index: int) -> None:
    with contextlib.suppress(OSError):
        for _ in range(80):  # 8 s of 100 Continue, never a final answer
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.1)


def test_a_stream_of_100_continue_cannot_hold_the_head_past_the_deadline() -> None:
    server = Server(_continue_forever)
    try:
        transport = StorageTransport()
        with httpx.Client(transport=transport, timeout=30) as client:
            started = time.monotonic()
            with pytest.raises(httpx.TransportError):
                client.get(f"{server.url}/r", extensions={DEADLINE: time.monotonic() + 1})
            assert time.monotonic() - started < 3.0

        async def main() -> float:
            async with httpx.AsyncClient(transport=AsyncStorageTransport(), timeout=30) as client:
                started = time.monotonic()
                with pytest.raises(httpx.TransportError):
                    await client.get(f"{server.url}/r", extensions={DEADLINE: time.monotonic() + 1})
                return time.monotonic() - started

        assert asyncio.run(main()) < 3.0
    finally:
        server.close()


def test_an_on_item_that_raises_stops_a_sync_run_at_once_even_mid_trickle(fake: FakeServer, tmp_path: Path) -> None:
    for i in range(3):
        fake.add_recording("feather", f"c{i}", data=BIG)
    fake.add_recording("feather", "fast", data=b"RIFF\0\0\0\0WAVEfmt " + bytes(100))
    fake.storage.queue(faults.Trickle(1, 0.05), faults.Trickle(1, 0.05), faults.Trickle(1, 0.05))

    class Stop(Exception):
        pass

    def on_item(item: callrec.BulkItem) -> None:
        raise Stop

    with feather(fake) as client:
        error, seconds = timed(
            lambda: client.download_many(["c0", "c1", "c2", "fast"], tmp_path, concurrency=4, on_item=on_item)
        )
    assert isinstance(error, Stop)
    assert seconds < 3.0, f"the run raised {seconds:.1f} s after on_item did"
    assert leftovers(tmp_path) == []


# -- 2. a cancellation reaches the worker thread ---------------------------------------------------------------------


def _hold_until_closed(seen: threading.Event) -> Callable[[socket.socket, int], None]:
    def answer(conn: socket.socket, _index: int) -> None:
        conn.settimeout(10)
        with contextlib.suppress(OSError):
            if conn.recv(1) == b"":  # the client shut the connection down
                seen.set()

    return answer


def test_a_cancelled_wait_for_the_head_closes_the_connection_and_leaves_no_worker_reading() -> None:
    closed = threading.Event()
    server = Server(_hold_until_closed(closed))
    try:

        async def main() -> float:
            async with httpx.AsyncClient(transport=AsyncStorageTransport(), timeout=30) as client:
                task = asyncio.create_task(client.get(f"{server.url}/r"))
                await asyncio.sleep(0.3)  # the worker waits for the head
                started = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return time.monotonic() - started

        assert asyncio.run(main()) < 1.0
        assert closed.wait(2), "the cancelled request's connection stayed open (the worker kept reading)"
    finally:
        server.close()


def test_an_async_run_stopped_by_an_error_raises_only_once_nothing_runs(fake: FakeServer, tmp_path: Path) -> None:
    for i in range(3):
        fake.add_recording("feather", f"c{i}", data=BIG)
    fake.add_recording("feather", "fast", data=b"RIFF\0\0\0\0WAVEfmt " + bytes(100))
    fake.storage.queue(faults.StallBeforeHeaders(8), faults.StallBeforeHeaders(8), faults.StallBeforeHeaders(8))

    def on_item(item: callrec.BulkItem) -> None:
        raise KeyError("stop")

    async def main() -> None:
        async with afeather(fake) as client:
            await client.download_many(["c0", "c1", "c2", "fast"], tmp_path, concurrency=4, on_item=on_item)

    error, seconds = timed(lambda: asyncio.run(main()))
    assert isinstance(error, KeyError)
    assert seconds < 3.0
    reading = [t for t in threading.enumerate() if "asyncio" in t.name and t.is_alive()]
    assert reading == [], "storage workers still running after the run raised"


# -- 3. a progress callback that raises ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_progress_callback_that_raises_aborts_the_download_in_both_flavours(
    fake: FakeServer, tmp_path: Path, flavour: str
) -> None:
    fake.add_recording("feather", "c0", data=BIG)

    class Broken(Exception):
        pass

    def progress(done: int, total: int | None) -> None:
        if done > 100_000:
            raise Broken

    error, _ = timed(lambda: download(fake, flavour, "c0", tmp_path, progress=progress))
    assert isinstance(error, Broken)
    assert list(tmp_path.iterdir()) == []  # nothing committed, nothing left behind


# -- 4. no byte after an interrupt, TLS included ---------------------------------------------------------------------


@pytest.fixture
def tls_pair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ssl.SSLContext:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return server_ctx


def test_after_an_interrupt_a_tls_read_fails_instead_of_returning_ciphertext(tls_pair: ssl.SSLContext) -> None:
    def slow(conn: socket.socket, _index: int) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(ok(BODY)[:1000])
            time.sleep(0.5)
            conn.sendall(ok(BODY)[1000:])

    server = Server(slow, tls=tls_pair)
    try:
        with (
            httpx.Client(transport=StorageTransport(), timeout=10) as client,
            client.stream("GET", f"{server.url}/r") as r,
        ):
            body = r.extensions[BODY_READER]
            threading.Timer(0.1, body.interrupt).start()
            buffer = bytearray(len(BODY))
            got = 0

            def read_to_end() -> None:
                nonlocal got
                while filled := body.readinto(memoryview(buffer)[got:]):
                    got += filled

            with pytest.raises(httpx.ReadError):
                read_to_end()
            assert bytes(buffer[:got]) == BODY[:got]  # whatever came before the interrupt is the plaintext
            with pytest.raises(httpx.ReadError):
                body.readinto(bytearray(1024))  # and every later read fails
    finally:
        server.close()


# -- 5. fork ----------------------------------------------------------------------------------------------------------


def _fork(child: Callable[[], bool]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "use of fork() may lead to deadlocks" (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = 0 if child() else 1
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_client_used_across_a_fork_gives_each_process_its_own_connections(
    fake: FakeServer, tmp_path: Path, flavour: str
) -> None:
    fake.add_recording("feather", "parent", data=BIG)
    fake.add_recording("feather", "child", data=BIG[::-1])
    if flavour == "sync":
        client = feather(fake)
        client.download("parent", tmp_path / "before", overwrite=True)  # a pooled storage connection now exists

        def in_child() -> bool:
            return client.download("child", tmp_path / "child").path.read_bytes() == BIG[::-1]

        assert _fork(in_child) == 0
        assert client.download("parent", tmp_path / "after").path.read_bytes() == BIG
        client.close()
    else:
        aclient = afeather(fake)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(aclient.download("parent", tmp_path / "before"))

        def in_async_child() -> bool:
            # The storage side of the parent's client, in the child's own event loop (an API session on aiohttp
            # is bound to the loop that made it, fork or not): fresh pools, and worker threads that exist.
            storage = aclient._storage.get()

            async def go() -> bytes:
                response = await asyncio.wait_for(storage.get(fake.signed_url("feather", "child")), 10)
                return response.content

            return asyncio.run(go()) == BIG[::-1]

        assert _fork(in_async_child) == 0
        result = loop.run_until_complete(aclient.download("parent", tmp_path / "after"))
        assert result.path.read_bytes() == BIG
        loop.run_until_complete(aclient.aclose())
        loop.close()


# -- keep-alive: a connection the server closes just as it is reused ------------------------------------------------


def test_a_kept_alive_connection_closed_as_it_is_reused_is_retried_once_on_a_fresh_one() -> None:
    def answer(conn: socket.socket, index: int) -> None:
        if index == 1:  # the second request arrives on the kept-alive connection: close it, unanswered
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            return
        conn.sendall(ok(BODY))

    server = Server(answer)
    try:
        with httpx.Client(transport=StorageTransport(), timeout=10) as client:
            assert client.get(f"{server.url}/a").content == BODY
            assert client.get(f"{server.url}/b").content == BODY
        assert len(server.requests) == 3 and server.connections == 2
    finally:
        server.close()


# -- 6. a resume must get the same object -----------------------------------------------------------------------------


def _transfer(tmp_path: Path) -> _download.Transfer:
    from callrec._destinations.folder import open_temp
    from callrec._sink import FileSink

    sink = FileSink(*open_temp(tmp_path, "t"))
    transfer = _download.Transfer(sink, progress=None, deadline=time.monotonic() + 60, max_retries=2)
    return transfer


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={k.replace("_", "-"): v for k, v in headers.items()})


# Each row: the first answer's validators, the resume's answer, and whether the resume is accepted.
RESUMES = [
    ({"etag": '"A"'}, {"etag": '"A"', "content_length": "50"}, True),
    ({"etag": '"A"'}, {"etag": '"B"', "content_length": "50"}, False),  # Range honoured, If-Range ignored
    ({"etag": '"A"'}, {"content_length": "50"}, False),  # no ETag on the 206: cannot tell
    ({"etag": '"A"'}, {"etag": '"A"', "content_length": "49"}, False),  # Content-Range and Content-Length disagree
]


@pytest.mark.parametrize(("first", "resume", "accepted"), RESUMES)
def test_a_206_is_accepted_only_for_the_same_object_and_a_consistent_range(
    tmp_path: Path, first: dict[str, str], resume: dict[str, str], accepted: bool
) -> None:
    transfer = _transfer(tmp_path)
    try:
        assert transfer.on_response(_response(200, content_length="100", **first)) is _download.Action.STREAM
        transfer.on_chunk(b"RIFF\0\0\0\0WAVEfmt " + bytes(34))  # 50 bytes of audio
        assert transfer.request_headers()["If-Range"] == first["etag"]
        answer = transfer.on_response(_response(206, content_range="bytes 50-99/100", **resume))
        if accepted:
            assert answer is _download.Action.STREAM and transfer.offset == 50
        else:
            assert answer is _download.Action.RETRY and transfer.offset == 0  # restarted cleanly
            assert "Range" not in transfer.request_headers()
    finally:
        transfer.sink.abort()


# Each row: the 200's headers, and the If-Range a resume sends (None: no validator, so no resume).
VALIDATORS = [
    ({"etag": '"strong"'}, '"strong"'),
    ({"etag": 'W/"weak"'}, None),
    (
        {"last_modified": "Tue, 01 Dec 2026 10:00:00 GMT", "date": "Tue, 01 Dec 2026 10:00:05 GMT"},
        "Tue, 01 Dec 2026 10:00:00 GMT",
    ),
    ({"last_modified": "Tue, 01 Dec 2026 10:00:00 GMT", "date": "Tue, 01 Dec 2026 10:00:00 GMT"}, None),
    ({"last_modified": "Tue, 01 Dec 2026 10:00:00 GMT"}, None),
    ({}, None),
]


@pytest.mark.parametrize(("headers", "if_range"), VALIDATORS)
def test_if_range_is_sent_only_with_a_strong_validator(
    tmp_path: Path, headers: dict[str, str], if_range: str | None
) -> None:
    """RFC 9110 §13.1.5: a weak ETag, or a Last-Modified less than a second before the Date, cannot guard it."""
    transfer = _transfer(tmp_path)
    try:
        transfer.on_response(_response(200, content_length="100", **headers))
        transfer.on_chunk(b"RIFF\0\0\0\0WAVEfmt " + bytes(34))
        sent = transfer.request_headers()
        assert sent.get("If-Range") == if_range
        assert ("Range" in sent) is (if_range is not None)
    finally:
        transfer.sink.abort()
