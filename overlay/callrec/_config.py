"""A client's settings, checked once, and the API request they produce.

``ClientConfig`` is immutable: ``with_options()`` makes a new one (checked the
same way) instead of copying a live client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import attrs
import httpx

from ._budget import check_rate_limit
from ._validate import check_base_url, check_count, check_seconds, check_timeout, resolve_credential
from ._vendors import FEATHER, SIRO, Vendor

__all__ = ["NOT_GIVEN", "ClientConfig", "SecretHeaders", "bounded"]


class _NotGiven:
    """Sentinel for "use the client's value" where None would be ambiguous."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()

#: Header names whose values never appear in a repr (httpx itself masks only Authorization).
_SECRET_HEADERS: frozenset[str] | None = None


def _secret_headers() -> frozenset[str]:
    global _SECRET_HEADERS
    if _SECRET_HEADERS is None:
        vendors = {v.auth_header.lower() for v in (FEATHER, SIRO)}
        _SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", *vendors})
    return _SECRET_HEADERS


class SecretHeaders(httpx.Headers):
    """Request headers whose repr shows ``[secure]`` for credentials, as httpx does for Authorization.

    Every API request callrec builds carries these, so ``repr(err.response.request.headers)``
    and the reprs of httpx exceptions chained to callrec's never show an API key or token.
    """

    def __repr__(self) -> str:
        secret = _secret_headers()
        items = [(k, "[secure]" if k.lower() in secret else v) for k, v in self.multi_items()]
        return f"Headers({dict(items)!r})" if len({k for k, _ in items}) == len(items) else f"Headers({items!r})"


def bounded(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The per-attempt timeout, no phase longer than what is left of the deadline."""
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    if all(p is not None and p <= remaining for p in phases):
        return timeout  # the common case: the deadline is further away than any phase
    cap = max(remaining, 0.001)
    return httpx.Timeout(
        connect=min(timeout.connect or cap, cap),
        read=min(timeout.read or cap, cap),
        write=min(timeout.write or cap, cap),
        pool=min(timeout.pool or cap, cap),
    )


@attrs.frozen(repr=False)
class ClientConfig:
    """Everything a client was told, validated; shared read-only by its with_options() copies."""

    vendor: Vendor
    credential: str
    base_url: httpx.URL
    timeout: httpx.Timeout
    max_retries: int
    deadline: float
    #: Requests per second the API allows (None: found from throttling); see ``_budget``.
    rate_limit: float | None
    default_headers: httpx.Headers
    #: What every API request sends: Accept, User-Agent, the default headers, the credential last.
    headers: httpx.Headers
    #: base_url without query or fragment and without its trailing slash: the path prefix of a mount point.
    url_prefix: str

    @classmethod
    def create(
        cls,
        vendor: Vendor,
        credential: str | None,
        *,
        base_url: str | httpx.URL | None,
        timeout: object,
        max_retries: object,
        deadline: object,
        default_headers: dict[str, str] | None,
        rate_limit: object = None,
    ) -> ClientConfig:
        key = resolve_credential(credential, env_var=vendor.credential_env, keyword=vendor.credential_keyword)
        raw_base = base_url if base_url is not None else os.environ.get(vendor.base_url_env) or vendor.default_base_url
        checked_base = check_base_url(raw_base, what=f"base_url ({vendor.base_url_env})")
        defaults = httpx.Headers(default_headers or {})
        for name, value in defaults.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"default header {name!r} contains CR/LF")
        from . import __version__  # read on first use, not at import (see __init__)

        headers = httpx.Headers({"Accept": "application/json", "User-Agent": f"callrec/{__version__}"})
        headers.update(defaults)
        headers[vendor.auth_header] = key
        return cls(
            vendor=vendor,
            credential=key,
            base_url=checked_base,
            timeout=check_timeout(timeout),
            max_retries=check_count("max_retries", max_retries, minimum=0),
            deadline=check_seconds("deadline", deadline),
            rate_limit=check_rate_limit(rate_limit),
            default_headers=defaults,
            headers=headers,
            url_prefix=str(checked_base.copy_with(query=None, fragment=None)).rstrip("/"),
        )

    def evolve(
        self, *, timeout: object, max_retries: object, deadline: object, rate_limit: object = NOT_GIVEN
    ) -> ClientConfig:
        """A copy with the given settings changed (NOT_GIVEN keeps one), checked like the constructor's."""
        changes: dict[str, Any] = {}
        if timeout is not NOT_GIVEN:
            changes["timeout"] = check_timeout(timeout)
        if max_retries is not NOT_GIVEN:
            changes["max_retries"] = check_count("max_retries", max_retries, minimum=0)
        if deadline is not NOT_GIVEN:
            changes["deadline"] = check_seconds("deadline", deadline)
        if rate_limit is not NOT_GIVEN:
            changes["rate_limit"] = check_rate_limit(rate_limit)
        return attrs.evolve(self, **changes)

    def build_request(
        self, build: Callable[..., httpx.Request], recording_id: str, leg: str | None, remaining: float
    ) -> httpx.Request:
        """The API request for one attempt, with a timeout no longer than ``remaining``."""
        args = self.vendor.request_args(recording_id, leg)
        # The URL is assembled as text and parsed once by httpx: base_url's path
        # prefix (a proxy mount point) + the generated, already percent-encoded path.
        url = self.url_prefix + args["url"]
        params = args.get("params")
        if params:
            url += "?" + urlencode(params)
        request = build(args["method"].upper(), url, headers=self.headers, timeout=bounded(self.timeout, remaining))
        request.headers = SecretHeaders(request.headers)
        return request
