"""The retry table: what is retried, how often, and how long we wait (sleep patched)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

import callrec
import httpx
import pytest
from callrec import _retry
from callrec._constants import MAX_RETRY_AFTER

from .conftest import Script, make_async_client, make_client, ok

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "Fri, 31 Dec 1999 23:59:59 GMT"}, 0.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 20, UTC), usegmt=True)}, 20.0),
        ({"retry-after": "Mon, 99 Foo 2024 25:61:61 GMT"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "-5", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "x"}, None),
        ({}, None),
    ],
    ids=lambda v: repr(v) if not isinstance(v, dict) else ",".join(f"{k}={x}" for k, x in v.items()) or "none",
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    got = _retry.parse_retry_after(httpx.Headers(headers), now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got is not None and math.isclose(got, expected, abs_tol=0.01)


@pytest.mark.parametrize("retry_number", range(8))
def test_backoff_doubles_from_half_a_second_to_eight_with_jitter(retry_number: int) -> None:
    base = min(0.5 * 2**retry_number, 8.0)
    for _ in range(50):
        delay = _retry.backoff_delay(retry_number)
        assert base * 0.75 <= delay <= base


def test_retry_after_is_capped() -> None:
    response = httpx.Response(503, headers={"retry-after": "3600"})
    assert _retry.retry_delay(0, response) == MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, False), (401, False), (403, False), (404, False), (409, False), (422, False),
     (408, True), (429, True), (500, True), (502, True), (503, True), (504, True), (501, False), (599, False)],
)  # fmt: skip
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    assert _retry.is_retryable_status(status) is retried


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_status_recovers_after_retries(vendor: str, status: int, sleeps: list[float]) -> None:
    script = Script(httpx.Response(status), httpx.Response(status), ok(vendor))
    with make_client(vendor, script) as client:
        url = client.recording_url("r1")
    assert isinstance(url, callrec.SignedUrl)
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(vendor: str, status: int, sleeps: list[float]) -> None:
    script = Script(httpx.Response(status, json={"error": "no"}), ok(vendor))
    with make_client(vendor, script) as client, pytest.raises(callrec.APIStatusError) as info:
        client.recording_url("r1")
    assert info.value.status_code == status
    assert len(script.requests) == 1
    assert sleeps == []


def test_gives_up_after_max_retries_with_the_last_error(sleeps: list[float]) -> None:
    script = Script(httpx.Response(503, json={"message": "busy", "code": "INTERNAL_SERVER_ERROR"}))
    with make_client("feather", script, max_retries=3) as client, pytest.raises(callrec.ServiceUnavailableError):
        client.recording_url("r1")
    assert len(script.requests) == 4
    assert len(sleeps) == 3


def test_max_retries_zero_makes_one_attempt(sleeps: list[float]) -> None:
    script = Script(httpx.Response(503))
    with make_client("siro", script, max_retries=0) as client, pytest.raises(callrec.ServiceUnavailableError):
        client.recording_url("r1")
    assert len(script.requests) == 1
    assert sleeps == []


def test_retry_after_header_sets_the_delay(sleeps: list[float]) -> None:
    script = Script(
        httpx.Response(429, headers={"retry-after": "2"}),
        httpx.Response(503, headers={"retry-after-ms": "700"}),
        ok("feather"),
    )
    with make_client("feather", script) as client:
        client.recording_url("r1")
    assert sleeps == [2.0, 0.7]


def test_retry_after_beyond_the_deadline_gives_up_at_once(sleeps: list[float]) -> None:
    script = Script(httpx.Response(429, headers={"retry-after": "30"}), ok("feather"))
    with make_client("feather", script, deadline=5) as client, pytest.raises(callrec.RateLimitError):
        client.recording_url("r1")
    assert len(script.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), callrec.APIConnectionError),
        (httpx.ReadTimeout("slow"), callrec.APITimeoutError),
        (httpx.ConnectTimeout("slow"), callrec.APITimeoutError),
        (httpx.RemoteProtocolError("peer closed"), callrec.APIConnectionError),
        (httpx.ReadError("reset"), callrec.APIConnectionError),
    ],
    ids=["connect", "read-timeout", "connect-timeout", "protocol", "read-error"],
)
def test_transport_errors_are_retried_then_typed(exc: Exception, error: type[Exception], sleeps: list[float]) -> None:
    script = Script(exc, exc, ok("siro"))
    with make_client("siro", script) as client:
        assert client.recording_url("r1").provider == "siro"
    script = Script(exc)
    with make_client("siro", script) as client, pytest.raises(error):
        client.recording_url("r1")
    assert len(script.requests) == 3


@pytest.mark.parametrize("vendor", ["feather", "siro"])
async def test_async_client_follows_the_same_table(vendor: str, sleeps: list[float]) -> None:
    script = Script(httpx.Response(503), httpx.ConnectError("x"), ok(vendor))
    async with make_async_client(vendor, script) as client:
        url = await client.recording_url("r1")
    assert url.provider == vendor
    assert len(script.requests) == 3 and len(sleeps) == 2
    script = Script(httpx.Response(404, json={"error": "nope"}))
    async with make_async_client(vendor, script) as client:
        with pytest.raises(callrec.NotFoundError):
            await client.recording_url("r1")
    assert len(script.requests) == 1


def test_with_options_changes_retries_on_a_copy(sleeps: list[float]) -> None:
    script = Script(httpx.Response(503))
    with make_client("feather", script) as client:
        fast = client.with_options(max_retries=0, timeout=1.5)
        assert fast is not client and fast.max_retries == 0 and client.max_retries == 2
        assert fast.timeout.read == 1.5 and client.timeout.read == 30.0
        with pytest.raises(callrec.ServiceUnavailableError):
            fast.recording_url("r1")
        assert len(script.requests) == 1
        with pytest.raises(callrec.ServiceUnavailableError):
            client.recording_url("r1")
        assert len(script.requests) == 4
