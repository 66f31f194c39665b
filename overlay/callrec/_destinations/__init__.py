"""Where downloads go: the destination seam.

A download writes through a :class:`Target` (one recording's place) and a bulk run through an :class:`ExportRun`
(its lock or lease, its manifest, and a target per item). Two kinds exist, one module each: a local folder
(``folder``) and an object store (``objects``, on obstore, imported only when such a destination is used). The
transfer policy (``_download.Transfer``) and the bulk rules (``_bulk``) never learn which one they write to.

Another store is one new module with the same four classes, chosen in :func:`plan` and :func:`open_export`.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import re
import threading
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from .._fleet import Board
from .._manifest import Entries

if TYPE_CHECKING:
    from collections.abc import Callable

    from obstore.store import ObjectStore

    from .._progress import ExportProgress
    from .._results import BulkItem, DownloadResult
    from .._sink import FileSink

__all__ = [
    "OBJECT_SCHEMES",
    "DestinationLike",
    "Export",
    "ExportRun",
    "NoExportError",
    "Shard",
    "Target",
    "VerifyProblem",
    "VerifyReport",
    "Watch",
    "is_object_store",
    "item_stem",
    "open_export",
    "pick_dest",
    "plan",
    "status",
    "verify",
]

#: What ``download`` and ``download_many`` take as a destination: a path, an object-store URL, an obstore store.
DestinationLike: TypeAlias = "str | os.PathLike[str] | ObjectStore"
#: A bulk run's part of the ids: shard K of N (1 <= K <= N), or None for all of them.
Shard = tuple[int, int] | None
#: URL schemes of object-store destinations (obstore's: S3, GCS, Azure).
OBJECT_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://", "adl://")
#: Where callrec keeps its state in a destination (manifest, leases, uploads in progress).
STATE_DIR = ".callrec"
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


#: Longest name kept whole; a longer one is cut and carries a digest.
_MAX_NAME = 100
#: Hex digits of the digest a changed name carries: 64 bits, so that 10 million ids that all sanitise to one
#: prefix collide with odds of about 3 in a million (n^2 / 2^65); 32 bits gave 69% at 100 thousand.
_DIGEST_HEX = 16


def safe_name(text: str) -> str:
    """A file-name-safe rendering of an id: ASCII letters, digits, '.', '_', '-' only, no leading dot.

    An id that is already such a name (and at most 100 characters) is kept as it is. Any other (sanitised,
    shortened, or both) carries 64 bits of the id's sha256, so that two ids never share a name.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = _SAFE_CHARS.sub("_", ascii_text).strip("._") or "recording"
    if cleaned == text and len(text) <= _MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_HEX]
    return f"{cleaned[:_MAX_NAME]}_{digest}"


def shard_tag(shard: Shard) -> str | None:
    """How a shard is named in a destination (``"2-of-8"``), or None for a run over every id."""
    return None if shard is None else f"{shard[0]}-of-{shard[1]}"


def item_stem(provider: str, recording_id: str, leg: str | None) -> str:
    """A recording's name without its extension, in a folder and in a bucket: ``<provider>-<id>[-<leg>]``."""
    return "-".join(p for p in (provider, safe_name(recording_id), leg) if p)


class NoExportError(FileNotFoundError):
    """The destination holds no callrec export (``verify`` of a mistyped prefix must not pass)."""


class Target(abc.ABC):
    """One recording's place: a file in a folder, or an object in a store."""

    @abc.abstractmethod
    def refuse_existing(self) -> None:
        """Raise ``FileExistsError`` naming what this download would replace (called unless ``overwrite``)."""

    @abc.abstractmethod
    def open_sink(self) -> FileSink:
        """The sink the transfer writes into (a temporary file; an upload nobody sees until the commit)."""

    @abc.abstractmethod
    def commit(self, sink: FileSink, content_type: str | None, head: bytes, *, overwrite: bool) -> DownloadResult:
        """Make the finished sink's bytes the recording (atomically; create-only unless ``overwrite``).

        Returns the result with ``url_refreshes`` 0; the caller fills in what the transfer knows.
        """

    @abc.abstractmethod
    def withdraw(self, result: DownloadResult) -> None:
        """Take a committed recording back out (its manifest entry could not be written). Never raises."""

    @abc.abstractmethod
    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Map this destination's write failures to ``DownloadError`` (the original as ``__cause__``).

        ``FileExistsError`` (an existing recording and no ``overwrite``) and ``NotADirectoryError`` stay themselves.
        """


class ExportRun(abc.ABC):
    """One bulk run into a destination: it holds the destination's lock (or lease) until :meth:`close`."""

    @abc.abstractmethod
    def target(self, provider: str, recording_id: str, leg: str | None) -> Target:
        """Where this item goes (its commit checks that the run still holds its lock or lease)."""

    @abc.abstractmethod
    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The earlier result, if a run (of any shard) finished this item and its recording is there unchanged.

        In memory only (the async driver calls it on the event loop).
        """

    def unknown_object(self, recording_id: str, leg: str | None) -> bool:
        """A recording is stored under this item's name but no manifest entry knows it (in memory only)."""
        return False

    def adopt(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The result of an unknown recording that this export wrote (a crash, or a write answered 5xx, came
        between it and its manifest entry), now recorded; None when it is someone else's. Blocking (a request)."""
        return None

    def check(self) -> None:
        """Raise ``ExportLockedError`` if this run no longer holds its lock or lease (nothing more may be committed)."""
        return None

    @abc.abstractmethod
    def record(self, item: BulkItem) -> None:
        """Keep one finished item in the manifest (a folder: durably before returning; a bucket: in the next
        batch, which a crash may lose: its recording is then adopted by the next run)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Write what is pending and release the lock or lease. Never raises (a failure is logged)."""

    def board(self, provider: str, n: int) -> Board | None:
        """The board the ``n`` shards of this destination share a vendor's limit on (``_fleet``); None: none."""
        return None


def fleet_name(provider: str, n: int) -> str:
    """The folder of a fleet's board under ``.callrec/fleet/``: one per vendor and number of shards."""
    return f"{safe_name(provider)}-{n}"


class Export(abc.ABC):
    """A destination a bulk run (or ``verify``) works on."""

    @abc.abstractmethod
    def begin(self, provider: str, shard: Shard, lease_seconds: float) -> ExportRun:
        """Take the lock or lease of ``shard`` (``ExportLockedError`` if another run holds it), read the manifest."""

    @abc.abstractmethod
    def status(self) -> ExportStatus:
        """Per shard and in total: what is done and failed, when the last entry was written, who holds the lease.

        Only reads (never the lease itself); ``NoExportError`` when there is no callrec export.
        """

    @abc.abstractmethod
    def verify(self, *, quick: bool = False, concurrency: int = 16, watch: Watch | None = None) -> VerifyReport:
        """Check every manifest entry (of every shard) against what is stored; name what no entry knows.

        ``quick``: presence, size and (in a store) ETag from the listing, no reads. Raises ``FileNotFoundError``
        when the destination holds no callrec export at all.
        """


@attrs.frozen
class VerifyProblem:
    """One manifest entry that does not match what is stored.

    Attributes:
        recording_id: the item's id; leg: its leg (or None).
        location: where the recording should be.
        problem: "missing", "size", "e_tag" (the object was rewritten) or "sha256".
        expected: what the manifest recorded; found: what is stored (None when missing).
    """

    recording_id: str
    leg: str | None
    location: str
    problem: str
    expected: str
    found: str | None


@attrs.frozen
class VerifyReport:
    """What ``verify`` found: entries checked, those that do not match, and recordings no entry knows (orphans).

    An orphan is not a failure (``ok`` ignores it): a crashed run leaves its last recordings so, and the next
    run adopts them. Anything else there (a file of yours) is listed too.
    """

    destination: str
    checked: int
    problems: tuple[VerifyProblem, ...]
    orphans: tuple[str, ...] = ()
    quick: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


#: Called by ``verify`` for each entry it checked: (recording id, leg, location, the problem or None). From
#: worker threads, one at a time.
OnChecked: TypeAlias = "Callable[[str, str | None, str, VerifyProblem | None], None]"


class Watch:
    """What ``verify`` tells as it goes: the counters (``ExportProgress``) and a per-entry callback."""

    def __init__(self, progress: ExportProgress | None = None, on_checked: OnChecked | None = None) -> None:
        self.progress, self.on_checked = progress, on_checked
        self._lock = threading.Lock()

    def begin(self, total: int) -> None:
        if self.progress is not None:
            self.progress.start(total, None)

    def checked(self, rid: str, leg: str | None, location: str, problem: VerifyProblem | None) -> None:
        with self._lock:
            if self.progress is not None:
                self.progress.checked(problem is None)
            if self.on_checked is not None:
                self.on_checked(rid, leg, location, problem)


@attrs.frozen
class LeaseInfo:
    """Who holds a shard's lease (``host:pid``), when it was last written and when it expires, on the store's
    clock (``Last-Modified``; the expiry a taker uses). A folder's lock has no expiry: ``expires_at`` is None."""

    owner: str
    written_at: datetime | None
    expires_at: datetime | None


@attrs.frozen
class ShardStatus:
    """One shard's part of an export (``"all"`` for unsharded runs, ``"2-of-8"``).

    Attributes:
        done: recordings whose newest entry is a success; failed: ids whose entries are all failures.
        last_error: the error type of the newest failure, if any; last_written: the newest entry's time.
        lease: the run holding it now, or None ("free"); running: True when a run holds it.
    """

    shard: str
    done: int
    failed: int
    last_error: str | None
    last_written: datetime | None
    lease: LeaseInfo | None
    running: bool


@attrs.frozen
class ExportStatus:
    """What ``callrec.status`` found: every shard, the totals (merged by time across shards), and orphans."""

    destination: str
    shards: tuple[ShardStatus, ...]
    done: int
    failed: int
    last_error: str | None
    last_written: datetime | None
    orphans: int

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON of ``callrec status --json``."""

        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(timespec="seconds")

        def lease(info: LeaseInfo | None) -> dict[str, Any] | None:
            if info is None:
                return None
            return {"owner": info.owner, "written_at": when(info.written_at), "expires_at": when(info.expires_at)}

        return {
            "destination": self.destination,
            "done": self.done,
            "failed": self.failed,
            "last_error": self.last_error,
            "last_written": when(self.last_written),
            "orphans": self.orphans,
            "shards": [
                {
                    "shard": s.shard,
                    "done": s.done,
                    "failed": s.failed,
                    "last_error": s.last_error,
                    "last_written": when(s.last_written),
                    "running": s.running,
                    "lease": lease(s.lease),
                }
                for s in self.shards
            ],
        }


def _failures(entries: Entries) -> tuple[int, str | None]:
    """(ids whose entries are all failures, the newest failure's error type)."""
    failed = [(k, f) for k, f in entries.failed.items() if k not in entries.done]
    newest = max((f for _, f in entries.failed.items()), key=lambda f: f.at, default=None)
    return len(failed), None if newest is None else newest.error


def _last_written(entries: Entries) -> datetime | None:
    return None if not (entries.done or entries.failed) else entries.last_at


def shard_status(tag: str, entries: Entries, *, lease: LeaseInfo | None, running: bool) -> ShardStatus:
    failed, last_error = _failures(entries)
    return ShardStatus(tag, len(entries.done), failed, last_error, _last_written(entries), lease, running)


def export_status(destination: str, merged: Entries, shards: tuple[ShardStatus, ...], orphans: int) -> ExportStatus:
    failed, last_error = _failures(merged)
    return ExportStatus(destination, shards, len(merged.done), failed, last_error, _last_written(merged), orphans)


def _tag_order(tag: str) -> tuple[int, int, str]:
    """ "all" first, then shards by N and K."""
    k, sep, n = tag.partition("-of-")
    if sep and k.isdigit() and n.isdigit():
        return (int(n), int(k), tag)
    return (0, 0, tag)


def status(dest: DestinationLike) -> ExportStatus:
    """How far an export has got, per shard and in total, from its manifest and leases: only reads.

    Costs what a rerun's start-up costs (a listing and one read per 1,000 entries, plus one read per live lease),
    never a read per recording. Raises ``FileNotFoundError`` when ``dest`` holds no callrec export.
    """
    if not is_object_store(dest):
        path = os.fspath(_path_like(dest))
        if not os.path.isdir(path):
            raise NoExportError(f"not a folder: {path}")
    return open_export(dest, create=False).status()


def is_object_store(dest: object) -> bool:
    """An object-store URL (``s3://``, ``gs://``, ``az://`` ...) or an obstore store object."""
    if isinstance(dest, str):
        return dest.lower().startswith(OBJECT_SCHEMES)
    return type(dest).__module__.split(".")[0] == "obstore"


def _objects() -> Any:
    try:
        from . import objects
    except ImportError as exc:  # obstore is the `cloud` extra
        raise ImportError(f"object-store destinations need obstore: pip install 'callrec[cloud]' ({exc})") from None
    return objects


def plan(dest: object, provider: str, recording_id: str, leg: str | None) -> Target:
    """One download's target: ``dest`` is a file, a folder, an object-store URL or an obstore store."""
    if is_object_store(dest):
        return _objects().plan(dest, provider, recording_id, leg)  # type: ignore[no-any-return]
    from . import folder

    return folder.plan(_path_like(dest), provider, recording_id, leg)


def open_export(dest: object, *, create: bool = True) -> Export:
    """The destination of a bulk run or of ``verify``: a folder (created if missing and ``create``), a prefix."""
    if is_object_store(dest):
        return _objects().open_export(dest)  # type: ignore[no-any-return]
    from . import folder

    return folder.open_export(_path_like(dest), create=create)


def pick_dest(dest: object, dest_dir: object) -> Any:
    """``download_many``'s destination: ``dest``, or the deprecated ``dest_dir=`` (with a DeprecationWarning)."""
    if dest_dir is not None:
        if dest is not None:
            raise TypeError("pass the destination once: dest (dest_dir is its deprecated name)")
        import warnings

        warnings.warn(
            "download_many(dest_dir=...) is deprecated: it takes folders, URLs and stores; pass dest=...",
            DeprecationWarning,
            stacklevel=3,
        )
        return dest_dir
    if dest is None:
        raise TypeError("download_many() needs a destination: dest (a folder, an object-store URL or store)")
    return dest


def _path_like(dest: object) -> str | os.PathLike[str]:
    if isinstance(dest, str | os.PathLike):
        return dest
    raise TypeError(f"a destination is a path, an object-store URL or an obstore store, not {type(dest).__name__}")


def verify(
    dest: DestinationLike,
    *,
    quick: bool = False,
    concurrency: int = 16,
    progress: ExportProgress | None = None,
    on_checked: OnChecked | None = None,
) -> VerifyReport:
    """Check every manifest entry in ``dest`` (a folder, an object-store URL or store) against what is stored.

    Each recording must be there at its recorded size with its recorded sha256 (read back in full, streamed,
    ``concurrency`` at a time); ``quick=True`` checks presence, size and the store's ETag from one listing and
    reads nothing. ``progress`` counts the entries as they are checked (matching: skipped; not: failed) and
    ``on_checked(recording_id, leg, location, problem)`` sees each one. Returns a report naming what is missing or
    different, and what no entry knows; raises
    ``FileNotFoundError`` if ``dest`` is not there or holds no callrec export (a mistyped prefix must not pass).
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
    if not is_object_store(dest):
        path = os.fspath(_path_like(dest))
        if not os.path.isdir(path):
            raise FileNotFoundError(f"not a folder: {path}")
    watch = Watch(progress, on_checked)
    return open_export(dest, create=False).verify(quick=quick, concurrency=concurrency, watch=watch)
