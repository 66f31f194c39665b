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
import unicodedata
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

if TYPE_CHECKING:
    from obstore.store import ObjectStore

    from .._bulk import BulkItem
    from .._download import DownloadResult
    from .._sink import FileSink

__all__ = [
    "OBJECT_SCHEMES",
    "DestinationLike",
    "Export",
    "ExportRun",
    "Shard",
    "Target",
    "VerifyProblem",
    "VerifyReport",
    "is_object_store",
    "item_stem",
    "open_export",
    "plan",
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


def safe_name(text: str) -> str:
    """A file-name-safe rendering of an id: ASCII letters, digits, '.', '_', '-' only, no leading dot."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = _SAFE_CHARS.sub("_", ascii_text).strip("._") or "recording"
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    # Different ids may sanitize to the same name ("a/b" and "a_b"): keep them apart.
    return cleaned[:100] if cleaned == text else f"{cleaned[:100]}_{digest}"


def shard_tag(shard: Shard) -> str | None:
    """How a shard is named in a destination (``"2-of-8"``), or None for a run over every id."""
    return None if shard is None else f"{shard[0]}-of-{shard[1]}"


def item_stem(provider: str, recording_id: str, leg: str | None) -> str:
    """A recording's name without its extension, in a folder and in a bucket: ``<provider>-<id>[-<leg>]``."""
    return "-".join(p for p in (provider, safe_name(recording_id), leg) if p)


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
        """Where this item goes."""

    @abc.abstractmethod
    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The earlier result, if a run (of any shard) finished this item and its recording is there at its size."""

    @abc.abstractmethod
    def record(self, item: BulkItem) -> None:
        """Keep one finished item in the manifest (durably, before returning)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the lock or lease. Never raises."""


class Export(abc.ABC):
    """A destination a bulk run (or ``verify``) works on."""

    @abc.abstractmethod
    def begin(self, provider: str, shard: Shard) -> ExportRun:
        """Take the lock or lease of ``shard`` (``ExportLockedError`` if another run holds it), read the manifest."""

    @abc.abstractmethod
    def verify(self) -> VerifyReport:
        """Check every manifest entry (of every shard) against what is stored: present, size, sha256."""


@attrs.frozen
class VerifyProblem:
    """One manifest entry that does not match what is stored.

    Attributes:
        recording_id: the item's id; leg: its leg (or None).
        location: where the recording should be.
        problem: "missing", "size" or "sha256".
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
    """What ``verify`` found: how many entries it checked, and the ones that do not match."""

    destination: str
    checked: int
    problems: tuple[VerifyProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


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


def open_export(dest: object) -> Export:
    """The destination of a bulk run or of ``verify``: a folder (created if missing), an object-store prefix."""
    if is_object_store(dest):
        return _objects().open_export(dest)  # type: ignore[no-any-return]
    from . import folder

    return folder.open_export(_path_like(dest))


def _path_like(dest: object) -> str | os.PathLike[str]:
    if isinstance(dest, str | os.PathLike):
        return dest
    raise TypeError(f"a destination is a path, an object-store URL or an obstore store, not {type(dest).__name__}")


def verify(dest: DestinationLike) -> VerifyReport:
    """Check every manifest entry in ``dest`` (a folder, an object-store URL or store) against what is stored.

    Each recording must be there at its recorded size with its recorded sha256 (read back in full, streamed).
    Returns a report naming what is missing or different; raises if ``dest`` is not there at all.
    """
    if not is_object_store(dest):
        path = os.fspath(_path_like(dest))
        if not os.path.isdir(path):
            raise NotADirectoryError(f"not a folder: {path}")
    return open_export(dest).verify()
