"""feather_api and siro_api used on their own, as a team that imports them directly would.

Against the fake APIs on loopback: every documented response and the ones real
servers send anyway (gateway pages, Cloudflare's 520, plain text, error bodies
with codes the spec does not list, JSON of another shape). Each row says what
``status_code`` and ``parsed`` must be; nothing may raise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import feather_api
import httpx
import pytest
import siro_api
from callrec.testing import FakeServer, faults
from feather_api.api.calls import get_recording_url
from feather_api.models import BadRequestBody, InternalErrorBody, RecordingLeg, RecordingUrl
from siro_api.api.default import create_signed_url
from siro_api.models import ErrorBody, SignedUrlResponse, ValidationErrorBody


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.add_recording("feather", "call_1")
        server.add_recording("feather", "call_1", leg="supervisor")
        server.add_recording("siro", "rec_1")
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: FakeServer) -> Iterator[None]:
    fake.reset()
    yield


def _json(status: int, body: Any) -> faults.Status:
    return faults.Status(status, body=json.dumps(body), content_type="application/json")


def _text(status: int, body: str) -> faults.Status:
    return faults.Status(status, body=body, content_type="text/plain")


def _is(cls: type) -> Any:
    return lambda parsed: isinstance(parsed, cls)


def _none(parsed: Any) -> bool:
    return parsed is None


# (id, fault or None for the normal answer, expected status, check on parsed)
FEATHER_ROWS: list[tuple[str, faults.Fault | None, int, Any]] = [
    ("200", None, 200, lambda p: isinstance(p, RecordingUrl) and p.url.startswith("http://127.0.0.2:")),
    ("400-documented", faults.Status(400), 400, lambda p: isinstance(p, BadRequestBody) and p.code == "BAD_REQUEST"),
    ("500-documented", faults.Status(500), 500, lambda p: isinstance(p, InternalErrorBody) and p.status == 500),
    ("503-documented", faults.Status(503), 503, _is(InternalErrorBody)),
    ("401-undocumented", faults.Status(401), 401, _none),
    ("403-undocumented", faults.Status(403), 403, _none),
    ("404-undocumented", faults.Status(404), 404, _none),
    ("429-undocumented", faults.Status(429, retry_after="1"), 429, _none),
    ("502-html", faults.HtmlProxyError(502), 502, _none),
    ("520-cloudflare", _text(520, "origin error"), 520, _none),
    ("599-plain", _text(599, "network read timeout"), 599, _none),
    ("400-plain-text", _text(400, "Bad Request"), 400, _none),
    ("500-malformed-json", faults.Status(500, body="{not json", content_type="application/json"), 500, _none),
    (
        "500-unknown-code",
        _json(500, {"status": 500, "message": "db down", "code": "SOMETHING_NEW", "success": False}),
        500,
        lambda p: isinstance(p, InternalErrorBody) and p.code == "SOMETHING_NEW" and p.message == "db down",
    ),
    (
        "400-unknown-code",
        _json(400, {"status": 400, "message": "bad id", "code": "INVALID_ID", "success": False}),
        400,
        lambda p: isinstance(p, BadRequestBody) and p.code == "INVALID_ID",
    ),
    ("400-json-list", _json(400, ["not", "an", "object"]), 400, _none),
    ("503-json-string", _json(503, "Service Unavailable"), 503, _none),
    ("200-missing-field", _json(200, {"url": "https://x.example/a.wav"}), 200, _none),
    ("200-html", faults.Garbage(b"<html>login</html>", content_type="text/html"), 200, _none),
]

SIRO_ROWS: list[tuple[str, faults.Fault | None, int, Any]] = [
    ("200", None, 200, lambda p: isinstance(p, SignedUrlResponse) and p.data.error is False),
    ("200-siro-error", faults.SiroError("nope"), 200, lambda p: isinstance(p, SignedUrlResponse) and p.data.error),
    *[(f"{code}-documented", faults.Status(code), code, _is(ErrorBody)) for code in (400, 401, 403, 404, 500)],
    (
        "422-documented",
        _json(422, {"name": "ZodError", "issues": [{"code": "x", "path": ["id"], "message": "bad"}]}),
        422,
        lambda p: isinstance(p, ValidationErrorBody) and p.issues[0].message == "bad",
    ),
    (
        "422-unknown-name",
        _json(422, {"name": "ValibotError", "issues": []}),
        422,
        lambda p: isinstance(p, ValidationErrorBody) and p.name == "ValibotError",
    ),
    ("429-undocumented", faults.Status(429), 429, _none),
    ("502-html", faults.HtmlProxyError(502), 502, _none),
    ("520-cloudflare", _text(520, "origin error"), 520, _none),
    ("401-foreign-json", _json(401, {"message": "Unauthorized"}), 401, _none),
    ("404-plain-text", _text(404, "Not Found"), 404, _none),
    ("500-html", faults.HtmlProxyError(500), 500, _none),
    ("200-foreign-json", _json(200, {"url": "https://x.example/a.wav"}), 200, _none),
]


def _feather(fake: FakeServer, **kwargs: Any) -> feather_api.AuthenticatedClient:
    return feather_api.AuthenticatedClient(base_url=fake.feather_base_url, token=fake.feather_api_key, **kwargs)


def _siro(fake: FakeServer, **kwargs: Any) -> siro_api.AuthenticatedClient:
    return siro_api.AuthenticatedClient(base_url=fake.siro_base_url, token=fake.siro_token, **kwargs)


def _check_status(actual: Any, expected: int) -> None:
    assert actual == expected
    # A known code is an HTTPStatus, an unknown one (520, 599) a plain int: both usable as numbers.
    assert isinstance(actual, HTTPStatus) == (expected in HTTPStatus._value2member_map_)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(("row", "fault", "status", "check"), FEATHER_ROWS, ids=[r[0] for r in FEATHER_ROWS])
def test_feather_detailed_returns_a_response_for_any_answer(
    fake: FakeServer, flavour: str, row: str, fault: faults.Fault | None, status: int, check: Any
) -> None:
    if fault is not None:
        fake.feather.queue(fault)
    with _feather(fake) as client:
        if flavour == "sync":
            response = get_recording_url.sync_detailed("call_1", client=client)
        else:

            async def call() -> Any:
                async with client:
                    return await get_recording_url.asyncio_detailed("call_1", client=client)

            response = asyncio.run(call())
    _check_status(response.status_code, status)
    assert check(response.parsed), (row, response.parsed)
    assert isinstance(response.content, bytes)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(("row", "fault", "status", "check"), SIRO_ROWS, ids=[r[0] for r in SIRO_ROWS])
def test_siro_detailed_returns_a_response_for_any_answer(
    fake: FakeServer, flavour: str, row: str, fault: faults.Fault | None, status: int, check: Any
) -> None:
    if fault is not None:
        fake.siro.queue(fault)
    client = _siro(fake)
    if flavour == "sync":
        with client:
            response = create_signed_url.sync_detailed("rec_1", client=client)
    else:

        async def call() -> Any:
            async with client:
                return await create_signed_url.asyncio_detailed("rec_1", client=client)

        response = asyncio.run(call())
    _check_status(response.status_code, status)
    assert check(response.parsed), (row, response.parsed)


def test_sync_returns_the_model_or_none(fake: FakeServer) -> None:
    with _feather(fake) as client:
        assert isinstance(get_recording_url.sync("call_1", client=client), RecordingUrl)
        fake.feather.queue(faults.Status(520, body="x", content_type="text/plain"))
        assert get_recording_url.sync("call_1", client=client) is None


def test_raise_on_unexpected_status_raises_only_for_undocumented_codes(fake: FakeServer) -> None:
    with _feather(fake, raise_on_unexpected_status=True) as client:
        fake.feather.queue(faults.Status(503))
        assert isinstance(get_recording_url.sync_detailed("call_1", client=client).parsed, InternalErrorBody)
        fake.feather.queue(faults.Status(520, body="x", content_type="text/plain"))
        with pytest.raises(feather_api.errors.UnexpectedStatus) as info:
            get_recording_url.sync_detailed("call_1", client=client)
        assert info.value.status_code == 520


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_auth_header_defaults_come_from_the_spec(fake: FakeServer, flavour: str) -> None:
    feather, siro = _feather(fake), _siro(fake)
    if flavour == "sync":
        with feather, siro:
            assert get_recording_url.sync_detailed("call_1", client=feather).status_code == 200
            assert create_signed_url.sync_detailed("rec_1", client=siro).status_code == 200
    else:

        async def calls() -> None:
            async with feather, siro:
                assert (await get_recording_url.asyncio_detailed("call_1", client=feather)).status_code == 200
                assert (await create_signed_url.asyncio_detailed("rec_1", client=siro)).status_code == 200

        asyncio.run(calls())
    (to_feather,) = fake.requests_to("feather")
    (to_siro,) = fake.requests_to("siro")
    assert to_feather.header("X-API-Key") == fake.feather_api_key
    assert to_siro.header("x-siro-auth-token") == fake.siro_token
    for request in (to_feather, to_siro):
        assert request.header("Authorization") is None


def test_defaults_are_the_specs_security_scheme_and_server() -> None:
    assert feather_api.DEFAULT_AUTH_HEADER_NAME == "X-API-Key"
    assert siro_api.DEFAULT_AUTH_HEADER_NAME == "x-siro-auth-token"
    assert feather_api.DEFAULT_BASE_URL == "https://prod.featherhq.com"
    assert siro_api.DEFAULT_BASE_URL == "https://api.siro.ai/"
    client = feather_api.AuthenticatedClient(token="k")
    assert client.base_url == "https://prod.featherhq.com"
    assert (client.auth_header_name, client.prefix) == ("X-API-Key", "")
    prepared = client.prepare(get_recording_url.request_args("a/b", type_=RecordingLeg.SUPERVISOR))
    assert prepared["url"] == "https://prod.featherhq.com/api/v1/agent-calls/a%2Fb/recording-url"
    assert prepared["params"] == {"type": "supervisor"}
    assert prepared["headers"] == {"X-API-Key": "k"}


def test_a_header_named_like_the_credential_cannot_replace_it() -> None:
    client = siro_api.AuthenticatedClient(token="real", headers={"X-SIRO-AUTH-TOKEN": "other", "X-Trace": "1"})
    prepared = client.prepare(create_signed_url.request_args("r"))
    assert prepared["headers"] == {"X-Trace": "1", "x-siro-auth-token": "real"}


def test_repr_hides_the_token() -> None:
    for client in (
        feather_api.AuthenticatedClient(token="sekrit-feather", headers={"X-Extra": "sekrit-header"}),
        siro_api.AuthenticatedClient(token="sekrit-siro", cookies={"s": "sekrit-cookie"}),
    ):
        client.get_httpx_client()
        assert "sekrit" not in repr(client)
        assert "sekrit" not in str(client)
        assert "token=<hidden>" in repr(client)
        # The token is sent per request, never kept in the httpx client's headers.
        assert "sekrit-feather" not in repr(client.get_httpx_client().headers)
        assert "sekrit-siro" not in repr(client.get_httpx_client().headers)
        client.get_httpx_client().close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_shared_httpx_client_still_authenticates(fake: FakeServer, flavour: str) -> None:
    seen: list[str] = []
    if flavour == "sync":
        with httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]}) as shared:
            client = _feather(fake).set_httpx_client(shared)
            response = get_recording_url.sync_detailed("call_1", client=client, type_=RecordingLeg.SUPERVISOR)
    else:

        async def hook(request: httpx.Request) -> None:
            seen.append(str(request.url))

        async def call() -> Any:
            async with httpx.AsyncClient(event_hooks={"request": [hook]}) as shared:
                client = _feather(fake).set_async_httpx_client(shared)
                return await get_recording_url.asyncio_detailed("call_1", client=client, type_=RecordingLeg.SUPERVISOR)

        response = asyncio.run(call())
    assert response.status_code == 200 and isinstance(response.parsed, RecordingUrl)
    assert seen == [f"{fake.feather_base_url}/api/v1/agent-calls/call_1/recording-url?type=supervisor"]
    (request,) = fake.requests_to("feather")
    assert request.header("X-API-Key") == fake.feather_api_key


def test_parse_response_is_public_and_never_raises_on_a_body() -> None:
    request = httpx.Request("POST", "https://api.siro.ai/v1/core/recordings/r/signedUrl")
    for status, content in [(200, b"\xff\xfe"), (200, b"[]"), (401, b"null"), (520, b""), (200, b"[" * 100_000)]:
        response = httpx.Response(status, content=content, request=request)
        parsed = create_signed_url.parse_response(response)
        assert parsed.status_code == status
        assert parsed.parsed is None
        assert parsed.content == content


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_callrec_generated_uses_the_users_http_client(fake: FakeServer, flavour: str) -> None:
    import callrec

    seen: list[str] = []
    if flavour == "sync":
        with httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]}) as mine:
            client = callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url, http_client=mine)
            response = create_signed_url.sync_detailed("rec_1", client=client.generated)
            gen_repr = repr(client.generated)
            client.close()
            assert not mine.is_closed  # the user's client stays the user's
    else:

        async def hook(request: httpx.Request) -> None:
            seen.append(request.url.path)

        async def call() -> tuple[Any, str]:
            async with httpx.AsyncClient(event_hooks={"request": [hook]}) as mine:
                async with callrec.AsyncSiroClient(
                    fake.siro_token, base_url=fake.siro_base_url, http_client=mine
                ) as client:
                    return await create_signed_url.asyncio_detailed("rec_1", client=client.generated), repr(
                        client.generated
                    )

        response, gen_repr = asyncio.run(call())
    assert response.status_code == 200 and isinstance(response.parsed, SignedUrlResponse)
    assert seen == ["/v1/core/recordings/rec_1/signedUrl"]
    (request,) = fake.requests_to("siro")
    assert request.header("x-siro-auth-token") == fake.siro_token
    assert request.header(
        "User-Agent",
    ).startswith("callrec/")
    assert fake.siro_token not in gen_repr
