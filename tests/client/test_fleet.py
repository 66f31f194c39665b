"""A fleet's scout and shares (``_fleet``): the policy as a table on a fake clock, the budget's hold and share, and
the pacer against a real folder board (two workers, ticked by hand; no thread, no sleep).

The whole fleet against a rate-limited loopback API is tests/download/test_fleet_export.py; the board on S3, Azure
and GCS is tests/objects/test_fleet_board.py; the throughput is ``make bench`` (benchmarks/rate_limit.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from callrec import _fleet
from callrec._budget import HOLD as BUDGET_HOLD
from callrec._budget import LIMIT_MARGIN, WAIT_SLICE, RequestBudget, Ticket
from callrec._destinations.folder import FolderBoard
from callrec._fleet import LIMIT_TTL, SCOUT_WAIT, STALE, UNTHROTTLED, Decision, FleetPolicy, Pacer, View

ME = "me"


def policy() -> FleetPolicy:
    return FleetPolicy(ME, started=0.0)


HOLD, CLAIM, ALONE = Decision(True, None), Decision(True, None, claim=True), Decision(False, None)


# -- the policy --------------------------------------------------------------------------------------------------


def test_a_worker_with_nothing_on_the_board_claims_the_scout_and_holds_until_the_claim_reads_back() -> None:
    p = policy()
    assert p.decide(0.0, View(), None) == CLAIM
    assert p.decide(0.2, View(scout="other", scout_age=0.1), None) == HOLD  # another claim won
    q = policy()
    assert q.decide(0.0, View(), None) == CLAIM
    assert q.decide(0.2, View(scout=ME, scout_age=0.1), None) == ALONE  # ours: find the limit, alone


def test_the_scout_publishes_what_it_found_then_paces_at_its_share_of_the_running_workers() -> None:
    p = policy()
    assert p.decide(0.0, View(scout=ME, scout_age=0.0, peers=3), None, throttled=0) == ALONE
    assert p.decide(3.0, View(scout=ME, scout_age=1.0, peers=3), None, throttled=4) == ALONE  # throttled: probing
    assert p.decide(10.0, View(scout=ME, scout_age=1.0, peers=3), 60.0, throttled=6) == Decision(
        False, 15.0, publish=60.0, release=True
    )
    # its own limit before the board lists it, then the board's; a peer that ends frees its share
    assert p.decide(11.0, View(peers=3), None) == Decision(False, 15.0)
    assert p.decide(12.0, View(limit=60.0, limit_age=2.0, peers=2), None) == Decision(False, 20.0)


def test_a_waiter_holds_while_the_scout_is_alive_then_paces_at_the_published_share() -> None:
    p = policy()
    for t in (0.0, 1.0, 5.0, 10.0):
        assert p.decide(t, View(scout="s", scout_age=t % 10, peers=3), None) == HOLD
    assert p.decide(11.0, View(limit=58.0, limit_age=0.5, peers=3), None) == Decision(False, 14.5)
    assert p.decide(30.0, View(limit=58.0, limit_age=20.0, peers=1), None) == Decision(False, 29.0)
    assert p.decide(31.0, View(limit=58.0, limit_age=21.0, peers=4), None) == Decision(False, 11.6)  # a late joiner


def test_a_worker_alone_on_the_board_goes_on_adaptively_from_the_limit_instead_of_a_share() -> None:
    """Its peers ended, or nobody shares its board (shards into different folders): the limit it read (or found
    beside peers it cannot see) is where it starts, not a ceiling."""
    p = policy()
    assert p.decide(0.0, View(scout=ME, scout_age=0.0), None) == ALONE
    assert p.decide(9.0, View(scout=ME, scout_age=1.0), 20.0, throttled=3) == Decision(
        False, None, seed=20.0, publish=20.0, release=True
    )
    assert p.decide(10.0, View(), None) == Decision(False, None, seed=20.0)  # not listed yet
    assert p.decide(11.0, View(limit=20.0, limit_age=1.0), None) == Decision(False, None, seed=20.0)
    assert p.decide(12.0, View(limit=20.0, limit_age=2.0, peers=1), None) == Decision(False, 10.0)  # a late joiner
    assert p.decide(13.0, View(limit=20.0, limit_age=3.0), None) == Decision(False, None, seed=20.0)  # it ended


def test_a_dead_scouts_claim_is_taken_over_once_stale() -> None:
    p = policy()
    assert p.decide(0.0, View(scout="dead", scout_age=STALE), None) == HOLD
    assert p.decide(1.0, View(scout="dead", scout_age=STALE + 1), None) == CLAIM


def test_a_published_limit_older_than_its_ttl_is_found_again() -> None:
    assert policy().decide(0.0, View(limit=60.0, limit_age=LIMIT_TTL, peers=1), None) == Decision(False, 30.0)
    assert policy().decide(0.0, View(limit=60.0, limit_age=LIMIT_TTL + 1, peers=1), None) == CLAIM


def test_a_scout_never_throttled_alone_publishes_none_and_every_worker_finds_its_own_rate() -> None:
    p = policy()
    assert p.decide(0.0, View(scout=ME, scout_age=0.0), None, throttled=2) == ALONE  # a client used before
    assert p.decide(UNTHROTTLED - 0.1, View(scout=ME, scout_age=1.0), None, throttled=2) == ALONE
    assert p.decide(UNTHROTTLED, View(scout=ME, scout_age=1.0), None, throttled=2) == Decision(
        False, None, publish=0.0, release=True
    )
    assert policy().decide(0.0, View(limit=0.0, limit_age=1.0, peers=3), None) == ALONE  # a peer reads "none"


def test_a_waiter_stops_waiting_after_scout_wait_and_never_holds_again() -> None:
    p = policy()
    live = View(scout="slow", scout_age=1.0)
    assert p.decide(0.0, live, None) == HOLD
    assert p.decide(SCOUT_WAIT - 0.1, live, None) == HOLD
    assert p.decide(SCOUT_WAIT, live, None) == ALONE
    assert p.decide(SCOUT_WAIT + 1, View(), None) == ALONE  # no claim: it does not become a scout (it has sent)
    assert p.decide(SCOUT_WAIT + 2, View(limit=40.0, limit_age=1.0, peers=1), None) == Decision(False, 20.0)


def test_a_board_that_cannot_be_read_keeps_the_last_decision_and_a_waiter_gives_up_after_stale() -> None:
    p = policy()
    assert p.decide(0.0, View(limit=60.0, limit_age=1.0, peers=3), None) == Decision(False, 15.0)
    assert p.decide(100.0, None, None) == Decision(False, 15.0)  # pacing goes on at the last share
    assert policy().decide(0.0, None, None) == ALONE  # never read: nothing to wait for
    w = policy()
    assert w.decide(0.0, View(scout="s", scout_age=1.0), None) == HOLD
    assert w.decide(1.0, None, None) == HOLD
    assert w.decide(1.0 + STALE - 0.1, None, None) == HOLD
    assert w.decide(1.0 + STALE, None, None) == ALONE
    assert w.decide(2.0 + STALE, View(scout="s", scout_age=1.0), None) == ALONE


# -- the budget's side -----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_held_budget_sends_nothing_until_released() -> None:
    clock = Clock()
    budget = RequestBudget("api", clock=clock)
    budget.hold(True)
    ticket = Ticket()
    for _ in range(50):
        assert budget.wait(ticket) == WAIT_SLICE
        clock.now += WAIT_SLICE
    assert budget.stats().requests == 0
    budget.hold(False)
    assert budget.wait(ticket) == 0.0
    assert budget.stats().requests == 1


def test_limit_to_paces_at_a_share_and_none_gives_back_an_unpaced_client() -> None:
    clock = Clock()
    budget = RequestBudget("api", clock=clock)
    budget.limit_to(20.0)
    assert budget.rate == pytest.approx(20.0 * LIMIT_MARGIN)
    sent, ticket = 0, Ticket()
    while clock.now < 1010.0:
        delay = budget.wait(ticket)
        if delay == 0:
            sent, ticket = sent + 1, Ticket()
        else:
            clock.now += delay
    assert 20.0 * LIMIT_MARGIN * 10 - 2 <= sent <= 20.0 * 10 + 1  # ten seconds at the share, never over it
    assert budget.found_limit() is None  # told (by the fleet): nothing found
    budget.limit_to(None)
    assert budget.rate is None and budget.ceiling is None
    assert budget.wait(Ticket()) == 0.0


# -- the pacer against a folder board --------------------------------------------------------------------------


def test_two_pacers_on_one_folder_board_one_scouts_the_other_holds_then_both_take_their_share(tmp_path: Path) -> None:
    clock = Clock()
    scout_budget = RequestBudget("api", clock=clock)
    waiter_budget = RequestBudget("api", clock=clock)
    first = Pacer(FolderBoard(tmp_path, "feather", 2), (1, 2), scout_budget, clock=clock)
    second = Pacer(FolderBoard(tmp_path, "feather", 2), (2, 2), waiter_budget, clock=clock)
    for pacer in (first, second):  # start() without its thread: the same first rounds
        pacer._heartbeat()
        pacer.tick()
    first.tick()
    assert first.decision == ALONE  # its claim read back
    assert second.decision is not None and second.decision.hold
    board = tmp_path / ".callrec" / "fleet" / "feather-2"
    assert json.loads((board / "scout.json").read_bytes())["by"] == "1/2"
    assert sorted(os.listdir(board)) == ["running-1", "running-2", "scout.json"]
    assert waiter_budget.wait(Ticket()) == WAIT_SLICE  # held: sends nothing
    # the scout finds 60/s (found_limit is what a probe measured; here it is given)
    scout_budget.found_limit = lambda: 60.0  # type: ignore[method-assign]
    assert first.tick() == Decision(False, 30.0, publish=60.0, release=True)
    assert json.loads((board / "limit.json").read_bytes())["limit"] == 60.0
    assert not (board / "scout.json").exists()
    assert second.tick() == Decision(False, 30.0)
    assert waiter_budget.rate == pytest.approx(30.0 * LIMIT_MARGIN)
    assert scout_budget.rate == pytest.approx(30.0 * LIMIT_MARGIN)
    # the scout's shard ends: its marker goes, the other takes the whole limit; then it ends too
    first.close()
    assert scout_budget.rate is None  # its own rate back (unpaced, as a new client)
    # alone on the board: adaptive again, from the published limit (not a ceiling: a higher one can be found)
    assert second.tick() == Decision(False, None, seed=60.0)
    assert waiter_budget.ceiling is None and waiter_budget.rate == pytest.approx(60.0 * BUDGET_HOLD)
    second.close()
    assert sorted(os.listdir(board)) == ["limit.json"]


def test_a_dead_workers_marker_stops_counting_once_stale_by_the_boards_clock_not_this_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    board = FolderBoard(tmp_path, "feather", 2)
    board.put("limit.json", json.dumps({"limit": 40.0, "by": "1/2"}).encode())
    board.put("running-1", b"")  # a worker killed a moment ago: its marker is never rewritten
    budget = RequestBudget("api", clock=clock)
    pacer = Pacer(board, (2, 2), budget, clock=clock)
    monkeypatch.setattr(_fleet.time, "time", lambda: 0.0)  # this machine's wall clock is decades off: unused
    pacer._heartbeat()
    assert pacer.tick() == Decision(False, 20.0)
    dead = board.path / "running-1"
    stamp = dead.stat().st_mtime - STALE - 1  # as if STALE s had passed since the kill
    os.utime(dead, (stamp, stamp))
    assert pacer.tick() == Decision(False, None, seed=40.0)  # alone: adaptive from the limit
