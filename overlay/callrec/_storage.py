"""The one owner of the storage client (the client that fetches signed URLs).

It is always callrec's own, also when the API client is the user's
``http_client``: no credentials, default headers or cookies, no redirects.
It is created on first use and closed exactly once, by the client that
created this object. ``with_options()`` copies share it by reference (and
share the API connection pool the same way): closing a copy closes nothing,
and a copy used after the original was closed raises instead of quietly
opening a pool nobody would close.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import httpx

from ._download import blocked_cookies

__all__ = ["Storage", "storage_client_kwargs"]

C = TypeVar("C", httpx.Client, httpx.AsyncClient)


def storage_client_kwargs(timeout: httpx.Timeout) -> dict[str, object]:
    """A separate client for signed URLs: no credentials, default headers or cookies, no redirects."""
    from . import __version__  # read on first use, not at import (see __init__)

    return {
        "timeout": timeout,
        "follow_redirects": False,
        "cookies": blocked_cookies(),
        "headers": {"User-Agent": f"callrec/{__version__}"},
    }


class Storage(Generic[C]):
    """A lazily created client with one owner; ``get()`` after ``detach()`` raises."""

    def __init__(self, factory: Callable[[], C], owner: str) -> None:
        self._factory: Callable[[], C] = factory
        self._owner = owner
        self._client: C | None = None
        self._closed = False
        self._lock = threading.Lock()

    def get(self) -> C:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"this {self._owner} (or the client it was copied from) is closed")
            if self._client is None:
                self._client = self._factory()
            return self._client

    def detach(self) -> C | None:
        """Mark closed and hand back the client to close (None if it was never created)."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            return client
