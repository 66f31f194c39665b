"""The clients against a real HTTP server on loopback: redirects, auth, ids and logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import callrec
import pytest
from callrec.testing import FakeServer, faults

ODD_IDS = ["a/b", "../x", "?q=1", "%2F", "#h", "sp ace", "ünï", "...", "a;b=c", "x+y"]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_cross_origin_redirect_is_not_followed_and_leaks_nothing(fake: FakeServer, status: int) -> None:
    fake.add_recording("feather", "c1")
    fake.add_recording("siro", "r1")
    fake.feather.queue(faults.RedirectTo("elsewhere", status=status))
    fake.siro.queue(faults.RedirectTo("elsewhere", status=status))
    feather = callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url)
    with feather, pytest.raises(callrec.UnexpectedResponseError):
        feather.recording_url("c1")
    siro = callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url)
    with siro, pytest.raises(callrec.UnexpectedResponseError):
        siro.recording_url("r1")
    assert fake.requests_to("elsewhere") == []


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_wrong_credential_is_an_authentication_error_without_echo(fake: FakeServer, vendor: str) -> None:
    client: callrec.FeatherClient | callrec.SiroClient
    if vendor == "feather":
        client = callrec.FeatherClient("wrong-key-123", base_url=fake.feather_base_url)
    else:
        client = callrec.SiroClient("wrong-token-123", base_url=fake.siro_base_url)
    with client, pytest.raises(callrec.AuthenticationError) as info:
        client.recording_url("x")
    assert "wrong-" not in str(info.value)
    assert len(fake.requests) == 1, "401 is not retried"


@pytest.mark.parametrize("rid", ODD_IDS)
def test_odd_ids_reach_the_server_as_one_segment(fake: FakeServer, rid: str) -> None:
    fake.add_recording("feather", rid, leg="supervisor")
    fake.add_recording("siro", rid)
    with callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as f:
        assert f.recording_url(rid, leg="supervisor").recording_id == rid
    with callrec.SiroClient(fake.siro_token, base_url=fake.siro_base_url) as s:
        assert s.recording_url(rid).recording_id == rid
    paths = [r.path for r in fake.requests]
    assert len(paths) == 2
    assert paths[0].startswith("/api/v1/agent-calls/") and paths[0].endswith("/recording-url")
    assert paths[0].count("/") == 5
    assert paths[1].startswith("/v1/core/recordings/") and paths[1].endswith("/signedUrl")
    assert paths[1].count("/") == 5


def test_debug_logs_show_attempts_but_no_secrets(
    fake: FakeServer, caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    fake.add_recording("feather", "c1")
    fake.feather.queue(faults.Status(503))
    caplog.set_level(logging.DEBUG)
    with callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as f:
        signed = f.recording_url("c1")
        f.download("c1", str(tmp_path))
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "callrec feather GET /api/v1/agent-calls/c1/recording-url -> 503 (attempt 1/3" in text
    assert "-> 200 (attempt 2/3" in text
    assert "HTTP Request: GET http://127.0.0.2" in text, "httpx's storage request log is kept, redacted"
    assert fake.feather_api_key not in text
    assert "X-Amz-Signature" not in text
    assert signed.url.split("?")[1] not in text
