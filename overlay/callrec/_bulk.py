"""Bulk export: many recordings into one folder, resumable, with a JSON-lines manifest.

The manifest (``manifest.jsonl`` in the folder) gets one line per finished
item. A file only ever appears complete (downloads are renamed into place), so
on a rerun an item whose last success names a file of the recorded size is
skipped. A run holds an advisory lock on the manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from ._download import CommitHook, DownloadResult
from ._errors import CallrecError, DownloadError, ExportLockedError
from ._retry import retry_delay
from ._validate import check_recording_id

__all__ = [
    "ITEM_ERRORS",
    "BulkItem",
    "Manifest",
    "already_done",
    "check_folder",
    "downloaded",
    "record_on_commit",
    "settle",
    "unique_ids",
]

MANIFEST_NAME = "manifest.jsonl"
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


class Manifest:
    """Append-only JSON-lines record of finished items, locked for the length of a run.

    Paths are stored relative to the folder that holds the manifest, so an entry
    is valid whatever the current directory of a later run. A "failed" line never
    erases an earlier success: what counts is the last success whose file is still
    there at its recorded size.

    Usage: ``with Manifest.open(folder) as manifest: ...``
    """

    def __init__(self, folder: Path, handle: IO[str]) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self._fh = handle
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str | None], dict[str, Any]] = {}
        handle.seek(0)
        for line in handle.read().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("recording_id"), str)
                and entry.get("status") in ("downloaded", "skipped")
                and "path" in entry
            ):
                self._done[(entry["recording_id"], entry.get("leg"))] = entry

    @classmethod
    @contextlib.contextmanager
    def open(cls, folder: Path) -> Iterator[Manifest]:
        """The folder's manifest, with an advisory lock held until the block ends (POSIX)."""
        path = folder / MANIFEST_NAME
        with path.open("a+", encoding="utf-8") as handle:
            _lock(handle, folder)
            yield cls(folder, handle)

    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The earlier result if that item's file is still there at its recorded size."""
        entry = self._done.get((recording_id, leg))
        if entry is None:
            return None
        try:
            size = int(entry["bytes"])
            stored = Path(entry["path"])
        except (KeyError, TypeError, ValueError):
            return None
        # Relative to the manifest's folder; older manifests held absolute or cwd-relative paths.
        for path in (self.folder / stored, self.folder / stored.name):
            try:
                if path.is_file() and path.stat().st_size == size:
                    return DownloadResult(
                        path=path,
                        bytes=size,
                        content_type=entry.get("content_type"),
                        sha256=str(entry.get("sha256", "")),
                        url_refreshes=0,
                    )
            except OSError:
                continue
        return None

    def record(self, item: BulkItem) -> None:
        entry: dict[str, Any] = {
            "recording_id": item.recording_id,
            "leg": item.leg,
            "status": item.status,
            "attempts": item.attempts,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if item.result is not None:
            entry.update(
                path=Path(os.path.relpath(item.result.path, self.folder)).as_posix(),
                bytes=item.result.bytes,
                sha256=item.result.sha256,
                content_type=item.result.content_type,
                url_refreshes=item.result.url_refreshes,
            )
        if item.error is not None:
            entry.update(error=type(item.error).__name__, message=str(item.error))
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if item.status != "failed":
                self._done[(item.recording_id, item.leg)] = entry


def _lock(handle: IO[str], folder: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock (documented)
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ExportLockedError(
            f"another download_many run is exporting into {folder} (it holds {MANIFEST_NAME}); "
            "wait for it to finish or use another folder"
        ) from None


def check_folder(dest_dir: str | os.PathLike[str]) -> Path:
    """The destination folder, created (with its parents) if missing, as wget -P and rclone do."""
    folder = Path(dest_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"destination is not a folder: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: Per-item failures that are reported in the results rather than raised.
ITEM_ERRORS: tuple[type[Exception], ...] = (CallrecError, OSError)


def already_done(manifest: Manifest, recording_id: str, leg: str | None, overwrite: bool) -> BulkItem | None:
    """A "skipped" item when an earlier run finished this one (and overwrite is off)."""
    done = None if overwrite else manifest.completed(recording_id, leg)
    return None if done is None else BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=done)


#: Extra tries of a whole item, on top of every request's own retries (see ``settle``).
ITEM_RETRIES = 1


def downloaded(recording_id: str, leg: str | None, attempt: int, result: DownloadResult) -> BulkItem:
    """The item of a finished download (recorded in the manifest as part of its commit; see ``record_on_commit``)."""
    return BulkItem(recording_id=recording_id, leg=leg, status="downloaded", result=result, attempts=attempt)


def record_on_commit(manifest: Manifest, recording_id: str, leg: str | None, attempt: int) -> CommitHook:
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
