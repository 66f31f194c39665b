"""Request budgets: one per client and origin, shared by every thread, task and ``with_options()`` copy.

A :class:`RequestBudget` is sans-I/O, like ``_engine.ApiCall``: the drivers ask
it how long to wait before an attempt (``wait``) and tell it what came back
(``on_outcome``); the sync driver sleeps in ``_io_sync``, the async one in
``_io_async``. Nothing here blocks or sleeps, and the clock is injectable, so
the policy tables run on a fake clock.

What it does:

- **Pacing**: a token bucket in its GCRA form (one "next free slot" time, no
  timer): at ``rate`` requests per second with a burst of ``BURST``. With
  ``rate_limit=R`` the rate starts at ``LIMIT_MARGIN`` x R and never exceeds it. With no limit (the
  default) there is no rate at all until the first throttle: a client that is
  never throttled takes the lock-free fast path and pays nothing.
- **Cooperative backoff**: a throttled answer (429, or 503 as S3 says
  ``SlowDown``) is a message to the whole client. Its ``Retry-After`` (or
  ``retry-after-ms``) pauses every request to that origin until it has passed, and
  the rate drops; requests already waiting are rescheduled after the pause at the
  new rate (each ticket carries the epoch it was scheduled in), so the pause does
  not end in a stampede.
- **Adaptive rate**: CUBIC (as botocore's ``adaptive`` retry mode,
  ``botocore/retries/throttling.py``) with a slow start in front. On the first
  throttle of an unpaced client the rate is set from what its first burst got
  served, then doubles every ``DOUBLING`` s until the next throttle (a first burst
  says little about the limit). After that each throttle episode drops the rate to
  ``BETA`` times the origin's capacity (what it served over the last second of
  sending; 0.9 when measured so, else 0.8 of the pacing rate) and the rate grows
  again as ``W_max * (1 + (1 - BETA) * ((t - K) / K)**3)``: back to the throttled
  rate quickly at first, then slowly (a plateau, so few throttles once the limit is
  found), then faster (a raised limit is found too). CUBIC rather than AIMD
  because its growth is a function of time since the last throttle, not of the
  number of answers: an API's token bucket refills by time, so the probe does not
  speed up with concurrency; and because every episode costs the whole client a
  ``Retry-After`` pause, the long plateau matters more than a fast probe. Unlike
  botocore, ``K`` is fixed (``RECOVERY`` s) rather than growing with the rate, so
  20 and 200 requests/s behave alike, and the cap "at most twice what is really
  being sent" only stops growth. One throttle episode lowers the rate once:
  answers to requests sent before the last decrease were caused by the old rate.

Stats for progress displays: :meth:`RequestBudget.stats`.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Callable
from time import monotonic
from urllib.parse import urlsplit

import attrs

__all__ = [
    "BETA",
    "BETA_MEASURED",
    "BURST",
    "MIN_RATE",
    "RECOVERY",
    "SEND_BURST",
    "THROTTLE_STATUSES",
    "Budgets",
    "RateStats",
    "RequestBudget",
    "Ticket",
    "check_rate_limit",
    "is_throttle",
]

log = logging.getLogger("callrec")

#: Statuses that mean "slow down": 429 Too Many Requests, and 503 (S3's SlowDown, most APIs' overload answer).
THROTTLE_STATUSES = frozenset({429, 503})
#: The rate never falls below this (requests per second): a throttled client still makes progress.
MIN_RATE = 0.5
#: How far the rate falls on a throttle (botocore: 0.7; see the module docstring) ...
BETA = 0.8
#: ... and when the origin's capacity was measured (a second of throttled sending): the plateau is known.
BETA_MEASURED = 0.9
#: Seconds CUBIC takes to climb back to the rate that was throttled (then it probes above it, slowly at first).
RECOVERY = 8.0
#: Requests the bucket lets through back to back once paced (1: evenly spaced, never a burst).
BURST = 1
#: With a rate_limit, at most this many requests go out within 1/R of each other (late waiters, see RequestBudget).
SEND_BURST = 2
#: The window over which the sending and served rates are measured (seconds).
MEASURE_WINDOW = 1.0
#: A rate is never measured over less than this (seconds), so a burst of a few requests is not read as a rate.
MIN_SPAN = 0.25
#: A wait is handed out in slices at most this long, so a waiter sees a pause or a rate change within it.
WAIT_SLICE = 0.1
#: A served rate measured over at least this much sending time (seconds) is taken as the origin's capacity.
RELIABLE_SPAN = 0.5
#: The rate is raised (and waiting tickets rescheduled) in steps of at least this factor.
GROWTH_STEP = 1.02
#: With ``rate_limit=R`` requests are paced at R times this: under R, with slack for a late bunch to refill.
LIMIT_MARGIN = 0.97
#: A measured capacity fades by this factor per second (halves in about a minute and a half).
KNOWN_DECAY = 0.992
#: After the first throttle the rate doubles this often (seconds) until the next one: slow start.
DOUBLING = 0.25
#: Longest pause a Retry-After can impose (seconds), as the retry policy's cap (``_constants.MAX_RETRY_AFTER``).
MAX_PAUSE = 60.0


def _now() -> float:
    return monotonic()  # looked up at each call: the retry-table tests swap in a clock their waits advance


def is_throttle(status: int) -> bool:
    """429 and 503 slow the whole client down."""
    return status in THROTTLE_STATUSES


def check_rate_limit(value: object) -> float | None:
    """``rate_limit``: requests per second, a positive finite number, or None (adaptive)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rate_limit must be a number of requests per second or None, got {type(value).__name__}")
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate_limit must be a positive finite number of requests per second, got {value!r}")
    return rate


@attrs.define
class Ticket:
    """One request's place in the budget: when it may go, and in which pacing epoch that was decided."""

    at: float = 0.0
    epoch: int = -1
    sent: float = 0.0
    served: int = 0  # the budget's served count when the request went (see ``served_since``)
    parent: Ticket | None = None  # the ticket in the parent budget (a with_options(rate_limit=) copy's)


@attrs.frozen
class RateStats:
    """A snapshot of a budget, for progress displays.

    Attributes:
        rate: Requests per second sent over the last second.
        limit: The pacing rate now (None: not paced, no throttle seen and no rate_limit).
        throttled: Throttled answers (429/503) seen so far.
        requests: Requests sent so far.
    """

    rate: float
    limit: float | None
    throttled: int
    requests: int


class RequestBudget:
    """The shared request budget of one client for one origin (thread-safe; never blocks)."""

    def __init__(
        self,
        label: str,
        *,
        rate_limit: float | None = None,
        clock: Callable[[], float] = _now,
        parent: RequestBudget | None = None,
    ):
        self.label = label  # for log lines: "feather API", "storage 127.0.0.2:8601"; never a URL with a query
        # Paced a little under the limit: a token bucket drained by one late bunch of requests refills only from
        # the client's slack, and at exactly its rate it never does (3 429s per 3,000 requests at 200/s, each
        # pausing the whole client for the Retry-After).
        self.ceiling = rate_limit * LIMIT_MARGIN if rate_limit is not None else None
        # ... and what really goes out is itself held to R with a burst of SEND_BURST: waiters that wake late (the
        # GIL's 5 ms switch interval is a whole slot at 200/s; a busy event loop) would otherwise go out together,
        # and a few such bunches drain the origin's bucket. Held so, late wake-ups alone cannot drain an origin's bucket
        # (burst >= SEND_BURST; jitter on the way still can), while a late backlog drains faster than slots come.
        self._min_gap = 1.0 / rate_limit if rate_limit is not None else 0.0
        self._go_tat = -math.inf
        self.parent = parent  # a with_options(rate_limit=) copy's budget also draws from (and informs) its parent's
        self._clock = clock
        self._lock = threading.Lock()
        self._rate: float | None = self.ceiling  # None: unpaced (adaptive, never throttled yet)
        self._tat = 0.0  # GCRA's theoretical arrival time: the next free slot
        self._pause_until = 0.0
        self._epoch = 0
        self._sends: collections.deque[float] = collections.deque()
        self._requests = 0
        self._throttled = 0
        self._served = 0
        self._served_at: collections.deque[float] = collections.deque()
        self._first_send: float | None = None
        self._slow_start = False
        self._start_rate: float | None = None
        self._beta = BETA
        self._known = 0.0  # the highest capacity measured at a throttle, decaying (KNOWN_DECAY per second)
        self._known_at = 0.0
        # CUBIC state
        self._w_max = self.ceiling or 0.0
        self._k = 0.0
        self._last_drop = -math.inf

    # -- before a request -------------------------------------------------

    def wait(self, ticket: Ticket) -> float:
        """Seconds to wait before sending; 0 means send now (the request is then counted as sent).

        Call it again after waiting: a throttle seen meanwhile moves the ticket after its pause, at the new rate.
        """
        now = self._clock()
        delay = self._delay(ticket, now)
        if delay > 0:
            return min(delay, WAIT_SLICE)
        if self.parent is not None:
            if ticket.parent is None:
                ticket.parent = Ticket()
            delay = self.parent.wait(ticket.parent)
            if delay > 0:
                return delay  # already a slice
        self._sent(ticket, now)
        return 0.0

    def _delay(self, ticket: Ticket, now: float) -> float:
        if self._rate is None and self._pause_until <= now:
            return 0.0  # the fast path: never throttled, no limit
        with self._lock:
            if ticket.epoch != self._epoch:
                ticket.at = self._schedule(now)
                ticket.epoch = self._epoch
            delay = max(ticket.at, self._pause_until) - now
            if delay <= 0:
                gap = self._go_tat - (SEND_BURST - 1) * self._min_gap - now
                if gap > 0:
                    return gap  # its slot has come, but SEND_BURST requests went in the last 1/R
                self._go_tat = max(self._go_tat, now) + self._min_gap
                self._grow(now)
            return delay

    def _schedule(self, now: float) -> float:
        start = max(now, self._pause_until)
        if self._rate is None:
            return start
        interval = 1.0 / self._rate
        at = max(start, self._tat - (BURST - 1) * interval)
        self._tat = max(self._tat, at) + interval
        return at

    def _sent(self, ticket: Ticket, now: float) -> None:
        ticket.sent = now
        ticket.served = self._served
        if self._first_send is None:
            self._first_send = now
        sends = self._sends
        sends.append(now)  # deque.append/popleft are atomic: no lock on the fast path
        self._requests += 1
        while sends and sends[0] < now - MEASURE_WINDOW:
            try:
                sends.popleft()
            except IndexError:  # another thread emptied it
                break

    def measured_rate(self) -> float:
        """Requests per second sent over the last MEASURE_WINDOW seconds."""
        return self._rate_of(self._sends, self._clock())

    def _rate_of(
        self, times: collections.deque[float], now: float, window: float = MEASURE_WINDOW, floor: float = MIN_SPAN
    ) -> float:
        """Events per second in the trailing ``window``, over the time the client was sending (not paused) in it."""
        since = now - window
        count = sum(1 for t in list(times) if t >= since)
        return count / min(max(self._active_span(now), floor), window)

    # -- after a request --------------------------------------------------

    def on_outcome(self, ticket: Ticket, status: int | None, retry_after: float | None = None) -> bool:
        """Tell the budget what the request got (None: no answer). True if it was throttled."""
        if status is None:
            return False
        if not is_throttle(status):
            with self._lock:
                self._served += 1
                served_at = self._served_at
                now = self._clock()
                served_at.append(now)
                while served_at[0] < now - MEASURE_WINDOW:
                    served_at.popleft()
            return False
        if self.parent is not None and ticket.parent is not None:
            self.parent.on_outcome(ticket.parent, status, retry_after)
        now = self._clock()
        with self._lock:
            self._throttled += 1
            if retry_after is not None and retry_after > 0:
                until = now + min(retry_after, MAX_PAUSE)
                if until > self._pause_until:
                    self._pause_until = until
                    self._reschedule(now)
            if ticket.sent > self._last_drop:  # a new episode: this request was sent at the current rate
                self._drop(now, status, retry_after)
        return True

    def served_since(self, ticket: Ticket) -> bool:
        """True if the origin answered some other request (not throttled) since ``ticket``'s request went.

        This is "the vendor keeps serving requests": a bulk item's throttled answer is then the budget's to
        pace, not a failed attempt. An origin that throttles everything is failing, and its answers count.
        """
        return self._served > ticket.served

    def _drop(self, now: float, status: int, retry_after: float | None) -> None:
        """A new throttle episode: the rate falls to BETA times the origin's measured capacity.

        The capacity is the rate the origin served over the last second, when the client has been sending (not
        paused) for at least RELIABLE_SPAN of it: an origin that throttles serves exactly its limit. With less to
        go on it is the pacing rate. The first throttle of an unpaced client starts a slow start: the served
        count of a first burst says little about the limit, so the rate then doubles every DOUBLING seconds until
        the next throttle, and CUBIC takes over from there.
        """
        sending = self._rate_of(self._sends, now)
        served = self._rate_of(self._served_at, now)
        span = self._active_span(now)
        beta = BETA
        if self._rate is None:  # the first throttle: what the first burst got served, then a slow start
            base = served if served > 0 else sending
        elif self._slow_start:  # the rate doubled every DOUBLING s: only its last stretch was above the limit
            recent = self._rate_of(self._served_at, now, DOUBLING, floor=0.05)
            base = min(recent, self._rate) if recent > 0 else self._rate
        elif span >= RELIABLE_SPAN:  # enough sending to go on: what was served is the capacity
            base = min(served if served > 0 else sending, sending, self._rate)
            beta = BETA_MEASURED if served > 0 else BETA
            if served > 0:
                self._known = max(self._known * KNOWN_DECAY ** (now - self._known_at), served)
                self._known_at = now
        else:  # just after a pause: too little sending to measure anything
            base = self._rate
        base = max(base, MIN_RATE)
        if self.ceiling is not None:
            base = min(base, self.ceiling)
        old = self._rate
        # Leaving a slow start, the rate that was throttled overshot the limit: CUBIC's fast-convergence rule
        # puts the plateau below it, at (1 + BETA) / 2 of it.
        self._w_max = base * (1 + beta) / 2 if self._slow_start else base
        self._beta = beta
        self._slow_start = old is None and self.ceiling is None
        # Told the limit, a throttle is most likely jitter at the limit: back to it sooner (CUBIC never goes above).
        self._k = RECOVERY if self.ceiling is None else RECOVERY / 4
        self._last_drop = now
        self._set_rate(max(base * beta, MIN_RATE))
        self._start_rate = self._rate
        self._reschedule(now)
        log.info(
            "%s: request rate %s -> %.1f/s after a %d%s (sent %.1f/s, served %.1f/s; throttled %d so far)",
            self.label,
            "unpaced" if old is None else f"{old:.1f}/s",
            self._rate,
            status,
            "" if retry_after is None else f", pausing {min(retry_after, MAX_PAUSE):.2f} s",
            sending,
            served,
            self._throttled,
        )

    def _start_rate_or_min(self) -> float:
        return self._start_rate or MIN_RATE

    def _reschedule(self, now: float, *, sending: bool = False) -> None:
        """Void every reservation: waiting tickets are scheduled again (in the order they next ask) after the
        pause, at the rate now. Their old slots are given back, so a burst of throttles does not push the schedule
        into the future. (Spacing the first of them one interval after the last request that went starved the
        queue in the benchmark: 0.3-0.6x of the limit.) With a ``rate_limit`` the first of them still goes no sooner
        than 1/rate_limit after the last request sent: the limit is never exceeded. ``sending``: a request goes
        now (the growth that raised the rate came with it), so the next slot is one interval later."""
        floor = now
        if sending and self._rate is not None:
            floor = now + 1.0 / self._rate
        elif self.ceiling is not None and self._sends:
            floor = self._sends[-1] + 1.0 / self.ceiling
        self._tat = max(floor, self._pause_until)
        self._epoch += 1

    def _active_span(self, now: float) -> float:
        """Seconds of the trailing window in which the client was sending (not before its first request, not paused)."""
        active_from = max(now - MEASURE_WINDOW, self._first_send if self._first_send is not None else now)
        if self._pause_until <= now:
            active_from = max(active_from, self._pause_until)
        return now - active_from

    def _grow(self, now: float) -> None:
        """Growth since the last drop (under the lock, when a paced request goes): slow start, then CUBIC."""
        if self._last_drop == -math.inf or self._rate is None:
            return
        t = max(now - max(self._last_drop, self._pause_until), 0.0)
        if self._slow_start:
            target = self._start_rate_or_min() * 2.0 ** min(t / DOUBLING, 30.0)
        else:
            target = self._w_max * (1.0 + (1.0 - self._beta) * ((t - self._k) / self._k) ** 3)
        # Far below a capacity measured recently (a drop measured in a bad second): back up to half of it at
        # slow start's pace, not at CUBIC's, whose growth is proportional to the rate it fell to.
        known = self._known * KNOWN_DECAY ** max(now - self._known_at, 0.0)
        if self._rate < known / 2:
            target = max(target, min(known / 2, self._start_rate_or_min() * 2.0 ** min(t / DOUBLING, 30.0)))
        if self.ceiling is not None:
            target = min(target, self.ceiling)
        if target <= self._rate:
            return  # growth never lowers the rate: only a throttle does
        # botocore's cap: at most twice what is really being sent, so a rate far above the demand cannot let the
        # demand's own bursts through unpaced (a bucket of 5 refuses 16 requests sent at once at any rate).
        target = max(min(target, 2.0 * self._rate_of(self._sends, now)), self._rate)
        if target >= self._rate * GROWTH_STEP:
            self._set_rate(target)
            self._reschedule(now, sending=True)

    def _set_rate(self, rate: float) -> None:
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        if self._rate is not None and rate > self._rate:  # a decrease is logged by _drop, with its reasons
            log.info("%s: request rate %.1f -> %.1f/s", self.label, self._rate, rate)
        self._rate = rate

    # -- reading ----------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The pacing rate now (requests per second), or None while unpaced."""
        return self._rate

    @property
    def paused_until(self) -> float:
        """The clock time before which no request goes (a Retry-After being honoured)."""
        return self._pause_until

    def stats(self) -> RateStats:
        return RateStats(
            rate=self.measured_rate(), limit=self._rate, throttled=self._throttled, requests=self._requests
        )


class Budgets:
    """A client's budgets: the API's, and one per storage origin (created on first use), shared by its copies."""

    def __init__(self, api_label: str, *, rate_limit: float | None, clock: Callable[[], float] = _now):
        self._clock = clock
        self.api = RequestBudget(api_label, rate_limit=rate_limit, clock=clock)
        self._storage: dict[str, RequestBudget] = {}
        self._lock = threading.Lock()

    def limited(self, rate_limit: float | None) -> Budgets:
        """A ``with_options(rate_limit=)`` copy's: its API requests draw from a budget of their own at that limit
        and from this one (throttles reach both); storage budgets are shared as they are."""
        copy = Budgets.__new__(Budgets)
        copy._clock = self._clock
        root = self.api
        while root.parent is not None:
            root = root.parent
        copy.api = (
            root
            if rate_limit is None
            else RequestBudget(root.label, rate_limit=rate_limit, clock=self._clock, parent=root)
        )
        copy._storage = self._storage
        copy._lock = self._lock
        return copy

    def storage(self, origin: str) -> RequestBudget:
        """The budget of one storage origin ("scheme://host:port"), adaptive."""
        budget = self._storage.get(origin)
        if budget is None:
            with self._lock:
                budget = self._storage.setdefault(
                    origin, RequestBudget(f"storage {origin}", rate_limit=None, clock=self._clock)
                )
        return budget

    def for_url(self, url: str) -> RequestBudget:
        """The budget of a signed URL's origin (scheme, host and port; never its path or query)."""
        parts = urlsplit(url)
        return self.storage(f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":"))

    def throttled(self) -> int:
        """Throttled answers seen by every budget of the client."""
        with self._lock:
            storage = list(self._storage.values())
        return self.api.stats().throttled + sum(b.stats().throttled for b in storage)
