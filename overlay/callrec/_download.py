"""Downloading a recording safely: the transfer policy, shared by the sync and async clients.

The policy is sans-I/O: :class:`Transfer` is told what the storage host said
and decides what happens next (stream, resume, restart, mint a fresh URL,
back off, or fail); the clients only move bytes. Where the bytes go (a
temporary file renamed into place, an upload committed create-only) is the
destination's (``_destinations``): the transfer writes into its sink.
"""

from __future__ import annotations

import enum
import http.cookiejar
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, NoReturn, Protocol

import attrs
import httpx

from ._audio import SNIFF_BYTES, looks_like_audio
from ._budget import RequestBudget, Ticket, is_throttle
from ._config import bounded
from ._errors import CallrecError, DownloadError
from ._redact import redact_url, scrub_exception
from ._results import DownloadResult
from ._retry import parse_retry_after, retry_delay
from ._signed_url import SignedUrl
from ._sink import FileSink
from ._transport import DEADLINE, INTERRUPTIBLE, MIN_FILL

if TYPE_CHECKING:
    from ._destinations import Target

__all__ = ["DownloadResult", "ProgressCallback", "Transfer", "blocked_cookies", "complete"]

#: Called with (bytes written so far, total bytes or None).
ProgressCallback = Callable[[int, "int | None"], None]
#: Called with the result right after a download's file is committed, as part of the same step (bulk: its line).
CommitHook = Callable[["DownloadResult"], None]

CHUNK_SIZE = 256 * 1024
#: Fresh URLs minted for one download before giving up.
MAX_URL_REFRESHES = 3
#: Default wall-clock bound on one whole download.
DEFAULT_DOWNLOAD_DEADLINE = 3600.0
#: A URL with less than this left is re-minted before the storage request.
URL_EXPIRY_MARGIN = 5.0
_MAX_ERROR_BODY = 16 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def blocked_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that stores nothing: the storage client must not carry state between URLs."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class Stopped(Exception):  # not an error of its own: the run it belongs to is ending
    """The bulk run this download belongs to is stopping (another item failed, or Ctrl-C).

    Deliberately neither a CallrecError nor an OSError, so no per-item handler records
    it as an item's failure: it ends the worker, and the run raises the original error.
    """


class Action(enum.Enum):
    """What the driver does next."""

    STREAM = "stream"  # read the body and feed it to on_chunk
    ERROR = "error"  # read the (small) body and pass it to on_error_body
    DONE = "done"
    REFRESH = "refresh"  # mint a fresh URL, then request again
    RETRY = "retry"  # wait `delay`, then request again


def _is_expired_answer(status: int, body: bytes) -> bool:
    """S3: 403 AccessDenied "Request has expired"; GCS: 400 ExpiredToken (also 403 on some hosts)."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace")
    if status == 403 and "Request has expired" in text:
        return True
    return status in (400, 401, 403) and "<Code>ExpiredToken</Code>" in text


def _error_code(body: bytes) -> str:
    match = re.search(rb"<Code>([A-Za-z0-9_.-]{1,64})</Code>", body[:_MAX_ERROR_BODY])
    return match.group(1).decode() if match else "no error code"


def _strong_validator(headers: httpx.Headers) -> tuple[str | None, str | None]:
    """(header, value) of a strong validator for If-Range (RFC 9110 §13.1.5), or (None, None).

    A strong ETag; else a Last-Modified at least one second older than the response's Date (§8.8.2.2). A weak
    validator cannot guard a byte-range resume: without one, an interrupted download starts over.
    """
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return "etag", etag
    modified, date = headers.get("last-modified"), headers.get("date")
    if etag is None and modified and date:
        try:
            when, now = parsedate_to_datetime(modified), parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return None, None
        if when.tzinfo is not None and now.tzinfo is not None and (now - when).total_seconds() >= 1:
            return "last-modified", modified
    return None, None


class Transfer:
    """The download policy for one recording: resume, restart, refresh and integrity checks."""

    def __init__(
        self,
        sink: FileSink,
        *,
        progress: ProgressCallback | None,
        deadline: float,
        max_refreshes: int = MAX_URL_REFRESHES,
        max_retries: int,
        stopped: Callable[[], bool] = lambda: False,
        budget_for: Callable[[str], RequestBudget] | None = None,
        patient: bool = False,
    ) -> None:
        self.sink = sink  # writes and hashes on its own thread; the drivers wait while it is full
        self.stopped = stopped
        self.progress = progress
        self.deadline = deadline
        self.max_refreshes = max_refreshes
        self.max_retries = max_retries
        self.refreshes = 0
        self.retries = 0
        self.offset = 0
        self.total: int | None = None
        self.validator: str | None = None  # ETag (or Last-Modified) of the object being assembled
        self._validator_field: str | None = None  # which header it came from
        self.content_type: str | None = None
        self.head = b""
        self.delay = 0.0
        self._response_end: int | None = None
        self._last_error: Exception | None = None
        # The storage origin's shared request budget (``_budget``); a patient transfer (bulk) spends no retry on
        # a throttled answer: it waits for the budget again, until its deadline.
        self.budget_for = budget_for
        self.patient = patient
        self.throttled = 0
        self._budget: RequestBudget | None = None
        self._ticket = Ticket()
        self._free_throttle = False

    # -- what to send ---------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """Headers for the next storage request: a Range/If-Range resume when bytes are already written."""
        headers = {"Accept-Encoding": "identity"}
        if self.offset > 0 and self.validator:
            headers["Range"] = f"bytes={self.offset}-"
            headers["If-Range"] = self.validator
        return headers

    def wait_for_budget(self, url: str) -> float:
        """Seconds to wait before the next storage request to ``url``'s origin may go (0: now)."""
        if self.budget_for is None:
            return 0.0
        self._budget = self.budget_for(url)
        delay = self._budget.wait(self._ticket)
        if delay > 0 and time.monotonic() + delay >= self.deadline:
            raise DownloadError(
                "the download did not finish within its deadline (the storage host kept throttling)"
            ) from self._last_error
        return delay

    def request_extensions(
        self, interruptible: Callable[[Callable[[], None]], Callable[[], None]]
    ) -> dict[str, object]:
        """What the storage transport needs besides the request: the deadline of every phase, and how a stopping
        bulk run reaches the request (``_io_sync.interruptible``)."""
        return {DEADLINE: self.deadline, INTERRUPTIBLE: interruptible}

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.deadline_passed()
        return left

    def deadline_passed(self) -> NoReturn:
        raise DownloadError("the download did not finish within its deadline") from self._last_error

    def timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """The storage request's timeout: the client's, no phase longer than what is left."""
        return bounded(base, self.remaining())

    def url_is_stale(self, signed: SignedUrl) -> bool:
        """True (and counted as a refresh) when the URL is too close to expiry to start a request with."""
        if signed.is_expired(margin=URL_EXPIRY_MARGIN):
            self.refresh()
            return True
        return False

    @staticmethod
    def error_body_complete(body: bytes) -> bool:
        """Enough of an error body has been read to judge it."""
        return len(body) > _MAX_ERROR_BODY

    # -- what we heard --------------------------------------------------

    def on_response(self, response: httpx.Response) -> Action:
        """Decide from the status line and headers; a non-STREAM answer needs on_error_body."""
        status = response.status_code
        ticket, self._ticket = self._ticket, Ticket()
        self._free_throttle = False
        if self._budget is not None and self._budget.on_outcome(ticket, status, parse_retry_after(response.headers)):
            self.throttled += 1
            self._free_throttle = self.patient and self._budget.served_since(ticket)
        if status == 206 and self.offset > 0:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            if match and int(match.group(1)) == self.offset and match.group(3) != "*":
                total = int(match.group(3))
                if self.total is not None and total != self.total:
                    self._restart()
                    return self._retry(DownloadError("the recording changed size during the download"))
                # If-Range is a request, not a guarantee: a host that ignores it would splice two versions.
                if self._validator_field and response.headers.get(self._validator_field) != self.validator:
                    self._restart()
                    return self._retry(DownloadError("the recording changed during the download (validator differs)"))
                length = response.headers.get("content-length")
                if length is not None and (
                    not length.isdigit() or int(length) != int(match.group(2)) + 1 - self.offset
                ):
                    self._restart()
                    return self._retry(DownloadError("the storage host's Content-Range and Content-Length disagree"))
                self.total = total
                self._response_end = int(match.group(2)) + 1
                return self._check_encoding(response)
            # A range we did not ask for: throw away what we have and start over cleanly.
            self._restart()
            return self._retry(DownloadError("the storage host answered a different byte range"))
        if status == 200:
            if self.offset > 0:
                self._restart()  # Range ignored or If-Range mismatch: the body is the whole object
            length = response.headers.get("content-length")
            if length is None or not length.isdigit():
                raise DownloadError("the storage host sent no Content-Length; refusing a download of unknown size")
            self.total = int(length)
            self._response_end = self.total
            self.content_type = response.headers.get("content-type")
            self._validator_field, self.validator = _strong_validator(response.headers)
            return self._check_encoding(response)
        return Action.ERROR

    def _check_encoding(self, response: httpx.Response) -> Action:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadError(f"the storage host sent a {encoding}-encoded body; expected raw audio")
        return Action.STREAM

    def on_error_body(self, response: httpx.Response, body: bytes) -> Action:
        """Decide after a non-2xx (or unexpected 2xx) storage answer."""
        status = response.status_code
        if _is_expired_answer(status, body):
            return self.refresh()
        if is_throttle(status) and self._free_throttle:
            self._last_error = DownloadError(f"the storage host answered {status}")
            self.delay = 0.0  # the shared budget (its pause, its lowered rate) decides when the next request goes
            return Action.RETRY
        if status in (408, 429, 500, 502, 503, 504):
            self.delay = retry_delay(self.retries, response)
            return self._retry(DownloadError(f"the storage host answered {status}"))
        if status == 416:
            self._restart()
            return self._retry(DownloadError("the storage host refused the resume range (416)"))
        if status == 403:
            raise DownloadError(f"the storage host refused the signed URL: 403 {_error_code(body)}")
        if 300 <= status < 400:
            location = response.headers.get("location")
            where = redact_url(location) if location else "nowhere"
            raise DownloadError(f"the storage host redirected ({status} to {where}); not following")
        raise DownloadError(f"the storage host answered {status} {_error_code(body)}")

    def on_chunk(self, chunk: bytes) -> None:
        """Hand one chunk to the sink (never blocks), sniffing the first bytes and checking the deadline."""
        if not chunk:
            return
        self._check(chunk)
        self.sink.put(chunk)
        self._advance(len(chunk), self.progress)

    def on_filled(self, buffer: bytearray, size: int, progress: ProgressCallback | None) -> None:
        """As ``on_chunk`` for ``buffer[:size]``, a buffer from ``sink.buffer()`` that the sink then owns.

        ``progress`` is told instead of ``self.progress`` (the async driver's hands the call to the event loop).
        """
        if not size:
            return
        self._check(memoryview(buffer)[:size])
        self.sink.put_buffer(buffer, size)
        self._advance(size, progress)

    def _check(self, chunk: bytes | memoryview) -> None:
        if self.stopped():
            raise Stopped
        if self.offset < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= min(SNIFF_BYTES, self.total or SNIFF_BYTES) and not looks_like_audio(self.head):
                kind = (self.content_type or "unknown type").split(";")[0]
                raise DownloadError(f"the storage host did not send audio (got {kind}, starting {self.head[:5]!r})")
        if self.total is not None and self.offset + len(chunk) > self.total:
            raise DownloadError("the storage host sent more bytes than it announced")

    def _advance(self, size: int, progress: ProgressCallback | None) -> None:
        self.offset += size
        if progress is not None:
            progress(self.offset, self.total)
        self.remaining()

    def on_body_end(self) -> Action:
        """The response body ended cleanly: done, or cut short (resume)."""
        if self.total is not None and self.offset == self.total:
            if self.offset < SNIFF_BYTES and not looks_like_audio(self.head):
                raise DownloadError("the storage host did not send audio")
            return Action.DONE
        return self._retry(DownloadError(f"the body ended at byte {self.offset} of {self.total}"))

    def on_transport_error(self, exc: Exception) -> Action:
        """A reset, timeout or a body shorter than its Content-Length: resume from where we are.

        Unless the read was interrupted because the run is stopping or the deadline passed: that ends here.
        """
        self._ticket = Ticket()
        self._last_error = scrub_exception(exc)
        if self.stopped():
            raise Stopped
        self.remaining()
        return self._retry(DownloadError(f"the transfer broke at byte {self.offset} ({type(exc).__name__})"))

    def on_refresh_error(self, exc: CallrecError) -> NoReturn:
        """Minting a fresh URL mid-download failed: the download fails with that cause."""
        raise DownloadError(f"could not mint a fresh URL to continue the download: {exc}") from exc

    # -- bookkeeping ----------------------------------------------------

    def _restart(self) -> None:
        self.sink.restart()
        self.offset = 0
        self.total = None
        self.head = b""

    def _retry(self, error: DownloadError) -> Action:
        if self.retries >= self.max_retries:
            error.transient = True
            error.retry_after = self.delay or None  # a Retry-After the storage host sent, for download_many
            raise error from self._last_error
        self.retries += 1
        self.delay = self.delay or retry_delay(self.retries - 1, None)
        return Action.RETRY

    def refresh(self) -> Action:
        """Count a fresh URL (bounded); raise once the URL keeps expiring."""
        if self.refreshes >= self.max_refreshes:
            raise DownloadError(f"the signed URL kept expiring ({self.refreshes} fresh URLs minted)")
        self.refreshes += 1
        return Action.REFRESH

    def take_delay(self) -> float:
        delay, self.delay = self.delay, 0.0
        return min(delay, max(self.remaining() - 0.001, 0.0))


class BodyReader(Protocol):
    """A response body that reads itself into a buffer (``_storage_http.Body``)."""

    @property
    def remaining(self) -> int: ...

    def readinto(self, buffer: bytearray, min_fill: int) -> int: ...


def read_body(body: BodyReader, transfer: Transfer, progress: ProgressCallback | None) -> None:
    """Read a Content-Length body to its end into the sink's recycled buffers (no copy in Python).

    The sync driver calls it on its own thread, the async one on a worker thread. While the sink is full, this
    thread hashes queued chunks (``FileSink.wait_for_room``) instead of idling.
    """
    sink = transfer.sink
    while True:
        buffer = sink.buffer()
        # A rest that fits the buffer is read whole: one chunk per small recording (download_many of 1 MiB files
        # went from 0.78x to ~0.9x the plain loop); otherwise at least MIN_FILL bytes per read.
        filled = body.readinto(buffer, len(buffer) if body.remaining <= len(buffer) else MIN_FILL)
        if not filled:
            return
        transfer.on_filled(buffer, filled, progress)
        if sink.full:
            sink.wait_for_room()


def complete(
    transfer: Transfer,
    target: Target,
    *,
    overwrite: bool,
    on_committed: CommitHook | None = None,
) -> DownloadResult:
    """The last step of a download, on a worker thread: drain the sink, commit it to ``target``, run ``on_committed``.

    The async driver lets this step finish when it is cancelled meanwhile (``_io_async.run_to_completion``), so a
    cancellation never separates a committed recording from its manifest entry.
    """
    committed = target.commit(transfer.sink, transfer.content_type, transfer.head, overwrite=overwrite)
    result = attrs.evolve(committed, url_refreshes=transfer.refreshes)
    if on_committed is not None:
        try:
            on_committed(result)
        except Exception:
            # The manifest entry could not be written (a full disk, a lost lease): take a recording this download
            # created back out, so that a rerun downloads it. Never one that replaced another (``overwrite``):
            # the old one is gone, and withdrawing the new one would leave no copy at all.
            if not overwrite:
                target.withdraw(result)
            raise
    return result
