"""The clients against a real HTTP server on loopback: redirects, auth, ids, connection errors and logs.

Each test runs on the three ways a user's bytes can travel: the sync clients (httpx's transport), the
async clients on aiohttp (their default with the `callrec[aiohttp]` extra, `_transport.AiohttpTransport`)
and the async clients on httpx's own transport (without the extra). The policy tables next to this file
run on httpx.MockTransport; only here do the transports themselves answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeAlias

import callrec
import httpx
import pytest
from callrec._transport import AiohttpTransport
from callrec.testing import FakeServer, faults

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
ODD_IDS = ["a/b", "../x", "?q=1", "%2F", "#h", "sp ace", "ünï", "...", "a;b=c", "x+y"]

Flavour: TypeAlias = Literal["sync", "async/aiohttp", "async/httpx"]
Vendor: TypeAlias = Literal["feather", "siro"]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture(params=["sync", "async/aiohttp", "async/httpx"])
def flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Flavour:
    """Which client and transport the test drives; "async/httpx" is an install without aiohttp."""
    for name in [n for n in os.environ if n.lower() in PROXY_VARIABLES]:
        monkeypatch.delenv(name)  # loopback only; a proxy would also make the async clients pick httpx's transport
    if request.param == "async/httpx":
        monkeypatch.setitem(sys.modules, "aiohttp", None)  # `import aiohttp` fails, as without the extra
    return request.param  # type: ignore[no-any-return]


def new_client(flavour: Flavour, vendor: Vendor, fake: FakeServer, credential: str | None = None, **kw: Any) -> Any:
    """The client a user of this flavour gets by default, pointed at `fake`."""
    if vendor == "feather":
        cls: Any = callrec.FeatherClient if flavour == "sync" else callrec.AsyncFeatherClient
        client = cls(credential or fake.feather_api_key, base_url=fake.feather_base_url, **kw)
    else:
        cls = callrec.SiroClient if flavour == "sync" else callrec.AsyncSiroClient
        client = cls(credential or fake.siro_token, base_url=fake.siro_base_url, **kw)
    if flavour != "sync":
        # `generated` shares the client's pool (README); httpx keeps the transport itself private.
        transport = client.generated.get_async_httpx_client()._transport
        assert type(transport) is (AiohttpTransport if flavour == "async/aiohttp" else httpx.AsyncHTTPTransport)
    return client


def use(client: Any, operation: Callable[[Any], Any]) -> Any:
    """``operation(client)`` (awaited for an async client), then the client is closed."""
    if isinstance(client, (callrec.FeatherClient, callrec.SiroClient)):
        with client:
            return operation(client)

    async def run() -> Any:
        async with client:
            result: Awaitable[Any] = operation(client)
            return await result

    return asyncio.run(run())


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_cross_origin_redirect_is_not_followed_and_leaks_nothing(
    fake: FakeServer, flavour: Flavour, status: int
) -> None:
    fake.add_recording("feather", "c1")
    fake.add_recording("siro", "r1")
    fake.feather.queue(faults.RedirectTo("elsewhere", status=status))
    fake.siro.queue(faults.RedirectTo("elsewhere", status=status))
    with pytest.raises(callrec.UnexpectedResponseError) as feather_error:
        use(new_client(flavour, "feather", fake), lambda c: c.recording_url("c1"))
    with pytest.raises(callrec.UnexpectedResponseError) as siro_error:
        use(new_client(flavour, "siro", fake), lambda c: c.recording_url("r1"))
    assert fake.requests_to("elsewhere") == []
    assert (feather_error.value.status_code, siro_error.value.status_code) == (status, status)
    assert (len(fake.requests_to("feather")), len(fake.requests_to("siro"))) == (1, 1)


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_wrong_credential_is_an_authentication_error_without_echo(
    fake: FakeServer, flavour: Flavour, vendor: Vendor
) -> None:
    client = new_client(flavour, vendor, fake, credential="wrong-key-123")
    with pytest.raises(callrec.AuthenticationError) as info:
        use(client, lambda c: c.recording_url("x"))
    assert "wrong-" not in str(info.value)
    assert len(fake.requests) == 1, "401 is not retried"


@pytest.mark.parametrize("rid", ODD_IDS)
def test_odd_ids_reach_the_server_as_one_segment(fake: FakeServer, flavour: Flavour, rid: str) -> None:
    fake.add_recording("feather", rid, leg="supervisor")
    fake.add_recording("siro", rid)
    feather = use(new_client(flavour, "feather", fake), lambda c: c.recording_url(rid, leg="supervisor"))
    siro = use(new_client(flavour, "siro", fake), lambda c: c.recording_url(rid))
    assert (feather.recording_id, siro.recording_id) == (rid, rid)
    paths = [r.path for r in fake.requests]
    assert len(paths) == 2
    assert paths[0].startswith("/api/v1/agent-calls/") and paths[0].endswith("/recording-url")
    assert paths[0].count("/") == 5
    assert paths[1].startswith("/v1/core/recordings/") and paths[1].endswith("/signedUrl")
    assert paths[1].count("/") == 5


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize(
    "fault",
    [faults.Reset(), faults.Reset(after_bytes=5), faults.ShortBody(3), faults.StallBeforeHeaders(0)],
    ids=["reset before the answer", "reset mid-body", "body shorter than its length", "closed without answer"],
)
@pytest.mark.usefixtures("sleeps")
def test_broken_connections_are_retried_then_raise_api_connection_error(
    fake: FakeServer, flavour: Flavour, vendor: Vendor, fault: faults.Fault
) -> None:
    fake.add_recording(vendor, "rec_1")
    origin = fake.feather if vendor == "feather" else fake.siro
    origin.queue(fault, fault)
    url = use(new_client(flavour, vendor, fake), lambda c: c.recording_url("rec_1"))
    assert url.recording_id == "rec_1"
    assert len(origin.requests) == 3, "two broken attempts, then the answer"
    origin.always(fault)
    with pytest.raises(callrec.APIConnectionError) as info:
        use(new_client(flavour, vendor, fake), lambda c: c.recording_url("rec_1"))
    assert type(info.value) is callrec.APIConnectionError
    assert len(origin.requests) == 3 + 3, "max_retries=2: three attempts"


def test_nothing_listening_is_an_api_connection_error(flavour: Flavour, sleeps: list[float]) -> None:
    with FakeServer() as gone:
        client = new_client(flavour, "siro", gone)
    # The server has stopped and its port is closed: every connection is refused.
    with pytest.raises(callrec.APIConnectionError) as info:
        use(client, lambda c: c.recording_url("rec_1"))
    assert type(info.value) is callrec.APIConnectionError
    assert len(sleeps) == 2, "refused connections are retried"


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_a_server_slower_than_the_timeout_is_an_api_timeout_error(
    fake: FakeServer, flavour: Flavour, vendor: Vendor
) -> None:
    fake.add_recording(vendor, "rec_1")
    (fake.feather if vendor == "feather" else fake.siro).always(faults.StallBeforeHeaders(2.0))
    client = new_client(flavour, vendor, fake, timeout=0.05, max_retries=0)
    with pytest.raises(callrec.APITimeoutError):
        use(client, lambda c: c.recording_url("rec_1"))


@pytest.mark.usefixtures("sleeps")
def test_debug_logs_show_attempts_but_no_secrets(
    fake: FakeServer, flavour: Flavour, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    fake.add_recording("feather", "c1")
    fake.feather.queue(faults.Status(503))
    caplog.set_level(logging.DEBUG)

    def mint_and_download(client: Any) -> Any:
        if flavour == "sync":
            return client.recording_url("c1"), client.download("c1", tmp_path)

        async def both() -> Any:
            return await client.recording_url("c1"), await client.download("c1", tmp_path)

        return both()

    signed, _ = use(new_client(flavour, "feather", fake), mint_and_download)
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "callrec feather GET /api/v1/agent-calls/c1/recording-url -> 503 (attempt 1/3" in text
    assert "-> 200 (attempt 2/3" in text
    assert "HTTP Request: GET http://127.0.0.2" in text, "httpx's storage request log is kept, redacted"
    assert fake.feather_api_key not in text
    assert "X-Amz-Signature" not in text
    assert signed.url.split("?")[1] not in text
