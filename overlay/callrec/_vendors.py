"""Each vendor's specifics: where it lives, how to ask it, and how to read its answers.

The request itself (path template, percent-encoding of the id, query) comes
from the generated clients; the generated models read the success bodies, and
every way they can fail on an off-spec body is turned into a CallrecError here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import httpx

from ._errors import (
    CallrecError,
    RecordingUnavailableError,
    UnexpectedResponseError,
    status_error_class,
)
from ._signed_url import Provider, SignedUrl, parse_epoch, parse_iso
from ._validate import check_signed_url

__all__ = ["FEATHER", "SIRO", "Vendor", "decode_json", "error_from_response"]

_NO_JSON = object()


def decode_json(content: bytes) -> Any:
    """The decoded JSON body, or the _NO_JSON marker when it is not JSON."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _NO_JSON


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from any vendor error body; tolerant of off-spec shapes.

    Feather: {status, message, code, success}. Siro: {error} or a ZodError
    {name, issues[{message, path}]}. Unknown enum values are kept as text.
    """
    if not isinstance(body, dict):
        return None, None
    message = _text(body.get("message")) or _text(body.get("error")) or _text(body.get("errorMessage"))
    issues = body.get("issues")
    if message is None and isinstance(issues, list):
        parts = []
        for issue in issues:
            if isinstance(issue, dict) and _text(issue.get("message")):
                path = issue.get("path")
                where = ".".join(str(p) for p in path) if isinstance(path, list) and path else ""
                parts.append(f"{where}: {issue['message']}" if where else str(issue["message"]))
        message = "; ".join(parts) or None
    code = _text(body.get("code")) or _text(body.get("name"))
    return message, code


def error_from_response(response: httpx.Response) -> CallrecError:
    """The error for a non-2xx response (3xx included), never raising while building it."""
    status = response.status_code
    if 300 <= status < 400:
        return UnexpectedResponseError(
            f"the API answered {status} (a redirect); redirects are not followed so credentials stay with the API",
            response=response,
        )
    body = decode_json(response.content)
    if body is _NO_JSON:
        body = response.content[:2048].decode("utf-8", "replace")
    message, code = _error_fields(body)
    return status_error_class(status)(message, response=response, body=body, code=code)


def _unexpected(what: str, response: httpx.Response) -> UnexpectedResponseError:
    return UnexpectedResponseError(f"the API answered {response.status_code} but {what}", response=response)


def _parse_feather(response: httpx.Response, body: Any, recording_id: str, leg: str | None, offset: float) -> SignedUrl:
    from feather_api.models import RecordingUrl  # the generated packages load on first use (import cost)

    try:
        parsed = RecordingUrl.from_dict(body)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _unexpected("the body is not the documented {url, expiresAt} object", response) from None
    if not isinstance(parsed.url, str) or not parsed.url:
        raise _unexpected("'url' is not a non-empty string", response)
    return SignedUrl(
        url=check_signed_url(parsed.url, response=response),
        expires_at=parse_iso(parsed.expires_at),
        provider="feather",
        recording_id=recording_id,
        leg=leg,
        clock_offset=offset,
    )


def _parse_siro(response: httpx.Response, body: Any, recording_id: str, leg: str | None, offset: float) -> SignedUrl:
    from siro_api.models import SignedUrlResponse
    from siro_api.types import Unset

    try:
        parsed = SignedUrlResponse.from_dict(body)
        data = parsed.data
        failed = data.error
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _unexpected("the body is not the documented {data: {error, url, expiration}} object", response) from None
    request_id = response.headers.get("x-request-id")
    if failed is not False:
        message = data.error_message if isinstance(data.error_message, str) and data.error_message else None
        if failed is True:
            raise RecordingUnavailableError(
                f"Siro could not sign a URL for recording {recording_id!r}: {message or 'no reason given'}",
                recording_id=recording_id,
                request_id=request_id,
            )
        raise _unexpected("'data.error' is not a boolean", response)
    if isinstance(data.url, Unset) or not isinstance(data.url, str) or not data.url:
        raise RecordingUnavailableError(
            f"Siro answered without a URL for recording {recording_id!r}",
            recording_id=recording_id,
            request_id=request_id,
        )
    return SignedUrl(
        url=check_signed_url(data.url, response=response),
        expires_at=None if isinstance(data.expiration, Unset) else parse_epoch(data.expiration),
        provider="siro",
        recording_id=recording_id,
        leg=None,
        clock_offset=offset,
    )


@attrs.frozen
class Vendor:
    """Everything that differs between Feather and Siro."""

    name: Provider
    credential_keyword: str
    credential_env: str
    base_url_env: str
    default_base_url: str
    auth_header: str
    _kwargs: Callable[[str, str | None], dict[str, Any]]
    _parse: Callable[[httpx.Response, Any, str, str | None, float], SignedUrl]

    def request_kwargs(self, recording_id: str, leg: str | None) -> dict[str, Any]:
        """method, url (path, id percent-encoded as one segment) and params for the request."""
        return self._kwargs(recording_id, leg)

    def parse(self, response: httpx.Response, recording_id: str, leg: str | None, offset: float) -> SignedUrl:
        """A SignedUrl from a complete response, or raise the matching CallrecError."""
        if not 200 <= response.status_code < 300:
            raise error_from_response(response)
        if response.status_code != 200:
            raise _unexpected("the spec only documents 200", response)
        body = decode_json(response.content)
        if body is _NO_JSON:
            raise _unexpected("the body is not JSON", response)
        return self._parse(response, body, recording_id, leg, offset)


# The generated request builders are the single place ids are encoded
# (urllib.parse.quote(id, safe="")), so they are reused rather than re-implemented.
# Only the builders: the generated sync_detailed()/asyncio_detailed() call
# HTTPStatus(status) (a ValueError on e.g. Cloudflare's 520) and .json() (a
# JSONDecodeError on an HTML 502) before we could map either to a CallrecError,
# and they cannot stream, so sending and parsing stay here. This can go if
# openapi-python-client exposes raw responses without parsing.
def _feather_kwargs(recording_id: str, leg: str | None) -> dict[str, Any]:
    from feather_api.api.calls import get_recording_url as feather_op
    from feather_api.models import RecordingLeg

    return feather_op._get_kwargs(recording_id, type_=RecordingLeg(leg or "main"))


def _siro_kwargs(recording_id: str, _leg: str | None) -> dict[str, Any]:
    from siro_api.api.default import create_signed_url as siro_op

    return siro_op._get_kwargs(recording_id)


FEATHER = Vendor(
    name="feather",
    credential_keyword="api_key",
    credential_env="FEATHER_API_KEY",
    base_url_env="FEATHER_BASE_URL",
    default_base_url="https://prod.featherhq.com",
    auth_header="X-API-Key",
    kwargs=_feather_kwargs,
    parse=_parse_feather,
)
SIRO = Vendor(
    name="siro",
    credential_keyword="token",
    credential_env="SIRO_AUTH_TOKEN",
    base_url_env="SIRO_BASE_URL",
    default_base_url="https://api.siro.ai/",
    auth_header="x-siro-auth-token",
    kwargs=_siro_kwargs,
    parse=_parse_siro,
)
