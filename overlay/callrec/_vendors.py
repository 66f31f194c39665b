"""Each vendor's specifics: where it lives, how to ask it, and how to read its answers.

The request itself (path template, percent-encoding of the id, query) comes
from the generated clients' public ``request_args()``; their
``parse_response()`` reads the success bodies into the generated models, and
every way an off-spec body can disappoint is turned into a CallrecError here.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from types import ModuleType
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


def _parse_feather(
    response: httpx.Response, parsed: Any, recording_id: str, leg: str | None, offset: float
) -> SignedUrl:
    if parsed is None:
        raise _unexpected("the body is not the documented {url, expiresAt} object", response)
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


def _parse_siro(response: httpx.Response, parsed: Any, recording_id: str, leg: str | None, offset: float) -> SignedUrl:
    from siro_api.types import Unset

    if parsed is None:
        raise _unexpected("the body is not the documented {data: {error, url, expiration}} object", response)
    data = parsed.data
    failed = data.error
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
    if not isinstance(data.url, Unset | str | None):  # null, absent or "" mean "no URL"; 7 is off-spec
        raise _unexpected("'data.url' is not a string", response)
    if not isinstance(data.url, str) or not data.url:
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
    """Everything that differs between Feather and Siro.

    The request (path template, percent-encoding of the id as one segment, query)
    and the reading of a body into the documented model come from the generated
    package's public seam, ``request_args()`` and ``parse_response()``; the
    default base URL and the auth header come from its ``client`` module, which
    takes them from the spec. The generated packages are imported on first use:
    they are most of ``import callrec``'s cost.
    """

    name: Provider
    credential_keyword: str
    credential_env: str
    base_url_env: str
    package: str
    operation: str
    _args: Callable[[ModuleType, str, str | None], dict[str, Any]]
    _parse: Callable[[httpx.Response, Any, str, str | None, float], SignedUrl]

    @property
    def client_module(self) -> ModuleType:
        """``feather_api.client`` / ``siro_api.client`` (cheap: httpx and attrs only)."""
        return importlib.import_module(f"{self.package}.client")

    @property
    def default_base_url(self) -> str:
        url: str = self.client_module.DEFAULT_BASE_URL
        return url

    @property
    def auth_header(self) -> str:
        name: str = self.client_module.DEFAULT_AUTH_HEADER_NAME
        return name

    def request_args(self, recording_id: str, leg: str | None) -> dict[str, Any]:
        """method, url (path, id percent-encoded as one segment) and params for the request."""
        return self._args(importlib.import_module(self.operation), recording_id, leg)

    def parse(self, response: httpx.Response, recording_id: str, leg: str | None, offset: float) -> SignedUrl:
        """A SignedUrl from a complete response, or raise the matching CallrecError."""
        if not 200 <= response.status_code < 300:
            raise error_from_response(response)
        if response.status_code != 200:
            raise _unexpected("the spec only documents 200", response)
        parsed = importlib.import_module(self.operation).parse_response(response).parsed
        if parsed is None and decode_json(response.content) is _NO_JSON:
            raise _unexpected("the body is not JSON", response)
        return self._parse(response, parsed, recording_id, leg, offset)


def _feather_args(operation: ModuleType, recording_id: str, leg: str | None) -> dict[str, Any]:
    from feather_api.models import RecordingLeg

    args: dict[str, Any] = operation.request_args(recording_id, type_=RecordingLeg(leg or "main"))
    return args


def _siro_args(operation: ModuleType, recording_id: str, _leg: str | None) -> dict[str, Any]:
    args: dict[str, Any] = operation.request_args(recording_id)
    return args


FEATHER = Vendor(
    name="feather",
    credential_keyword="api_key",
    credential_env="FEATHER_API_KEY",
    base_url_env="FEATHER_BASE_URL",
    package="feather_api",
    operation="feather_api.api.calls.get_recording_url",
    args=_feather_args,
    parse=_parse_feather,
)
SIRO = Vendor(
    name="siro",
    credential_keyword="token",
    credential_env="SIRO_AUTH_TOKEN",
    base_url_env="SIRO_BASE_URL",
    package="siro_api",
    operation="siro_api.api.default.create_signed_url",
    args=_siro_args,
    parse=_parse_siro,
)
