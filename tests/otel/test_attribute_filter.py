"""The one attribute policy: an allow-list of keys, a shape per value, and no signed query or credential."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from callrec import _otel
from callrec._otel import RECORDING_ID, AttributeValue, filter_attributes


@pytest.fixture
def ids_opted_in() -> Iterator[None]:
    _otel.set_record_ids(True)
    yield
    _otel.set_record_ids(False)


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("callrec.vendor", "feather", True),
        ("callrec.vendor", "https://api.feather.ai", False),
        ("callrec.leg", "supervisor", True),
        ("callrec.item.status", "downloaded", True),
        ("callrec.item.status", "failed: see https://x.example/a?sig=1", False),
        ("callrec.destination.kind", "s3", True),
        ("callrec.destination.kind", "s3://bucket/prefix/", False),
        ("callrec.bytes", 1234, True),
        ("callrec.bytes", -1, False),
        ("callrec.bytes", True, False),
        ("callrec.bytes", "1234", False),
        ("callrec.url_refreshes", 2, True),
        ("callrec.items", 10_000, True),
        ("callrec.concurrency", 32, True),
        ("server.address", "storage.example.com", True),
        ("server.address", "[::1]", True),
        ("server.address", "storage.example.com/recordings/call_1.mp3", False),
        ("server.address", "user:pw@storage.example.com", False),
        ("server.address", "", False),
        ("server.port", 443, True),
        ("http.request.method", "GET", True),
        ("http.response.status_code", 403, True),
        ("http.response.status_code", 403.0, False),
        ("error.type", "callrec.DownloadError", True),
        ("error.type", "429", True),
        ("error.type", "storage said no", False),
        # Off the allow-list whatever the value: full URLs, headers, keys, free text.
        ("url.full", "https://storage.example.com/a.mp3", False),
        ("http.url", "https://storage.example.com/a.mp3", False),
        ("url.query", "X-Amz-Signature=abc", False),
        ("http.request.header.authorization", "Bearer abc", False),
        ("callrec.api_key", "fk_live_abc", False),
        ("exception.message", "boom", False),
        ("callrec.recording_url", "https://storage.example.com/a.mp3?sig=abc", False),
        # An id is kept only after set_record_ids(True).
        (RECORDING_ID, "call_1", False),
    ],
)
def test_filter_keeps_only_allowed_keys_with_well_formed_values(key: str, value: AttributeValue, kept: bool) -> None:
    assert filter_attributes({key: value}) == ({key: value} if kept else {})


@pytest.mark.usefixtures("ids_opted_in")
@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("call_1", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("", False),
        ("x" * 257, False),
        ("https://storage.example.com/a.mp3?X-Amz-Signature=abc", False),
        ("https://user:pw@storage.example.com/a.mp3", False),
        ("/recordings/a.mp3?sig=abc", False),
        ("a&X-Amz-Credential=AKIA", False),
        ("X-Amz-Signature: abc", False),
        ("api_key=fk_live_abc", False),
        ("Authorization: xyz", False),
        ("Bearer fk_live_abcdef", False),
        ("Basic dXNlcjpwYXNzd29yZA==", False),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl", False),
    ],
)
def test_even_an_allowed_free_form_value_is_dropped_when_it_looks_like_a_secret(value: str, kept: bool) -> None:
    assert filter_attributes({RECORDING_ID: value}) == ({RECORDING_ID: value} if kept else {})


def test_filter_keeps_the_good_keys_of_a_mixed_dict() -> None:
    attributes: dict[str, AttributeValue] = {
        "callrec.vendor": "siro",
        "url.full": "https://storage.example.com/a.mp3?sig=abc",
        "callrec.bytes": 10,
        RECORDING_ID: "rec_1",
    }
    assert filter_attributes(attributes) == {"callrec.vendor": "siro", "callrec.bytes": 10}
    assert filter_attributes(None) == filter_attributes({}) == {}


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://storage.example.com/recordings/call_1.mp3?X-Amz-Signature=abc", "storage.example.com"),
        ("https://user:pw@Storage.Example.com:8443/a", "storage.example.com"),
        ("http://[::1]:9000/bucket/key", "::1"),
        ("not a url", ""),
        ("http://[::1/bad", ""),
    ],
)
def test_server_address_is_the_host_only(url: str, host: str) -> None:
    assert _otel.server_address(url) == host


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "GET https://s.example.com/recordings/call_1.mp3?X-Amz-Signature=abc&X-Amz-Credential=AKIA failed",
            "GET https://s.example.com/<path>?<redacted> failed",
        ),
        (
            "urllib3: GET /recordings/a.mp3?sig=abc&se=2026 HTTP/1.1",
            "urllib3: GET /recordings/a.mp3?sig=<redacted>&se=2026 HTTP/1.1",
        ),
        ("sent Authorization: Bearer fk_live_abcdefgh", "sent Authorization: Bearer <redacted>"),
        ("proxy https://user:secret@proxy.example:8080 refused", "proxy https://<redacted>@proxy.example:8080 refused"),
        ("https://api.feather.ai/api/v1/agent-calls/call_1/recording-url: 404", "https://api.feather.ai/<path>: 404"),
        ("plain message", "plain message"),
    ],
)
def test_exception_text_loses_queries_credentials_and_url_paths(text: str, scrubbed: str) -> None:
    assert _otel._scrub(text) == scrubbed


@pytest.mark.usefixtures("ids_opted_in")
def test_with_ids_opted_in_exception_text_keeps_url_paths_but_not_queries() -> None:
    text = "GET https://s.example.com/recordings/call_1.mp3?X-Amz-Signature=abc failed"
    assert _otel._scrub(text) == "GET https://s.example.com/recordings/call_1.mp3?<redacted> failed"
