"""The lease and manifest policies with no I/O (``_lease``, ``_manifest``), on a clock the test sets: tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from callrec._lease import CLOCK_RESOLUTION, Holder, LeaseClock, expires_at
from callrec._manifest import Batch, merge_entries

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


# -- the lease -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "written_at", "now", "valid"),
    [
        (60.0, 100.0, 100.0, True),
        (60.0, 100.0, 149.9, True),  # ttl - ttl/6 = 50 s after the write was sent
        (60.0, 100.0, 150.0, False),
        (600.0, 0.0, 499.9, True),
        (600.0, 0.0, 500.0, False),
        (1.5, 10.0, 11.24, True),
        (1.5, 10.0, 11.25, False),
    ],
)
def test_our_lease_is_valid_until_ttl_less_a_sixth_after_the_last_write_was_sent(
    ttl: float, written_at: float, now: float, valid: bool
) -> None:
    assert LeaseClock(ttl, written_at).valid(now) is valid


def test_renewals_come_every_third_of_the_ttl_and_sooner_after_a_failure_but_never_past_validity() -> None:
    clock = LeaseClock(60.0, 0.0)
    assert clock.next_attempt == 20.0
    clock.failed(20.5)
    assert clock.next_attempt == pytest.approx(24.5)  # a fifteenth of the ttl later
    clock.failed(48.0)
    assert clock.next_attempt == 50.0  # not past valid_until
    clock.written(48.7)  # a late success restores it, from when that write was sent
    assert clock.valid(90.0) and not clock.valid(98.7) and clock.next_attempt == pytest.approx(68.7)
    clock.written(10.0)  # an older write answered late never moves validity back
    assert clock.sent_at == 48.7


def test_failures_alone_never_extend_validity() -> None:
    clock = LeaseClock(3.0, 0.0)
    for now in (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4):
        clock.failed(now)
    assert not clock.valid(2.5) and clock.valid_until == 2.5


@pytest.mark.parametrize(
    ("body", "last_modified", "store_now", "expired"),
    [
        ({"token": "t", "owner": "a:1", "ttl": 600}, T0, T0 + timedelta(seconds=600), False),
        ({"token": "t", "owner": "a:1", "ttl": 600}, T0, T0 + timedelta(seconds=600 + CLOCK_RESOLUTION), True),
        ({"token": "t", "owner": "a:1", "ttl": 2}, T0, T0 + timedelta(seconds=3), True),
        # callrec 0.x: expiry on the writer's clock in the body, ignored; the default ttl from Last-Modified.
        ({"owner": "old:2", "expires": 1e12}, T0, T0 + timedelta(seconds=700), True),
        ({"owner": "old:2", "expires": 0}, T0, T0 + timedelta(seconds=30), False),
        ({"token": "t", "ttl": "nan"}, T0, T0 + timedelta(seconds=30), False),
        ({"token": "t", "ttl": -5}, T0, T0 + timedelta(seconds=30), False),
    ],
)
def test_another_runs_lease_expires_on_the_stores_clock_only(
    body: dict[str, object], last_modified: datetime, store_now: datetime, expired: bool
) -> None:
    holder = Holder.parse(json.dumps(body).encode(), 600.0)
    assert (store_now >= expires_at(holder, last_modified, 600.0)) is expired


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_lease_body_that_is_not_one_lasts_the_default_ttl_from_its_last_write(raw: bytes) -> None:
    holder = Holder.parse(raw, 600.0)
    assert holder is None
    assert expires_at(holder, T0, 600.0) == T0 + timedelta(seconds=600 + CLOCK_RESOLUTION)


def test_a_holder_body_round_trips_with_its_token() -> None:
    holder = Holder(token="abc", owner="host:7", ttl=12.5)
    assert Holder.parse(holder.body(renewal=3), 600.0) == holder


# -- the manifest ------------------------------------------------------------------------------------------------


def line(rid: str, status: str, at: str, size: int = 10, **extra: object) -> str:
    entry = {"recording_id": rid, "leg": None, "status": status, "at": at, **extra}
    if status != "failed":
        entry.update(path=f"{rid}-{size}.mp3", bytes=size, sha256="0" * 64)
    return json.dumps(entry)


def test_entries_merge_by_when_they_were_written_not_by_the_order_they_are_read() -> None:
    newer = line("a", "downloaded", "2026-12-03T12:00:01.000001+00:00", size=20)
    older = line("a", "downloaded", "2026-12-03T12:00:01+00:00", size=10)  # 0.x: whole seconds
    for lines in ([newer, older], [older, newer]):
        assert merge_entries(lines).done[("a", None)].bytes == 20


def test_a_failure_never_hides_a_success_and_a_later_success_clears_it() -> None:
    ok = line("a", "downloaded", "2026-12-03T12:00:00+00:00")
    failed_later = line("a", "failed", "2026-12-03T12:00:05+00:00", error="DownloadError")
    entries = merge_entries([ok, failed_later])
    assert ("a", None) in entries.done  # the recording is still there; its later failure is kept for reports
    assert entries.failed[("a", None)].error == "DownloadError"
    fail = line("b", "failed", "2026-12-03T12:00:00+00:00", error="NotFoundError")
    later_ok = line("b", "skipped", "2026-12-03T12:00:09+00:00")
    entries = merge_entries([later_ok, fail])
    assert ("b", None) in entries.done and entries.failed == {}
    assert merge_entries([fail]).failed[("b", None)].error == "NotFoundError"


@pytest.mark.parametrize(
    "bad",
    [
        "{cut by a crash",
        "[]",
        '{"status": "downloaded"}',
        '{"recording_id": "a", "status": "downloaded", "bytes": "1"}',
    ],
)
def test_lines_that_are_not_entries_are_skipped(bad: str) -> None:
    assert merge_entries([bad, line("z", "downloaded", "2026-12-03T12:00:00+00:00")]).done.keys() == {("z", None)}


def test_a_batch_is_due_when_full_or_five_seconds_after_its_first_unsaved_entry() -> None:
    batch = Batch(max_entries=3, max_seconds=5.0)
    assert not batch.add({"n": 1}, now=0.0) and not batch.due(4.9) and batch.due(5.0)
    body, count, generation = batch.body()
    assert count == 1 and generation == 0 and json.loads(body) == {"n": 1}
    assert batch.saved(count, generation, now=5.0) is False  # not full: the same key is rewritten next time
    assert not batch.due(100.0)  # nothing unsaved
    batch.add({"n": 2}, now=6.0)
    assert batch.add({"n": 3}, now=6.1)  # full
    body, count, generation = batch.body()
    batch.add({"n": 4}, now=6.2)  # arrives while the full batch is being written
    assert batch.saved(count, generation, now=6.3) is True  # a new batch (a new key) starts
    assert batch.generation == 1 and [json.loads(x) for x in batch.lines] == [{"n": 4}]
    assert batch.saved_upto == 3 and batch.added == 4


def test_a_batch_whose_write_failed_keeps_everything_for_the_next_try() -> None:
    batch = Batch(max_entries=1000, max_seconds=5.0)
    batch.add({"n": 1}, now=0.0)
    batch.body()  # written, refused: saved() is not called
    batch.add({"n": 2}, now=1.0)
    assert batch.due(5.0) and batch.body()[1] == 2 and batch.saved_upto == 0
