"""Validate incoming API requests against the vendored OpenAPI specs.

openapi-core is imported only when a validator is built, so `validate_requests=False`
needs neither it nor PyYAML. One validation costs about a millisecond, so outcomes
are memoised per distinct request (the auth value is checked before, by the server).
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Issue:
    """One way a request departs from the spec."""

    location: str
    name: str
    message: str


def load_spec(package: str) -> dict[str, Any]:
    """The OpenAPI document shipped inside `package` (`feather_api` or `siro_api`)."""
    import yaml

    text = importlib.resources.files(package).joinpath("openapi.yaml").read_text(encoding="utf-8")
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


@functools.cache
def _request_validator(package: str) -> tuple[str, Any]:
    """The spec's server URL and its openapi-core request validator, shared by every server."""
    from openapi_core import OpenAPI

    spec = load_spec(package)
    return str(spec["servers"][0]["url"]).rstrip("/"), OpenAPI.from_dict(spec).request_validator


class SpecValidator:
    """Request validation for one vendor, built once."""

    def __init__(self, package: str) -> None:
        self._server, self._validator = _request_validator(package)
        self._cache: dict[tuple[str, str, str, str, bytes], tuple[Issue, ...]] = {}
        self._lock = threading.Lock()

    def issues(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], content_type: str, body: bytes
    ) -> tuple[Issue, ...]:
        """What is off-spec about this request; empty when it conforms."""
        key = (method, path, query, content_type, body)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = self._validate(method, path, query, headers, content_type, body)
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = found
        return found

    def _validate(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], content_type: str, body: bytes
    ) -> tuple[Issue, ...]:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        request = _SpecRequest(
            host_url=self._server,
            path=path,
            method=method.lower(),
            body=body or None,
            content_type=content_type,
            parameters=RequestParameters(
                query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
                header=Headers(headers),
            ),
        )
        return tuple(_issue(error) for error in self._validator.iter_errors(request))


@dataclass(slots=True)
class _SpecRequest:
    """The request shape openapi-core's `Request` protocol asks for."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: Any


def _issue(error: Exception) -> Issue:
    name = str(getattr(error, "name", "") or "")
    location = str(getattr(error, "location", "") or "")
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or ()
    detail = "; ".join(str(getattr(e, "message", e)) for e in schema_errors) or str(cause or "")
    message = str(error)
    if detail:
        message = f"{message}: {detail}"
    return Issue(location=location, name=name, message=message)
