"""Faults the fake server injects on demand.

Each fault is a small frozen dataclass. Hand them to an origin of a running
`FakeServer`: `fake.feather.queue(Status(503))` applies to the next request
only (one queue entry per request, then normal answers resume);
`fake.storage.always(Latency(0.05))` applies to every request until `clear()`.
Pass a tuple to `queue` to combine several faults on one request.

    Answer replaced (the last one given wins)
    ├── Status(code, body, headers, retry_after, retry_after_ms)  vendor-shaped error
    ├── MalformedJson()          200, the normal JSON body cut in half
    ├── HtmlProxyError(status)   nginx-style text/html error page
    ├── SiroError(message)       Siro 200 with {"data": {"error": true, ...}}
    ├── RedirectTo(origin, status)  Location: same path on another origin
    ├── ExpiredUrl()             S3 403 AccessDenied "Request has expired"
    ├── GcsExpiredToken()        GCS 400 ExpiredToken
    ├── NonAudio(body)           200 with the audio content type but an XML error page
    └── Garbage(body, content_type, status)  arbitrary bytes
    Throttling (a standing fault: `fake.feather.always(RateLimit(20, burst=5))`)
    └── RateLimit(per_second, burst, retry_after, status)  429 + Retry-After beyond a token bucket
    Storage behaviour changed
    └── IgnoreRange()            200 with the full body, whatever Range says
    Delivery changed (combine freely with the above)
    ├── Latency(seconds)         wait, then answer normally
    ├── StallBeforeHeaders(seconds)  wait, then close without answering
    ├── Trickle(chunk_size, interval)  body a few bytes at a time
    ├── Chunked()                Transfer-Encoding: chunked, no Content-Length
    ├── Reset(after_bytes)       TCP RST (SO_LINGER 0), before any byte by default
    ├── ShortBody(missing)       Content-Length promises more than is sent, then close
    ├── CutBody(after_bytes)     no Content-Length, close early: looks like success
    └── ExpireMidDownload(after_bytes)  send some bytes, close, expire every URL minted so far
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "Chunked",
    "CutBody",
    "ExpireMidDownload",
    "ExpiredUrl",
    "Fault",
    "Garbage",
    "GcsExpiredToken",
    "HtmlProxyError",
    "IgnoreRange",
    "Latency",
    "MalformedJson",
    "NonAudio",
    "RateLimit",
    "RedirectTo",
    "Reset",
    "ShortBody",
    "SiroError",
    "StallBeforeHeaders",
    "Status",
    "Trickle",
]

OriginName: TypeAlias = Literal["feather", "siro", "storage", "elsewhere"]


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _status_code(code: int) -> None:
    if not 100 <= code <= 599:
        raise ValueError(f"status must be 100..599, got {code!r}")


@dataclass(frozen=True, slots=True)
class Status:
    """Answer with this status and the vendor's error body for it.

    Args:
        code: The HTTP status.
        body: Body to send instead of the vendor-shaped default.
        headers: Extra response headers.
        retry_after: Value of a `Retry-After` header (seconds or an HTTP date).
        retry_after_ms: Value of a `retry-after-ms` header.
        content_type: Content type of `body` (default: the vendor's error type).

    Usage: `fake.feather.queue(Status(503, retry_after="1"))`
    """

    code: int
    body: bytes | str | None = None
    headers: Mapping[str, str] | None = None
    retry_after: str | int | float | None = None
    retry_after_ms: str | int | float | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        _status_code(self.code)


@dataclass(frozen=True, slots=True)
class Latency:
    """Wait `seconds` before answering normally."""

    seconds: float

    def __post_init__(self) -> None:
        _non_negative("seconds", self.seconds)


@dataclass(frozen=True, slots=True)
class StallBeforeHeaders:
    """Send nothing for `seconds`, then close the connection without an answer.

    A client whose read timeout is shorter sees a timeout; a patient one sees
    the server disconnect without a response.
    """

    seconds: float

    def __post_init__(self) -> None:
        _non_negative("seconds", self.seconds)


@dataclass(frozen=True, slots=True)
class Trickle:
    """Send the headers at once, then the body `chunk_size` bytes every `interval` seconds."""

    chunk_size: int = 1
    interval: float = 0.05

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        _non_negative("interval", self.interval)


@dataclass(frozen=True, slots=True)
class Chunked:
    """Frame the body with `Transfer-Encoding: chunked` and no `Content-Length`."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the connection with a TCP RST (SO_LINGER 0).

    Args:
        after_bytes: None resets before any response byte; a number sends the
            headers and that many body bytes first.
    """

    after_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.after_bytes is not None:
            _non_negative("after_bytes", self.after_bytes)


@dataclass(frozen=True, slots=True)
class ShortBody:
    """Declare the full `Content-Length`, send `missing` bytes fewer, then close."""

    missing: int = 1

    def __post_init__(self) -> None:
        if self.missing < 1:
            raise ValueError("missing must be >= 1")


@dataclass(frozen=True, slots=True)
class CutBody:
    """Send no `Content-Length`, only `after_bytes` of the body, then close: it looks like success."""

    after_bytes: int

    def __post_init__(self) -> None:
        _non_negative("after_bytes", self.after_bytes)


@dataclass(frozen=True, slots=True)
class MalformedJson:
    """Answer 200 with the normal JSON body cut in half."""


@dataclass(frozen=True, slots=True)
class HtmlProxyError:
    """Answer `status` with an nginx-style `text/html` error page."""

    status: int = 502

    def __post_init__(self) -> None:
        _status_code(self.status)


@dataclass(frozen=True, slots=True)
class SiroError:
    """Answer Siro-style 200 `{"data": {"error": true, "errorMessage": message}}`."""

    message: str = "Failed to create signed URL"


@dataclass(frozen=True, slots=True)
class RedirectTo:
    """Redirect to the same path and query on another origin.

    Args:
        origin: "elsewhere", "storage", "feather", "siro", or an absolute origin URL.
        status: The redirect status (301, 302, 303, 307 or 308).
    """

    origin: str = "elsewhere"
    status: int = 302

    def __post_init__(self) -> None:
        if self.status not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301/302/303/307/308, got {self.status!r}")
        named = self.origin in ("elsewhere", "storage", "feather", "siro")
        if not named and not self.origin.startswith(("http://", "https://")):
            raise ValueError(f"origin must be an origin name or an absolute URL, got {self.origin!r}")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Allow `per_second` requests per second to this origin (a token bucket holding `burst`); answer the rest
    `status` (429, or 503 as S3's SlowDown) with `Retry-After: retry_after`.

    A standing fault: give it to `always()`; the bucket belongs to the origin and starts full.
    `origin.throttled` counts the requests it refused.

    Usage: `fake.feather.always(faults.RateLimit(20, burst=5))`
    """

    per_second: float
    burst: int = 5
    retry_after: str | int | float | None = 1
    status: int = 429

    def __post_init__(self) -> None:
        if not self.per_second > 0 or self.per_second == float("inf"):
            raise ValueError(f"per_second must be a positive finite number, got {self.per_second!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {self.burst!r}")
        if self.status not in (429, 503):
            raise ValueError(f"status must be 429 or 503, got {self.status!r}")


@dataclass(frozen=True, slots=True)
class IgnoreRange:
    """Storage answers 200 with the full body, ignoring `Range` and `If-Range`."""


@dataclass(frozen=True, slots=True)
class ExpireMidDownload:
    """Send the headers and `after_bytes` of the body, then close the connection.

    Every URL minted before that moment answers 403 "Request has expired" from then on.
    """

    after_bytes: int

    def __post_init__(self) -> None:
        _non_negative("after_bytes", self.after_bytes)


@dataclass(frozen=True, slots=True)
class ExpiredUrl:
    """Storage answers the S3 403 `AccessDenied` "Request has expired"."""


@dataclass(frozen=True, slots=True)
class GcsExpiredToken:
    """Storage answers the GCS 400 `ExpiredToken`."""


@dataclass(frozen=True, slots=True)
class NonAudio:
    """Answer 200 with the recording's audio content type but an XML error page as body."""

    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Garbage:
    """Answer `status` with arbitrary bytes."""

    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200

    def __post_init__(self) -> None:
        _status_code(self.status)


Fault: TypeAlias = (
    Status
    | Latency
    | StallBeforeHeaders
    | Trickle
    | Chunked
    | Reset
    | ShortBody
    | CutBody
    | MalformedJson
    | HtmlProxyError
    | SiroError
    | RedirectTo
    | IgnoreRange
    | RateLimit
    | ExpireMidDownload
    | ExpiredUrl
    | GcsExpiredToken
    | NonAudio
    | Garbage
)
"""Any one fault."""
