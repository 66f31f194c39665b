"""Defaults for timeouts and retries, in one place."""

from __future__ import annotations

import httpx

#: Per-attempt httpx timeout: 30 s for reads/writes/pool, 5 s to connect.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: Retries after the first attempt (so 3 attempts in all).
DEFAULT_MAX_RETRIES = 2
#: Wall-clock bound on one whole call, retries and backoff included. httpx's
#: read timeout is per read, so a server trickling a byte every few seconds
#: would otherwise never time out.
DEFAULT_DEADLINE = 120.0
#: Exponential backoff: 0.5 s doubling up to 8 s, then jittered down by up to 25%.
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: Largest Retry-After we honour; larger values are capped to this.
MAX_RETRY_AFTER = 60.0
#: Statuses worth retrying: timeouts, rate limits and transient server errors.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Margin used by SignedUrl.is_expired() and links: a URL this close to expiry is stale.
DEFAULT_EXPIRY_MARGIN = 30.0
