"""Clients close what they open: after ``close()``/``aclose()`` no storage socket is left, pooled or in use.

Sockets are counted from the kernel's side (``/proc``) with the garbage collector off: urllib3 2.x closes a pool
it drops only when the pool is collected, and a collection during the test would hide a pool nobody closed.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import os
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import callrec
import httpx
import pytest
from callrec import _pool
from callrec._storage_http import StorageTransport
from callrec.testing import FakeServer, faults

from .conftest import BIG, afeather, feather, leftovers

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="counts sockets through /proc")

#: /proc/net/tcp's state codes (include/net/tcp_states.h).
_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT"}


def sockets_to(origin: str) -> list[str]:
    """The TCP states of this process's open sockets connected to ``origin`` (an IPv4 loopback origin)."""
    url = urlsplit(origin)
    assert url.hostname is not None and url.port is not None
    remote = f"{socket.inet_aton(url.hostname)[::-1].hex().upper()}:{url.port:04X}"
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd listing itself, closed meanwhile
            continue
        if target.startswith("socket:["):
            ours.add(target[len("socket:[") : -1])
    states = []
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == remote and fields[9] in ours:
            states.append(_STATES.get(int(fields[3], 16), fields[3]))
    return states


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    """No garbage collection during a test: only an explicit close may close a socket."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.mark.parametrize("own_http_client", [False, True], ids=["callrec's http_client", "own http_client"])
def test_close_closes_the_pooled_storage_connection(fake: FakeServer, tmp_path: Path, own_http_client: bool) -> None:
    fake.add_recording("feather", "c1")
    with httpx.Client() as mine:
        client = feather(fake, http_client=mine) if own_http_client else feather(fake)
        with client:
            client.download("c1", tmp_path)
            assert sockets_to(fake.storage_origin) == ["ESTABLISHED"]  # kept alive in the pool
        assert sockets_to(fake.storage_origin) == []
        assert not mine.is_closed  # a given http_client stays open: it is yours


@pytest.mark.parametrize("own_http_client", [False, True], ids=["callrec's http_client", "own http_client"])
async def test_aclose_closes_the_pooled_storage_connection(
    fake: FakeServer, tmp_path: Path, own_http_client: bool
) -> None:
    fake.add_recording("feather", "c1")
    async with httpx.AsyncClient() as mine:
        client = afeather(fake, http_client=mine) if own_http_client else afeather(fake)
        async with client:
            await client.download("c1", tmp_path)
            assert sockets_to(fake.storage_origin) == ["ESTABLISHED"]
        assert sockets_to(fake.storage_origin) == []
        assert not mine.is_closed


def test_close_while_a_download_runs_in_another_thread_ends_it_and_leaves_no_socket(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.add_recording("feather", "big", data=BIG)
    fake.storage.always(faults.Trickle(chunk_size=16 * 1024, interval=0.05))  # ~10 s for the whole body
    reading = threading.Event()
    failures: list[BaseException] = []
    client = feather(fake)

    def download() -> None:
        try:
            client.download("big", tmp_path, progress=lambda done, _total: done and reading.set())
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    assert reading.wait(10)
    client.close()
    assert "ESTABLISHED" not in sockets_to(fake.storage_origin)  # shut down at once, whoever is reading it
    worker.join(10)
    assert not worker.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], RuntimeError | callrec.DownloadError), failures
    assert sockets_to(fake.storage_origin) == []
    assert leftovers(tmp_path) == [] and not list(tmp_path.iterdir())


async def test_aclose_while_a_download_runs_in_another_task_ends_it_and_leaves_no_socket(
    fake: FakeServer, tmp_path: Path
) -> None:
    fake.add_recording("feather", "big", data=BIG)
    fake.storage.always(faults.Trickle(chunk_size=16 * 1024, interval=0.05))
    reading = asyncio.Event()
    loop = asyncio.get_running_loop()
    client = afeather(fake)

    def progress(done: int, _total: int | None) -> None:
        if done:
            loop.call_soon_threadsafe(reading.set)

    task = asyncio.create_task(client.download("big", tmp_path, progress=progress))
    await asyncio.wait_for(reading.wait(), 10)
    await client.aclose()
    assert "ESTABLISHED" not in sockets_to(fake.storage_origin)
    with pytest.raises((RuntimeError, callrec.DownloadError)):
        await asyncio.wait_for(task, 10)
    assert sockets_to(fake.storage_origin) == []
    assert not list(tmp_path.iterdir())


def test_closing_the_transport_closes_a_response_left_unread(fake: FakeServer) -> None:
    fake.add_recording("feather", "c1")
    url = fake.signed_url("feather", "c1")
    transport = StorageTransport()
    client = httpx.Client(transport=transport)
    response = client.send(client.build_request("GET", url), stream=True)  # never read, never closed
    assert response.status_code == 200
    assert sockets_to(fake.storage_origin) == ["ESTABLISHED"]
    client.close()
    assert sockets_to(fake.storage_origin) == []
    with pytest.raises(httpx.ReadError, match="closed"):
        response.read()


def test_plain_http_storage_never_builds_a_tls_context(
    fake: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[ssl.SSLContext] = []
    real = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    fake.add_recording("feather", "c1")
    with feather(fake) as client:
        client.download("c1", tmp_path)
    assert made == []
    pools = _pool.Pools()
    assert pools.tls() is pools.tls()  # an https origin makes it once, on first use
    assert len(made) == 1


def test_the_storage_transport_does_not_import_the_module_that_builds_it() -> None:
    """``_transport`` builds the storage transport; what both need lives in ``_extensions``, so no import circle."""
    source = Path(callrec.__file__).with_name("_storage_http.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }
    assert "_transport" not in imported
    assert "_extensions" in imported
