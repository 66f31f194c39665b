"""Links: a recording's signed URL held across time, re-minted shortly before it expires."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from ._signed_url import SignedUrl

__all__ = ["AsyncLink", "Link"]

#: How long a URL whose expiry the vendor did not tell us is trusted.
UNKNOWN_EXPIRY_TTL = 60.0


class _LinkState:
    def __init__(self, margin: float, label: str) -> None:
        if margin < 0:
            raise ValueError("margin must be >= 0 seconds")
        self.margin = margin
        self.label = label
        self.current: SignedUrl | None = None
        self.minted_at = 0.0
        self.mints = 0

    def fresh(self) -> SignedUrl | None:
        url = self.current
        if url is None:
            return None
        if url.expires_at is None:
            return url if time.monotonic() - self.minted_at < UNKNOWN_EXPIRY_TTL else None
        return None if url.is_expired(margin=self.margin) else url

    def describe(self, name: str) -> str:
        current = self.current
        expires = current.expires_at.isoformat() if current and current.expires_at else None
        return f"{name}({self.label!r}, margin={self.margin:g}, mints={self.mints}, expires_at={expires!r})"

    def store(self, url: SignedUrl) -> SignedUrl:
        self.current, self.minted_at = url, time.monotonic()
        self.mints += 1
        return url


class Link:
    """A recording's URL that stays fresh: ``link.get()`` returns the cached URL while it has
    more than ``margin`` seconds left and mints a new one otherwise. Threads share one refresh.

    Usage::

        link = feather.link("call_123")
        play(link.get().url)   # later calls reuse or renew it
    """

    def __init__(self, mint: Callable[[], SignedUrl], *, margin: float, label: str = "") -> None:
        self._mint = mint
        self._state = _LinkState(margin, label)
        self._lock = threading.Lock()

    @property
    def mints(self) -> int:
        """How many URLs this link has minted."""
        return self._state.mints

    def __repr__(self) -> str:
        return self._state.describe(type(self).__name__)

    def get(self) -> SignedUrl:
        """A URL valid for more than ``margin`` seconds (or of unknown expiry, for up to a minute)."""
        url = self._state.fresh()
        if url is not None:
            return url
        with self._lock:  # the first caller mints; the others wait and reuse its result
            return self._state.fresh() or self._state.store(self._mint())


class AsyncLink:
    """Async twin of :class:`Link`: ``await link.get()``; tasks share one refresh."""

    def __init__(self, mint: Callable[[], Awaitable[SignedUrl]], *, margin: float, label: str = "") -> None:
        self._mint = mint
        self._state = _LinkState(margin, label)
        self._lock = asyncio.Lock()

    @property
    def mints(self) -> int:
        """How many URLs this link has minted."""
        return self._state.mints

    def __repr__(self) -> str:
        return self._state.describe(type(self).__name__)

    async def get(self) -> SignedUrl:
        """A URL valid for more than ``margin`` seconds (or of unknown expiry, for up to a minute)."""
        url = self._state.fresh()
        if url is not None:
            return url
        async with self._lock:
            return self._state.fresh() or self._state.store(await self._mint())
