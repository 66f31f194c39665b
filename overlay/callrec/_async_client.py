"""The async driver: moves bytes and sleeps for the engine (``_engine``) and the transfer policy (``_download``).

This file is the source of ``_sync_client.py``: ``scripts/unasync.py`` writes
that one from this one by token substitution (``make check-generated`` and
the tests fail when they differ). Put no decision here: a decision goes in the
engine, ``Transfer``, ``_bulk`` or ``_base``, where both flavours share it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Self

import httpx

from . import _io_async as _io
from ._base import BaseClient
from ._bulk import ITEM_ERRORS, BulkItem, Manifest, already_done, check_folder, report, settle, unique_ids
from ._config import ClientConfig
from ._download import Action, DownloadResult, ProgressCallback, Transfer, finish_and_commit, open_temp
from ._errors import CallrecError
from ._link import AsyncLink
from ._signed_url import SignedUrl
from ._sink import FileSink
from ._storage import Storage, storage_client_kwargs
from ._validate import check_count, check_margin, check_recording_id

__all__ = ["AsyncClientBase"]


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

    async def _recording_url(self, recording_id: str, leg: str | None, deadline: float | None = None) -> SignedUrl:
        call = self._api_call(recording_id, leg, deadline)
        while True:
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
                step = call.on_response(response)
            if isinstance(step, SignedUrl):
                return step
            await _io.sleep(step)

    async def _transfer_once(self, transfer: Transfer, url: str) -> Action:
        try:
            async with self._storage.get().stream(
                "GET", url, headers=transfer.request_headers(), timeout=transfer.timeout(self.timeout)
            ) as response:
                if transfer.on_response(response) is Action.ERROR:
                    body = b""
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if transfer.error_body_complete(body):
                            break
                    return transfer.on_error_body(response, body)
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
        dest: str | os.PathLike[str],
        leg: str | None,
        overwrite: bool,
        progress: ProgressCallback | None,
        deadline: float | None,
    ) -> DownloadResult:
        target, deadline_at = self._plan_download(recording_id, dest, leg, overwrite, deadline)
        signed = await self._recording_url(recording_id, leg)
        sink = FileSink(*open_temp(target.folder, target.stem))
        try:
            transfer = Transfer(
                sink, progress=progress, deadline=deadline_at, max_retries=self.max_retries, stopped=_io.stopped
            )
            action = Action.STREAM
            while action is not Action.DONE:
                if action is Action.RETRY:
                    await _io.sleep(transfer.take_delay())
                if action is Action.REFRESH or transfer.url_is_stale(signed):
                    signed = await self._refresh_url(transfer, recording_id, leg)
                try:
                    async with _io.deadline_scope(transfer.remaining()):
                        action = await self._transfer_once(transfer, signed.url)
                except TimeoutError:
                    transfer.deadline_passed()
            final = target.final_path(transfer.content_type, transfer.head)
            await _io.to_thread(finish_and_commit, sink, final, overwrite=overwrite, replaces=target.others(final))
        except BaseException:
            sink.abort()
            raise
        return transfer.result(final)

    async def _refresh_url(self, transfer: Transfer, recording_id: str, leg: str | None) -> SignedUrl:
        try:
            return await self._recording_url(recording_id, leg, deadline=transfer.remaining())
        except CallrecError as exc:
            transfer.on_refresh_error(exc)

    async def _download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        leg: str | None,
        concurrency: int,
        overwrite: bool,
        on_item: Callable[[BulkItem], None] | None,
    ) -> list[BulkItem]:
        check_count("concurrency", concurrency, minimum=1)
        folder = check_folder(dest_dir)
        todo = unique_ids(ids)

        async def one(rid: str) -> BulkItem:
            skipped = already_done(manifest, rid, leg, overwrite)
            if skipped is not None:
                return report(skipped, on_item)
            attempt = 0
            while True:
                attempt += 1
                outcome: DownloadResult | Exception
                try:
                    outcome = await self._download(rid, folder, leg, overwrite, None, None)
                except ITEM_ERRORS as exc:
                    outcome = exc
                step = settle(rid, leg, attempt, outcome, self.max_retries)
                if isinstance(step, BulkItem):
                    break
                await _io.sleep(step)
            await _io.to_thread(manifest.record, step)
            return report(step, on_item)

        with Manifest.open(folder) as manifest:
            return await _io.map_bounded(one, todo, concurrency)

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
