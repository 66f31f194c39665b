"""Helpers for the callrec.testing tests: vendor calls and spec checks of responses."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import yaml
from callrec.testing import FakeServer
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC_SERVERS = {"feather_api": "https://prod.featherhq.com", "siro_api": "https://api.siro.ai"}


@functools.cache
def _openapi(package: str) -> Any:
    import importlib.resources

    text = importlib.resources.files(package).joinpath("openapi.yaml").read_text(encoding="utf-8")
    return OpenAPI.from_dict(yaml.safe_load(text))


def spec_errors(package: str, response: httpx.Response) -> list[Exception]:
    """What openapi-core finds wrong with `response` under the vendored spec (empty: conforms)."""
    request = response.request
    query = dict(request.url.params)
    spec_request = MockRequest(
        SPEC_SERVERS[package],
        request.method.lower(),
        request.url.raw_path.decode().partition("?")[0],
        args=query,
        headers=dict(request.headers),
    )
    spec_response = MockResponse(
        response.content,
        status_code=response.status_code,
        headers=dict(response.headers),
        content_type=response.headers.get("content-type", "").split(";")[0],
    )
    return list(_openapi(package).response_validator.iter_errors(spec_request, spec_response))


def assert_matches_spec(package: str, response: httpx.Response) -> None:
    errors = spec_errors(package, response)
    assert errors == [], f"{response.status_code} {response.text!r} breaks {package}: {errors}"


def feather_get(
    http: httpx.Client, fake: FakeServer, call_id: str, *, leg: str | None = None, key: str | None = None
) -> httpx.Response:
    params = {"type": leg} if leg is not None else {}
    headers = {"X-API-Key": fake.feather_api_key if key is None else key}
    return http.get(
        f"{fake.feather_base_url}/api/v1/agent-calls/{call_id}/recording-url", params=params, headers=headers
    )


def siro_post(
    http: httpx.Client, fake: FakeServer, recording_id: str, *, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"x-siro-auth-token": fake.siro_token if token is None else token, **kwargs.pop("headers", {})}
    return http.post(f"{fake.siro_base_url}/v1/core/recordings/{recording_id}/signedUrl", headers=headers, **kwargs)
