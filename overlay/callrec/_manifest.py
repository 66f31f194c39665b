"""The manifest of a bulk export, whatever holds it: what an entry keeps, how entries merge, how they batch.

A folder keeps its entries as JSON lines in ``manifest*.jsonl``; a bucket keeps them in batch objects of up to
``BATCH_ENTRIES`` lines under ``.callrec/<shard>/manifest/``. Either way an entry is one JSON object per finished
item, and entries merge by **when they were written** (``at``, microseconds, UTC), never by where they were found:
an ``overwrite=True`` run in shard 2-of-2 over an older unsharded run wins because it is newer, whatever order the
files or keys come in. A "failed" entry never erases a success.

Flavour-free and store-free: no I/O here but parsing, so folders and buckets (and tests on a fake clock) share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from ._results import BulkItem, DownloadResult

__all__ = [
    "BATCH_ENTRIES",
    "BATCH_SECONDS",
    "Batch",
    "Done",
    "Entries",
    "entry",
    "merge_entries",
]

#: A bucket's manifest batch is written once it holds this many entries...
BATCH_ENTRIES = 1000
#: ...or once its oldest entry has waited this long (so a crash loses at most this much of the manifest; what it
#: loses is adopted on the next run from the recordings' own metadata).
BATCH_SECONDS = 5.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_stamp() -> str:
    """The ``at`` of an entry written now: ISO 8601 with microseconds, UTC."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def entry(item: BulkItem, location: str | None, *, at: str | None = None) -> dict[str, Any]:
    """What a manifest keeps of a finished item.

    ``location`` is the recording's place relative to the destination (a path or an object key, with "/").
    """
    out: dict[str, Any] = {
        "recording_id": item.recording_id,
        "leg": item.leg,
        "status": item.status,
        "attempts": item.attempts,
        "at": at or now_stamp(),
    }
    if item.result is not None:
        out.update(
            path=location,
            bytes=item.result.bytes,
            sha256=item.result.sha256,
            content_type=item.result.content_type,
            url_refreshes=item.result.url_refreshes,
        )
        if item.result.e_tag is not None:
            out["e_tag"] = item.result.e_tag
    if item.error is not None:
        out.update(error=type(item.error).__name__, message=str(item.error))
    return out


def _when(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _EPOCH
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return _EPOCH


@attrs.frozen(slots=True)
class Done:
    """A success as a rerun needs it (small: a rerun over a million entries holds a million of these)."""

    path: str
    bytes: int
    sha256: str
    content_type: str | None
    e_tag: str | None
    at: datetime

    def result(self, *, path: Any, location: str) -> DownloadResult:
        return DownloadResult(
            path=path,
            location=location,
            bytes=self.bytes,
            content_type=self.content_type,
            sha256=self.sha256,
            url_refreshes=0,
            e_tag=self.e_tag,
        )


@attrs.frozen(slots=True)
class Failure:
    """The last failure of an id (for reports; it never hides a success)."""

    error: str
    at: datetime


Key = tuple[str, "str | None"]


@attrs.define
class Entries:
    """Merged entries: the newest success per (id, leg), and the newest failure of ids with no later success."""

    done: dict[Key, Done] = attrs.field(factory=dict)
    failed: dict[Key, Failure] = attrs.field(factory=dict)
    last_at: datetime = _EPOCH

    def add(self, data: object) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("recording_id"), str):
            return
        leg = data.get("leg")
        key: Key = (data["recording_id"], leg if isinstance(leg, str) else None)
        at = _when(data.get("at"))
        self.last_at = max(self.last_at, at)
        status = data.get("status")
        if status in ("downloaded", "skipped"):
            path, size = data.get("path"), data.get("bytes")
            if not isinstance(path, str) or not isinstance(size, int):
                return
            old = self.done.get(key)
            if old is not None and old.at > at:
                return
            e_tag = data.get("e_tag")
            content_type = data.get("content_type")
            self.done[key] = Done(
                path=path,
                bytes=size,
                sha256=str(data.get("sha256", "")),
                content_type=content_type if isinstance(content_type, str) else None,
                e_tag=e_tag if isinstance(e_tag, str) else None,
                at=at,
            )
            failure = self.failed.get(key)
            if failure is not None and failure.at <= at:
                del self.failed[key]
        elif status == "failed":
            old_failure = self.failed.get(key)
            done = self.done.get(key)
            if (old_failure is None or old_failure.at <= at) and (done is None or done.at < at):
                self.failed[key] = Failure(error=str(data.get("error", "")), at=at)

    def add_lines(self, lines: Iterable[str]) -> Entries:
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write
            self.add(data)
        return self


def merge_entries(lines: Iterable[str]) -> Entries:
    """Every entry in ``lines`` (JSON, any order, any shard) merged by when it was written."""
    return Entries().add_lines(lines)


@attrs.define
class Batch:
    """The manifest batch being filled: written whole (under one key) when due, until it holds ``max_entries``.

    Due ``max_seconds`` after its first unsaved entry, or when full. A full batch, once saved, is done: the next
    entries start a new one (a new key). So a crash loses at most ``max_seconds`` of entries, and a run writes
    about one object per ``max_entries`` recordings plus one rewrite per ``max_seconds``.

    Sans-I/O: the caller passes its monotonic clock, writes :meth:`body` and reports it with :meth:`saved`.
    ``added`` counts every entry ever added; ``saved_upto`` how many of them are saved (for pending objects).
    """

    max_entries: int = BATCH_ENTRIES
    max_seconds: float = BATCH_SECONDS
    lines: list[str] = attrs.field(factory=list)
    unsaved_since: float | None = None
    added: int = 0
    saved_upto: int = 0
    generation: int = 0

    def add(self, data: dict[str, Any], now: float) -> bool:
        """Keep one entry; True when the batch is due."""
        if self.unsaved_since is None:
            self.unsaved_since = now
        self.lines.append(json.dumps(data, ensure_ascii=False))
        self.added += 1
        return self.due(now)

    def due(self, now: float) -> bool:
        if self.unsaved_since is None:
            return False
        return len(self.lines) >= self.max_entries or now - self.unsaved_since >= self.max_seconds

    def body(self) -> tuple[bytes, int, int]:
        """(what to write, how many lines it holds, the batch's generation) for :meth:`saved`."""
        text = "".join(f"{line}\n" for line in self.lines)
        return text.encode("utf-8"), len(self.lines), self.generation

    def saved(self, count: int, generation: int, now: float) -> bool:
        """``count`` lines of ``generation`` are stored; True when the batch was full and a new one starts."""
        if generation != self.generation:
            return False
        self.saved_upto = max(self.saved_upto, self.added - (len(self.lines) - count))
        if count >= self.max_entries:
            self.lines = self.lines[count:]
            self.generation += 1
            self.unsaved_since = now if self.lines else None
            return True
        self.unsaved_since = now if len(self.lines) > count else None
        return False

    def __len__(self) -> int:
        return len(self.lines)
