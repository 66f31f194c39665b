"""The call engine: every decision of one API call, and no I/O.

:class:`ApiCall` is told what happened (a request is about to go out, a body
chunk arrived, the response ended, the transport failed, time ran out) and
answers with what to do next: send this request, return this SignedUrl, sleep
this long, or it raises the error to give the caller. Building the request,
judging a response or an exception, retry and backoff, the deadline and the
DEBUG log line live here once; the sync and async drivers only move bytes and
sleep (see ``_client.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import NoReturn

import httpx

from ._budget import RequestBudget, Ticket
from ._config import ClientConfig
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    CallrecError,
    UnexpectedResponseError,
)
from ._redact import redact_text
from ._retry import is_retryable_status, parse_retry_after, retry_delay
from ._signed_url import SignedUrl
from ._vendors import error_from_response

__all__ = ["MAX_API_BODY", "ApiCall", "clock_offset"]

log = logging.getLogger("callrec")

#: API responses are small JSON objects; anything bigger is not one.
MAX_API_BODY = 1 << 20


def clock_offset(response: httpx.Response) -> float:
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


def _complete(response: httpx.Response, body: bytes) -> httpx.Response:
    """The response with its whole (already decoded) body, safe to read again."""
    headers: httpx.Headers | list[tuple[str, str]] = response.headers
    if "content-encoding" in response.headers:  # the body is decoded: httpx must not decode it again
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


class ApiCall:
    """One ``recording_url`` call through its attempts.

    Before each attempt the driver waits as long as ``wait_for_budget()`` says (the client's shared request
    budget, ``_budget``); each answer is told to the budget. A ``patient`` call (one item of a bulk run) does not
    spend its ``max_retries`` on throttled answers: it waits for the budget again, until its deadline.
    """

    def __init__(
        self,
        config: ClientConfig,
        recording_id: str,
        leg: str | None,
        *,
        deadline: float | None = None,
        budget: RequestBudget | None = None,
        patient: bool = False,
    ):
        self.config = config
        self.budget = budget
        self.patient = patient
        self._ticket = Ticket()
        self._throttle_error: CallrecError | None = None
        self.recording_id = recording_id
        self.leg = leg
        self.seconds = config.deadline if deadline is None else min(deadline, config.deadline)
        self.deadline_at = time.monotonic() + self.seconds
        self.attempt = 0
        self._started = 0.0
        self._body = bytearray()
        self._decoded = True
        self._request: httpx.Request | None = None

    # -- what to send ---------------------------------------------------

    def remaining(self) -> float:
        """Seconds left of the call's deadline; raises APITimeoutError when none are."""
        left = self.deadline_at - time.monotonic()
        if left <= 0:
            self.deadline_passed()
        return left

    def wait_for_budget(self) -> float:
        """Seconds to wait before the next attempt may go (0: now). Raises if that is past the deadline."""
        if self.budget is None:
            return 0.0
        delay = self.budget.wait(self._ticket)
        if delay > 0 and time.monotonic() + delay >= self.deadline_at:
            if self._throttle_error is not None:
                raise self._throttle_error  # still throttled when time ran out: say so
            self.deadline_passed()
        return delay

    def next_request(self, build: Callable[..., httpx.Request]) -> httpx.Request:
        """The request for the next attempt (``build`` is the httpx client's ``build_request``)."""
        remaining = self.remaining()
        self._started = time.monotonic()
        self._body = bytearray()
        self._decoded = True
        self._request = self.config.build_request(build, self.recording_id, self.leg, remaining)
        return self._request

    # -- what we heard --------------------------------------------------

    def on_chunk(self, response: httpx.Response, chunk: bytes) -> None:
        """One decoded body chunk: bounded in size and in time."""
        self._body += chunk
        if len(self._body) > MAX_API_BODY:
            raise UnexpectedResponseError("the API response is larger than 1 MiB", response=response)
        self.remaining()

    def on_undecodable_body(self) -> None:
        """The body's declared Content-Encoding did not decode (httpx.DecodingError).

        A proxy's HTML 502 labelled ``Content-Encoding: gzip`` is still a 502: it is
        judged by its status, never escapes as an httpx error.
        """
        self._decoded = False

    def on_response(self, response: httpx.Response) -> SignedUrl | float:
        """The body ended: the SignedUrl, or seconds to sleep before the next attempt; else raises."""
        full = _complete(response, bytes(self._body))
        decoded, self._decoded, self._body = self._decoded, True, bytearray()
        self._log(str(full.status_code))
        ticket, self._ticket = self._ticket, Ticket()
        throttled = self.budget is not None and self.budget.on_outcome(
            ticket, full.status_code, parse_retry_after(full.headers)
        )
        free = throttled and self.patient and self.budget is not None and self.budget.served_since(ticket)
        error: CallrecError
        if not decoded:
            encoding = response.headers.get("content-encoding", "")
            if 200 <= full.status_code < 300:
                error = UnexpectedResponseError(
                    f"the API answered {full.status_code} with a body that is not valid {encoding}", response=full
                )
                return self._next_delay(error, False, full)
            error = error_from_response(full)
            return self._next_delay(error, is_retryable_status(full.status_code), full, throttled, free)
        try:
            return self.config.vendor.parse(full, self.recording_id, self.leg, clock_offset(full))
        except APIStatusError as exc:
            return self._next_delay(exc, is_retryable_status(exc.status_code), full, throttled, free)
        except CallrecError as exc:
            return self._next_delay(exc, False, full)

    def on_transport_error(self, exc: httpx.TransportError) -> float:
        """The connection failed or timed out: seconds to sleep before retrying; else raises (chained)."""
        self._log(type(exc).__name__)
        self._ticket = Ticket()
        text = redact_text(str(exc)) or type(exc).__name__
        error: APIConnectionError
        if isinstance(exc, httpx.TimeoutException):
            error = APITimeoutError(f"request timed out ({type(exc).__name__}: {text})", request=self._request)
        else:
            error = APIConnectionError(f"connection failed ({type(exc).__name__}: {text})", request=self._request)
        error.__cause__ = exc
        return self._next_delay(error, True, None)

    def deadline_passed(self) -> NoReturn:
        """The call's overall deadline passed (between attempts, mid-body, or in a blocked read)."""
        raise APITimeoutError(
            f"{self.config.vendor.name}: the call did not finish within its {self.seconds:g} s deadline",
            request=self._request,
        ) from None

    # -- policy -----------------------------------------------------------

    def _next_delay(
        self,
        error: CallrecError,
        retryable: bool,
        response: httpx.Response | None,
        throttled: bool = False,
        free: bool = False,
    ) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` if there is none.

        A throttled answer to a patient call while the API keeps serving other requests (``free``) costs no
        attempt and no backoff of its own: the shared budget (its pause and its lowered rate) decides when the
        next attempt goes (``wait_for_budget``).
        """
        if throttled:
            self._throttle_error = error
            if free:
                log.debug("%s: throttled (%s); waiting for the request budget", self.config.vendor.name, error)
                return 0.0
        if not retryable or self.attempt >= self.config.max_retries:
            raise error
        delay = retry_delay(self.attempt, response)
        if time.monotonic() + delay >= self.deadline_at:
            raise error
        log.debug("%s: retrying in %.2f s after %s", self.config.vendor.name, delay, type(error).__name__)
        self.attempt += 1
        return delay

    def _log(self, outcome: str) -> None:
        if log.isEnabledFor(logging.DEBUG) and self._request is not None:
            log.debug(
                "%s %s %s -> %s (attempt %d/%d, %.0f ms)",
                self.config.vendor.name,
                self._request.method,
                self._request.url.path,
                outcome,
                self.attempt + 1,
                self.config.max_retries + 1,
                (time.monotonic() - self._started) * 1000,
            )
