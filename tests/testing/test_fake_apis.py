"""The fake Feather and Siro APIs answer exactly what the vendored specs describe."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
from callrec.testing import FakeServer
from fake_helpers import assert_matches_spec, feather_get, siro_post, spec_errors


def test_feather_returns_signed_storage_url_and_expiry_per_spec(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_123")

    response = feather_get(client, fake, "call_123")

    assert response.status_code == 200
    assert_matches_spec("feather_api", response)
    body = response.json()
    assert body["url"].startswith(f"{fake.storage_origin}/feather/call_123/main.wav?")
    expires_at = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert body["expiresAt"].endswith("Z")
    assert abs(expires_at.timestamp() - (time.time() + fake.url_ttl)) < 2


def test_feather_supervisor_leg_is_a_separate_recording(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1", leg="supervisor", data=b"supervisor audio")

    supervisor = feather_get(client, fake, "call_1", leg="supervisor")
    main = feather_get(client, fake, "call_1", leg="main")

    assert supervisor.status_code == 200
    assert "/feather/call_1/supervisor.wav?" in supervisor.json()["url"]
    assert client.get(supervisor.json()["url"]).content == b"supervisor audio"
    assert main.status_code == 400
    assert_matches_spec("feather_api", main)


def test_feather_unknown_call_is_documented_400(fake: FakeServer, client: httpx.Client) -> None:
    response = feather_get(client, fake, "call_missing")

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "message": "Agent call not found or has no recording",
        "code": "BAD_REQUEST",
        "success": False,
    }
    assert_matches_spec("feather_api", response)


@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_feather_bad_key_is_401_shaped_like_documented_errors(
    fake: FakeServer, client: httpx.Client, key: str | None
) -> None:
    fake.add_recording("feather", "call_123")
    url = f"{fake.feather_base_url}/api/v1/agent-calls/call_123/recording-url"
    headers = {} if key is None else {"X-API-Key": key}

    response = client.get(url, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"status": 401, "message": "Unauthorized", "code": "UNAUTHORIZED", "success": False}
    # The vendored spec documents no 401 at all; this pins that gap.
    assert [type(e).__name__ for e in spec_errors("feather_api", response)] == ["ResponseNotFound"]


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
def test_feather_off_spec_type_is_400_feather_body(client: httpx.Client, validate: bool) -> None:
    with FakeServer(validate_requests=validate) as fake:
        fake.add_recording("feather", "call_123")
        response = feather_get(client, fake, "call_123", leg="bogus")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BAD_REQUEST"
    assert "type" in body["message"]
    assert_matches_spec("feather_api", response)


def test_feather_id_is_one_percent_encoded_segment(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call/with?odd chars", data=b"odd")

    response = feather_get(client, fake, "call%2Fwith%3Fodd%20chars")

    assert response.status_code == 200
    assert "/feather/call%2Fwith%3Fodd%20chars/main.wav?" in response.json()["url"]
    assert client.get(response.json()["url"]).content == b"odd"


def test_siro_returns_signed_url_with_epoch_ms_expiration_per_spec(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("siro", "rec_456", data=b"m4a bytes", content_type="audio/mp4")

    response = siro_post(client, fake, "rec_456")

    assert response.status_code == 200
    assert_matches_spec("siro_api", response)
    data = response.json()["data"]
    assert data["error"] is False
    assert data["url"].startswith(f"{fake.storage_origin}/siro/rec_456/main.m4a?")
    assert abs(data["expiration"] / 1000 - (time.time() + fake.url_ttl)) < 2


def test_siro_expiration_can_be_epoch_seconds(client: httpx.Client) -> None:
    with FakeServer(siro_expiration_unit="s", url_ttl=60) as fake:
        fake.add_recording("siro", "rec_1")
        response = siro_post(client, fake, "rec_1")

    assert abs(response.json()["data"]["expiration"] - (time.time() + 60)) < 2


def test_siro_unknown_recording_is_404(fake: FakeServer, client: httpx.Client) -> None:
    response = siro_post(client, fake, "rec_missing")

    assert response.status_code == 404
    assert response.json() == {"error": "Recording not found"}
    assert_matches_spec("siro_api", response)


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["missing", "wrong"])
def test_siro_bad_token_is_documented_401(fake: FakeServer, client: httpx.Client, token: str | None) -> None:
    fake.add_recording("siro", "rec_456")
    url = f"{fake.siro_base_url}/v1/core/recordings/rec_456/signedUrl"
    headers = {} if token is None else {"x-siro-auth-token": token}

    response = client.post(url, headers=headers)

    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)
    assert_matches_spec("siro_api", response)


def test_siro_non_object_json_body_is_422_zod_error(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("siro", "rec_456")

    response = siro_post(client, fake, "rec_456", json=[1, 2])

    assert response.status_code == 422
    body = response.json()
    assert body["name"] == "ZodError"
    assert body["issues"][0]["code"] == "invalid_type"
    assert_matches_spec("siro_api", response)


def test_siro_malformed_json_body_is_400(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("siro", "rec_456")

    response = siro_post(client, fake, "rec_456", content=b"{nope", headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"error": "Malformed JSON in request body"}
    assert_matches_spec("siro_api", response)


def test_siro_accepts_empty_json_object_body(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("siro", "rec_456")

    assert siro_post(client, fake, "rec_456", json={}).status_code == 200


def test_wrong_method_or_path_is_404_in_each_vendor_shape(fake: FakeServer, client: httpx.Client) -> None:
    feather = client.post(f"{fake.feather_base_url}/api/v1/agent-calls/x/recording-url")
    siro = client.get(f"{fake.siro_base_url}/v1/core/recordings/x/signedUrl")

    assert feather.status_code == 404
    assert feather.json()["success"] is False
    assert siro.status_code == 404
    assert siro.json() == {"error": "Not Found"}


def test_every_response_carries_date_and_request_id(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_123")
    responses = [
        feather_get(client, fake, "call_123"),
        feather_get(client, fake, "nope"),
        siro_post(client, fake, "nope"),
        client.get(f"{fake.storage_origin}/feather/call_123/main.wav"),
        client.get(f"{fake.elsewhere_origin}/anything"),
    ]

    ids = [r.headers["x-request-id"] for r in responses]
    assert all(r.headers["date"].endswith(" GMT") for r in responses)
    assert len(set(ids)) == len(ids)


def test_credentials_are_random_ascii_per_server() -> None:
    first, second = FakeServer(), FakeServer()

    assert first.feather_api_key != second.feather_api_key
    assert first.siro_token != second.siro_token
    assert first.feather_api_key.isascii()
    assert first.siro_token.isascii()


def test_env_points_at_the_apis(fake: FakeServer) -> None:
    assert fake.env() == {
        "FEATHER_API_KEY": fake.feather_api_key,
        "FEATHER_BASE_URL": fake.feather_base_url,
        "SIRO_AUTH_TOKEN": fake.siro_token,
        "SIRO_BASE_URL": fake.siro_base_url,
    }
    assert fake.feather_base_url.startswith("http://127.0.0.1:")
    assert fake.storage_origin.startswith("http://127.0.0.2:")
