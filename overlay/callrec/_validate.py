"""Input checks done before any request: ids, legs, credentials, URLs."""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
from datetime import timedelta
from typing import Literal, get_args
from urllib.parse import urlsplit

import httpx

from ._errors import MissingCredentialsError, UnexpectedResponseError
from ._redact import redact_url

__all__ = [
    "LEGS",
    "Leg",
    "check_base_url",
    "check_count",
    "check_leg",
    "check_margin",
    "check_recording_id",
    "check_seconds",
    "check_shard",
    "check_signed_url",
    "check_timeout",
    "resolve_credential",
]

_NOT_URL_CHARS = re.compile(r"[^\x21-\x7e]")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")

Leg = Literal["main", "supervisor"]
LEGS: tuple[str, ...] = get_args(Leg)
_MAX_ID_LENGTH = 1024


def check_recording_id(recording_id: object) -> str:
    """Return the id if usable; raise before any request otherwise.

    Any other string travels as exactly one percent-encoded path segment (the
    generated client quotes it with ``safe=""``). "." and ".." are refused
    because URL normalisation would turn them into a different path.
    """
    if not isinstance(recording_id, str):
        raise TypeError(f"recording_id must be a str, not {type(recording_id).__name__}")
    if not recording_id.strip():
        raise ValueError("recording_id must not be empty or whitespace")
    if recording_id in (".", ".."):
        raise ValueError("recording_id must not be '.' or '..'")
    if len(recording_id) > _MAX_ID_LENGTH:
        raise ValueError(f"recording_id is longer than {_MAX_ID_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in recording_id):
        raise ValueError("recording_id must not contain control characters")
    return recording_id


def check_leg(leg: object) -> Leg:
    """Return the leg if it is one of LEGS; raise ValueError listing them otherwise."""
    if leg not in LEGS:
        raise ValueError(f"leg must be one of {', '.join(repr(v) for v in LEGS)}; got {leg!r}")
    return leg  # type: ignore[return-value]  # narrowed by the membership test


def resolve_credential(value: str | None, *, env_var: str, keyword: str) -> str:
    """The explicit value, else the environment variable; checked without echoing it."""
    if value is None:
        value = os.environ.get(env_var)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{keyword} must be a str")
    if value is None or not value.strip():
        raise MissingCredentialsError(env_var, keyword)
    if any(c in value for c in "\r\n\0") or not value.isascii() or not value.isprintable():
        raise ValueError(
            f"{keyword} (or {env_var}) contains CR/LF, control or non-ASCII characters; "
            "refusing to send it (value not shown)"
        )
    return value


@functools.lru_cache(maxsize=64)  # hosts repeat (one storage host per vendor); ipaddress parsing is slow
def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_problem(scheme: str, host: str, has_userinfo: bool) -> str | None:
    """The one URL policy, for base URLs and signed URLs alike."""
    if scheme not in ("https", "http") or not host:
        return "must be an absolute http(s) URL"
    if has_userinfo:
        return "must not contain userinfo (user@host)"
    if scheme == "http" and not _is_loopback(host):
        return "must use https (plain http is accepted only for loopback hosts)"
    return None


def check_base_url(value: str | httpx.URL, *, what: str) -> httpx.URL:
    """Parse and check an API base URL; raise ValueError (redacted) if unusable."""
    try:
        url = httpx.URL(str(value))
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{what} is not a valid URL ({exc.__class__.__name__})") from None
    problem = _url_problem(url.scheme, url.host, bool(url.userinfo)) or (
        "must not have a query or fragment" if url.query or url.fragment else None
    )
    if problem:
        raise ValueError(f"{what} {problem}: {redact_url(url)}")
    return url


def check_signed_url(value: str, *, response: httpx.Response | None = None) -> str:
    """A signed URL from the API must be absolute https without userinfo (http on loopback).

    Checked with urllib's splitter and two regexes rather than a full httpx.URL parse: this
    runs on every call, signed URLs are ~250 characters, and httpx's parser costs ~30 µs on
    them (a third of the SDK's own time per call). Only printable ASCII and a plain DNS name
    or IP literal as host pass, so whatever passes also parses in httpx later.
    """
    if not isinstance(value, str) or _NOT_URL_CHARS.search(value):
        raise UnexpectedResponseError(
            "the API returned a signed URL with spaces, control or non-ASCII characters", response=response
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise UnexpectedResponseError("the API returned a signed URL that does not parse", response=response) from None
    problem = _url_problem(parts.scheme, host, "@" in parts.netloc)
    if problem is None and not (_HOSTNAME.fullmatch(host) or _is_ip(host)):
        problem = "must name a valid host"
    if problem:
        raise UnexpectedResponseError(
            f"the API returned an unusable signed URL ({redact_url(value)}): it {problem}", response=response
        )
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_count(name: str, value: object, *, minimum: int) -> int:
    """An int >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


def check_shard(value: object) -> tuple[int, int] | None:
    """``shard=(k, n)``: shard k of n, 1 <= k <= n (None: every id). A "K/N" string is the CLI's spelling."""
    if value is None:
        return None
    if isinstance(value, str):
        k_text, sep, n_text = value.partition("/")
        if not sep or not k_text.strip().isdigit() or not n_text.strip().isdigit():
            raise ValueError(f"shard must be K/N with 1 <= K <= N (for instance 2/8), not {value!r}")
        value = (int(k_text), int(n_text))
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        raise ValueError(f"shard must be a (k, n) pair of ints with 1 <= k <= n, not {value!r}")
    k, n = value
    if not 1 <= k <= n:
        raise ValueError(f"shard must have 1 <= k <= n, not {k}/{n}")
    return (k, n)


def check_lease_seconds(value: object) -> float:
    """``lease_seconds``: how long a bucket run's lease holds without renewal; at least 1 s (renewals need room)."""
    seconds = check_seconds("lease_seconds", value)
    if seconds < 1.0:
        raise ValueError(f"lease_seconds must be at least 1 second, not {value!r}")
    return seconds


def check_seconds(name: str, value: object) -> float:
    """A finite positive number of seconds (bools, 0, negatives, nan and inf refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


def check_margin(value: object) -> float:
    """A link or expiry margin: seconds (>= 0) or a timedelta."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"margin must be >= 0 seconds (a number or a timedelta), not {value!r}")
    return float(value)


def check_timeout(timeout: object) -> httpx.Timeout:
    """A timeout bounding every phase: positive seconds or an httpx.Timeout without None."""
    from ._constants import DEFAULT_TIMEOUT

    if isinstance(timeout, httpx.Timeout):
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            raise ValueError("timeout must bound every phase (connect, read, write, pool); None is not allowed")
        return timeout
    try:
        seconds = check_seconds("timeout", timeout)
    except ValueError:
        raise ValueError(f"timeout must be a positive number of seconds or an httpx.Timeout, not {timeout!r}") from None
    return httpx.Timeout(seconds, connect=min(seconds, DEFAULT_TIMEOUT.connect or 5.0))
