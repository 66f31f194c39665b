"""The async clients: the driver, which moves bytes and sleeps for the engine (``_engine``) and the transfer
policy (``_download``), and AsyncFeatherClient / AsyncSiroClient, which write out the public signatures.

This file is the source of ``_sync_client.py``: ``scripts/unasync.py`` writes
that one from this one by token substitution (``make check-generated`` and
the tests fail when they differ). Put no decision here: a decision goes in the
engine, ``Transfer``, ``_bulk`` or ``_base``, where both flavours share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Self

import httpx

from . import _io_async as _io
from . import _otel
from ._base import BaseClient
from ._bulk import (
    ITEM_ERRORS,
    BulkItem,
    adopted,
    already_done,
    in_shard,
    iter_unique_ids,
    record_on_commit,
    report,
    settle,
    start_fleet,
    stop_fleet,
    unique_ids,
    unknown_object,
)
from ._config import ClientConfig
from ._constants import DEFAULT_DEADLINE, DEFAULT_EXPIRY_MARGIN, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from ._destinations import DestinationLike, ExportRun, Target, open_export, pick_dest
from ._download import (
    Action,
    CommitHook,
    DownloadResult,
    ProgressCallback,
    Transfer,
    complete,
)
from ._errors import CallrecError
from ._lease import LEASE_SECONDS
from ._link import AsyncLink
from ._progress import ExportProgress
from ._results import ExportSummary
from ._signed_url import SignedUrl
from ._storage import Storage, storage_client_kwargs
from ._transport import BODY_READER
from ._validate import (
    Leg,
    check_count,
    check_lease_seconds,
    check_leg,
    check_margin,
    check_recording_id,
    check_shard,
)
from ._vendors import FEATHER, SIRO

if TYPE_CHECKING:
    from feather_api import AuthenticatedClient as FeatherGenerated
    from siro_api import AuthenticatedClient as SiroGenerated

__all__ = ["AsyncClientBase", "AsyncFeatherClient", "AsyncSiroClient"]


def _close_run(run: ExportRun) -> None:
    run.close()


class AsyncClientBase(BaseClient):
    """The I/O of the async clients; every decision is the engine's."""

    _http: httpx.AsyncClient
    _storage: Storage[httpx.AsyncClient]

    def _init(self, config: ClientConfig, http_client: httpx.AsyncClient | None) -> None:
        _io.check_http_client(http_client)
        http = http_client or _io.new_client(
            timeout=config.timeout, follow_redirects=False, transport=_io.api_transport()
        )
        storage = Storage(
            lambda: _io.new_client(transport=_io.storage_transport(), **storage_client_kwargs(self.timeout)),
            type(self).__name__,
        )
        self._setup(config, http, owns_http=http_client is None, storage=storage, owns_storage=True)

    async def _recording_url(
        self, recording_id: str, leg: str | None, deadline: float | None = None, *, patient: bool = False
    ) -> SignedUrl:
        with _otel.span(_otel.RECORDING_URL, self._telemetry(recording_id, leg)):
            return await self._mint(recording_id, leg, deadline, patient=patient)

    async def _mint(
        self, recording_id: str, leg: str | None, deadline: float | None = None, *, patient: bool = False
    ) -> SignedUrl:
        call = self._api_call(recording_id, leg, deadline, patient=patient)
        while True:
            while (wait := call.wait_for_budget()) > 0:
                await _io.pace(wait)
            request = call.next_request(self._http.build_request)
            step: SignedUrl | float
            try:
                async with _io.deadline_scope(call.remaining()):
                    response = await self._http.send(request, stream=True, follow_redirects=False)
                    try:
                        async for chunk in response.aiter_bytes():
                            call.on_chunk(response, chunk)
                    except httpx.DecodingError:
                        call.on_undecodable_body()
                    finally:
                        await response.aclose()
            except TimeoutError:
                call.deadline_passed()
            except httpx.TransportError as exc:
                step = call.on_transport_error(exc)
            else:
                self._count_response(response.status_code)
                step = call.on_response(response)
            if isinstance(step, SignedUrl):
                return step
            await _io.sleep(step)

    async def _transfer_once(self, transfer: Transfer, url: str) -> Action:
        try:
            async with self._storage.get().stream(
                "GET",
                url,
                headers=transfer.request_headers(),
                timeout=transfer.timeout(self.timeout),
                extensions=transfer.request_extensions(_io.interruptible),
            ) as response:
                if transfer.on_response(response) is Action.ERROR:
                    body = b""
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if transfer.error_body_complete(body):
                            break
                    return transfer.on_error_body(response, body)
                reader = response.extensions.get(BODY_READER)
                if reader is not None:  # callrec's storage transport: socket to the sink's buffers, no copy
                    await _io.read_storage_body(reader, transfer)
                    return transfer.on_body_end()
                async for chunk in response.aiter_raw():
                    transfer.on_chunk(chunk)
                    if transfer.sink.full:  # the disk is behind: wait (in a thread, for the event loop)
                        await _io.to_thread(transfer.sink.wait_for_room)
                return transfer.on_body_end()
        except httpx.TransportError as exc:
            return transfer.on_transport_error(exc)

    async def _download(
        self,
        recording_id: str,
        dest: DestinationLike | ExportRun,
        leg: str | None,
        overwrite: bool,
        progress: ProgressCallback | None,
        deadline: float | None,
        on_committed: CommitHook | None = None,
        patient: bool = False,
    ) -> DownloadResult:
        with _otel.span(_otel.DOWNLOAD, self._telemetry(recording_id, leg)) as span:
            result = await self._download_once(
                recording_id, dest, leg, overwrite, progress, deadline, on_committed, patient
            )
            span.set({"callrec.bytes": result.bytes, "callrec.url_refreshes": result.url_refreshes})
            return result

    async def _download_once(
        self,
        recording_id: str,
        dest: DestinationLike | ExportRun,
        leg: str | None,
        overwrite: bool,
        progress: ProgressCallback | None,
        deadline: float | None,
        on_committed: CommitHook | None,
        patient: bool,
    ) -> DownloadResult:
        target, deadline_at = self._plan_download(recording_id, dest, leg, deadline)
        if not overwrite:
            with target.errors():
                await _io.to_thread(target.refuse_existing)
        signed = await self._recording_url(recording_id, leg, patient=patient)
        with target.errors():
            return await self._fetch(
                target, deadline_at, signed, recording_id, leg, overwrite, progress, on_committed, patient
            )

    async def _fetch(
        self,
        target: Target,
        deadline_at: float,
        signed: SignedUrl,
        recording_id: str,
        leg: str | None,
        overwrite: bool,
        progress: ProgressCallback | None,
        on_committed: CommitHook | None,
        patient: bool,
    ) -> DownloadResult:
        sink = target.open_sink()
        try:
            transfer = Transfer(
                sink,
                progress=progress,
                deadline=deadline_at,
                max_retries=self.max_retries,
                stopped=_io.stopped,
                budget_for=self._budgets.for_url,
                patient=patient,
            )
            action = Action.STREAM
            with _otel.span(_otel.TRANSFER):
                while action is not Action.DONE:
                    if action is Action.RETRY:
                        await _io.sleep(transfer.take_delay())
                    if action is Action.REFRESH or transfer.url_is_stale(signed):
                        signed = await self._refresh_url(transfer, recording_id, leg)
                    while (wait := transfer.wait_for_budget(signed.url)) > 0:
                        await _io.pace(wait)
                    try:
                        async with _io.deadline_scope(transfer.remaining()):
                            action = await self._transfer_once(transfer, signed.url)
                    except TimeoutError:
                        transfer.deadline_passed()
            with _otel.span(_otel.COMMIT):
                return await _io.run_to_completion(
                    complete, transfer, target, overwrite=overwrite, on_committed=on_committed
                )
        except BaseException:
            # After a commit that completed this removes nothing. Off the event loop: it joins the sink's thread
            # and, for an upload, tells the store to abort it; finished even when the task is being cancelled.
            await _io.run_to_completion(sink.abort)
            raise

    async def _refresh_url(self, transfer: Transfer, recording_id: str, leg: str | None) -> SignedUrl:
        _otel.event(_otel.RESIGN, {"callrec.url_refreshes": transfer.refreshes + 1})
        try:
            return await self._recording_url(recording_id, leg, deadline=transfer.remaining(), patient=transfer.patient)
        except CallrecError as exc:
            transfer.on_refresh_error(exc)

    async def _export(
        self,
        todo: Iterable[str],
        total: int | None,
        dest: DestinationLike,
        leg: str | None,
        concurrency: int,
        overwrite: bool,
        on_item: Callable[[BulkItem], None] | None,
        part: tuple[int, int] | None,
        lease: float,
        progress: ExportProgress | None,
        keep: Callable[[BulkItem], None] | None,
    ) -> ExportProgress:
        """The run over ``todo`` (checked, unique, this shard's ids); each finished item to ``progress``, then
        ``keep``. Returns the counters (``progress``, or the run's own)."""
        export = open_export(dest)
        counters = progress if progress is not None else ExportProgress()
        counters.start(total, self.rate_stats)

        def deliver(item: BulkItem) -> None:
            counters.item(item)
            if keep is not None:
                keep(item)

        async def one(rid: str) -> BulkItem:
            started = _io.now()
            step = await item(rid)
            size = step.result.bytes if step.status == "downloaded" and step.result is not None else 0
            _otel.record_item(step.status, self._vendor.name, size, _io.now() - started)
            return step

        async def item(rid: str) -> BulkItem:
            manifest.check()
            skipped = already_done(manifest, rid, leg, overwrite)
            if skipped is None and unknown_object(manifest, rid, leg, overwrite):
                skipped = await _io.to_thread(adopted, manifest, rid, leg)
            if skipped is not None:
                return report(skipped, on_item)
            attempt = 0
            while True:
                attempt += 1
                outcome: DownloadResult | Exception
                try:
                    record = record_on_commit(manifest, rid, leg, attempt)
                    outcome = await self._download(rid, manifest, leg, overwrite, None, None, record, patient=True)
                except ITEM_ERRORS as exc:
                    outcome = exc
                step = settle(rid, leg, attempt, outcome, self.max_retries)
                if isinstance(step, BulkItem):
                    break
                await _io.sleep(step)
            if step.status != "downloaded":  # a download's entry was recorded with its commit
                await _io.to_thread(manifest.record, step)
            return report(step, on_item)

        # The lock or lease, and the manifest, before any API or storage request (ExportLockedError); a
        # cancellation while it is being taken releases it.
        manifest = await _io.acquire(lambda: export.begin(self._vendor.name, part, lease), _close_run)
        attributes = {"callrec.vendor": self._vendor.name, "callrec.concurrency": concurrency}
        try:
            # A shard of a fleet with no rate_limit shares the limit one scout finds (_fleet): a worker may hold
            # here until it is found; a cancellation meanwhile stops the pacing (its share is then free).
            budget = self._budgets.api
            pacer = await _io.acquire(lambda: start_fleet(manifest, self._vendor.name, part, budget), stop_fleet)
            try:
                with _otel.span(_otel.DOWNLOAD_MANY, attributes):
                    await _io.for_each_bounded(one, todo, concurrency, deliver)
            finally:
                await _io.run_to_completion(stop_fleet, pacer)
        finally:
            await _io.run_to_completion(manifest.close)
        return counters

    async def _download_many(
        self,
        ids: Iterable[str],
        dest: DestinationLike,
        leg: str | None,
        concurrency: int,
        overwrite: bool,
        on_item: Callable[[BulkItem], None] | None,
        shard: object,
        lease_seconds: object,
        progress: ExportProgress | None,
    ) -> list[BulkItem]:
        check_count("concurrency", concurrency, minimum=1)
        part, lease = check_shard(shard), check_lease_seconds(lease_seconds)
        todo = list(in_shard(unique_ids(ids), part))  # every id checked before anything is sent
        order = {rid: n for n, rid in enumerate(todo)}
        items: list[BulkItem | None] = [None] * len(todo)

        def keep(item: BulkItem) -> None:
            items[order[item.recording_id]] = item

        await self._export(todo, len(todo), dest, leg, concurrency, overwrite, on_item, part, lease, progress, keep)
        return [item for item in items if item is not None]

    async def _export_counts(
        self,
        ids: Iterable[str],
        dest: DestinationLike,
        leg: str | None,
        concurrency: int,
        overwrite: bool,
        on_item: Callable[[BulkItem], None] | None,
        shard: object,
        lease_seconds: object,
        progress: ExportProgress | None,
    ) -> ExportSummary:
        check_count("concurrency", concurrency, minimum=1)
        part, lease = check_shard(shard), check_lease_seconds(lease_seconds)
        todo = in_shard(iter_unique_ids(ids), part)
        counters = await self._export(
            todo, None, dest, leg, concurrency, overwrite, on_item, part, lease, progress, None
        )
        return counters.summary()

    def _link(self, recording_id: str, leg: str | None, margin: object) -> AsyncLink:
        seconds = check_margin(margin)
        recording_id = check_recording_id(recording_id)  # now, before any request
        label = ":".join(p for p in (self._vendor.name, recording_id, leg) if p)
        return AsyncLink(lambda: self._recording_url(recording_id, leg), margin=seconds, label=label)

    async def aclose(self) -> None:
        """Close the connection pools this client owns (a given ``http_client`` stays open: it is yours).

        ``generated`` shares the API pool; ``with_options()`` copies borrow both pools and close nothing.
        """
        self._generated = None
        if self._owns_storage:
            storage = self._storage.detach()
            if storage is not None:
                await storage.aclose()
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncFeatherClient(AsyncClientBase):
    """Feather AI: fresh presigned URLs for agent-call recordings.

    Usage::

        async with AsyncFeatherClient() as feather:  # FEATHER_API_KEY, FEATHER_BASE_URL
            url = await feather.recording_url("call_123", leg="supervisor")
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
        rate_limit: float | None = None,
    ) -> None:
        config = ClientConfig.create(
            self._vendor,
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            rate_limit=rate_limit,
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
        dest: DestinationLike,
        *,
        leg: Leg = "main",
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a call's recording to ``dest``: a file, a folder (``feather-<id>-<leg>.<ext>``), an object-store URL
        (``s3://bucket/prefix/``, ``gs://``, ``az://``; the ``cloud`` extra) or an obstore store.

        Streams to a temporary file beside the destination and renames it into place (a bucket: an upload that
        appears only complete); mints a fresh URL and resumes with Range when the signed URL expires.
        ``progress(done, total)`` is called per chunk; ``deadline`` (seconds, default an hour) bounds the whole
        download.
        """
        return await self._download(recording_id, dest, check_leg(leg), overwrite, progress, deadline)

    async def download_many(
        self,
        ids: Iterable[str],
        dest: DestinationLike | None = None,
        *,
        leg: Leg = "main",
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
        shard: tuple[int, int] | None = None,
        lease_seconds: float = LEASE_SECONDS,
        progress: ExportProgress | None = None,
        dest_dir: DestinationLike | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest`` (a folder, an object-store URL or store), ``concurrency`` at a
        time, with a manifest there; ``shard=(k, n)`` takes only shard k of n of the ids (by a stable hash).

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes; ``progress`` (an ``ExportProgress``) counts them, for a
        poll from another thread. In a bucket the run holds a lease of
        ``lease_seconds`` (renewed as it goes; the longest a crashed run blocks its prefix and shard).
        ``dest_dir=`` is the old name of ``dest`` (deprecated).
        """
        where = pick_dest(dest, dest_dir)
        leg_ = check_leg(leg)
        return await self._download_many(
            ids, where, leg_, concurrency, overwrite, on_item, shard, lease_seconds, progress
        )

    async def export(
        self,
        ids: Iterable[str],
        dest: DestinationLike,
        *,
        leg: Leg = "main",
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
        shard: tuple[int, int] | None = None,
        lease_seconds: float = LEASE_SECONDS,
        progress: ExportProgress | None = None,
    ) -> ExportSummary:
        """``download_many`` for backfills of any size: ``ids`` is read as the run goes (a generator, a file),
        no BulkItem is kept, and only the counts come back; ``on_item`` sees each item as it finishes.

        An id that is not valid stops the run where it is read (the items before it are done and recorded).
        """
        leg_ = check_leg(leg)
        return await self._export_counts(
            ids, dest, leg_, concurrency, overwrite, on_item, shard, lease_seconds, progress
        )

    def link(
        self, recording_id: str, *, leg: Leg = "main", margin: float | timedelta = DEFAULT_EXPIRY_MARGIN
    ) -> AsyncLink:
        """A link whose ``await get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, check_leg(leg), margin)


class AsyncSiroClient(AsyncClientBase):
    """Siro: short-lived signed URLs for redacted recording audio.

    Usage::

        async with AsyncSiroClient() as siro:  # SIRO_AUTH_TOKEN, SIRO_BASE_URL
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
        rate_limit: float | None = None,
    ) -> None:
        config = ClientConfig.create(
            self._vendor,
            token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            rate_limit=rate_limit,
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
        dest: DestinationLike,
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
    ) -> DownloadResult:
        """Download a recording's audio to ``dest``: a file, a folder (``siro-<id>.<ext>``), an object-store URL
        (``s3://bucket/prefix/``, ``gs://``, ``az://``; the ``cloud`` extra) or an obstore store.

        Streams to a temporary file beside the destination and renames it into place (a bucket: an upload that
        appears only complete); mints a fresh URL and resumes with Range when the signed URL expires.
        ``progress(done, total)`` is called per chunk; ``deadline`` (seconds, default an hour) bounds the whole
        download.
        """
        return await self._download(recording_id, dest, None, overwrite, progress, deadline)

    async def download_many(
        self,
        ids: Iterable[str],
        dest: DestinationLike | None = None,
        *,
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
        shard: tuple[int, int] | None = None,
        lease_seconds: float = LEASE_SECONDS,
        progress: ExportProgress | None = None,
        dest_dir: DestinationLike | None = None,
    ) -> list[BulkItem]:
        """Download many recordings into ``dest`` (a folder, an object-store URL or store), ``concurrency`` at a
        time, with a manifest there; ``shard=(k, n)`` takes only shard k of n of the ids (by a stable hash).

        Continues past failures and returns one BulkItem per id (downloaded, skipped, or failed);
        ``on_item(item)`` is called as each one finishes; ``progress`` (an ``ExportProgress``) counts them, for a
        poll from another thread. In a bucket the run holds a lease of
        ``lease_seconds`` (renewed as it goes; the longest a crashed run blocks its prefix and shard).
        ``dest_dir=`` is the old name of ``dest`` (deprecated).
        """
        where = pick_dest(dest, dest_dir)
        return await self._download_many(
            ids, where, None, concurrency, overwrite, on_item, shard, lease_seconds, progress
        )

    async def export(
        self,
        ids: Iterable[str],
        dest: DestinationLike,
        *,
        concurrency: int = 8,
        overwrite: bool = False,
        on_item: Callable[[BulkItem], None] | None = None,
        shard: tuple[int, int] | None = None,
        lease_seconds: float = LEASE_SECONDS,
        progress: ExportProgress | None = None,
    ) -> ExportSummary:
        """``download_many`` for backfills of any size: ``ids`` is read as the run goes (a generator, a file),
        no BulkItem is kept, and only the counts come back; ``on_item`` sees each item as it finishes.

        An id that is not valid stops the run where it is read (the items before it are done and recorded).
        """
        return await self._export_counts(
            ids, dest, None, concurrency, overwrite, on_item, shard, lease_seconds, progress
        )

    def link(self, recording_id: str, *, margin: float | timedelta = DEFAULT_EXPIRY_MARGIN) -> AsyncLink:
        """A link whose ``await get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, None, margin)
