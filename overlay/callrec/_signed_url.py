"""SignedUrl: a short-lived URL to a recording, and how its expiry is read."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

import attrs

from ._constants import DEFAULT_EXPIRY_MARGIN
from ._redact import redact_url

__all__ = ["Provider", "SignedUrl", "parse_epoch", "parse_iso"]

Provider = Literal["feather", "siro"]

# Epoch numbers above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_MS_THRESHOLD = 1e11


def _seconds(margin: float | timedelta) -> float:
    return margin.total_seconds() if isinstance(margin, timedelta) else float(margin)


@attrs.frozen(repr=False)
class SignedUrl:
    """A signed recording URL. The URL is a bearer credential: repr and str hide its query.

    Attributes:
        url: the full signed URL (secret; pass it only to the storage host).
        expires_at: when it expires, timezone-aware UTC, or None when the vendor's value was unreadable.
        provider: "feather" or "siro".
        recording_id: the id it was minted for.
        leg: "main" or "supervisor" for Feather, None for Siro.
        clock_offset: the API's clock minus ours, in seconds, from its ``Date`` header;
            expiry is judged on the API's clock.
    """

    url: str
    expires_at: datetime | None
    provider: Provider
    recording_id: str
    leg: str | None = None
    clock_offset: float = 0.0

    def _server_now(self, now: datetime | None) -> datetime:
        return now if now is not None else datetime.fromtimestamp(time.time() + self.clock_offset, UTC)

    def expires_in(self, *, now: datetime | None = None) -> timedelta | None:
        """Time left before expiry on the API's clock (negative once expired), or None if unknown."""
        if self.expires_at is None:
            return None
        return self.expires_at - self._server_now(now)

    def is_expired(self, margin: float | timedelta = DEFAULT_EXPIRY_MARGIN, *, now: datetime | None = None) -> bool:
        """True once fewer than ``margin`` seconds are left. An unknown expiry counts as not expired."""
        left = self.expires_in(now=now)
        return left is not None and left.total_seconds() <= _seconds(margin)

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat() if self.expires_at else None
        return (
            f"SignedUrl(url={redact_url(self.url)!r}, expires_at={expires!r}, provider={self.provider!r}, "
            f"recording_id={self.recording_id!r}, leg={self.leg!r})"
        )

    def __str__(self) -> str:
        return redact_url(self.url)


def parse_iso(value: object) -> datetime | None:
    """An ISO-8601 timestamp as aware UTC; naive values are taken as UTC; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # year 9999 with a negative offset overflows in UTC
        return None


def parse_epoch(value: object) -> datetime | None:
    """Seconds or milliseconds since the epoch as aware UTC; None if unreadable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond float range: JSON allows any number of digits
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    if seconds > _MS_THRESHOLD:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
