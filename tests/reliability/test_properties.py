"""Properties over generated input, on httpx.MockTransport (pure policy, no sockets).

- Any id the SDK accepts travels as exactly one percent-encoded path segment; the
  SDK rejects (ValueError) exactly the ids the documented rule rejects.
- Whatever the API answers (any JSON, any bytes, any status), the call ends in
  exactly the outcome an oracle written from the README and the specs predicts:
  the SignedUrl for the URL sent, or one exact CallrecError class, after one
  request (two for a retryable status).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import callrec
import httpx
import pytest
from callrec import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CallrecError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RecordingUnavailableError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    UnprocessableEntityError,
)
from callrec._validate import check_signed_url
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import VendorName

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
STORAGE = "https://storage.test/rec.wav?X-Amz-Signature=abc"
T = datetime(2030, 1, 1, tzinfo=UTC)
GOOD = {
    "feather": {"url": STORAGE, "expiresAt": "2030-01-01T00:00:00.000Z"},
    "siro": {"data": {"error": False, "url": STORAGE, "expiration": 1893456000000}},
}
#: The path around the id: /api/v1/agent-calls/{id}/recording-url and /v1/core/recordings/{id}/signedUrl.
ID_SEGMENT = {"feather": 4, "siro": 4}
SEGMENTS = {"feather": 6, "siro": 6}


def client_for(vendor: VendorName, handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    if vendor == "feather":
        return callrec.FeatherClient("k", base_url="https://api.test", http_client=http, max_retries=1)
    return callrec.SiroClient("k", base_url="https://api.test", http_client=http, max_retries=1)


def rejected(recording_id: str) -> bool:
    """The documented rule: empty/blank, '.' or '..', longer than 1024, or a control character."""
    return (
        not recording_id.strip()
        or recording_id in (".", "..")
        or len(recording_id) > 1024
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in recording_id)
    )


ids = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("/?#%.. \t\x00\x7fé日\u2028%2F%2e")), max_size=12),
    st.sampled_from([".", "..", "...", "./", "../x", "%2e%2e", "a/b", "?", "#", "%", "%25", " ", "\u3000", "x" * 1025]),
)


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@SETTINGS
@given(recording_id=ids)
def test_any_accepted_id_round_trips_as_exactly_one_path_segment(vendor: VendorName, recording_id: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=GOOD[vendor])

    with client_for(vendor, handler) as client:
        if rejected(recording_id):
            with pytest.raises(ValueError, match="recording_id"):
                client.recording_url(recording_id)
            assert seen == []
            return
        result = client.recording_url(recording_id)
    assert result.recording_id == recording_id
    [request] = seen
    raw_path = request.url.raw_path.partition(b"?")[0].decode("ascii")
    segments = raw_path.split("/")
    assert len(segments) == SEGMENTS[vendor]
    assert unquote(segments[ID_SEGMENT[vendor]], errors="strict") == recording_id


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
bad_urls = st.sampled_from(
    [
        "http://storage.test/x?sig",
        "https://user@evil.test/x",
        "https:///x",
        "//storage.test/x",
        "https://[::1/x",
        "https://\udcff.test/x",
        "https://exa mple.test/x",
        "https://xn--.test/x",
        "",
    ]
)
# Each field is often valid, so the parser gets deep before meeting the odd value.
url_values = st.one_of(st.just(STORAGE), bad_urls, json_values)
time_values = st.one_of(
    st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "yesterday", "9999-99-99", ""]),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    json_values,
)
# Near misses of the boolean false: each must be refused, not read as success.
error_values = st.one_of(st.just(False), st.sampled_from(["false", "False", 0, 0.0, None, "", [], {}]), json_values)
shaped: dict[VendorName, st.SearchStrategy[Any]] = {
    "feather": st.fixed_dictionaries({"url": url_values, "expiresAt": time_values}),
    "siro": st.fixed_dictionaries(
        {
            "data": st.one_of(
                st.fixed_dictionaries({"error": error_values, "url": url_values, "expiration": time_values}),
                st.fixed_dictionaries({"error": st.just(True), "errorMessage": json_values}),
            )
        }
    ),
}


def bodies(vendor: VendorName) -> st.SearchStrategy[bytes]:
    as_json = shaped[vendor].map(lambda v: json.dumps(v).encode())
    return st.one_of(
        as_json,
        as_json,
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.sampled_from([b'{"url": "' + b"[" * 100_000, b"[" * 5_000 + b"]" * 5_000, b"", b"null"]),
    )


def siro_body(expiration: Any, url: str = STORAGE) -> bytes:
    return json.dumps({"data": {"error": False, "url": url, "expiration": expiration}}).encode()


def feather_body(url: str, expires_at: Any = "2030-01-01T00:00:00Z") -> bytes:
    return json.dumps({"url": url, "expiresAt": expires_at}).encode()


#: The outcome when the oracle cannot know the expiry (an arbitrary string or number): any is fine.
ANY_EXPIRY = object()
KNOWN_EXPIRY = {"2030-01-01T00:00:00Z": T, "2030-01-01T00:00:00": T, "2030-01-01T00:00:00.000Z": T, 1893456000000: T}


@dataclass(frozen=True)
class Returns:
    """The call returns a SignedUrl for exactly this URL (and this expiry, unless ANY_EXPIRY)."""

    url: str
    expires_at: object = None


Expected = Returns | type[CallrecError]


def expiry(value: object, readable: Callable[[object], bool]) -> object:
    if isinstance(value, bool) or not readable(value):
        return None
    return KNOWN_EXPIRY.get(value, ANY_EXPIRY) if isinstance(value, (str, int)) else ANY_EXPIRY


def usable(url: str) -> bool:
    """Whether the API's URL may be handed out; the rule itself is tested row by row in tests/client."""
    try:
        check_signed_url(url)
    except CallrecError:
        return False
    return True


def expected_from_200(vendor: VendorName, body: bytes) -> Expected:
    """What a 200 with this body must give, from the spec: only the documented object with a usable URL succeeds."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return UnexpectedResponseError
    if vendor == "feather":
        if not isinstance(doc, dict) or not {"url", "expiresAt"} <= doc.keys():
            return UnexpectedResponseError
        url = doc["url"]
        if not isinstance(url, str) or not usable(url):
            return UnexpectedResponseError
        return Returns(url, expiry(doc["expiresAt"], lambda v: isinstance(v, str)))
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or "error" not in data:
        return UnexpectedResponseError
    if data["error"] is True:
        return RecordingUnavailableError
    if data["error"] is not False:  # "false", 0, null: not the boolean the spec says
        return UnexpectedResponseError
    url = data.get("url")
    if url is None or url == "":  # absent, null or empty: Siro gave no URL
        return RecordingUnavailableError
    if not isinstance(url, str):  # a number, a list...: not the documented string
        return UnexpectedResponseError
    if not usable(url):
        return UnexpectedResponseError
    return Returns(url, expiry(data.get("expiration"), lambda v: isinstance(v, (int, float))))


STATUS_CLASSES: dict[int, type[CallrecError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def expected_outcome(vendor: VendorName, status: int, body: bytes) -> Expected:
    """The README's table, written out independently of callrec's own mapping."""
    if status == 200:
        return expected_from_200(vendor, body)
    if 200 <= status < 400:  # another 2xx, or a redirect (never followed)
        return UnexpectedResponseError
    if status >= 500:
        return STATUS_CLASSES.get(status, InternalServerError)
    return STATUS_CLASSES.get(status, APIStatusError)  # other 4xx; a final 1xx is no success either


def check_answer(vendor: VendorName, status: int, body: bytes) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    expected = expected_outcome(vendor, status, body)
    with client_for(vendor, handler) as client:
        try:
            result = client.recording_url("rec_1")
        except CallrecError as exc:
            assert type(exc) is expected
            assert str(exc) and "abc" not in str(exc)  # the signature never shows
        else:
            assert isinstance(expected, Returns), f"returned {result!r}, expected {expected.__name__}"
            assert (result.url, result.recording_id, result.provider) == (expected.url, "rec_1", vendor)
            if expected.expires_at is not ANY_EXPIRY:
                assert result.expires_at == expected.expires_at
    # client_for allows one retry: a retryable status is asked twice, anything else once.
    assert len(requests) == (2 if status in (408, 429, 500, 502, 503, 504) else 1)


@SETTINGS
@given(body=bodies("feather"))
@example(body=feather_body("https://\udcff.test/x"))
@example(body=feather_body("https://xn--.test/x"))
@example(body=feather_body(STORAGE, expires_at="9999-12-31T23:59:59-23:59"))
def test_any_feather_200_body_gives_the_outcome_the_spec_predicts(body: bytes) -> None:
    check_answer("feather", 200, body)


@SETTINGS
@given(body=bodies("siro"))
@example(body=siro_body(10**400))
@example(body=siro_body(1893456000000, url="https://xn--.test/x"))
@example(body=siro_body(1e308 * 10))
@example(body=siro_body(-(10**400)))
@example(body=json.dumps({"data": {"error": "false", "url": STORAGE}}).encode())
def test_any_siro_200_body_gives_the_outcome_the_spec_predicts(body: bytes) -> None:
    check_answer("siro", 200, body)


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@SETTINGS
@given(data=st.data(), status=st.integers(min_value=100, max_value=599))
def test_any_status_and_body_gives_the_outcome_the_readme_predicts(
    vendor: VendorName, data: st.DataObject, status: int
) -> None:
    check_answer(vendor, status, data.draw(bodies(vendor)))
