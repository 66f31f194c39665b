"""The hooks that keep signed queries and ids out of opentelemetry-instrumentation-httpx/-urllib3 spans."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from callrec import _otel
from opentelemetry.sdk.trace import TracerProvider

from . import scenario

SIGNED = scenario.SIGNED_URL.format(rid=scenario.GOOD_ID)


@pytest.mark.parametrize(
    ("url", "shown", "shown_with_ids"),
    [
        (SIGNED, "https://storage.example.com/", f"https://storage.example.com/recordings/{scenario.GOOD_ID}/main.mp3"),
        (
            "https://user:pw@api.example:8443/v1/calls/c_1?key=abc",
            "https://api.example:8443/",
            "https://api.example:8443/v1/calls/c_1",
        ),
        ("http://[::1]:9000/bucket/key?sig=abc", "http://[::1]:9000/", "http://[::1]:9000/bucket/key"),
        ("https://api.example", "https://api.example/", "https://api.example/"),
        ("/relative?sig=abc", "<unparseable url>", "<unparseable url>"),
        ("http://[::1/bad", "<unparseable url>", "<unparseable url>"),
    ],
)
def test_telemetry_url_drops_the_query_always_and_the_path_unless_ids_are_opted_in(
    url: str, shown: str, shown_with_ids: str
) -> None:
    assert _otel.telemetry_url(url) == shown
    _otel.set_record_ids(True)
    try:
        assert _otel.telemetry_url(url) == shown_with_ids
    finally:
        _otel.set_record_ids(False)


@pytest.mark.parametrize("key", ["url.full", "http.url"])
def test_httpx_request_hook_rewrites_the_url_the_instrumentation_set(key: str) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    span = provider.get_tracer("test").start_span("GET", attributes={key: SIGNED, "http.request.method": "GET"})
    _otel.httpx_request_hook(span, SimpleNamespace(method=b"GET", url=httpx.URL(SIGNED)))
    span.end()
    assert dict(span.attributes or {}) == {key: "https://storage.example.com/", "http.request.method": "GET"}  # type: ignore[attr-defined]
    provider.shutdown()


async def test_httpx_async_request_hook_is_a_coroutine_function_doing_the_same() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    span = provider.get_tracer("test").start_span("GET", attributes={"url.full": SIGNED})
    await _otel.httpx_async_request_hook(span, SimpleNamespace(url=httpx.URL(SIGNED)))
    span.end()
    assert dict(span.attributes or {}) == {"url.full": "https://storage.example.com/"}  # type: ignore[attr-defined]
    provider.shutdown()
