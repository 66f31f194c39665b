"""Bulk export: many recordings into one folder, resumable, with a JSON-lines manifest.

The manifest (``manifest.jsonl`` in the folder) gets one line per finished
item. A file only ever appears complete (downloads are renamed into place), so
on a rerun an item whose last "downloaded" line names a file of the recorded
size is skipped.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import attrs

from ._download import DownloadResult
from ._errors import APIConnectionError, CallrecError, InternalServerError, RateLimitError
from ._validate import check_recording_id

__all__ = ["ITEM_ERRORS", "BulkItem", "Manifest", "already_done", "check_folder", "settle", "unique_ids"]

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
    """Transient failures worth another try of the whole item (connection, 5xx, 429)."""
    return isinstance(error, (APIConnectionError, InternalServerError, RateLimitError))


def unique_ids(ids: Iterable[str]) -> list[str]:
    """The ids in order, without repeats or blank lines; each checked before anything is sent."""
    seen: dict[str, None] = {}
    for rid in ids:
        if isinstance(rid, str) and not rid.strip():
            continue
        seen.setdefault(check_recording_id(rid), None)
    return list(seen)


class Manifest:
    """Append-only JSON-lines record of finished items (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str | None], dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash mid-write
                if isinstance(entry, dict) and isinstance(entry.get("recording_id"), str):
                    key = (entry["recording_id"], entry.get("leg"))
                    if entry.get("status") in ("downloaded", "skipped"):
                        self._done[key] = entry
                    else:
                        self._done.pop(key, None)

    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The earlier result if that item's file is still there at its recorded size."""
        entry = self._done.get((recording_id, leg))
        if entry is None:
            return None
        try:
            path = Path(entry["path"])
            size = int(entry["bytes"])
            if path.is_file() and path.stat().st_size == size:
                return DownloadResult(
                    path=path,
                    bytes=size,
                    content_type=entry.get("content_type"),
                    sha256=str(entry.get("sha256", "")),
                    url_refreshes=0,
                )
        except (KeyError, TypeError, ValueError, OSError):
            return None
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
                path=str(item.result.path),
                bytes=item.result.bytes,
                sha256=item.result.sha256,
                content_type=item.result.content_type,
                url_refreshes=item.result.url_refreshes,
            )
        if item.error is not None:
            entry.update(error=type(item.error).__name__, message=str(item.error))
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def check_folder(dest_dir: str | os.PathLike[str]) -> Path:
    folder = Path(dest_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"destination folder does not exist: {folder}")
    return folder


#: Tries of one whole item (each download also resumes internally).
ITEM_ATTEMPTS = 3
#: Per-item failures that are reported in the results rather than raised.
ITEM_ERRORS: tuple[type[Exception], ...] = (CallrecError, OSError)


def already_done(manifest: Manifest, recording_id: str, leg: str | None, overwrite: bool) -> BulkItem | None:
    """A "skipped" item when an earlier run finished this one (and overwrite is off)."""
    done = None if overwrite else manifest.completed(recording_id, leg)
    return None if done is None else BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=done)


def settle(recording_id: str, leg: str | None, attempt: int, outcome: DownloadResult | Exception) -> BulkItem | None:
    """The item's final state after ``attempt`` tries, or None to try the whole item again."""
    if isinstance(outcome, DownloadResult):
        return BulkItem(recording_id=recording_id, leg=leg, status="downloaded", result=outcome, attempts=attempt)
    if attempt < ITEM_ATTEMPTS and is_item_retryable(outcome):
        return None
    return BulkItem(recording_id=recording_id, leg=leg, status="failed", error=outcome, attempts=attempt)


def report(item: BulkItem, on_item: Callable[[BulkItem], None] | None) -> BulkItem:
    """Tell the caller an item finished (progress bars), then hand it back."""
    if on_item is not None:
        on_item(item)
    return item
