"""README promises that a careful review broke, each proved for the sync and the async clients.

Every failure is a CallrecError; no credential in any repr; both flavours follow
proxy settings the same way; a re-download never requests what it would refuse;
the storage pool has one owner; bad download deadlines fail before any request;
connection errors keep their cause; downloaded files get normal permissions.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import callrec
import httpx
import pytest
from callrec.testing import FakeServer, faults

FLAVOURS = ["sync", "async"]
VENDORS = ["feather", "siro"]
FLAC = b"fLaC\x00\x00\x00\x22" + bytes(range(256)) * 40


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.add_recording("feather", "c1")
        server.add_recording("siro", "c1")
        yield server


def make(fake: FakeServer, vendor: str, flavour: str, **kw: Any) -> Any:
    cls = {
        ("feather", "sync"): callrec.FeatherClient,
        ("siro", "sync"): callrec.SiroClient,
        ("feather", "async"): callrec.AsyncFeatherClient,
        ("siro", "async"): callrec.AsyncSiroClient,
    }[vendor, flavour]
    key = fake.feather_api_key if vendor == "feather" else fake.siro_token
    base = fake.feather_base_url if vendor == "feather" else fake.siro_base_url
    return cls(key, base_url=base, **kw)


def run(flavour: str, client: Any, action: Callable[[Any], Any]) -> Any:
    """Run ``action(client)`` and close the client, awaiting in the async flavour."""
    if flavour == "sync":
        with client:
            return action(client)

    async def go() -> Any:
        async with client:
            return await action(client)

    return asyncio.run(go())


def outcome(flavour: str, client: Any, action: Callable[[Any], Any]) -> Any:
    """The result, or the exception raised (so a test can inspect either)."""
    try:
        return run(flavour, client, action)
    except Exception as exc:
        return exc


# -- 1. a body whose declared encoding does not decode -----------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_html_502_labelled_gzip_is_a_retried_server_error(fake: FakeServer, vendor: str, flavour: str) -> None:
    page = faults.Status(
        502, body="<html>Bad Gateway</html>", content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    getattr(fake, vendor).always(page)
    error = outcome(flavour, make(fake, vendor, flavour, max_retries=2), lambda c: c.recording_url("c1"))
    assert isinstance(error, callrec.InternalServerError), repr(error)
    assert error.status_code == 502
    assert len(fake.requests_to(vendor)) == 3  # retried like any 502


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_200_whose_gzip_is_broken_is_an_unexpected_response_not_retried(
    fake: FakeServer, vendor: str, flavour: str
) -> None:
    broken = gzip.compress(b'{"url": "x"}')[:-12] + b"garbage!garbage!"
    getattr(fake, vendor).always(
        faults.Status(200, body=broken, content_type="application/json", headers={"Content-Encoding": "gzip"})
    )
    error = outcome(flavour, make(fake, vendor, flavour), lambda c: c.recording_url("c1"))
    assert isinstance(error, callrec.UnexpectedResponseError), repr(error)
    assert "gzip" in str(error)
    assert len(fake.requests_to(vendor)) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_valid_gzip_api_response_is_read(fake: FakeServer, flavour: str) -> None:
    with callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as probe:
        expected = probe.recording_url("c1")
    fake.clear_requests()
    body = gzip.compress(f'{{"url": "{expected.url}", "expiresAt": "2099-01-01T00:00:00Z"}}'.encode())
    fake.feather.queue(
        faults.Status(200, body=body, content_type="application/json", headers={"Content-Encoding": "gzip"})
    )
    url = run(flavour, make(fake, "feather", flavour), lambda c: c.recording_url("c1"))
    assert url.url == expected.url


# -- 2. secrets in reprs ---------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("vendor", VENDORS)
def test_request_headers_reachable_from_an_error_hide_the_credential(
    fake: FakeServer, vendor: str, flavour: str
) -> None:
    getattr(fake, vendor).queue(faults.Status(404))
    client = make(fake, vendor, flavour)
    secret = fake.feather_api_key if vendor == "feather" else fake.siro_token
    error = outcome(flavour, client, lambda c: c.recording_url("c1"))
    assert isinstance(error, callrec.NotFoundError)
    request = error.response.request
    assert request.headers[client._vendor.auth_header] == secret  # it was sent...
    for text in (repr(request.headers), str(request.headers), repr(request), repr(error), str(error)):
        assert secret not in text  # ...and is never shown
    assert "[secure]" in repr(request.headers)
    assert secret not in repr(client.generated) and secret not in repr(client)


# -- 3. proxies from the environment ---------------------------------------------------------------


class _Proxy:
    """A forward proxy on loopback that records the request line and answers 503."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.lines.append(data.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Proxy]:
    server = _Proxy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    yield server
    server.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_api_calls_go_through_the_environments_proxy(fake: FakeServer, proxy: _Proxy, flavour: str) -> None:
    error = outcome(flavour, make(fake, "feather", flavour, max_retries=0), lambda c: c.recording_url("c1"))
    assert isinstance(error, callrec.ServiceUnavailableError)
    assert proxy.lines == [f"GET {fake.feather_base_url}/api/v1/agent-calls/c1/recording-url?type=main HTTP/1.1"]
    assert fake.requests_to("feather") == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_proxy_is_honoured(fake: FakeServer, proxy: _Proxy, flavour: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = run(flavour, make(fake, "siro", flavour), lambda c: c.recording_url("c1"))
    assert url.recording_id == "c1" and proxy.lines == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_trust_env_false_on_your_own_client_is_respected(fake: FakeServer, proxy: _Proxy, flavour: str) -> None:
    if flavour == "sync":
        with httpx.Client(trust_env=False) as mine:
            url = run(flavour, make(fake, "siro", flavour, http_client=mine), lambda c: c.recording_url("c1"))
    else:

        async def go() -> Any:
            async with httpx.AsyncClient(trust_env=False) as mine, make(fake, "siro", flavour, http_client=mine) as c:
                return await c.recording_url("c1")

        url = asyncio.run(go())
    assert url.recording_id == "c1" and proxy.lines == []


# -- 4. FLAC and extension changes -----------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_second_download_of_a_flac_recording_sends_nothing(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1", data=FLAC, content_type="audio/flac")
    first = run(flavour, make(fake, "feather", flavour), lambda c: c.download("c1", tmp_path))
    assert first.path.name == "feather-c1-main.flac"
    fake.clear_requests()
    error = outcome(flavour, make(fake, "feather", flavour), lambda c: c.download("c1", tmp_path))
    assert isinstance(error, FileExistsError)
    assert fake.requests == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_overwrite_with_a_new_extension_leaves_one_file(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    run(flavour, make(fake, "siro", flavour), lambda c: c.download("c1", tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["siro-c1.wav"]
    fake.add_recording("siro", "c1", data=FLAC, content_type="audio/flac")
    result = run(flavour, make(fake, "siro", flavour), lambda c: c.download("c1", tmp_path, overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["siro-c1.flac"]
    assert result.path.read_bytes() == FLAC


# -- 5. one owner of the storage pool --------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_storage_pool_is_closed_even_with_your_own_http_client(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    if flavour == "sync":
        with httpx.Client() as mine:
            with make(fake, "feather", flavour, http_client=mine) as client:
                client.download("c1", tmp_path)
                pool = client._storage.get()
            assert pool.is_closed
            assert not mine.is_closed  # the user's client stays the user's
        return

    async def go() -> None:
        async with httpx.AsyncClient() as mine:
            async with make(fake, "feather", flavour, http_client=mine) as client:
                await client.download("c1", tmp_path)
                pool = client._storage.get()
            assert pool.is_closed
            assert not mine.is_closed

    asyncio.run(go())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_copy_used_after_the_original_closed_opens_nothing(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    client = make(fake, "feather", flavour)
    copy = client.with_options(max_retries=0)
    run(flavour, client, lambda c: c.recording_url("c1"))
    with pytest.raises(RuntimeError, match="closed"):
        copy._storage.get()
    error = outcome(flavour, copy, lambda c: c.download("c1", tmp_path))
    assert isinstance(error, RuntimeError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_closing_a_copy_closes_nothing_it_borrowed(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    if flavour == "sync":
        with make(fake, "siro", flavour) as client:
            with client.with_options(timeout=5) as copy:
                copy.download("c1", tmp_path / "a.wav")
            result = client.download("c1", tmp_path / "b.wav")
    else:

        async def go() -> Any:
            async with make(fake, "siro", flavour) as client:
                async with client.with_options(timeout=5) as copy:
                    await copy.download("c1", tmp_path / "a.wav")
                return await client.download("c1", tmp_path / "b.wav")

        result = asyncio.run(go())
    assert result.path.exists() and (tmp_path / "a.wav").exists()


# -- 6. bad download deadlines -----------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("deadline", [0, -1, math.nan, math.inf, True, "10"], ids=repr)
def test_bad_download_deadline_is_refused_before_any_request(
    fake: FakeServer, flavour: str, deadline: Any, tmp_path: Path
) -> None:
    error = outcome(flavour, make(fake, "feather", flavour), lambda c: c.download("c1", tmp_path, deadline=deadline))
    assert isinstance(error, ValueError) and "deadline" in str(error)
    assert fake.requests == []


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("margin", [-1, math.nan, timedelta(seconds=-1)], ids=repr)
def test_bad_link_margin_is_refused(fake: FakeServer, flavour: str, margin: Any) -> None:
    client = make(fake, "siro", flavour)
    with pytest.raises(ValueError, match="margin"):
        client.link("c1", margin=margin)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_link_margin_may_be_a_timedelta_and_link_repr_is_readable(fake: FakeServer, flavour: str) -> None:
    client = make(fake, "feather", flavour)
    link = client.link("c1", leg="supervisor", margin=timedelta(minutes=2))
    assert repr(link) == f"{type(link).__name__}('feather:c1:supervisor', margin=120, mints=0, expires_at=None)"
    fake.add_recording("feather", "c1", leg="supervisor")
    url = run(flavour, client, lambda c: link.get())
    assert url.leg == "supervisor" and "mints=1" in repr(link)
    assert "X-Amz-Signature" not in repr(link)


# -- 7. connection errors keep their cause ------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_connection_error_chains_the_transport_exception_and_carries_the_request(flavour: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cls = callrec.FeatherClient if flavour == "sync" else callrec.AsyncFeatherClient
    client = cls("key-never-shown", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    error = outcome(flavour, client, lambda c: c.recording_url("c1"))
    assert type(error) is callrec.APIConnectionError
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert error.request is not None and error.request.url.path == "/api/v1/agent-calls/c1/recording-url"
    assert "'x-api-key': '[secure]'" in repr(error.request.headers)


# -- 8. file permissions ---------------------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_downloaded_file_gets_the_permissions_of_a_normal_write(fake: FakeServer, flavour: str, tmp_path: Path) -> None:
    result = run(flavour, make(fake, "feather", flavour), lambda c: c.download("c1", tmp_path))
    normal = tmp_path / "normal"
    normal.write_bytes(b"x")
    assert stat.S_IMODE(result.path.stat().st_mode) == stat.S_IMODE(normal.stat().st_mode) == 0o644


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_an_overwritten_file_keeps_its_mode(fake: FakeServer, flavour: str, mode: int, tmp_path: Path) -> None:
    target = tmp_path / "rec.wav"
    target.write_bytes(b"old")
    target.chmod(mode)
    run(flavour, make(fake, "siro", flavour), lambda c: c.download("c1", target, overwrite=True))
    assert target.read_bytes() != b"old"
    assert stat.S_IMODE(target.stat().st_mode) == mode
