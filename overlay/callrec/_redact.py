"""What is secret and how it is hidden: the one redaction policy.

A signed URL is a bearer credential (its query string carries the signature),
so anything that prints a URL goes through :func:`redact_url`. httpx logs every
request URL at INFO on the ``httpx`` logger and httpcore logs response headers at
DEBUG; :func:`install_log_redaction` adds a filter to those loggers that rewrites
URLs before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import httpx

__all__ = ["install_log_redaction", "redact_text", "redact_url", "scrub_exception"]

_URL_IN_TEXT = re.compile(r"(https?://[^\s\"'<>?#]+)\?[^\s\"'<>#]*")


def redact_url(url: str | httpx.URL) -> str:
    """The URL with its query string and userinfo replaced by a marker."""
    try:
        parsed = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparseable url>"
    shown = parsed.copy_with(query=None, fragment=None, username=None, password=None)
    text = str(shown)
    if parsed.userinfo:
        text = text.replace("://", "://<redacted>@", 1)
    return text + ("?<redacted>" if parsed.query else "")


E = TypeVar("E", bound=BaseException)


def scrub_exception(exc: E) -> E:
    """The same exception, its request (and text) no longer showing a signed URL's query string.

    Storage failures are chained to callrec's DownloadError so the cause stays
    visible; httpx exceptions carry the request, whose URL is the signed URL.
    """
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:  # no request attached
            request = None
        if request is not None:
            exc.request = httpx.Request(request.method, redact_url(request.url))
    exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
    return exc


def redact_text(text: str) -> str:
    """Replace the query string of every URL inside free text."""
    return _URL_IN_TEXT.sub(r"\1?<redacted>", text)


class _RedactingFilter(logging.Filter):
    """Rewrites URL arguments of httpx's log records (e.g. "HTTP Request: GET <url>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_text(record.msg)
        return True

    @staticmethod
    def _clean(arg: Any) -> Any:
        if isinstance(arg, httpx.URL):
            return redact_url(arg)
        if isinstance(arg, str) and "://" in arg:
            return redact_text(arg)
        return arg


_FILTER = _RedactingFilter()


class _QueryFilter(_RedactingFilter):
    """urllib3 logs a request's target as path and query, without the scheme: the query goes too."""

    @staticmethod
    def _clean(arg: Any) -> Any:
        arg = _RedactingFilter._clean(arg)
        if isinstance(arg, str) and "?" in arg:
            path, _, _query = arg.partition("?")
            return f"{path}?<redacted>"
        return arg


_QUERY_FILTER = _QueryFilter()
#: urllib3 (storage requests): "GET /path?query HTTP/1.1" at DEBUG; its warnings carry whole URLs.
_URLLIB3_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
)


#: httpx's INFO request log, and httpcore's DEBUG traces, which print response headers
#: (a redirect's Location carries the signed query). Logger filters do not apply to
#: child loggers, so each httpcore logger is listed.
_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks")


def install_log_redaction() -> None:
    """Attach the redacting filters to httpx's, httpcore's and urllib3's loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _QUERY_FILTER not in logger.filters:
            logger.addFilter(_QUERY_FILTER)
