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
- **Adaptive rate**: a slow start, then "hold and probe". Before its first throttle an unpaced client has at most
  ``INITIAL_WINDOW`` requests in flight plus one per answer (TCP's slow start; gone ``WINDOW_OPEN`` s after the
  first request), so its first burst is 8 requests, not its concurrency. On the first throttle the rate is set from
  what that burst got served (and the served count is the origin's burst, ``_burst``), then doubles every
  ``DOUBLING`` s until the next throttle. That one sets a first hold rate (``START_HOLD`` x what the origin served
  while the sending outran it): held for ``PLATEAU_MIN`` s, then probed slowly, as that measure is a lower bound;
  only a guess with nothing served to measure is probed at once and fast. The throttle that ends this first probe
  measures the limit from a slow climb, and the plateau after it is ``PLATEAU_MAX`` at once. From then on the rate
  holds at a rate that held (``_good``) for a plateau, then probes above it a few percent a second
  (``PROBE_SLOPE``, and at least ``PROBE_MIN_SLOPE`` requests/s a second; beyond ``PROBE_RANGE`` the limit is not
  near, and it doubles every ``PROBE_DOUBLING`` s). A throttle while probing sets the hold rate to
  ``HOLD`` x what was served (never above a hold rate that failed); when it lands where the last one did (within
  ``SAME``) the next plateau is ``PLATEAU_GROWTH`` times longer, up to ``PLATEAU_MAX``: a stable limit is probed,
  and a ``Retry-After`` paid, less and less often (the TCP CUBIC plateau, made to lengthen). A throttle while
  holding means the limit fell or a peer sharing it grew: the hold rate falls to ``DECREASE`` x what the last
  second served, and the plateau shortens. A throttle with a ``Retry-After`` restarts at the hold rate itself (the
  pause refilled the origin's bucket); one without starts ``BETA`` lower and climbs back in ``RECOVERY`` s.

  What was served: a token bucket serves its burst on top of its rate, so a one-second count overstates a limit
  of 20/s by up to 25%, and a longer one reaching back to slower sending understates it. ``_replayed`` replays the
  requests served since the last pause (at most ``CAPACITY_WINDOW`` s back), at the times they went, through a
  token bucket of the origin's burst that was full then: the lowest rate at which it serves them all is a lower
  bound of the limit, and a close one (it knows when the bucket was full and wasting tokens). ``_capacity``, the
  older measure, is the largest "served less the burst" over trailing stretches (0.25-0.5 s at the end of the
  slow start, 1-4 s after); after a probe the larger of the two lower bounds is taken.

  Why (issue 26, second pass): the first pass measured served over one second, burst included, so at 20/s the hold
  rate started above the limit (a throttle while holding, a 0.9x cut, a long climb back), and a hold of 0.95 x a
  measure that was low at 60/s held 0.94 of the limit; a concurrency of 64 sent 64 requests at once before the
  first throttle (59 answered 429, 5% of a 60 s export at 20/s). Now the measure is within a few percent under
  the limit at both rates, ``HOLD`` is 0.97 (was 0.95), ``START_HOLD`` 0.97 (0.85), and the first burst is 8.
  Discrete-event simulation of the benchmark's server (burst 5, 429 + ``Retry-After: 1``), 60 s of work, mean of
  4 seeds, before -> after: 20/s C16 0.876x -> 0.884x, C64 0.870x (5.5% 429) -> 0.884x (1.3%); 60/s C16 0.903x
  -> 0.879x, C64 0.907x (1.7%) -> 0.879x (0.4%); the loopback figures are in benchmarks/RESULTS.md ("Issue 26").
  Not done: four processes sharing 60/s stay at ~0.75-0.78x (one worker's probe throttles its peers' holds).

  Third pass (issue 26): ``HOLD`` and ``START_HOLD`` are 0.98 (were 0.97): the served measure is now a lower bound,
  so 0.97 of it held ~0.95 of the limit. The throttle that ends the slow start no longer starts a fast probe when
  its estimate was measured from answers: the fast probe paid one more whole-client ``Retry-After`` pause to find
  what the estimate already said (the first plateau is ``PLATEAU_MIN``, then 8 and 32 s as before).
  Loopback harness (token bucket, burst 5, 429 + ``Retry-After: 1``; 60 s of work, untold, async, concurrency 16;
  two runs each), before -> after: 60/s 0.876/0.875x -> 0.886/0.889x, 20/s 0.875/0.876x -> 0.895/0.896x, 429s
  unchanged (0.2% and 0.7%). Discrete-event simulation (3 seeds): 20/s 0.884x -> 0.899x, 60/s 0.879x -> 0.894x.
  Four processes sharing 60/s (loopback, two runs each): 0.699/0.677x -> 0.780/0.735x (2.0-2.7% 429), a run-to-run
  spread as wide as the change (simulated, 20 seeds: 0.766x -> 0.752x); the target of 0.85x is not reached.
  Tried and not kept (simulated fleet of 4 at 60/s unchanged or worse, 0.74-0.78x either way): a throttle while
  holding that served at the hold rate (a peer's probe) cutting less or not at all, or only pausing once; randomised
  plateau lengths; slower or no doubling beyond ``PROBE_RANGE``; restarting lower after such a pause. The fleet's
  loss is its episodes (~70 in a minute, each a whole-client pause of one worker) and its slowest worker. ``HOLD``
  0.99 was 0.896x and 0.861x at 60/s (one more 429 in the second, its second half 0.87x): not kept.

  Fourth pass (issue 26): the start-up had three ``Retry-After`` pauses and the second hold was still 0.94 of the
  limit, because "served less the whole burst" over a trailing stretch is a loose bound when the bucket was only
  partly drained (0.875x of 60/s at the end of the slow start, 0.96x after the first probe), and over so short a
  climb it overstated low limits (1.12x of 20/s: a throttle while holding at once). ``_replayed`` replays the served
  requests, at the times they went, through a token bucket of the origin's burst that was full after the pause:
  under the limit and 0.84-0.93x of it at the end of the slow start (fake clock and simulation, 20-200/s), 0.99x
  after a probe. The probe that first measures the limit is followed by ``PLATEAU_MAX`` at once (was 8 s, then 32):
  a 60 s export pays four pauses, not five. ``PROBE_MIN_SLOPE``: a slow client (a small share of a fleet, a low
  limit) probed 3% of a few requests/s a second and stayed where it started. Loopback harness (60 s of work, untold,
  one run each, idle machine), before -> after: 20/s async C16 0.895x -> 0.924x, C64 0.878x -> 0.924x, sync C16
  0.883x -> 0.907x, C64 0.880x -> 0.905x; 60/s async C16 0.889x -> 0.913x, C64 0.873x -> 0.913x, sync C16 0.889x ->
  0.915x, C64 0.848x -> 0.909x; 429s 0.2-1.2%; second halves 0.94-0.96x. Four processes sharing 60/s: 0.79x (two
  runs, 2.5-3.1% 429), not the 0.85x asked: each worker measures what it was served while a peer was paused by a
  Retry-After, so the hold rates add up to 1.1-1.5x the limit (simulated) and the workers keep throttling each
  other; deeper or quicker cuts, keeping the plateau on a throttle while holding, halving what a "higher limit"
  adds, wall-clock aligned probes and slopes in proportion to the square root of the rate were tried in simulation
  and all stayed at 0.72-0.80x. No policy of one budget fixes that; the fleet shares one measurement instead:
  ``_fleet`` (a scout finds the limit alone while its peers hold, via :meth:`RequestBudget.hold`, then every shard
  paces at its share, :meth:`RequestBudget.limit_to`): 0.89-0.91x. docs/guides/fleets.md.

  Sixth pass (issue 26): the first probe after a measured slow start climbs slowly up to ``FIRST_PROBE_RANGE``
  (40%) above its hold rate, not ``PROBE_RANGE`` (15%). The slow start's measure is a lower bound and was up to a
  fifth under the limit (sync clients more often: answers wait for the GIL, so fewer are counted by the throttle);
  from 0.85x a climb of 15% doubled across the limit in under half a second, the origin's bucket drained in that
  time, and what it served measured the limit 0.92-0.98x: held 0.90-0.96x for ``PLATEAU_MAX``. Crossing it slowly
  drains the bucket over seconds: 0.99-1.0x on the fake clock for every limit from 10/s to 150/s (a policy table).
  Loopback, sync, one run each before -> after: 20/s C64 0.905x -> 0.920x, 60/s C16 0.902x -> 0.907x (async
  unchanged, 0.913-0.928x); the make bench figures are in benchmarks/RESULTS.md ("sixth pass").

  The first pass (from CUBIC with a fixed ``K`` of 8 s): each CUBIC cycle cost a whole-client ``Retry-After`` pause
  plus a climb from 0.9 x; a fleet worker that fell low stayed low (the "twice what is sent" cap, measured over
  one second, pinned any rate under 1/s). Now the cap counts the request going, and a probe that finds no limit
  near doubles, so the floor (``MIN_RATE``) is left within seconds once answers succeed. See
  docs/guides/rate-limits.md.

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
    "BURST",
    "HOLD",
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
#: Without a Retry-After pause, the rate starts again at this fraction of the hold rate (botocore: 0.7) ...
BETA = 0.8
#: ... and climbs back to it in this many seconds (CUBIC's concave part).
RECOVERY = 2.0
#: The throttle that ends a slow start: what was served over this last stretch (seconds) ...
START_WINDOW = 0.5
#: After a probe found the limit, the rate holds at this fraction of what the origin served.
HOLD = 0.98
#: ... times this is a first, rough hold rate.
START_HOLD = 0.98
#: A throttle while holding (the limit fell, or a peer sharing it took more): the hold rate falls by this factor.
DECREASE = 0.9
#: A probe's throttle served within this fraction above the hold rate: the limit is where it was.
SAME = 0.1
#: The first hold after a change lasts this long (seconds) ...
PLATEAU_MIN = 2.0
#: ... each probe that finds the limit where it was multiplies it by this ...
PLATEAU_GROWTH = 4.0
#: ... up to this (seconds): a stable limit is probed (and a Retry-After paid) about once per PLATEAU_MAX.
PLATEAU_MAX = 32.0
#: Probing above a limit that held: the rate grows by this fraction of the hold rate per second ...
PROBE_SLOPE = 0.03
#: ... and by at least this much (requests/s per second): processes sharing a limit probe alike in absolute terms
#: (additive increase moves them towards a fair share; a slope in proportion keeps the shares they started with).
PROBE_MIN_SLOPE = 0.5
#: ... or by this much when the last hold did not hold or the limit moved ...
PROBE_SLOPE_FAST = 0.1
#: ... up to this fraction above it; beyond, the limit is not near, and the rate doubles every PROBE_DOUBLING s.
PROBE_RANGE = 0.15
PROBE_DOUBLING = 0.5
#: The first probe after a measured slow start climbs slowly this far above its hold rate before doubling: that
#: measure is a lower bound, and may be a fifth under the limit (a probe doubling across a limit measures it loosely).
FIRST_PROBE_RANGE = 0.4
#: What the origin served is measured over this trailing window (seconds), less its burst (see ``_capacity``).
CAPACITY_WINDOW = 4.0
#: ... over stretches at least this long (seconds), as a short one is mostly burst.
CAPACITY_MIN = 1.0
#: Replaying what was served through a token bucket (``_replayed``), a request may have reached the origin this
#: much (seconds) after or before the time it went, as its neighbours did (the bucket may run that many tokens short).
REPLAY_JITTER = 0.01
#: The origin's burst is taken off what it served, but never more than this share of it.
BURST_SHARE = 0.3
#: Before its first throttle an unpaced client has at most this many requests in flight, plus one per answer
#: (TCP's slow start: the window doubles each round trip), so its first burst is not its whole concurrency ...
INITIAL_WINDOW = 8
#: ... and the window is gone this long (seconds) after the first request (answers that never come, such as
#: transport errors, which the budget is not told, cannot hold it shut).
WINDOW_OPEN = 1.0
#: A request held by the initial window asks again this soon (seconds).
WINDOW_WAIT = 0.005
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
        self._served_sent: collections.deque[float] = collections.deque()  # when each served request went
        self._first_send: float | None = None
        self._slow_start = False
        self._window_open = False
        # The origin's burst, as its answers to an unpaced client's first burst say (requests served at once).
        self._burst = 0
        self._burst_sent = (math.inf, -math.inf)  # requests sent in this span and answered later count in it
        # After a throttle: the rate that held (``_good``), how long to hold it before probing above it, and how
        # many probes in a row found the limit where it was.
        self._good = self.ceiling or MIN_RATE
        self._start = self._good
        self._plateau = PLATEAU_MIN
        self._stable = 0
        self._first_probe = False  # the next probe is the first after a measured slow start
        self._held = False  # hold(): a fleet worker waiting for its scout sends nothing
        self._fast = False  # probe fast: the hold rate is a rough guess (just out of the slow start)
        self._bad = math.inf  # the lowest hold rate that was throttled (until a probe is served more)
        self._phase_start = -math.inf
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
        if self._held:
            return WAIT_SLICE  # a fleet's scout is finding the limit: nothing goes until it says
        if self._rate is None and self._pause_until <= now:
            if self._window_open or self._in_window(now):
                return 0.0  # the fast path: never throttled, no limit
            return WINDOW_WAIT
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

    def _in_window(self, now: float) -> bool:
        """Before the first throttle: may one more request go (fewer than INITIAL_WINDOW + answers in flight)?"""
        if self._first_send is not None and now - self._first_send >= WINDOW_OPEN:
            self._window_open = True
            return True
        answered = self._served + self._throttled
        return self._requests - answered < INITIAL_WINDOW + answered

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
        self,
        times: collections.deque[float],
        now: float,
        window: float = MEASURE_WINDOW,
        floor: float = MIN_SPAN,
        paused_until: float | None = None,
    ) -> float:
        """Events per second in the trailing ``window``, over the time the client was sending (not paused) in it."""
        since = now - window
        count = sum(1 for t in list(times) if t >= since)
        return count / min(max(self._active_span(now, window, paused_until), floor), window)

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
                self._served_sent.append(ticket.sent)
                if self._burst_sent[0] <= ticket.sent <= self._burst_sent[1]:
                    self._burst += 1  # one of the first burst's, answered after the first throttle
                while served_at[0] < now - CAPACITY_WINDOW:
                    served_at.popleft()
                served_sent = self._served_sent
                while served_sent and served_sent[0] < now - CAPACITY_WINDOW - 1.0:  # a request sent long ago
                    served_sent.popleft()  # may have been the last: the deque empties
            return False
        if self.parent is not None and ticket.parent is not None:
            self.parent.on_outcome(ticket.parent, status, retry_after)
        now = self._clock()
        with self._lock:
            self._throttled += 1
            previous_pause = self._pause_until  # measure over the sending since the last pause, not this one
            if retry_after is not None and retry_after > 0:
                until = now + min(retry_after, MAX_PAUSE)
                if until > self._pause_until:
                    self._pause_until = until
                    self._reschedule(now)
            if ticket.sent > self._last_drop:  # a new episode: this request was sent at the current rate
                self._drop(now, status, retry_after, previous_pause)
        return True

    def served_since(self, ticket: Ticket) -> bool:
        """True if the origin answered some other request (not throttled) since ``ticket``'s request went.

        This is "the vendor keeps serving requests": a bulk item's throttled answer is then the budget's to
        pace, not a failed attempt. An origin that throttles everything is failing, and its answers count.
        """
        return self._served > ticket.served

    def _drop(self, now: float, status: int, retry_after: float | None, previous_pause: float) -> None:
        """A new throttle episode: what the origin served says where the limit is; the rate goes back under it.

        The first throttle of an unpaced client starts a slow start (its first burst says little about the limit).
        The throttle that ends a slow start gives a first, rough hold rate. After that a throttle either lands while
        probing above the hold rate (the hold rate was sustainable: keep it, or raise it to ``HOLD`` x what was
        served, and hold longer next time if the limit is where it was) or while holding (the limit fell, or a
        peer sharing it grew: the hold rate falls to ``DECREASE`` x what was served, and the next hold is short).
        """
        sending = self._rate_of(self._sends, now, paused_until=previous_pause)
        replayed = self._replayed(max(now - CAPACITY_WINDOW, previous_pause))
        served = max(self._capacity(now, CAPACITY_WINDOW, CAPACITY_MIN, previous_pause), replayed)
        span = self._active_span(now, paused_until=previous_pause)
        old = self._rate
        if self._burst == 0 and old is not None:  # not known (the first burst got nothing served): the last
            # quarter second's excess over the last second's rate
            last = sum(1 for t in self._served_at if t >= now - MIN_SPAN)
            second = self._rate_of(self._served_at, now, MEASURE_WINDOW, MIN_SPAN, previous_pause)
            self._burst = max(round(last - MIN_SPAN * second), 0)
        t = now - self._phase_start
        if old is None:  # the first throttle: what the first burst got served, then a slow start
            first = self._rate_of(self._served_at, now, MEASURE_WINDOW, MIN_SPAN, previous_pause)
            base = first if first > 0 else sending
            self._burst = sum(1 for t in self._served_at if t >= now - MIN_SPAN)
            self._burst_sent = (now - MIN_SPAN, now)
            self._slow_start = self.ceiling is None
            self._good = max(BETA * base, MIN_RATE)
            kind = "first"
        elif self._slow_start:  # the rate doubled up to a throttle: what was served in its last second, roughly
            self._slow_start = False
            # the replay when it tells something (a trailing count over so short a climb overstates low limits)
            recent = replayed or self._capacity(now, START_WINDOW, MIN_SPAN, previous_pause)
            self._good = START_HOLD * (min(recent, old) if recent > 0 else old)
            if recent > 0:  # measured (less the burst, a lower bound): hold it, then probe slowly, once
                self._stable, self._plateau, self._fast = 0, PLATEAU_MIN, False
                self._first_probe = True
            else:  # nothing served to measure: a rough guess, probed at once and fast
                self._stable, self._plateau, self._fast = 0, 0.0, True
            kind = "slow start"
        else:
            measured = min(served, old) if span >= RELIABLE_SPAN and served > 0 else old
            probing = t >= self._plateau and old > self._good  # above a rate that held for the whole plateau
            if probing:
                if self._first_probe:  # the limit, measured from a slow climb: hold it for long
                    self._first_probe = False
                    self._stable, self._plateau, self._fast = 1, PLATEAU_MAX, False
                    kind = "first probe"
                elif measured <= self._good / HOLD * (1 + SAME):  # the limit is where it was: hold it, and longer
                    self._stable += 1
                    self._plateau = min(max(self._plateau * PLATEAU_GROWTH, PLATEAU_MIN), PLATEAU_MAX)
                    kind = "probe, same limit"
                    self._fast = False
                else:  # found higher: hold under what was served
                    self._stable, self._plateau = 0, PLATEAU_MIN
                    kind = "probe, higher limit"
                    self._fast = True  # the limit moved: the next probe is a fast one
                if measured > self._bad * (1 + SAME):
                    self._bad = math.inf  # served well above a hold that failed: the limit rose
                estimate = HOLD * min(measured, self._bad)
                # a measure under the hold rate says the hold was too high (a rough start): trust it
                self._good = estimate if measured < self._good else max(self._good, estimate)
            else:  # throttled at (or under) the hold rate: the limit is lower now
                self._bad = min(self._bad, old)
                # what the last second served (burst and all): the limit fell, and how far is what counts
                plain = self._rate_of(self._served_at, now, MEASURE_WINDOW, MIN_SPAN, previous_pause)
                held = min(plain, old) if span >= RELIABLE_SPAN and plain > 0 else old
                self._good = min(self._good, held) * DECREASE
                self._stable, self._plateau = 0, max(self._plateau / PLATEAU_GROWTH, PLATEAU_MIN)
                kind = "hold"
                self._fast = False
        self._good = max(self._good, MIN_RATE)
        if self.ceiling is not None:
            self._good = min(self._good, self.ceiling)
        paused = retry_after is not None and retry_after > 0
        # A Retry-After pause refills the origin's bucket: the hold rate can start at once. Without one the bucket
        # is empty, so start lower and climb back to the hold rate in RECOVERY s (CUBIC's concave part).
        self._start = self._good if paused or self._slow_start else max(self._good * BETA, MIN_RATE)
        self._last_drop = now
        self._phase_start = max(now, self._pause_until)
        self._set_rate(self._start)
        self._reschedule(now)
        log.info(
            "%s: request rate %s -> %.1f/s after a %d%s (%s; sent %.1f/s, served %.1f/s; throttled %d so far)",
            self.label,
            "unpaced" if old is None else f"{old:.1f}/s",
            self._rate,
            status,
            "" if retry_after is None else f", pausing {min(retry_after, MAX_PAUSE):.2f} s",
            kind,
            sending,
            served,
            self._throttled,
        )

    def _replayed(self, since: float) -> float:
        """The lowest rate at which a token bucket of the origin's burst, full at ``since``, would have served every
        request served since then at the time it went: a lower bound of the origin's rate, and a close one.

        Unlike ``_capacity``'s trailing counts it knows when the bucket was full (sending under the rate wastes
        tokens, so a stretch that starts before the sending outran the limit is not read as slow), and it uses
        send times, not answer times: answers handled in bunches (a busy event loop, the GIL) would read as a
        burst. Requests may reach the origin up to ``REPLAY_JITTER`` s later or sooner than their neighbours: the
        bucket may run that many seconds' worth of tokens short. A bucket that was not full at ``since`` (a pause
        too short to refill it) only lowers the bound. 0: nothing to tell (everything fitted in the burst).
        """
        sends = sorted(t for t in list(self._served_sent) if t >= since)
        if len(sends) < 2 or self._burst <= 0:
            return 0.0
        burst = float(self._burst)

        def serves_all(rate: float) -> bool:
            level, last = burst, since
            for t in sends:
                level = min(burst, level + rate * (t - last)) - 1.0
                last = t
                if level < -rate * REPLAY_JITTER:
                    return False
            return True

        low, high = 0.0, (len(sends) + 1) / max(sends[-1] - sends[0], 1e-3)
        while not serves_all(high):
            low, high = high, 2 * high
        for _ in range(30):  # to a billionth of the bracket
            mid = (low + high) / 2
            low, high = (low, mid) if serves_all(mid) else (mid, high)
        return high if high >= MIN_RATE else 0.0

    def _capacity(self, now: float, window: float, floor: float, paused_until: float) -> float:
        """What the origin served per second while the sending outran it: its rate, or a little under it.

        A token bucket serves its burst on top of its rate (5 requests at 20/s inflate one second's count by 25%),
        and a window reaching back to when the sending was under the limit deflates it. Over any trailing stretch
        (of the sending since the last pause, at least ``floor`` s, at most ``window`` s), served minus the burst
        is at most the rate: the largest such figure is the best measure.
        """
        active = self._active_span(now, window, paused_until)
        times = [t for t in list(self._served_at) if t >= now - active]  # not what came before the pause
        floor = min(floor, active)  # sending for less than floor since the pause: all of it
        best = 0.0
        for i, t in enumerate(times):
            count = len(times) - i - 1  # n answers at rate r span (n - 1) / r
            span = min(max(now - t, floor, MIN_SPAN / 5), window)
            best = max(best, max(count - self._burst, count * (1.0 - BURST_SHARE)) / span)
        return best

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

    def _active_span(self, now: float, window: float = MEASURE_WINDOW, paused_until: float | None = None) -> float:
        """Seconds of the trailing window in which the client was sending (not before its first request, not paused).

        ``paused_until``: the pause to leave out (default: the current one, if it is over).
        """
        active_from = max(now - window, self._first_send if self._first_send is not None else now)
        pause = self._pause_until if paused_until is None else paused_until
        if pause <= now:
            active_from = max(active_from, pause)
        return now - active_from

    def _grow(self, now: float) -> None:
        """Growth since the last drop (under the lock, when a paced request goes): slow start, then hold and probe."""
        if self._last_drop == -math.inf or self._rate is None:
            return
        t = max(now - max(self._phase_start, self._pause_until), 0.0)
        good = self._good
        if self._slow_start:
            target = self._start * 2.0 ** min(t / DOUBLING, 30.0)
        elif t < RECOVERY and self._start < good:  # concave climb back to the hold rate
            target = good - (good - self._start) * (1.0 - t / RECOVERY) ** 3
        elif t < self._plateau:
            target = good
        else:  # probe: slowly once the limit has held where it was, else fast; a limit not found near: doubling
            tau = t - self._plateau
            slope = max(PROBE_SLOPE_FAST if self._fast else PROBE_SLOPE, PROBE_MIN_SLOPE / good)
            reach = FIRST_PROBE_RANGE if self._first_probe else PROBE_RANGE
            near = reach / slope
            if tau <= near:
                target = good * (1.0 + slope * tau)
            else:
                target = good * (1.0 + reach) * 2.0 ** min((tau - near) / PROBE_DOUBLING, 30.0)
        if self.ceiling is not None:
            target = min(target, self.ceiling)
        if target <= self._rate:
            return  # growth never lowers the rate: only a throttle does
        # botocore's cap: at most twice what is really being sent (the request going now included, so a slow
        # rate can grow at all), so a rate far above the demand cannot let the demand's own bursts through unpaced
        # (a bucket of 5 refuses 16 requests sent at once at any rate).
        sent = self._rate_of(self._sends, now) + 1.0 / MEASURE_WINDOW
        target = max(min(target, 2.0 * sent), self._rate)
        if target >= self._rate * GROWTH_STEP:
            self._set_rate(target)
            self._reschedule(now, sending=True)

    def _set_rate(self, rate: float) -> None:
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        if self._rate is not None and rate > self._rate:  # a decrease is logged by _drop, with its reasons
            log.info("%s: request rate %.1f -> %.1f/s", self.label, self._rate, rate)
        self._rate = rate

    # -- a fleet's share (``_fleet``) ---------------------------------------

    def hold(self, held: bool) -> None:
        """Send nothing while ``held`` (waiting requests ask again every ``WAIT_SLICE``); False: go on."""
        with self._lock:
            self._held = held
            self._reschedule(self._clock())

    def limit_to(self, rate_limit: float | None) -> None:
        """Pace as a budget made with ``rate_limit`` would (a fleet worker's share of a limit its scout found),
        keeping the counters; None: adaptive again, unpaced until the next throttle, as a new client is."""
        with self._lock:
            if rate_limit is None:
                self.ceiling, self._min_gap, self._rate = None, 0.0, None
                self._last_drop, self._slow_start = -math.inf, False
            else:
                self.ceiling = rate_limit * LIMIT_MARGIN
                self._min_gap = 1.0 / rate_limit
                self._rate = self._good = self._start = self.ceiling
            self._reschedule(self._clock())

    def adapt(self, limit: float) -> None:
        """Adaptive again (no ceiling), as if a probe had just found ``limit``: hold at ``HOLD`` x it for
        ``PLATEAU_MAX``, then probe above it. A fleet worker left alone on its board (its peers ended) goes on from
        the published limit instead of a ceiling (``limit_to``), so a higher limit can still be found."""
        with self._lock:
            now = self._clock()
            self.ceiling, self._min_gap = None, 0.0
            self._good = self._start = max(HOLD * limit, MIN_RATE)
            self._rate = self._good
            self._slow_start = self._first_probe = self._fast = False
            self._stable, self._plateau, self._bad = 1, PLATEAU_MAX, math.inf
            self._last_drop = self._phase_start = now
            self._reschedule(now)

    def found_limit(self) -> float | None:
        """The origin's rate as a probe above the hold rate measured it (what was served), or None before one
        (and with a ``rate_limit``: nothing was found). A fleet's scout publishes it for its peers."""
        with self._lock:
            if self.ceiling is not None or self._stable < 1 or self._first_probe:
                return None
            return self._good / HOLD

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
