"""SignedUrl: expiry parsing, expiry judged on the API's clock, and a repr that hides the signature."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import attrs
import callrec
import httpx
import pytest
from callrec._signed_url import parse_epoch, parse_iso

from .conftest import Script, make_client

T = datetime(2030, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)  # datetime's resolution


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2030-01-01T00:00:00Z", T),
        ("2030-01-01T00:00:00.000Z", T),
        ("2030-01-01T01:00:00+01:00", T),
        ("2030-01-01T00:00:00", T),
        ("  2030-01-01T00:00:00Z ", T),
        ("not a date", None),
        ("", None),
        (1893456000, None),
        (None, None),
    ],
)
def test_feather_iso_expiry(value: object, expected: datetime | None) -> None:
    got = parse_iso(value)
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1893456000, T),
        (1893456000.0, T),
        (1893456000000, T),
        (1893456000000.0, T),
        (True, None),
        (0, None),
        (-5, None),
        (float("nan"), None),
        (float("inf"), None),
        (1e30, None),
        ("1893456000", None),
        (None, None),
    ],
)
def test_siro_epoch_expiry_seconds_or_milliseconds(value: object, expected: datetime | None) -> None:
    assert parse_epoch(value) == expected


def sample(**kw: object) -> callrec.SignedUrl:
    fields: dict[str, object] = {
        "url": "https://bucket.s3.amazonaws.com/a.m4a?X-Amz-Signature=SECRETSIG&X-Amz-Credential=AKIA",
        "expires_at": T,
        "provider": "feather",
        "recording_id": "call_1",
        "leg": "main",
    }
    fields.update(kw)
    return callrec.SignedUrl(**fields)  # type: ignore[arg-type]


def test_repr_and_str_hide_the_query_string() -> None:
    s = sample()
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), repr({"k": s})):
        assert "SECRETSIG" not in text and "AKIA" not in text
    assert str(s) == "https://bucket.s3.amazonaws.com/a.m4a?<redacted>"
    assert "call_1" in repr(s) and "2030-01-01" in repr(s)
    assert s.url.endswith("AKIA")


def test_signed_url_is_frozen_and_picklable() -> None:
    s = sample()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.url = "x"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s


def test_expires_in_and_is_expired_with_margin() -> None:
    s = sample()
    now = T - timedelta(seconds=100)
    assert s.expires_in(now=now) == timedelta(seconds=100)
    assert not s.is_expired(now=now)
    assert s.is_expired(margin=100, now=now)
    assert s.is_expired(margin=timedelta(minutes=5), now=now)
    assert s.is_expired(now=T + timedelta(seconds=1))
    unknown = sample(expires_at=None)
    assert unknown.expires_in() is None and not unknown.is_expired()


def test_expiry_is_judged_on_the_api_clock_from_its_date_header() -> None:
    # The API's clock runs exactly an hour behind ours, and a Date header carries whole seconds, so
    # the API sends floor(its time) and a URL that expires 30 min after that. What the client can
    # read is therefore bounded by our clock around the call, with nothing left to chance:
    #   clock_offset = floor(t_answer - 3600) - t_parse  ->  in (-3601 - elapsed, -3600]
    #   expires_in   = 1800 - (t_expires_in - t_parse)   ->  in [1800 - elapsed, 1800]
    # (elapsed: from before the call to after expires_in; datetime rounds to the microsecond).
    def answer(_request: httpx.Request) -> httpx.Response:
        api_now = int(time.time() - 3600)
        expires = datetime.fromtimestamp(api_now + 1800, UTC).isoformat()
        date = formatdate(api_now, usegmt=True)
        return httpx.Response(200, json={"url": "https://s/x.m4a?sig=1", "expiresAt": expires}, headers={"date": date})

    with make_client("feather", Script(answer)) as client:
        before = time.time()
        url = client.recording_url("r1")
        left = url.expires_in()
        elapsed = time.time() - before
    assert -3601 - elapsed < url.clock_offset <= -3600
    assert left is not None
    assert timedelta(seconds=1800 - elapsed) - MICROSECOND <= left <= timedelta(seconds=1800) + MICROSECOND
    assert not url.is_expired()


def test_results_carry_provider_recording_and_leg() -> None:
    script = Script(httpx.Response(200, json={"url": "https://s/x?sig=1", "expiresAt": "2030-01-01T00:00:00Z"}))
    with make_client("feather", script) as client:
        url = client.recording_url("call_9", leg="supervisor")
    assert (url.provider, url.recording_id, url.leg, url.expires_at) == ("feather", "call_9", "supervisor", T)
    assert script.requests[0].url.params["type"] == "supervisor"
    script = Script(
        httpx.Response(200, json={"data": {"error": False, "url": "https://s/y?sig=2", "expiration": 1893456000}})
    )
    with make_client("siro", script) as client:
        url = client.recording_url("rec_9")
    assert (url.provider, url.recording_id, url.leg, url.expires_at) == ("siro", "rec_9", None, T)
    assert script.requests[0].method == "POST"
