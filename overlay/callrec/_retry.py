"""What is retried and how long to wait: the one retry policy, shared by sync and async.

Both vendor operations only mint a new signed URL and change nothing server
side, so retrying them is safe, Siro's POST included.
"""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime

import httpx

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY, RETRYABLE_STATUSES

__all__ = ["backoff_delay", "is_retryable_status", "parse_retry_after", "retry_delay"]


def is_retryable_status(status_code: int) -> bool:
    """408, 429, 500, 502, 503 and 504 are retried; every other status is final."""
    return status_code in RETRYABLE_STATUSES


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be delta-seconds or an HTTP date. Negative, NaN,
    infinite or unparseable values are ignored (None).
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        value = when.timestamp() - (time.time() if now is None else now)
        return max(value, 0.0)
    return value if math.isfinite(value) and value >= 0 else None


def backoff_delay(retry_number: int) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 8 s, minus up to 25%."""
    base = min(INITIAL_RETRY_DELAY * (2.0 ** max(retry_number, 0)), MAX_RETRY_DELAY)
    return base * (1.0 - 0.25 * random.random())  # noqa: S311 - jitter, not cryptography


def retry_delay(retry_number: int, response: httpx.Response | None) -> float:
    """How long to wait before retry ``retry_number`` (0-based): the server's ask, capped, else backoff."""
    if response is not None:
        asked = parse_retry_after(response.headers)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER)
    return backoff_delay(retry_number)
