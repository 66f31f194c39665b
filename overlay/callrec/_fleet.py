"""A fleet that shares a vendor limit it was not told: one scout finds it, every worker paces at its share.

The shards of one export (``shard=(k, n)``, each with ``rate_limit=None``) share the vendor's limit R. Left to find
it each on its own they reached ~0.78x of R together: each measured what it was served while a peer sat out a
``Retry-After`` pause, so their rates added up to more than R and one of them was always paused. So they share
what one of them finds, through the destination they already share (a folder, or a bucket prefix)::

    .callrec/fleet/<vendor>-<n>/scout.json   {"token": ..., "by": "2/4"}: the worker finding the limit
    .callrec/fleet/<vendor>-<n>/limit.json   {"limit": 59.7, "by": "2/4"}: what it found
    .callrec/fleet/<vendor>-<n>/running-<k>  shard k is running (rewritten every HEARTBEAT s)

- **One scout.** A worker with no limit to read claims ``scout.json`` (create-only: one claim wins) and sends
  nothing until it has read the claim back as its own; the others hold (send nothing). The scout finds the limit
  alone, as one client does (slow start, then a probe: ``RequestBudget.found_limit``, ~10 s in), publishes it and
  drops its claim. It was alone, so what it measured is the vendor's limit, not a share of it, and it used all of
  the limit meanwhile: the fleet loses little.
- **Every worker paces at its share**, ``limit / running workers``, re-read every ``poll_seconds(n)``: a worker
  that ends (or dies: its marker goes stale) frees its share for the others, and a worker that starts late (a
  scheduler running more shards than it has slots) takes one. Under its share a worker still honours 429s and
  ``Retry-After`` (the vendor may lower its limit); a raised limit is found again once the published one is
  ``LIMIT_TTL`` old. A worker **alone on the board** (its peers ended, or none shares its destination) is not told
  the limit: it goes on adaptively from it (``RequestBudget.adapt``: held for a plateau, then probed above), so
  the last worker of a fleet can find a raised limit, and shards exporting into separate folders, each alone on
  its board, are not capped at what they found beside peers they cannot see (they were: one held ~5 requests/s
  for the rest of its run, and four such shards reached 0.38x of the limit in ``make bench``).
- **A scout that dies** stops refreshing its claim: after ``STALE`` s a waiter takes it over (delete, then
  create-only again) and finds the limit itself. A scout that ends without finding it drops its claim. A scout no
  throttle reaches in ``UNTHROTTLED`` s (one worker cannot drive the API to its limit) publishes 0, "none found":
  each worker then finds a rate alone. A worker that has held for ``SCOUT_WAIT`` s stops waiting (a scout that is
  throttled yet never measures a limit).
- **Ages are the store's**, never a machine's clock: the listing's ``Last-Modified`` (a folder: the files' mtime)
  against the time on the store now, which is this worker's own marker's ``Last-Modified`` plus the monotonic time
  since it was written. A worker whose clock is off by hours counts its peers right.
- **Failures of the board**: a read that fails keeps the last decision (a board never read says nothing to wait
  for); a waiter that could not read the board for ``STALE`` s stops waiting and finds a rate alone (the ~0.78x,
  but the run goes on); a claim that cannot be written (not "exists": refused, or 5xx after the store's retries)
  means a board nobody can share: the worker finds a rate alone at once. Other writes that fail are logged,
  never raised: the recordings are the job. A claim the store applied but answered 5xx is read back as ours.

Measured (``make bench``, 60 s of work at 60/s on loopback, four processes, concurrency 16 each): 0.89-0.92x of
the limit together with 0.1-0.3% of requests answered 429 (the same shards each into a folder of its own, so each
finds a rate alone: 0.68-0.84x, 2.4-3.1%). What it costs: the 10-15 s the scout takes, run at ~0.85-0.9x by the scout
alone, and the 3% margin every share is paced under.

Cost, per worker: one listing of the board per ``poll_seconds(n)`` (1 s up to 8 workers, n/8 s beyond; a quarter
of that while it holds), a read of ``limit.json`` or ``scout.json`` when it changed, and a marker write every
``HEARTBEAT`` s.

:class:`FleetPolicy` decides, with no I/O and no clock of its own; :class:`Pacer` runs it in a thread against a
:class:`Board` (the destination's) and applies it to the client's API budget, for the sync and async clients alike.
"""

from __future__ import annotations

import abc
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping

import attrs

from ._budget import RequestBudget

__all__ = [
    "HEARTBEAT",
    "LIMIT_FILE",
    "LIMIT_TTL",
    "SCOUT_FILE",
    "SCOUT_WAIT",
    "STALE",
    "UNTHROTTLED",
    "Board",
    "BoardState",
    "Decision",
    "FleetPolicy",
    "Pacer",
    "View",
    "poll_seconds",
]

log = logging.getLogger("callrec")

LIMIT_FILE = "limit.json"
SCOUT_FILE = "scout.json"
#: A running worker rewrites its marker (and a scout its claim) this often.
HEARTBEAT = 10.0
#: A marker or a claim not rewritten for this long is a dead worker's.
STALE = 3 * HEARTBEAT
#: A published limit older than this is found again (a vendor may have raised it).
LIMIT_TTL = 3600.0
#: A scout not throttled once in this long cannot reach the limit alone: it publishes 0 ("none found").
UNTHROTTLED = 5.0
#: The longest a worker holds for a scout (its first probe comes ~10 s in at 20-60 requests/s).
SCOUT_WAIT = 45.0


def poll_seconds(n: int) -> float:
    """How often a worker of ``n`` reads the board: 1 s, and n/8 s for more than 8 (the listings stay ~8/s)."""
    return max(1.0, n / 8.0)


def running_name(k: int) -> str:
    return f"running-{k}"


@attrs.frozen
class BoardState:
    """What a read of the board found: each file's ``Last-Modified`` (store time, epoch seconds), the published
    limit and the scout's token (from their bodies; None when absent or unreadable)."""

    modified: Mapping[str, float] = attrs.field(factory=dict)
    limit: float | None = None
    scout: str | None = None


def parse_limit(body: bytes) -> float | None:
    try:
        limit = float(json.loads(body)["limit"])
    except (ValueError, TypeError, KeyError):
        return None
    return limit if limit > 0 else None


def parse_scout(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["token"])
    except (ValueError, TypeError, KeyError):
        return None


@attrs.frozen
class View:
    """The board as the policy sees it: ages in seconds on the store's clock (None: no such file)."""

    limit: float | None = None
    limit_age: float | None = None
    scout: str | None = None
    scout_age: float | None = None
    peers: int = 0  # other workers whose running marker is fresh


@attrs.frozen
class Decision:
    """hold: send nothing yet; rate_limit: this worker's share (None: find a rate alone); seed: alone on the board,
    go on adaptively from this published limit (``RequestBudget.adapt``); publish: a limit to write; claim: try to
    become the scout (replacing a stale claim); release: drop our claim."""

    hold: bool
    rate_limit: float | None
    seed: float | None = None
    publish: float | None = None
    claim: bool = False
    release: bool = False


class FleetPolicy:
    """Worker ``token`` of a fleet: what to do, given the board (None: it could not be read), its found limit and
    how many throttled answers its client has had."""

    def __init__(self, token: str, started: float) -> None:
        self.token = token
        self.unread_since: float | None = started  # the board has not been read since (None: it was)
        self.holding_since: float | None = None
        self.scouting: tuple[float, int] | None = None  # (since, throttled then) while this worker is the scout
        self.fell_back = False  # stopped waiting: finds a rate alone from now on
        self.published: float | None = None
        self._last = Decision(hold=False, rate_limit=None)  # a board never read says nothing to wait for

    def decide(self, now: float, view: View | None, found: float | None, throttled: int = 0) -> Decision:
        if view is None:
            if self.unread_since is None:
                self.unread_since = now
            if self._last.hold and now - self.unread_since >= STALE:
                self.fell_back = True
            decision = Decision(False, None) if self.fell_back else attrs.evolve(self._last, claim=False)
            return self._keep(now, attrs.evolve(decision, publish=None, release=False))
        self.unread_since = None
        active = 1 + view.peers
        mine = view.scout == self.token
        if view.limit is not None and view.limit_age is not None and view.limit_age <= LIMIT_TTL:
            # 0: the scout alone was never throttled (the limit is beyond one worker): each finds its own rate
            return self._keep(now, self._share(view.limit, active, release=mine))
        if self.published is not None:  # ours, not listed yet (or its write failed): the peers will find it
            return self._keep(now, self._share(self.published, active, release=mine))
        if self.fell_back:
            return self._keep(now, Decision(False, None))
        if mine:
            if self.scouting is None:
                self.scouting = (now, throttled)
            since, before = self.scouting
            if found is not None:
                self.published = found
                return self._keep(now, attrs.evolve(self._share(found, active, release=True), publish=found))
            if throttled == before and now - since >= UNTHROTTLED:
                self.published = 0.0
                return self._keep(now, Decision(False, None, publish=0.0, release=True))
            return self._keep(now, Decision(False, None))  # finding it, alone
        if self.holding_since is not None and now - self.holding_since >= SCOUT_WAIT:
            self.fell_back = True  # a scout that finds nothing in this long (throttled, yet never probed above)
            return self._keep(now, Decision(False, None))
        if view.scout is not None and view.scout_age is not None and view.scout_age <= STALE:
            return self._keep(now, Decision(True, None))  # a live scout is finding it
        return self._keep(now, Decision(True, None, claim=True))  # no scout, or a dead one's claim: become it

    @staticmethod
    def _share(limit: float, active: int, *, release: bool) -> Decision:
        """Pace at ``limit / active``; alone on the board, go on adaptively from ``limit`` instead: a worker whose
        peers ended may find a higher limit, and one whose board nobody shares (shards into different folders) found
        only what it was served beside peers it cannot see: told that as its ceiling, it kept it for LIMIT_TTL
        (make bench: four shards, each into its own folder, 0.35-0.55x, the slowest at ~5 requests/s alone)."""
        if limit <= 0:
            return Decision(False, None, release=release)
        if active <= 1:
            return Decision(False, None, seed=limit, release=release)
        return Decision(False, limit / active, release=release)

    def _keep(self, now: float, decision: Decision) -> Decision:
        if not decision.hold:
            self.holding_since = None
        elif self.holding_since is None:
            self.holding_since = now
        self._last = decision
        return decision


class Board(abc.ABC):
    """A fleet's board in its destination (a folder's files, a bucket's objects): the I/O under :class:`Pacer`."""

    @abc.abstractmethod
    def read(self) -> BoardState:
        """List the board; read ``limit.json`` and ``scout.json`` when they changed (raises on failure)."""

    @abc.abstractmethod
    def put(self, name: str, body: bytes) -> None:
        """Write ``name`` whole (a reader sees the old body or the new)."""

    @abc.abstractmethod
    def create(self, name: str, body: bytes) -> None:
        """Write ``name`` if it does not exist (else ``FileExistsError``)."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name`` (gone already: fine)."""


class Pacer:
    """Runs a :class:`FleetPolicy` against a board every ``poll_seconds(n)`` (a thread) and applies it to the budget.

    Usage: ``pacer = Pacer(board, shard, budget).start()`` once the run holds its lease; ``pacer.close()`` when it
    ends (however it ends: its share is then free). ``start`` decides once before it returns, so a worker that must
    wait sends nothing, not even its first request.
    """

    def __init__(
        self,
        board: Board,
        shard: tuple[int, int],
        budget: RequestBudget,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float | None = None,
    ) -> None:
        self.board, self.shard, self.budget = board, shard, budget
        self._clock = clock
        self.interval = poll_seconds(shard[1]) if interval is None else interval
        self.token = secrets.token_hex(16)
        self.policy = FleetPolicy(self.token, clock())
        self.decision: Decision | None = None
        self._tag = f"{shard[0]}/{shard[1]}"
        self._marker = running_name(shard[0])
        self._marked: float | None = None  # when (monotonic) our marker was last written
        self._claimed: float | None = None  # when (monotonic) our claim was last written
        self._limited = False  # limit_to() was called: close() gives the client back its own rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="callrec-fleet", daemon=True)

    def start(self) -> Pacer:
        self._heartbeat()
        decision = self.tick()
        if decision.claim:
            self.tick()  # read our claim back at once: the scout should not wait a poll to start
        self._thread.start()
        return self

    # -- one round -----------------------------------------------------------

    def tick(self) -> Decision:
        now = self._clock()
        if self._marked is None or now - self._marked >= HEARTBEAT:
            self._heartbeat()
        try:
            view: View | None = self._view(self.board.read(), now)
        except Exception as exc:  # the recordings are the job: a board that fails keeps the last decision
            log.warning("callrec fleet %s: could not read the board (%s)", self._tag, type(exc).__name__)
            view = None
        decision = self.policy.decide(now, view, self.budget.found_limit(), self.budget.stats().throttled)
        if decision.publish is not None:
            body = json.dumps({"limit": round(decision.publish, 3), "by": self._tag}).encode()
            if self._safely(lambda: self.board.put(LIMIT_FILE, body), "publish the limit"):
                if decision.publish > 0:
                    log.info(
                        "callrec fleet %s: found the limit, %.1f requests/s, and published it",
                        self._tag,
                        decision.publish,
                    )
                else:
                    log.info("callrec fleet %s: never throttled alone: each worker finds its own rate", self._tag)
        if decision.release:
            self._release()
        elif decision.claim:
            decision = self._claim(view) or decision
        elif (
            view is not None
            and view.scout == self.token
            and (self._claimed is None or now - self._claimed >= HEARTBEAT)
        ):
            self._write_claim()  # still finding it: keep the claim fresh
        self._apply(decision)
        return decision

    def _view(self, state: BoardState, now: float) -> View:
        """Ages on the store's clock: our marker's Last-Modified plus the time since we wrote it is the store's now."""
        mark = state.modified.get(self._marker)
        store_now = mark + (now - self._marked) if mark is not None and self._marked is not None else time.time()

        def age(name: str) -> float | None:
            modified = state.modified.get(name)
            return None if modified is None else max(store_now - modified, 0.0)

        peers = sum(
            1
            for name, modified in state.modified.items()
            if name.startswith("running-") and name != self._marker and store_now - modified <= STALE
        )
        return View(
            limit=state.limit,
            limit_age=age(LIMIT_FILE) if state.limit is not None else None,
            scout=state.scout,
            scout_age=age(SCOUT_FILE) if state.scout is not None else None,
            peers=peers,
        )

    def _claim(self, view: View | None) -> Decision | None:
        """Try to become the scout; a decision that replaces the policy's when the board cannot be written."""
        if view is not None and view.scout is not None:  # a dead scout's: take it over (one create wins)
            self._safely(lambda: self.board.delete(SCOUT_FILE), "drop a stale scout claim")
            log.info("callrec fleet %s: the scout stopped; finding the limit instead", self._tag)
        try:
            self._write_claim(create=True)
        except FileExistsError:
            pass  # another worker's (or ours, applied and answered with an error: the next read tells)
        except Exception as exc:  # a board it cannot write to cannot share a limit: find a rate alone
            log.warning(
                "callrec fleet %s: could not claim the scout (%s); finding a rate alone", self._tag, type(exc).__name__
            )
            self.policy.fell_back = True
            self.decision = None  # applied afresh below
            return Decision(False, None)
        return None

    def _write_claim(self, *, create: bool = False) -> None:
        body = json.dumps({"token": self.token, "by": self._tag}).encode()
        if create:
            self.board.create(SCOUT_FILE, body)
        else:
            self._safely(lambda: self.board.put(SCOUT_FILE, body), "refresh the scout claim")
        self._claimed = self._clock()

    def _release(self) -> None:
        if self._claimed is not None:
            self._safely(lambda: self.board.delete(SCOUT_FILE), "drop the scout claim")
            self._claimed = None

    def _heartbeat(self) -> None:
        sent = self._clock()
        if self._safely(lambda: self.board.put(self._marker, b""), "mark the shard running"):
            self._marked = sent  # the store stamped it no earlier than this

    def _apply(self, decision: Decision) -> None:
        last = self.decision
        self.decision = decision
        if last is None or decision.hold != last.hold:
            self.budget.hold(decision.hold)
        if decision.hold and not decision.claim and (last is None or not last.hold or last.claim):
            log.info("callrec fleet %s: waiting for the scout to find the limit", self._tag)
        rate = decision.rate_limit
        previous = last.rate_limit if last is not None else None
        if rate == previous:
            return
        if rate is None and decision.seed is not None:  # alone on the board now (it was told a share)
            self.budget.adapt(decision.seed)
            log.info("callrec fleet %s: alone on the board: adaptive from the limit, %.1f/s", self._tag, decision.seed)
            return
        if rate is None or previous is None or abs(rate - previous) > 0.01 * previous:
            self.budget.limit_to(rate)
            self._limited = True
            if rate is not None:
                log.info("callrec fleet %s: pacing at its share, %.1f requests/s", self._tag, rate)
        else:
            self.decision = attrs.evolve(decision, rate_limit=previous)  # a change under 1%: kept as it was

    def _loop(self) -> None:
        while True:
            holding = self.decision is not None and self.decision.hold
            if self._stop.wait(self.interval / 4 if holding else self.interval):
                return
            try:
                self.tick()
            except Exception:  # a bug here must not stop the run, nor leave it waiting
                log.exception("callrec fleet %s: pacing stopped", self._tag)
                self.budget.hold(False)
                return

    def close(self) -> None:
        """Stop; drop our claim and marker (our share is free); give the client back its own rate."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._release()
        self._safely(lambda: self.board.delete(self._marker), "mark the shard ended")
        self.budget.hold(False)
        if self._limited:
            self.budget.limit_to(None)

    def _safely(self, write: Callable[[], None], what: str) -> bool:
        try:
            write()
        except Exception as exc:
            log.warning("callrec fleet %s: could not %s (%s)", self._tag, what, type(exc).__name__)
            return False
        return True
