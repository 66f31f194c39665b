"""Bulk export: the rules of a run over many ids, whatever the destination (``_destinations``).

Which ids a run takes (unique, checked, its shard's; read as they come), when an
item is already done (a success whose recording is there unchanged, or a recording
this export stored whose entry a crash lost: adopted), when a failed item is tried
again, and that a run which lost its lease stops. What an entry holds and how
entries merge is ``_manifest``; the destination keeps the manifest and the lock or
lease (``_destinations``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ._download import CommitHook
from ._errors import CallrecError, DownloadError, ExportLockedError
from ._fleet import Pacer
from ._results import BulkItem, DownloadResult
from ._retry import retry_delay
from ._validate import check_recording_id

if TYPE_CHECKING:
    from ._budget import RequestBudget
    from ._destinations import ExportRun

__all__ = [
    "ITEM_ERRORS",
    "BulkItem",
    "adopted",
    "already_done",
    "downloaded",
    "in_shard",
    "iter_unique_ids",
    "record_on_commit",
    "settle",
    "shard_of",
    "start_fleet",
    "stop_fleet",
    "unique_ids",
    "unknown_object",
]


def is_item_retryable(error: Exception) -> bool:
    """A download that failed transiently after its URL was minted (see ``settle``)."""
    return isinstance(error, DownloadError) and error.transient


def unique_ids(ids: Iterable[str]) -> list[str]:
    """The ids in order, without repeats or blank lines; each checked before anything is sent."""
    return list(iter_unique_ids(ids))


def iter_unique_ids(ids: Iterable[str]) -> Iterator[str]:
    """``unique_ids`` as the ids come (any iterable, read once, never held): each checked as it is read.

    Repeats are recognised by 8 bytes of their sha256 (about 100 bytes an id in memory, against ~2.6 KB for the
    BulkItem list ``download_many`` returns); two different ids sharing those 64 bits would make the second
    skipped as a repeat, with odds of about 3 in 10^8 at a million ids.
    """
    seen: set[bytes] = set()
    for rid in ids:
        if isinstance(rid, str) and not rid.strip():
            continue
        checked = check_recording_id(rid)
        digest = hashlib.blake2b(checked.encode("utf-8"), digest_size=8).digest()
        if digest in seen:
            continue
        seen.add(digest)
        yield checked


def shard_of(recording_id: str, count: int) -> int:
    """The shard (1..count) of an id: by a stable hash, the same on any machine, Python and run.

    sha256 of the id's UTF-8, its first 8 bytes as a big-endian integer, modulo ``count`` (as rclone's
    ``--hash-filter`` does with md5); Python's ``hash()`` is salted per process and would split differently.
    """
    digest = hashlib.sha256(recording_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(ids: Iterable[str], shard: tuple[int, int] | None) -> Iterator[str]:
    """The ids of shard K of N (all of them for None), in order, as they come."""
    if shard is None:
        yield from ids
        return
    k, n = shard
    yield from (rid for rid in ids if shard_of(rid, n) == k)


#: Per-item failures that are reported in the results rather than raised.
ITEM_ERRORS: tuple[type[Exception], ...] = (CallrecError, OSError)


def already_done(manifest: ExportRun, recording_id: str, leg: str | None, overwrite: bool) -> BulkItem | None:
    """A "skipped" item when an earlier run finished this one (and overwrite is off). In memory only."""
    done = None if overwrite else manifest.completed(recording_id, leg)
    return None if done is None else BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=done)


def unknown_object(manifest: ExportRun, recording_id: str, leg: str | None, overwrite: bool) -> bool:
    """Something is stored under this item's name that no entry knows: ask the destination (``adopted``)."""
    return not overwrite and manifest.unknown_object(recording_id, leg)


def adopted(manifest: ExportRun, recording_id: str, leg: str | None) -> BulkItem | None:
    """A "skipped" item when the unknown recording is this export's (now recorded); None: someone else's, and
    the download then refuses to replace it. Blocking (the drivers call it on a worker thread)."""
    result = manifest.adopt(recording_id, leg)
    return None if result is None else BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=result)


#: Extra tries of a whole item, on top of every request's own retries (see ``settle``).
ITEM_RETRIES = 1


def downloaded(recording_id: str, leg: str | None, attempt: int, result: DownloadResult) -> BulkItem:
    """The item of a finished download (recorded in the manifest as part of its commit; see ``record_on_commit``)."""
    return BulkItem(recording_id=recording_id, leg=leg, status="downloaded", result=result, attempts=attempt)


def record_on_commit(manifest: ExportRun, recording_id: str, leg: str | None, attempt: int) -> CommitHook:
    """What a bulk download does right after its file is committed, in the same step: its manifest line.

    The drivers let that step finish even when the run is cancelled meanwhile (``run_to_completion``), so a
    file never lands in the folder without its line: a rerun then skips it instead of refusing an unknown file.
    """
    return lambda result: manifest.record(downloaded(recording_id, leg, attempt, result))


def settle(
    recording_id: str, leg: str | None, attempt: int, outcome: DownloadResult | Exception, max_retries: int
) -> BulkItem | float:
    """The item's final state after ``attempt`` tries, or the seconds to wait before trying it again.

    Every request of a bulk run already follows the client's retry policy
    (``max_retries``, backoff, ``Retry-After``), API calls and storage requests
    alike, so an API error that reaches here is final. The whole item is tried
    again, once, only for what that policy cannot see: a download that kept
    failing transiently after its URL was minted (a fresh URL may reach a healthy
    storage node). Never with ``max_retries=0``; after the delay the storage host
    asked for, else the client's backoff.
    """
    if isinstance(outcome, DownloadResult):
        return downloaded(recording_id, leg, attempt, outcome)
    if isinstance(outcome, ExportLockedError):
        raise outcome  # the run lost its lease: it stops, rather than fail every item that follows
    if max_retries > 0 and attempt <= ITEM_RETRIES and is_item_retryable(outcome):
        assert isinstance(outcome, DownloadError)
        return outcome.retry_after if outcome.retry_after is not None else retry_delay(attempt - 1, None)
    return BulkItem(recording_id=recording_id, leg=leg, status="failed", error=outcome, attempts=attempt)


def report(item: BulkItem, on_item: Callable[[BulkItem], None] | None) -> BulkItem:
    """Tell the caller an item finished (progress bars), then hand it back."""
    if on_item is not None:
        on_item(item)
    return item


def start_fleet(run: ExportRun, provider: str, part: tuple[int, int] | None, budget: RequestBudget) -> Pacer | None:
    """Shard k of n > 1 with an adaptive API budget (no ``rate_limit``): pace with the other shards through the
    destination's board (``_fleet``). Blocking (it reads the board, and holds the budget if a scout is finding the
    limit). None: not a fleet, or told its limit."""
    if part is None or part[1] < 2 or budget.ceiling is not None or budget.parent is not None:
        return None
    board = run.board(provider, part[1])
    if board is None:
        return None
    return Pacer(board, part, budget).start()


def stop_fleet(pacer: Pacer | None) -> None:
    """The run has ended: its share is free (blocking: a write to the board)."""
    if pacer is not None:
        pacer.close()
