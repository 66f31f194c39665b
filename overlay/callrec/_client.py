"""FeatherClient, SiroClient and their async twins.

The four share one configuration, one retry loop shape and one response
policy (``_vendors``, ``_retry``, ``_errors``); sync and async differ only in
how bytes move.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import urlencode

import httpx

from . import __version__
from ._bulk import ITEM_ERRORS, BulkItem, Manifest, already_done, check_folder, settle, unique_ids
from ._constants import DEFAULT_DEADLINE, DEFAULT_EXPIRY_MARGIN, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from ._download import (
    DEFAULT_DOWNLOAD_DEADLINE,
    Action,
    Destination,
    DownloadResult,
    ProgressCallback,
    Transfer,
    blocked_cookies,
    commit,
    discard,
    open_temp,
    plan_destination,
)
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CallrecError,
    DownloadError,
    UnexpectedResponseError,
)
from ._link import AsyncLink, Link
from ._redact import install_log_redaction, redact_text
from ._retry import is_retryable_status, retry_delay
from ._signed_url import SignedUrl
from ._transport import async_transport
from ._validate import Leg, check_base_url, check_leg, check_recording_id, resolve_credential
from ._vendors import FEATHER, SIRO, Vendor

if TYPE_CHECKING:
    from feather_api import AuthenticatedClient as FeatherGenerated
    from siro_api import AuthenticatedClient as SiroGenerated

__all__ = ["AsyncFeatherClient", "AsyncSiroClient", "FeatherClient", "SiroClient"]

#: A URL with less than this left is re-minted before the storage request.
_DOWNLOAD_EXPIRY_MARGIN = 5.0

log = logging.getLogger("callrec")

#: API responses are small JSON objects; anything bigger is not one.
_MAX_API_BODY = 1 << 20


class _NotGiven:
    """Sentinel for "use the client's value" where None would be ambiguous."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


def _sleep(seconds: float) -> None:
    """Backoff sleep (a seam for tests of the retry table)."""
    time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    """Async backoff sleep (a seam for tests of the retry table)."""
    await asyncio.sleep(seconds)


def _report(item: BulkItem, on_item: Callable[[BulkItem], None] | None) -> BulkItem:
    """Tell the caller an item finished (progress bars), then hand it back."""
    if on_item is not None:
        on_item(item)
    return item


def _check_count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _coerce_timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            raise ValueError("timeout must bound every phase (connect, read, write, pool); None is not allowed")
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or an httpx.Timeout, not {timeout!r}")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_TIMEOUT.connect or 5.0))


def _bounded(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The per-attempt timeout, no phase longer than what is left of the deadline."""
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    if all(p is not None and p <= remaining for p in phases):
        return timeout  # the common case: the deadline is further away than any phase
    cap = max(remaining, 0.001)
    return httpx.Timeout(
        connect=min(timeout.connect or cap, cap),
        read=min(timeout.read or cap, cap),
        write=min(timeout.write or cap, cap),
        pool=min(timeout.pool or cap, cap),
    )


def _clock_offset(response: httpx.Response) -> float:
    """The API's clock minus ours, from its Date header (0 when absent or unreadable)."""
    raw = response.headers.get("date")
    if not raw:
        return 0.0
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when is None or when.tzinfo is None:
        return 0.0
    return when.timestamp() - time.time()


def _transport_error(exc: Exception) -> APIConnectionError:
    text = redact_text(str(exc)) or exc.__class__.__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request timed out ({exc.__class__.__name__}: {text})")
    return APIConnectionError(f"connection failed ({exc.__class__.__name__}: {text})")


class _BaseClient:
    """Configuration and request policy shared by the four clients."""

    _vendor: ClassVar[Vendor]
    _http: Any

    def __init__(
        self,
        credential: str | None,
        *,
        base_url: str | httpx.URL | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        deadline: float,
        default_headers: dict[str, str] | None,
        http_client: Any,
    ) -> None:
        vendor = self._vendor
        self._credential = resolve_credential(
            credential, env_var=vendor.credential_env, keyword=vendor.credential_keyword
        )
        raw_base = base_url if base_url is not None else os.environ.get(vendor.base_url_env) or vendor.default_base_url
        self.base_url = check_base_url(raw_base, what=f"base_url ({vendor.base_url_env})")
        self.timeout = _coerce_timeout(timeout)
        self.max_retries = _check_count("max_retries", max_retries, minimum=0)
        self.deadline = _check_seconds("deadline", deadline)
        self._default_headers = httpx.Headers(default_headers or {})
        for name, value in self._default_headers.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"default header {name!r} contains CR/LF")
        # Built once: every API request sends these (the credential last, so no default header replaces it).
        self._headers = httpx.Headers({"Accept": "application/json", "User-Agent": f"callrec/{__version__}"})
        self._headers.update(self._default_headers)
        self._headers[vendor.auth_header] = self._credential
        self._url_prefix = str(self.base_url.copy_with(query=None, fragment=None)).rstrip("/")
        self._owns_http = http_client is None
        self._generated: Any = None
        self._lock = threading.Lock()
        # The storage client is shared with with_options() copies and closed by the original.
        self._storage_box: dict[str, Any] = {}
        install_log_redaction()

    # -- shared policy -------------------------------------------------

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self.base_url)!r}, max_retries={self.max_retries})"

    def with_options(
        self, *, timeout: float | httpx.Timeout = NOT_GIVEN, max_retries: int = NOT_GIVEN, deadline: float = NOT_GIVEN
    ) -> Self:
        """A copy with other timeout/retry/deadline settings, sharing this client's connection pool.

        Usage: ``client.with_options(timeout=5, max_retries=0).recording_url("id")``
        """
        clone = copy.copy(self)
        clone._owns_http = False  # the original owns (and closes) the shared connection pool
        clone._generated = None
        clone._lock = threading.Lock()
        # _storage_box is shared on purpose: copies reuse the storage pool.
        if timeout is not NOT_GIVEN:
            clone.timeout = _coerce_timeout(timeout)
        if max_retries is not NOT_GIVEN:
            clone.max_retries = _check_count("max_retries", max_retries, minimum=0)
        if deadline is not NOT_GIVEN:
            clone.deadline = _check_seconds("deadline", deadline)
        return clone

    def _storage_kwargs(self) -> dict[str, Any]:
        """A separate client for signed URLs: no credentials, default headers or cookies, no redirects."""
        return {
            "timeout": self.timeout,
            "follow_redirects": False,
            "cookies": blocked_cookies(),
            "headers": {"User-Agent": f"callrec/{__version__}"},
        }

    def _prepare_download(
        self, recording_id: str, dest: str | os.PathLike[str], leg: str | None, overwrite: bool
    ) -> Destination:
        """Check inputs and the destination before any request."""
        recording_id = check_recording_id(recording_id)
        target = plan_destination(dest, self._vendor.name, recording_id, leg)
        existing = target.existing()
        if existing is not None and not overwrite:
            raise FileExistsError(f"{existing} exists (pass overwrite=True to replace it)")
        return target

    def _storage_timeout(self, transfer: Transfer) -> httpx.Timeout:
        return _bounded(self.timeout, transfer.remaining())

    def _build_request(self, recording_id: str, leg: str | None, remaining: float) -> httpx.Request:
        kwargs = self._vendor.request_args(recording_id, leg)
        # The URL is assembled as text and parsed once by httpx: base_url's path
        # prefix (a proxy mount point) + the generated, already percent-encoded path.
        url = self._url_prefix + kwargs["url"]
        params = kwargs.get("params")
        if params:
            url += "?" + urlencode(params)
        return self._http.build_request(  # type: ignore[no-any-return]
            kwargs["method"].upper(), url, headers=self._headers, timeout=_bounded(self.timeout, remaining)
        )

    def _outcome(
        self, response: httpx.Response, recording_id: str, leg: str | None
    ) -> tuple[SignedUrl | None, CallrecError | None, bool]:
        """(result, error, retryable) for a complete response."""
        try:
            return self._vendor.parse(response, recording_id, leg, _clock_offset(response)), None, False
        except APIStatusError as exc:
            return None, exc, is_retryable_status(exc.status_code)
        except CallrecError as exc:
            return None, exc, False

    def _log_attempt(self, request: httpx.Request, outcome: str, attempt: int, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s -> %s (attempt %d/%d, %.0f ms)",
                self._vendor.name,
                request.method,
                request.url.path,
                outcome,
                attempt + 1,
                self.max_retries + 1,
                (time.monotonic() - started) * 1000,
            )

    def _next_delay(
        self, attempt: int, error: CallrecError, retryable: bool, response: httpx.Response | None, deadline: float
    ) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` if there is none."""
        if not retryable or attempt >= self.max_retries:
            raise error
        delay = retry_delay(attempt, response)
        if time.monotonic() + delay >= deadline:
            raise error
        log.debug("%s: retrying in %.2f s after %s", self._vendor.name, delay, type(error).__name__)
        return delay

    def _generated_client(self) -> Any:
        """The generated AuthenticatedClient on this client's own connection pool (built once)."""
        with self._lock:
            if self._generated is None:
                from importlib import import_module

                cls = import_module(self._vendor.package).AuthenticatedClient
                headers = {k: v for k, v in self._headers.items() if k.lower() != self._vendor.auth_header.lower()}
                generated = cls(
                    base_url=str(self.base_url),
                    token=self._credential,
                    auth_header_name=self._vendor.auth_header,
                    prefix="",
                    headers=headers,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
                # The same httpx client callrec sends with: the user's http_client (proxies,
                # CA bundle, mTLS, transport) when one was given. prepare() adds the base URL,
                # callrec's headers and the credential to each generated operation's request.
                if isinstance(self._http, httpx.Client):
                    generated.set_httpx_client(self._http)
                else:
                    generated.set_async_httpx_client(self._http)
                self._generated = generated
            return self._generated


def _deadline_error(vendor: Vendor, deadline: float) -> APITimeoutError:
    return APITimeoutError(f"{vendor.name}: the call did not finish within its {deadline:g} s deadline")


class _SyncClient(_BaseClient):
    def __init__(
        self,
        credential: str | None,
        *,
        base_url: str | httpx.URL | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        deadline: float,
        default_headers: dict[str, str] | None,
        http_client: httpx.Client | None,
    ) -> None:
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise TypeError("http_client must be an httpx.Client (use the Async* clients with httpx.AsyncClient)")
        super().__init__(
            credential,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )
        self._http: httpx.Client = http_client or httpx.Client(timeout=self.timeout, follow_redirects=False)

    def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """One attempt: send and read the whole (small) body, checking the deadline between reads."""
        response = self._http.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > _MAX_API_BODY:
                    raise UnexpectedResponseError("the API response is larger than 1 MiB", response=response)
                if time.monotonic() > deadline:
                    raise _deadline_error(self._vendor, self.deadline)
                chunks.append(chunk)
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks), request=request)

    def _recording_url(self, recording_id: str, leg: str | None) -> SignedUrl:
        recording_id = check_recording_id(recording_id)
        deadline = time.monotonic() + self.deadline
        attempt = 0
        while True:
            started = time.monotonic()
            remaining = deadline - started
            if remaining <= 0:
                raise _deadline_error(self._vendor, self.deadline)
            request = self._build_request(recording_id, leg, remaining)
            response: httpx.Response | None = None
            try:
                response = self._send(request, deadline)
            except httpx.TransportError as exc:
                error: CallrecError = _transport_error(exc)
                retryable = True
                self._log_attempt(request, type(exc).__name__, attempt, started)
            else:
                result, err, retryable = self._outcome(response, recording_id, leg)
                self._log_attempt(request, str(response.status_code), attempt, started)
                if result is not None:
                    return result
                assert err is not None
                error = err
            _sleep(self._next_delay(attempt, error, retryable, response, deadline))
            attempt += 1

    @property
    def _storage(self) -> httpx.Client:
        with self._lock:
            if "client" not in self._storage_box:
                self._storage_box["client"] = httpx.Client(**self._storage_kwargs())
            return self._storage_box["client"]  # type: ignore[no-any-return]

    def _transfer_once(self, transfer: Transfer, url: str) -> Action:
        try:
            with self._storage.stream(
                "GET", url, headers=transfer.request_headers(), timeout=self._storage_timeout(transfer)
            ) as response:
                action = transfer.on_response(response)
                if action is Action.ERROR:
                    body = b""
                    for chunk in response.iter_raw():
                        body += chunk
                        if len(body) > 16384:
                            break
                    return transfer.on_error_body(response, body)
                for chunk in response.iter_raw():
                    transfer.on_chunk(chunk)
                return transfer.on_body_end()
        except httpx.TransportError as exc:
            return transfer.on_transport_error(exc)

    def _download(
        self,
        recording_id: str,
        dest: str | os.PathLike[str],
        leg: str | None,
        overwrite: bool,
        progress: ProgressCallback | None,
        deadline: float | None,
    ) -> DownloadResult:
        target = self._prepare_download(recording_id, dest, leg, overwrite)
        deadline_at = time.monotonic() + (deadline or DEFAULT_DOWNLOAD_DEADLINE)
        signed = self._recording_url(recording_id, leg)
        file, temp = open_temp(target.folder, target.stem)
        try:
            transfer = Transfer(file, progress=progress, deadline=deadline_at)
            while True:
                if signed.is_expired(margin=_DOWNLOAD_EXPIRY_MARGIN):
                    transfer.refresh()
                    signed = self._refresh_url(transfer, recording_id, leg)
                action = self._transfer_once(transfer, signed.url)
                if action is Action.DONE:
                    break
                if action is Action.REFRESH:
                    signed = self._refresh_url(transfer, recording_id, leg)
                else:
                    _sleep(transfer.take_delay())
            final = target.final_path(transfer.content_type, transfer.head)
            commit(file, temp, final, overwrite=overwrite)
        except BaseException:
            discard(file, temp)
            raise
        return transfer.result(final)

    def _refresh_url(self, transfer: Transfer, recording_id: str, leg: str | None) -> SignedUrl:
        try:
            return self.with_options(deadline=transfer.remaining())._recording_url(recording_id, leg)
        except CallrecError as exc:
            transfer.on_refresh_error(exc)

    def _download_many(
        self,
        ids: Iterable[str],
        dest_dir: str | os.PathLike[str],
        leg: str | None,
        concurrency: int,
        overwrite: bool,
        on_item: Callable[[BulkItem], None] | None,
    ) -> list[BulkItem]:
        _check_count("concurrency", concurrency, minimum=1)
        folder = check_folder(dest_dir)
        todo = unique_ids(ids)
        manifest = Manifest(folder)

        def one(rid: str) -> BulkItem:
            skipped = already_done(manifest, rid, leg, overwrite)
            if skipped is not None:
                return _report(skipped, on_item)
            attempt, item = 0, None
            while item is None:
                attempt += 1
                outcome: DownloadResult | Exception
                try:
                    outcome = self._download(rid, folder, leg, overwrite, None, None)
                except ITEM_ERRORS as exc:
                    outcome = exc
                item = settle(rid, leg, attempt, outcome)
            manifest.record(item)
            return _report(item, on_item)

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="callrec-bulk") as pool:
            return list(pool.map(one, todo))

    def _link(self, recording_id: str, leg: str | None, margin: float) -> Link:
        recording_id = check_recording_id(recording_id)
        return Link(lambda: self._recording_url(recording_id, leg), margin=margin)

    def close(self) -> None:
        """Close the connection pool (if this client created it); ``generated`` shares it."""
        self._generated = None
        if self._owns_http:
            self._http.close()
            storage = self._storage_box.pop("client", None)
            if storage is not None:
                storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncClient(_BaseClient):
    def __init__(
        self,
        credential: str | None,
        *,
        base_url: str | httpx.URL | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        deadline: float,
        default_headers: dict[str, str] | None,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise TypeError("http_client must be an httpx.AsyncClient (use the sync clients with httpx.Client)")
        super().__init__(
            credential,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )
        self._http: httpx.AsyncClient = http_client or httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, transport=async_transport()
        )

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > _MAX_API_BODY:
                    raise UnexpectedResponseError("the API response is larger than 1 MiB", response=response)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks), request=request)

    async def _recording_url(self, recording_id: str, leg: str | None) -> SignedUrl:
        recording_id = check_recording_id(recording_id)
        deadline = time.monotonic() + self.deadline
        attempt = 0
        while True:
            started = time.monotonic()
            remaining = deadline - started
            if remaining <= 0:
                raise _deadline_error(self._vendor, self.deadline)
            request = self._build_request(recording_id, leg, remaining)
            response: httpx.Response | None = None
            try:
                async with asyncio.timeout(remaining):
                    response = await self._send(request)
            except TimeoutError:
                raise _deadline_error(self._vendor, self.deadline) from None
            except httpx.TransportError as exc:
                error: CallrecError = _transport_error(exc)
                retryable = True
                self._log_attempt(request, type(exc).__name__, attempt, started)
            else:
                result, err, retryable = self._outcome(response, recording_id, leg)
                self._log_attempt(request, str(response.status_code), attempt, started)
                if result is not None:
                    return result
                assert err is not None
                error = err
            await _asleep(self._next_delay(attempt, error, retryable, response, deadline))
            attempt += 1

    @property
    def _storage(self) -> httpx.AsyncClient:
        if "client" not in self._storage_box:
            self._storage_box["client"] = httpx.AsyncClient(**self._storage_kwargs())
        return self._storage_box["client"]  # type: ignore[no-any-return]

    async def _transfer_once(self, transfer: Transfer, url: str) -> Action:
        try:
            async with self._storage.stream(
                "GET", url, headers=transfer.request_headers(), timeout=self._storage_timeout(transfer)
            ) as response:
                action = transfer.on_response(response)
                if action is Action.ERROR:
                    body = b""
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > 16384:
                            break
                    return transfer.on_error_body(response, body)
                async for chunk in response.aiter_raw():
                    transfer.on_chunk(chunk)
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
        target = self._prepare_download(recording_id, dest, leg, overwrite)
        deadline_at = time.monotonic() + (deadline or DEFAULT_DOWNLOAD_DEADLINE)
        signed = await self._recording_url(recording_id, leg)
        file, temp = open_temp(target.folder, target.stem)
        try:
            transfer = Transfer(file, progress=progress, deadline=deadline_at)
            while True:
                if signed.is_expired(margin=_DOWNLOAD_EXPIRY_MARGIN):
                    transfer.refresh()
                    signed = await self._refresh_url(transfer, recording_id, leg)
                try:
                    async with asyncio.timeout(transfer.remaining()):
                        action = await self._transfer_once(transfer, signed.url)
                except TimeoutError:
                    raise DownloadError("the download did not finish within its deadline") from None
                if action is Action.DONE:
                    break
                if action is Action.REFRESH:
                    signed = await self._refresh_url(transfer, recording_id, leg)
                else:
                    await _asleep(transfer.take_delay())
            final = target.final_path(transfer.content_type, transfer.head)
            await asyncio.to_thread(commit, file, temp, final, overwrite=overwrite)
        except BaseException:
            discard(file, temp)
            raise
        return transfer.result(final)

    async def _refresh_url(self, transfer: Transfer, recording_id: str, leg: str | None) -> SignedUrl:
        try:
            return await self.with_options(deadline=transfer.remaining())._recording_url(recording_id, leg)
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
        _check_count("concurrency", concurrency, minimum=1)
        folder = check_folder(dest_dir)
        todo = unique_ids(ids)
        manifest = Manifest(folder)
        gate = asyncio.Semaphore(concurrency)

        async def one(rid: str) -> BulkItem:
            skipped = already_done(manifest, rid, leg, overwrite)
            if skipped is not None:
                return _report(skipped, on_item)
            attempt, item = 0, None
            async with gate:
                while item is None:
                    attempt += 1
                    outcome: DownloadResult | Exception
                    try:
                        outcome = await self._download(rid, folder, leg, overwrite, None, None)
                    except ITEM_ERRORS as exc:
                        outcome = exc
                    item = settle(rid, leg, attempt, outcome)
                await asyncio.to_thread(manifest.record, item)
            return _report(item, on_item)

        return list(await asyncio.gather(*(one(rid) for rid in todo)))

    def _link(self, recording_id: str, leg: str | None, margin: float) -> AsyncLink:
        recording_id = check_recording_id(recording_id)
        return AsyncLink(lambda: self._recording_url(recording_id, leg), margin=margin)

    async def aclose(self) -> None:
        """Close the connection pool (if this client created it); ``generated`` shares it."""
        self._generated = None
        if self._owns_http:
            await self._http.aclose()
            storage = self._storage_box.pop("client", None)
            if storage is not None:
                await storage.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class FeatherClient(_SyncClient):
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
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )

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

    def link(self, recording_id: str, *, leg: Leg = "main", margin: float = DEFAULT_EXPIRY_MARGIN) -> Link:
        """A Link whose ``get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, check_leg(leg), margin)


class SiroClient(_SyncClient):
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
        super().__init__(
            token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )

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

    def link(self, recording_id: str, *, margin: float = DEFAULT_EXPIRY_MARGIN) -> Link:
        """A Link whose ``get()`` returns a URL with more than ``margin`` seconds left, re-minting as needed."""
        return self._link(recording_id, None, margin)


class AsyncFeatherClient(_AsyncClient):
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
        super().__init__(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )

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

    def link(self, recording_id: str, *, leg: Leg = "main", margin: float = DEFAULT_EXPIRY_MARGIN) -> AsyncLink:
        """An AsyncLink whose ``await get()`` returns a URL with more than ``margin`` seconds left."""
        return self._link(recording_id, check_leg(leg), margin)


class AsyncSiroClient(_AsyncClient):
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
        super().__init__(
            token,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            default_headers=default_headers,
            http_client=http_client,
        )

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

    def link(self, recording_id: str, *, margin: float = DEFAULT_EXPIRY_MARGIN) -> AsyncLink:
        """An AsyncLink whose ``await get()`` returns a URL with more than ``margin`` seconds left."""
        return self._link(recording_id, None, margin)
