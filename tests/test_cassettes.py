"""Cassettes pin the vendors' response shapes; the SDK replays them with the network blocked.

Record again with `make record` (scripts/record_cassettes.py): never edit a cassette by hand.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import callrec
import pytest
import yaml

CASSETTES = Path(__file__).parent / "cassettes"

#: cassette -> what the SDK makes of it: a SignedUrl, or the exact error class.
EXPECTED: dict[str, type[Any]] = {
    "feather/ok_main": callrec.SignedUrl,
    "feather/ok_supervisor": callrec.SignedUrl,
    "feather/400_no_recording": callrec.BadRequestError,
    "feather/401_bad_key": callrec.AuthenticationError,
    "feather/404_not_found": callrec.NotFoundError,
    "feather/429_rate_limited": callrec.RateLimitError,
    "feather/500_internal": callrec.InternalServerError,
    "feather/503_unavailable": callrec.ServiceUnavailableError,
    "siro/ok": callrec.SignedUrl,
    "siro/200_error_true": callrec.RecordingUnavailableError,
    "siro/400_bad_request": callrec.BadRequestError,
    "siro/401_bad_token": callrec.AuthenticationError,
    "siro/403_forbidden": callrec.PermissionDeniedError,
    "siro/404_not_found": callrec.NotFoundError,
    "siro/422_validation": callrec.UnprocessableEntityError,
    "siro/500_internal": callrec.InternalServerError,
}
#: Statuses the vendor's spec does not document (a real API answers them anyway).
UNDOCUMENTED = {"feather/401_bad_key", "feather/404_not_found", "feather/429_rate_limited"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text())
    return data


def all_cassettes() -> list[str]:
    return sorted(str(p.relative_to(CASSETTES).with_suffix("")) for p in CASSETTES.rglob("*.yaml"))


def test_every_cassette_has_an_expectation() -> None:
    assert all_cassettes() == sorted(EXPECTED)


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {"record_mode": "none"}


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


def replay(name: str) -> Any:
    vendor = name.split("/")[0]
    cassette = load(name)
    request = cassette["interactions"][0]["request"]
    rid = request["uri"].split("/")[-2]
    # Default base URLs (the specs' servers) and placeholder credentials: exactly what was recorded.
    if vendor == "feather":
        leg = "supervisor" if "type=supervisor" in request["uri"] else "main"
        with callrec.FeatherClient("<FEATHER_API_KEY>", max_retries=0) as client:
            return client.recording_url(rid, leg=leg)  # type: ignore[arg-type]
    with callrec.SiroClient("<SIRO_AUTH_TOKEN>", max_retries=0) as client:
        return client.recording_url(rid)


@pytest.mark.block_network
@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.vcr(f"{name}.yaml")) for name in sorted(EXPECTED)]
)
def test_sdk_replays_cassette(name: str, vcr: Any) -> None:
    expected = EXPECTED[name]
    if expected is callrec.SignedUrl:
        url = replay(name)
        assert isinstance(url, callrec.SignedUrl)
        assert url.expires_at is not None
        assert url.url.startswith("https://")
    else:
        with pytest.raises(expected) as info:
            replay(name)
        assert type(info.value) is expected
        if isinstance(info.value, callrec.APIStatusError):
            assert info.value.message
    assert vcr.play_count == 1, "the SDK made exactly the one recorded request"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cassette_holds_no_secret(name: str) -> None:
    text = (CASSETTES / f"{name}.yaml").read_text()
    cassette = load(name)
    for interaction in cassette["interactions"]:
        headers = {k.lower(): v for k, v in interaction["request"]["headers"].items()}
        assert headers.get("x-api-key", ["<FEATHER_API_KEY>"]) == ["<FEATHER_API_KEY>"]
        assert headers.get("x-siro-auth-token", ["<SIRO_AUTH_TOKEN>"]) == ["<SIRO_AUTH_TOKEN>"]
        assert "authorization" not in headers
        assert "cookie" not in headers
        assert "set-cookie" not in {k.lower() for k in interaction["response"]["headers"]}
    for sig in re.findall(r"(?i)(?:signature|sig|token|credential)=([^&\s'\"]+)", text):
        assert sig == "REDACTED", f"unscrubbed signature-like value in {name}"
    assert "127.0.0." not in text, "recorded against the fake but not rewritten to the spec's server"
    assert not re.search(r"(fk|siro)_test_[0-9a-f]{8}", text), "a fake-server credential leaked"


def _validator(vendor: str) -> Any:
    from openapi_core import OpenAPI

    spec = yaml.safe_load((resources.files(f"{vendor}_api") / "openapi.yaml").read_text())
    return OpenAPI.from_dict(spec)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_response_matches_the_vendored_spec(name: str) -> None:
    vendor = name.split("/")[0]
    interaction = load(name)["interactions"][0]
    request, response = interaction["request"], interaction["response"]
    openapi = _validator(vendor)
    documented = str(response["status"]["code"]) in _documented_statuses(vendor)
    assert documented == (name not in UNDOCUMENTED)
    if not documented:
        return
    openapi.validate_response(_Request(request), _Response(response))


def _documented_statuses(vendor: str) -> set[str]:
    spec = yaml.safe_load((resources.files(f"{vendor}_api") / "openapi.yaml").read_text())
    (path,) = spec["paths"].values()
    (operation,) = path.values()
    return set(operation["responses"])


class _Request:
    """openapi-core's request protocol over a vcrpy cassette request."""

    def __init__(self, raw: dict[str, Any]) -> None:
        from urllib.parse import parse_qsl, urlsplit

        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        parts = urlsplit(raw["uri"])
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.full_url_pattern = self.host_url + self.path
        self.method = raw["method"].lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query)),
            header=Headers([(k, v[0]) for k, v in raw["headers"].items()]),
            cookie=ImmutableMultiDict(),
        )
        self.content_type = "application/json"
        self.body = (raw.get("body") or "").encode() or None


class _Response:
    """openapi-core's response protocol over a vcrpy cassette response."""

    def __init__(self, raw: dict[str, Any]) -> None:
        from werkzeug.datastructures import Headers

        self.status_code = raw["status"]["code"]
        body = raw["body"]["string"]
        self.data = body.encode() if isinstance(body, str) else body
        self.headers = Headers([(k, v[0]) for k, v in raw["headers"].items()])
        self.content_type = self.headers.get("content-type", "application/json").split(";")[0]
