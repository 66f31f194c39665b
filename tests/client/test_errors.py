"""Every response maps to a SignedUrl or the most specific CallrecError, never a parse exception."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import callrec
import httpx
import pytest
from callrec import _errors

from .conftest import Script, make_client, ok

T = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, callrec.BadRequestError), (401, callrec.AuthenticationError), (403, callrec.PermissionDeniedError),
        (404, callrec.NotFoundError), (422, callrec.UnprocessableEntityError), (429, callrec.RateLimitError),
        (500, callrec.InternalServerError), (502, callrec.InternalServerError), (503, callrec.ServiceUnavailableError),
        (504, callrec.InternalServerError), (520, callrec.InternalServerError), (599, callrec.InternalServerError),
        (405, callrec.APIStatusError), (409, callrec.APIStatusError), (418, callrec.APIStatusError),
    ],
)  # fmt: skip
def test_status_maps_to_most_specific_class(status: int, cls: type[callrec.APIStatusError]) -> None:
    assert _errors.status_error_class(status) is cls
    script = Script(httpx.Response(status, json={"message": "m"}))
    with make_client("feather", script, max_retries=0) as client, pytest.raises(cls) as info:
        client.recording_url("r1")
    assert type(info.value) is cls
    assert info.value.status_code == status


def test_every_status_from_400_to_599_gives_an_api_status_error() -> None:
    for status in range(400, 600):
        cls = _errors.status_error_class(status)
        assert issubclass(cls, callrec.APIStatusError)
        assert issubclass(cls, callrec.InternalServerError) == (status >= 500)


def test_feather_documented_error_body_gives_message_and_code() -> None:
    body = {
        "status": 400,
        "message": "Agent call not found or has no recording",
        "code": "BAD_REQUEST",
        "success": False,
    }
    script = Script(httpx.Response(400, json=body, headers={"x-request-id": "req_1"}))
    with make_client("feather", script) as client, pytest.raises(callrec.BadRequestError) as info:
        client.recording_url("missing")
    err = info.value
    assert err.message == "Agent call not found or has no recording"
    assert err.code == "BAD_REQUEST"
    assert err.body == body
    assert err.request_id == "req_1"
    assert err.response.status_code == 400
    assert str(err).startswith("[req_1] 400 Bad Request: Agent call not found")


def test_unknown_enum_value_in_error_body_still_gives_class_and_message() -> None:
    body = {"status": 503, "message": "try later", "code": "SOMETHING_NEW", "success": "maybe"}
    script = Script(httpx.Response(503, json=body))
    with (
        make_client("feather", script, max_retries=0) as client,
        pytest.raises(callrec.ServiceUnavailableError) as info,
    ):
        client.recording_url("r1")
    assert info.value.message == "try later" and info.value.code == "SOMETHING_NEW"


def test_siro_error_bodies_give_message() -> None:
    script = Script(httpx.Response(401, json={"error": "token expired"}))
    with make_client("siro", script) as client, pytest.raises(callrec.AuthenticationError) as info:
        client.recording_url("r1")
    assert info.value.message == "token expired"


def test_siro_422_exposes_zod_issues() -> None:
    body = {"name": "ZodError", "issues": [{"code": "invalid_type", "path": ["params", "id"], "message": "Required"}]}
    script = Script(httpx.Response(422, json=body))
    with make_client("siro", script) as client, pytest.raises(callrec.UnprocessableEntityError) as info:
        client.recording_url("r1")
    assert info.value.issues == body["issues"]
    assert info.value.code == "ZodError"
    assert info.value.message == "params.id: Required"


@pytest.mark.parametrize(
    ("status", "content", "ctype", "cls"),
    [
        (502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html", callrec.InternalServerError),
        (503, b'{"message": "trunc', "application/json", callrec.ServiceUnavailableError),
        (404, b"", "application/json", callrec.NotFoundError),
        (429, b"\xff\xfe\x00garbage", "application/octet-stream", callrec.RateLimitError),
        (400, b'["a", "list"]', "application/json", callrec.BadRequestError),
        (401, b'{"error": 42}', "application/json", callrec.AuthenticationError),
        (500, b"nul" * 5000, "text/plain", callrec.InternalServerError),
    ],
    ids=["html-proxy-502", "truncated-json-503", "empty-404", "binary-429", "json-list-400", "wrong-type-401", "huge-text-500"],
)  # fmt: skip
def test_off_spec_error_bodies_still_give_the_right_class(
    status: int, content: bytes, ctype: str, cls: type[callrec.APIStatusError]
) -> None:
    for vendor in ("feather", "siro"):
        script = Script(httpx.Response(status, content=content, headers={"content-type": ctype}))
        with make_client(vendor, script, max_retries=0) as client, pytest.raises(cls) as info:
            client.recording_url("r1")
        assert type(info.value) is cls
        assert info.value.message is None
        assert len(str(info.value)) < 300


@dataclass(frozen=True)
class Returns:
    """The call succeeds with exactly this URL and expiry."""

    url: str
    expires_at: datetime | None = None


Expected = Returns | type[callrec.CallrecError]
UNEXPECTED = callrec.UnexpectedResponseError
UNAVAILABLE = callrec.RecordingUnavailableError


def outcome_of_200(vendor: str, content: bytes) -> Expected:
    """The URL and expiry the call returned, or the exact class it raised; a 200 is never retried."""
    script = Script(httpx.Response(200, content=content))
    with make_client(vendor, script) as client:
        try:
            result = client.recording_url("r1")
        except callrec.CallrecError as exc:
            assert "https://x/y" not in str(exc)
            return type(exc)
        finally:
            assert len(script.requests) == 1
    return Returns(result.url, result.expires_at)


def name(value: object) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


@pytest.mark.parametrize(
    ("vendor", "content", "expected"),
    [
        ("feather", b"<html>ok</html>", UNEXPECTED),
        ("feather", b'{"url": "https://x/y", "expiresAt": "2030', UNEXPECTED),
        ("feather", b"{}", UNEXPECTED),
        ("feather", b'{"url": "https://x/y"}', UNEXPECTED),
        ("feather", b'{"expiresAt": "2030-01-01T00:00:00Z"}', UNEXPECTED),
        ("feather", b'{"url": 5, "expiresAt": "x"}', UNEXPECTED),
        ("feather", b'{"url": "", "expiresAt": "x"}', UNEXPECTED),
        ("feather", b'{"url": null, "expiresAt": null}', UNEXPECTED),
        ("feather", b'{"url": ["https://x/y"], "expiresAt": "2030-01-01T00:00:00Z"}', UNEXPECTED),
        ("feather", b"[]", UNEXPECTED),
        ("feather", b"null", UNEXPECTED),
        ("feather", b'"a string"', UNEXPECTED),
        # An unreadable expiry is a recoverable oddity: the URL, with expires_at None.
        ("feather", b'{"url": "https://x/y", "expiresAt": "x"}', Returns("https://x/y")),
        ("feather", b'{"url": "https://x/y", "expiresAt": 12}', Returns("https://x/y")),
        ("feather", b'{"url": "https://x/y", "expiresAt": "2030-01-01T00:00:00Z", "new": 1}', Returns("https://x/y", T)),
        ("siro", b"{}", UNEXPECTED),
        ("siro", b'{"data": null}', UNEXPECTED),
        ("siro", b'{"data": []}', UNEXPECTED),
        ("siro", b'{"data": "x"}', UNEXPECTED),
        ("siro", b'{"data": {"url": "https://x/y"}}', UNEXPECTED),
        # data.error must be the boolean false: a string, a number or null is not success.
        ("siro", b'{"data": {"error": "false", "url": "https://x/y"}}', UNEXPECTED),
        ("siro", b'{"data": {"error": 0, "url": "https://x/y"}}', UNEXPECTED),
        ("siro", b'{"data": {"error": null, "url": "https://x/y"}}', UNEXPECTED),
        ("siro", b'{"data": {"error": "true", "errorMessage": "no"}}', UNEXPECTED),
        ("siro", b'{"data": {"error": true, "url": "https://x/y"}}', UNAVAILABLE),
        ("siro", b'{"data": {"error": false}}', UNAVAILABLE),
        ("siro", b'{"data": {"error": false, "url": ""}}', UNAVAILABLE),
        ("siro", b'{"data": {"error": false, "url": 7}}', UNEXPECTED),
        ("siro", b'{"data": {"error": false, "url": "https://x/y", "expiration": {"a": 1}}}', Returns("https://x/y")),
        ("siro", b'{"data": {"error": false, "url": "https://x/y", "expiration": "1893456000"}}', Returns("https://x/y")),
        ("siro", b'{"data": {"error": false, "url": "https://x/y"}}', Returns("https://x/y")),
        ("siro", b'{"data": {"error": false, "url": "https://x/y", "expiration": 1893456000000}}', Returns("https://x/y", T)),
        ("siro", b"\x00\x01", UNEXPECTED),
        # A JSON array is not the documented object, even one of [key, value] pairs.
        pytest.param(
            "feather", b'[["url", "https://x/y"], ["expiresAt", "2030-01-01T00:00:00Z"]]', UNEXPECTED,
            id="feather-array-of-pairs",
        ),
        pytest.param(
            "siro", b'[["data", {"error": false, "url": "https://x/y"}]]', UNEXPECTED,
            id="siro-array-of-pairs",
        ),
        pytest.param(
            "siro", b'{"data": [["error", false], ["url", "https://x/y"]]}', UNEXPECTED,
            id="siro-data-array-of-pairs",
        ),
    ],
)  # fmt: skip
def test_malformed_success_bodies_have_one_outcome_each(vendor: str, content: bytes, expected: Expected) -> None:
    assert outcome_of_200(vendor, content) == expected


def test_siro_200_with_error_true_is_recording_unavailable() -> None:
    body = {"data": {"error": True, "errorMessage": "Recording audio not yet processed"}}
    script = Script(httpx.Response(200, json=body, headers={"x-request-id": "r-9"}))
    with make_client("siro", script) as client, pytest.raises(callrec.RecordingUnavailableError) as info:
        client.recording_url("rec_1")
    assert "Recording audio not yet processed" in str(info.value)
    assert info.value.recording_id == "rec_1" and info.value.request_id == "r-9"
    assert len(script.requests) == 1


def test_siro_200_without_url_is_recording_unavailable() -> None:
    script = Script(httpx.Response(200, json={"data": {"error": False}}))
    with make_client("siro", script) as client, pytest.raises(callrec.RecordingUnavailableError):
        client.recording_url("rec_1")


@pytest.mark.parametrize("status", [201, 202, 204, 206])
def test_other_2xx_is_unexpected(status: int) -> None:
    script = Script(httpx.Response(status, json={"url": "https://x/y", "expiresAt": "2030-01-01T00:00:00Z"}))
    with make_client("feather", script) as client, pytest.raises(callrec.UnexpectedResponseError):
        client.recording_url("r1")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_not_followed_and_is_unexpected(status: int) -> None:
    script = Script(httpx.Response(status, headers={"location": "https://evil.example/steal?sig=1"}), ok("feather"))
    with make_client("feather", script) as client, pytest.raises(callrec.UnexpectedResponseError) as info:
        client.recording_url("r1")
    assert len(script.requests) == 1
    assert "evil.example" not in str(info.value)
    assert info.value.status_code == status


@pytest.mark.parametrize(
    "url",
    [
        "http://storage.example/x.m4a?sig=1",
        "https://user:pw@storage.example/x.m4a?sig=1",
        "https://vendor@evil.example/x.m4a",
        "ftp://storage.example/x.m4a",
        "/relative/path.m4a?sig=1",
        "javascript:alert(1)",
        "https://",
        "https://exa mple.test/x.m4a?sig=1",
        "https://ünï.example/x.m4a?sig=1",
        "https://storage.example:99999/x.m4a?sig=1",
        "https://storage.example:port/x.m4a?sig=1",
        "https://xn--.test/x.m4a?sig=1",
        "https://-bad-.example/x.m4a?sig=1",
        "https://[::1/x.m4a?sig=1",
        "https://storage.example/x.m4a?sig=1\r\nX-Evil: 1",
    ],
)
def test_unusable_signed_urls_are_refused(url: str) -> None:
    script = Script(httpx.Response(200, json={"url": url, "expiresAt": "2030-01-01T00:00:00Z"}))
    with make_client("feather", script) as client, pytest.raises(callrec.UnexpectedResponseError) as info:
        client.recording_url("r1")
    assert "sig=1" not in str(info.value) and "pw" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"])
def test_plain_http_signed_url_is_accepted_on_loopback(host: str) -> None:
    script = Script(
        httpx.Response(200, json={"url": f"http://{host}:9000/x.wav?sig=1", "expiresAt": "2030-01-01T00:00:00Z"})
    )
    with make_client("feather", script) as client:
        assert client.recording_url("r1").url == f"http://{host}:9000/x.wav?sig=1"


@pytest.mark.parametrize(
    ("shape", "feather", "siro"),
    [
        (None, UNEXPECTED, UNEXPECTED),
        (1, UNEXPECTED, UNEXPECTED),
        (1.5, UNEXPECTED, UNEXPECTED),
        (True, UNEXPECTED, UNEXPECTED),
        ("s", UNEXPECTED, UNEXPECTED),
        ([], UNEXPECTED, UNEXPECTED),
        ([1], UNEXPECTED, UNEXPECTED),
        ({}, UNEXPECTED, UNEXPECTED),
        ({"url": None}, UNEXPECTED, UNEXPECTED),
        ({"data": {"error": None}}, UNEXPECTED, UNEXPECTED),
        ({"data": "x"}, UNEXPECTED, UNEXPECTED),
        ({"url": "https://a/b", "expiresAt": 12}, Returns("https://a/b"), UNEXPECTED),
        ({"url": ["https://a/b"]}, UNEXPECTED, UNEXPECTED),
    ],
    ids=name,
)
def test_json_of_other_shapes_gives_the_expected_outcome_per_vendor(
    shape: object, feather: Expected, siro: Expected
) -> None:
    content = json.dumps(shape).encode()
    assert (outcome_of_200("feather", content), outcome_of_200("siro", content)) == (feather, siro)
