"""Bulk export: the rules of a run over many ids, whatever the destination (``_destinations``).

Which ids a run takes (unique, checked, its shard's), what a manifest keeps of a
finished item, when an item is already done (a success whose recording is there
at its recorded size), and when a failed item is tried again. The destination
keeps the manifest and the lock or lease (a folder: ``manifest.jsonl``; a bucket:
one small object per item under ``.callrec/``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._download import CommitHook, DownloadResult
from ._errors import CallrecError, DownloadError
from ._retry import retry_delay
from ._validate import check_recording_id

if TYPE_CHECKING:
    from ._destinations import ExportRun

__all__ = [
    "ITEM_ERRORS",
    "BulkItem",
    "already_done",
    "downloaded",
    "entry_result",
    "in_shard",
    "manifest_entry",
    "merge_entries",
    "record_on_commit",
    "settle",
    "shard_of",
    "unique_ids",
]

Status = Literal["downloaded", "skipped", "failed"]


@attrs.frozen
class BulkItem:
    """The outcome for one id: downloaded, skipped (already complete), or failed with ``error``."""

    recording_id: str
    leg: str | None
    status: Status
    result: DownloadResult | None = None
    error: Exception | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def is_item_retryable(error: Exception) -> bool:
    """A download that failed transiently after its URL was minted (see ``settle``)."""
    return isinstance(error, DownloadError) and error.transient


def unique_ids(ids: Iterable[str]) -> list[str]:
    """The ids in order, without repeats or blank lines; each checked before anything is sent."""
    seen: dict[str, None] = {}
    for rid in ids:
        if isinstance(rid, str) and not rid.strip():
            continue
        seen.setdefault(check_recording_id(rid), None)
    return list(seen)


def shard_of(recording_id: str, count: int) -> int:
    """The shard (1..count) of an id: by a stable hash, the same on any machine, Python and run.

    sha256 of the id's UTF-8, its first 8 bytes as a big-endian integer, modulo ``count`` (as rclone's
    ``--hash-filter`` does with md5); Python's ``hash()`` is salted per process and would split differently.
    """
    digest = hashlib.sha256(recording_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(ids: list[str], shard: tuple[int, int] | None) -> list[str]:
    """The ids of shard K of N (all of them for None), in order."""
    if shard is None:
        return ids
    k, n = shard
    return [rid for rid in ids if shard_of(rid, n) == k]


def manifest_entry(item: BulkItem, location: str | None) -> dict[str, Any]:
    """What a manifest keeps of a finished item (a JSON line in a folder, a small object in a bucket).

    ``location`` is the recording's place relative to the destination (a path or an object key, with "/").
    """
    entry: dict[str, Any] = {
        "recording_id": item.recording_id,
        "leg": item.leg,
        "status": item.status,
        "attempts": item.attempts,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if item.result is not None:
        entry.update(
            path=location,
            bytes=item.result.bytes,
            sha256=item.result.sha256,
            content_type=item.result.content_type,
            url_refreshes=item.result.url_refreshes,
        )
    if item.error is not None:
        entry.update(error=type(item.error).__name__, message=str(item.error))
    return entry


def merge_entries(lines: Iterable[str]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """The last success per (id, leg) in ``lines`` (JSON, in order); a "failed" entry never erases a success."""
    done: dict[tuple[str, str | None], dict[str, Any]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("recording_id"), str)
            and entry.get("status") in ("downloaded", "skipped")
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("bytes"), int)
        ):
            done[(entry["recording_id"], entry.get("leg"))] = entry
    return done


def entry_result(entry: dict[str, Any], *, path: Path | None, location: str) -> DownloadResult:
    """The DownloadResult of an earlier run's entry, found at ``location``."""
    return DownloadResult(
        path=path,
        location=location,
        bytes=int(entry["bytes"]),
        content_type=entry.get("content_type"),
        sha256=str(entry.get("sha256", "")),
        url_refreshes=0,
    )


#: Per-item failures that are reported in the results rather than raised.
ITEM_ERRORS: tuple[type[Exception], ...] = (CallrecError, OSError)


def already_done(manifest: ExportRun, recording_id: str, leg: str | None, overwrite: bool) -> BulkItem | None:
    """A "skipped" item when an earlier run finished this one (and overwrite is off)."""
    done = None if overwrite else manifest.completed(recording_id, leg)
    return None if done is None else BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=done)


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
    if max_retries > 0 and attempt <= ITEM_RETRIES and is_item_retryable(outcome):
        assert isinstance(outcome, DownloadError)
        return outcome.retry_after if outcome.retry_after is not None else retry_delay(attempt - 1, None)
    return BulkItem(recording_id=recording_id, leg=leg, status="failed", error=outcome, attempts=attempt)


def report(item: BulkItem, on_item: Callable[[BulkItem], None] | None) -> BulkItem:
    """Tell the caller an item finished (progress bars), then hand it back."""
    if on_item is not None:
        on_item(item)
    return item
