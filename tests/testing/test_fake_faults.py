"""Each fault does exactly what it says, on the next request only or on every request."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from callrec.testing import FakeServer, faults
from fake_helpers import assert_matches_spec, feather_get, siro_post

DATA = bytes(range(256)) * 64  # 16384 bytes


def _stream_into(client: httpx.Client, url: str, received: bytearray, declared: list[str]) -> None:
    with client.stream("GET", url) as response:
        declared.append(response.headers["content-length"])
        for chunk in response.iter_bytes():
            received += chunk


@pytest.fixture
def url(fake: FakeServer) -> str:
    fake.add_recording("feather", "call_1", data=DATA)
    return fake.signed_url("feather", "call_1")


def test_queued_faults_apply_once_each_then_normal_answers_resume(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    fake.feather.queue(faults.Status(503), faults.Status(503, retry_after="1"))

    statuses = [feather_get(client, fake, "call_1").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert fake.feather.pending == 0


def test_always_applies_to_every_request_until_clear(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("siro", "rec_1")
    fake.siro.always(faults.Status(500))

    before = [siro_post(client, fake, "rec_1").status_code for _ in range(3)]
    fake.siro.clear()

    assert before == [500, 500, 500]
    assert siro_post(client, fake, "rec_1").status_code == 200


def test_faults_apply_only_to_their_origin(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    fake.add_recording("siro", "rec_1")
    fake.siro.queue(faults.Status(500))

    assert feather_get(client, fake, "call_1").status_code == 200
    assert siro_post(client, fake, "rec_1").status_code == 500


def test_tuple_entry_combines_faults_on_one_request(fake: FakeServer, client: httpx.Client) -> None:
    fake.feather.queue((faults.Latency(0.1), faults.Status(503)))

    started = time.monotonic()
    response = feather_get(client, fake, "call_1")

    assert response.status_code == 503
    assert time.monotonic() - started >= 0.1


def test_status_feather_503_is_the_documented_error_with_retry_headers(fake: FakeServer, client: httpx.Client) -> None:
    fake.feather.queue(faults.Status(503, retry_after="1", retry_after_ms=1500))

    response = feather_get(client, fake, "call_1")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["code"] == "INTERNAL_SERVER_ERROR"
    assert_matches_spec("feather_api", response)


def test_status_siro_500_is_the_documented_error(fake: FakeServer, client: httpx.Client) -> None:
    fake.siro.queue(faults.Status(500))

    response = siro_post(client, fake, "rec_1")

    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error"}
    assert_matches_spec("siro_api", response)


def test_status_storage_503_is_s3_slow_down(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.Status(503))

    response = client.get(url)

    assert response.status_code == 503
    assert b"<Code>SlowDown</Code>" in response.content


def test_status_with_custom_body_and_headers(fake: FakeServer, client: httpx.Client) -> None:
    fake.feather.queue(faults.Status(429, body="slow down", headers={"X-Custom": "yes"}, content_type="text/plain"))

    response = feather_get(client, fake, "call_1")

    assert response.status_code == 429
    assert response.text == "slow down"
    assert response.headers["x-custom"] == "yes"
    assert response.headers["content-type"] == "text/plain"


def test_latency_delays_a_normal_answer(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.Latency(0.2))

    started = time.monotonic()
    response = client.get(url)

    assert time.monotonic() - started >= 0.2
    assert response.content == DATA


def test_stall_before_headers_trips_a_short_read_timeout(fake: FakeServer, url: str) -> None:
    fake.storage.queue(faults.StallBeforeHeaders(1.0))

    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.1)) as http, pytest.raises(httpx.ReadTimeout):
        http.get(url)


def test_stall_before_headers_then_closes_without_an_answer(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.StallBeforeHeaders(0.1))

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)


def test_trickle_sends_the_body_slowly_and_never_trips_a_per_read_timeout(fake: FakeServer, url: str) -> None:
    fake.storage.queue(faults.Trickle(chunk_size=4096, interval=0.1))

    started = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.3)) as http:
        response = http.get(url)

    assert response.content == DATA
    assert time.monotonic() - started >= 0.3  # four chunks, 0.1 s apart


def test_chunked_sends_no_content_length(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.Chunked())

    response = client.get(url)

    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.content == DATA


def test_reset_aborts_the_connection_before_any_answer(fake: FakeServer, client: httpx.Client) -> None:
    fake.feather.queue(faults.Reset())

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        feather_get(client, fake, "call_1")
    assert len(fake.feather.requests) == 1


def test_reset_after_bytes_aborts_mid_body(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.Reset(after_bytes=1000))

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(url)


def test_short_body_raises_remote_protocol_error(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.ShortBody(missing=100))

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url)


def test_cut_body_looks_like_success_with_fewer_bytes(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.CutBody(after_bytes=1000))

    response = client.get(url)

    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.content == DATA[:1000]


def test_malformed_json_is_200_with_truncated_json(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    fake.feather.queue(faults.MalformedJson())

    response = feather_get(client, fake, "call_1")

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_proxy_error_is_an_nginx_page(fake: FakeServer, client: httpx.Client) -> None:
    fake.siro.queue(faults.HtmlProxyError(502))

    response = siro_post(client, fake, "rec_1")

    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in response.text


def test_siro_error_is_200_with_error_inside_data(fake: FakeServer, client: httpx.Client) -> None:
    fake.siro.queue(faults.SiroError("Recording is still processing"))

    response = siro_post(client, fake, "rec_1")

    assert response.status_code == 200
    assert response.json() == {"data": {"error": True, "errorMessage": "Recording is still processing"}}
    assert_matches_spec("siro_api", response)


def test_redirect_to_elsewhere_keeps_path_and_query(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    fake.feather.queue(faults.RedirectTo("elsewhere", status=307))

    response = feather_get(client, fake, "call_1", leg="main")

    assert response.status_code == 307
    expected = f"{fake.elsewhere_origin}/api/v1/agent-calls/call_1/recording-url?type=main"
    assert response.headers["location"] == expected


def test_following_a_redirect_lands_on_elsewhere_which_records_it(fake: FakeServer) -> None:
    fake.feather.queue(faults.RedirectTo())

    with httpx.Client(follow_redirects=True) as http:
        response = feather_get(http, fake, "call_1")

    assert response.text == "elsewhere\n"
    [landed] = fake.elsewhere.requests
    assert landed.path == "/api/v1/agent-calls/call_1/recording-url"


def test_ignore_range_answers_200_with_full_body(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.IgnoreRange())

    response = client.get(url, headers={"Range": "bytes=100-"})

    assert response.status_code == 200
    assert response.content == DATA


def test_expire_mid_download_cuts_the_body_then_the_url_is_expired(
    fake: FakeServer, client: httpx.Client, url: str
) -> None:
    fake.storage.queue(faults.ExpireMidDownload(after_bytes=4096))
    received = bytearray()
    declared: list[str] = []

    with pytest.raises(httpx.RemoteProtocolError):
        _stream_into(client, url, received, declared)

    assert declared == [str(len(DATA))]

    assert bytes(received) == DATA[:4096]
    again = client.get(url)
    assert again.status_code == 403
    assert b"Request has expired" in again.content
    fresh = client.get(fake.signed_url("feather", "call_1"), headers={"Range": "bytes=4096-"})
    assert fresh.status_code == 206
    assert fresh.content == DATA[4096:]


def test_expired_url_fault_is_the_s3_answer(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.ExpiredUrl())

    response = client.get(url)

    assert response.status_code == 403
    assert b"<Message>Request has expired</Message>" in response.content
    assert client.get(url).status_code == 200


def test_gcs_expired_token_is_400(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.GcsExpiredToken())

    response = client.get(url)

    assert response.status_code == 400
    assert b"<Code>ExpiredToken</Code>" in response.content


def test_non_audio_is_an_error_page_labelled_as_audio(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.NonAudio())

    response = client.get(url)

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.content.startswith(b"<?xml")


def test_garbage_sends_arbitrary_bytes(fake: FakeServer, client: httpx.Client) -> None:
    fake.feather.queue(faults.Garbage(b"\x00\xff", content_type="application/json", status=201))

    response = feather_get(client, fake, "call_1")

    assert response.status_code == 201
    assert response.content == b"\x00\xff"


def test_fault_on_a_range_response_applies_to_the_206(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.storage.queue(faults.ShortBody(missing=1))

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(url, headers={"Range": "bytes=16000-"})


@pytest.mark.parametrize(
    "build",
    [
        lambda: faults.Status(99),
        lambda: faults.Latency(-1),
        lambda: faults.Trickle(chunk_size=0),
        lambda: faults.ShortBody(missing=0),
        lambda: faults.RedirectTo(status=200),
        lambda: faults.CutBody(after_bytes=-1),
        lambda: faults.RedirectTo("nowhere"),
    ],
)
def test_faults_refuse_nonsense_arguments(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match="must"):
        build()


# -- RateLimit ---------------------------------------------------------------------------------------------------------


def test_rate_limit_serves_its_burst_then_answers_429_with_retry_after_and_refills(
    fake: FakeServer, client: httpx.Client
) -> None:
    fake.add_recording("feather", "call_1")
    fake.feather.always(faults.RateLimit(10, burst=3, retry_after=2))
    statuses = [feather_get(client, fake, "call_1") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert statuses[3].headers["retry-after"] == "2"
    assert fake.feather.throttled == 2
    time.sleep(0.25)  # 10/s refills two tokens
    assert [feather_get(client, fake, "call_1").status_code for _ in range(3)] == [200, 200, 429]
    fake.feather.clear()
    assert fake.feather.throttled == 0
    assert feather_get(client, fake, "call_1").status_code == 200


def test_rate_limit_is_per_origin_and_storage_may_answer_503(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    fake.storage.always(faults.RateLimit(0.01, burst=1, status=503))
    url = fake.signed_url("feather", "call_1")
    assert [client.get(url).status_code for _ in range(2)] == [200, 503]
    assert feather_get(client, fake, "call_1").status_code == 200  # the API has no limit
    assert (fake.storage.throttled, fake.feather.throttled) == (1, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_second": 0}, "per_second"),
        ({"per_second": float("inf")}, "per_second"),
        ({"per_second": 5, "burst": 0}, "burst"),
        ({"per_second": 5, "status": 500}, "status"),
    ],
)
def test_rate_limit_refuses_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.RateLimit(**kwargs)  # type: ignore[arg-type]


def test_the_readmes_rate_limit_example_runs(callrec_env: FakeServer, tmp_path: object) -> None:
    import re
    from pathlib import Path

    section = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "testing.md").read_text(encoding="utf-8")
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "RateLimit" in block]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    namespace["test_my_export_stays_under_the_rate_limit"](callrec_env, tmp_path)  # type: ignore[operator]
    assert callrec_env.feather.throttled == 0 and len(callrec_env.requests_to("feather")) == 30
