"""The public clients: FeatherClient, SiroClient and their async twins.

Each class only writes out its public signature (IDEs read them) and hands
over to its driver. How a policy difference between the flavours is kept
impossible to write by accident:

- Every decision lives once, in flavour-free code: the call engine
  (``_engine.ApiCall``: request, judging responses and exceptions, retry,
  backoff, deadline, logging), the transfer policy (``_download.Transfer``),
  the bulk rules (``_bulk``) and the shared checks (``_base``, ``_config``,
  ``_validate``).
- The drivers only move bytes and sleep, and the sync driver is not written
  by hand: ``scripts/unasync.py`` generates ``_sync_client.py`` from
  ``_async_client.py`` by token substitution (as httpcore does), and
  ``make check-generated`` and ``tests/test_unasync.py`` fail when the
  committed file differs from what the script writes. The only difference
  left is ``_io_async`` against ``_io_sync`` (sleep, deadline scope, threads,
  the bounded task runner).
- ``tests/test_exported_members.py`` checks that each sync class and its
  async twin have the same public signatures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx

from ._async_client import AsyncClientBase
from ._bulk import BulkItem
from ._constants import DEFAULT_DEADLINE, DEFAULT_EXPIRY_MARGIN, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from ._download import DownloadResult, ProgressCallback
from ._link import AsyncLink, Link
from ._signed_url import SignedUrl
from ._sync_client import SyncClientBase
from ._validate import Leg, check_leg
from ._vendors import FEATHER, SIRO

if TYPE_CHECKING:
    from feather_api import AuthenticatedClient as FeatherGenerated
    from siro_api import AuthenticatedClient as SiroGenerated

__all__ = ["AsyncFeatherClient", "AsyncSiroClient", "FeatherClient", "SiroClient"]


class FeatherClient(SyncClientBase):
    """Feather AI: fresh presigned URLs for agent-call recordings.

    Usage::

        with FeatherClient() as feather:  # FEATHER_API_KEY, FEATHER_BASE_URL
            url = feather.recording_url("call_123", leg="supervisor")
    """

    _vendor = FEATHER

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float = DEFAULT_DEADLINE,
        default_headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        config = self._config_from(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
        )
        self._init(config, http_client)

    @property
    def generated(self) -> FeatherGenerated:
        """The generated ``feather_api`` client, for operations callrec does not wrap.

        Configured like this client: base URL, credential (in the spec's header),
        headers, timeout, no redirects, and this client's connection pool (your
        ``http_client`` when you gave one). It does not retry. Closed with this client.

        Usage: ``get_recording_url.sync_detailed(call_id, client=feather.generated)``
        """
        return self._generated_client()  # type: ignore[no-any-return]

    def recording_url(self, recording_id: str, *, leg: Leg = "main") -> SignedUrl:
        """Mint a fresh signed URL for a call's recording (``leg``: "main" or "supervisor")."""
        return self._recording_url(recording_id, check_leg(leg))

    def download(
        self,
        recording_id: str,
        dest: str | os.PathLike[str],
        *,
        leg: Leg = "main",
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a call's recording to ``dest`` (a file, or a folder: ``feather-<id>-<leg>.<ext>``).

        Streams to a temporary file beside the destination and renames it into place; mints a fresh
        URL and resumes with Range when the signed URL expires. ``progress(done, total)`` is called
        per chunk; ``deadline`` (seconds, default an hour) bounds the whole download.
        """
        return self._download(recording_id, dest, check_leg(leg), overwrite, progress, deadline)

    def download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        leg: Leg = "main",
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest_dir`` with ``concurrency`` threads; see ``manifest.jsonl``.

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes.
        """
        return self._download_many(ids, dest_dir, check_leg(leg), concurrency, overwrite, on_item)

    def link(self, recording_id: str, *, leg: Leg = "main", margin: float | timedelta = DEFAULT_EXPIRY_MARGIN) -> Link:
        """A Link whose ``get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, check_leg(leg), margin)


class SiroClient(SyncClientBase):
    """Siro: short-lived signed URLs for redacted recording audio.

    Usage::

        with SiroClient() as siro:  # SIRO_AUTH_TOKEN, SIRO_BASE_URL
            url = siro.recording_url("rec_456")
    """

    _vendor = SIRO

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float = DEFAULT_DEADLINE,
        default_headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        config = self._config_from(
            token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
        )
        self._init(config, http_client)

    @property
    def generated(self) -> SiroGenerated:
        """The generated ``siro_api`` client, for operations callrec does not wrap.

        Configured like this client: base URL, credential (in the spec's header),
        headers, timeout, no redirects, and this client's connection pool (your
        ``http_client`` when you gave one). It does not retry. Closed with this client.

        Usage: ``create_signed_url.sync_detailed(recording_id, client=siro.generated)``
        """
        return self._generated_client()  # type: ignore[no-any-return]

    def recording_url(self, recording_id: str) -> SignedUrl:
        """Mint a fresh signed URL for a recording's redacted audio."""
        return self._recording_url(recording_id, None)

    def download(
        self,
        recording_id: str,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a recording's audio to ``dest`` (a file, or a folder: ``siro-<id>.<ext>``).

        Streams to a temporary file beside the destination and renames it into place; mints a fresh
        URL and resumes with Range when the signed URL expires. ``progress(done, total)`` is called
        per chunk; ``deadline`` (seconds, default an hour) bounds the whole download.
        """
        return self._download(recording_id, dest, None, overwrite, progress, deadline)

    def download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest_dir`` with ``concurrency`` threads; see ``manifest.jsonl``.

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes.
        """
        return self._download_many(ids, dest_dir, None, concurrency, overwrite, on_item)

    def link(self, recording_id: str, *, margin: float | timedelta = DEFAULT_EXPIRY_MARGIN) -> Link:
        """A Link whose ``get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, None, margin)


class AsyncFeatherClient(AsyncClientBase):
    """Async twin of :class:`FeatherClient`.

    Usage::

        async with AsyncFeatherClient() as feather:
            url = await feather.recording_url("call_123")
    """

    _vendor = FEATHER

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float = DEFAULT_DEADLINE,
        default_headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        config = self._config_from(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
        )
        self._init(config, http_client)

    @property
    def generated(self) -> FeatherGenerated:
        """The generated ``feather_api`` client, for operations callrec does not wrap.

        Configured like this client: base URL, credential (in the spec's header),
        headers, timeout, no redirects, and this client's connection pool (your
        ``http_client`` when you gave one). It does not retry. Closed with this client.

        Usage: ``await get_recording_url.asyncio_detailed(call_id, client=feather.generated)``
        """
        return self._generated_client()  # type: ignore[no-any-return]

    async def recording_url(self, recording_id: str, *, leg: Leg = "main") -> SignedUrl:
        """Mint a fresh signed URL for a call's recording (``leg``: "main" or "supervisor")."""
        return await self._recording_url(recording_id, check_leg(leg))

    async def download(
        self,
        recording_id: str,
        dest: str | os.PathLike[str],
        *,
        leg: Leg = "main",
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a call's recording to ``dest`` (a file, or a folder: ``feather-<id>-<leg>.<ext>``).

        See :meth:`FeatherClient.download`.
        """
        return await self._download(recording_id, dest, check_leg(leg), overwrite, progress, deadline)

    async def download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        leg: Leg = "main",
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest_dir``, ``concurrency`` at a time; see ``manifest.jsonl``.

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes.
        """
        return await self._download_many(ids, dest_dir, check_leg(leg), concurrency, overwrite, on_item)

    def link(
        self, recording_id: str, *, leg: Leg = "main", margin: float | timedelta = DEFAULT_EXPIRY_MARGIN
    ) -> AsyncLink:
        """An AsyncLink whose ``await get()`` returns a URL with more than ``margin`` seconds left."""
        return self._link(recording_id, check_leg(leg), margin)


class AsyncSiroClient(AsyncClientBase):
    """Async twin of :class:`SiroClient`.

    Usage::

        async with AsyncSiroClient() as siro:
            url = await siro.recording_url("rec_456")
    """

    _vendor = SIRO

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        deadline: float = DEFAULT_DEADLINE,
        default_headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        config = self._config_from(
            token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
        )
        self._init(config, http_client)

    @property
    def generated(self) -> SiroGenerated:
        """The generated ``siro_api`` client, for operations callrec does not wrap.

        Configured like this client: base URL, credential (in the spec's header),
        headers, timeout, no redirects, and this client's connection pool (your
        ``http_client`` when you gave one). It does not retry. Closed with this client.

        Usage: ``await create_signed_url.asyncio_detailed(recording_id, client=siro.generated)``
        """
        return self._generated_client()  # type: ignore[no-any-return]

    async def recording_url(self, recording_id: str) -> SignedUrl:
        """Mint a fresh signed URL for a recording's redacted audio."""
        return await self._recording_url(recording_id, None)

    async def download(
        self,
        recording_id: str,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a recording's audio to ``dest`` (a file, or a folder: ``siro-<id>.<ext>``).

        See :meth:`SiroClient.download`.
        """
        return await self._download(recording_id, dest, None, overwrite, progress, deadline)

    async def download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        *,
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest_dir``, ``concurrency`` at a time; see ``manifest.jsonl``.

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes.
        """
        return await self._download_many(ids, dest_dir, None, concurrency, overwrite, on_item)

    def link(self, recording_id: str, *, margin: float | timedelta = DEFAULT_EXPIRY_MARGIN) -> AsyncLink:
        """An AsyncLink whose ``await get()`` returns a URL with more than ``margin`` seconds left."""
        return self._link(recording_id, None, margin)
