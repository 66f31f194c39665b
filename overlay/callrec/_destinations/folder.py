"""A local folder as a destination: temporary file, fsync, rename; a JSON-lines manifest under an advisory lock.

A download is written to a temporary file beside its destination, fsynced and renamed into place, so a failure
never leaves a partial file and never touches an existing one. A bulk run appends one line per finished item to
``manifest.jsonl`` (``manifest-K-of-N.jsonl`` for shard K of N), locked for the length of the run; a rerun reads
every manifest in the folder, so shards and unsharded runs see each other's work.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import socket
import stat
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import attrs

from .._audio import EXTENSIONS, extension_for
from .._errors import DownloadError, ExportLockedError
from .._fleet import LIMIT_FILE, SCOUT_FILE, Board, BoardState, parse_limit, parse_scout
from .._manifest import Done, entry, merge_entries
from .._results import BulkItem, DownloadResult
from .._sink import FileSink
from . import (
    STATE_DIR,
    Export,
    ExportRun,
    ExportStatus,
    LeaseInfo,
    NoExportError,
    Shard,
    Target,
    VerifyProblem,
    VerifyReport,
    Watch,
    _tag_order,
    export_status,
    fleet_name,
    item_stem,
    shard_status,
    shard_tag,
)

__all__ = ["MANIFEST_NAME", "Folder", "FolderTarget", "Manifest", "commit", "open_temp", "plan"]

MANIFEST_NAME = "manifest.jsonl"
_HASH_BLOCK = 1 << 20


def manifest_name(shard: Shard) -> str:
    tag = shard_tag(shard)
    return MANIFEST_NAME if tag is None else f"manifest-{tag}.jsonl"


@attrs.frozen
class FolderTarget(Target):
    """Where a download goes: a fixed path, or a folder plus a stem awaiting its extension."""

    folder: Path
    fixed: Path | None
    stem: str

    def final_path(self, content_type: str | None, head: bytes) -> Path:
        if self.fixed is not None:
            return self.fixed
        return self.folder / f"{self.stem}.{extension_for(content_type, head)}"

    def _candidates(self) -> list[Path]:
        if self.fixed is not None:
            return [self.fixed]
        return [self.folder / f"{self.stem}.{ext}" for ext in (*sorted(EXTENSIONS), "bin")]

    def existing(self) -> Path | None:
        """An existing file this download would replace, if any (whatever extension it got)."""
        return next((p for p in self._candidates() if p.exists()), None)

    def others(self, final: Path) -> Iterator[Path]:
        """Files of an earlier download of the same recording under another extension (replaced on overwrite).

        Lazy: ``commit`` looks only on overwrite, on the thread that commits (not on the event loop).
        """
        return (p for p in self._candidates() if p != final and p.exists())

    def refuse_existing(self) -> None:
        existing = self.existing()
        if existing is not None:
            raise FileExistsError(f"{existing} exists (pass overwrite=True to replace it)")

    def open_sink(self) -> FileSink:
        return FileSink(*open_temp(self.folder, self.stem))

    def commit(self, sink: FileSink, content_type: str | None, head: bytes, *, overwrite: bool) -> DownloadResult:
        final = self.final_path(content_type, head)
        size, sha256 = sink.finish()
        commit(sink.file, sink.path, final, overwrite=overwrite, replaces=self.others(final))  # type: ignore[arg-type]
        return DownloadResult(
            path=final, location=str(final), bytes=size, content_type=content_type, sha256=sha256, url_refreshes=0
        )

    def withdraw(self, result: DownloadResult) -> None:
        if result.path is not None:
            with contextlib.suppress(OSError):
                result.path.unlink()

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return disk_errors()


def plan(dest: str | os.PathLike[str], provider: str, recording_id: str, leg: str | None) -> FolderTarget:
    """Resolve ``dest``: a file path (its folder must exist), or a folder (existing, or ending in a separator)."""
    raw = os.fspath(dest)
    if not raw:
        raise ValueError("dest must not be empty")
    path = Path(raw).expanduser()
    stem = item_stem(provider, recording_id, leg)
    if path.is_dir() or raw.endswith((os.sep, "/")):
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"destination is not a folder: {path}")
        path.mkdir(parents=True, exist_ok=True)  # a trailing separator means a folder, created as wget -P does
        return FolderTarget(folder=path, fixed=None, stem=stem)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"destination folder does not exist: {path.parent}")
    return FolderTarget(folder=path.parent, fixed=path, stem=stem)


def open_temp(folder: Path, stem: str) -> tuple[IO[bytes], Path]:
    """A new temporary file beside the destination (same filesystem, so the rename is atomic).

    Created with mode 0o666 under the process umask, as a plain ``open()`` would,
    not mkstemp's 0o600: the finished recording gets the permissions the user
    expects. O_EXCL and a random name keep it ours.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = folder / f".{stem}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "w+b"), temp
    raise FileExistsError(f"could not create a temporary file in {folder}")


def commit(file: IO[bytes], temp: Path, final: Path, *, overwrite: bool, replaces: Iterable[Path] = ()) -> None:
    """fsync the data, then rename it into place (refusing to replace a file unless overwrite).

    On overwrite, a replaced file keeps its permission bits, and ``replaces``
    (the same recording saved earlier under another extension) is removed.
    """
    if overwrite:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(file.fileno(), stat.S_IMODE(os.stat(final).st_mode))
    file.flush()
    os.fsync(file.fileno())
    file.close()
    if overwrite:
        os.replace(temp, final)
        for old in replaces:
            old.unlink(missing_ok=True)
    else:
        # link() fails if final appeared meanwhile: never clobber a file we were told to keep.
        try:
            os.link(temp, final)
        except FileExistsError:
            raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)") from None
        except OSError:  # filesystems without hard links
            if final.exists():
                raise FileExistsError(f"{final} exists (pass overwrite=True to replace it)") from None
            os.replace(temp, final)
        else:
            temp.unlink()
    _fsync_folder(final.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def disk_errors() -> Iterator[None]:
    """A download's file-system failures (ENOSPC, EFBIG, EACCES, EIO ...) as ``DownloadError``, the ``OSError``
    as its ``__cause__``: every failure of a call is a CallrecError. ``FileExistsError`` (an existing file and
    no ``overwrite``) and ``NotADirectoryError`` (a bad destination) stay themselves: they are about the input."""
    try:
        yield
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise
    except OSError as exc:
        if isinstance(exc, TimeoutError):
            raise
        what = exc.strerror or type(exc).__name__
        raise DownloadError(f"could not write the download ({what})") from exc


# -- bulk runs ---------------------------------------------------------------


class FolderBoard(Board):
    """A fleet's board in a folder: ``.callrec/fleet/<vendor>-<n>/``; a file's age is its mtime's."""

    def __init__(self, folder: Path, provider: str, n: int) -> None:
        self.path = folder / STATE_DIR / "fleet" / fleet_name(provider, n)

    def read(self) -> BoardState:
        modified: dict[str, float] = {}
        try:
            with os.scandir(self.path) as entries:
                for item in entries:
                    if not item.name.startswith("."):
                        with contextlib.suppress(FileNotFoundError):
                            modified[item.name] = item.stat().st_mtime
        except FileNotFoundError:
            return BoardState()
        bodies: dict[str, bytes | None] = {}
        for name in (LIMIT_FILE, SCOUT_FILE):
            bodies[name] = None
            if name in modified:
                with contextlib.suppress(FileNotFoundError):
                    bodies[name] = (self.path / name).read_bytes()
        limit, scout = bodies[LIMIT_FILE], bodies[SCOUT_FILE]
        return BoardState(
            modified=modified,
            limit=None if limit is None else parse_limit(limit),
            scout=None if scout is None else parse_scout(scout),
        )

    def put(self, name: str, body: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        temp = self.path / f".{name}.{secrets.token_hex(4)}"
        temp.write_bytes(body)
        os.replace(temp, self.path / name)  # a reader sees the old body or the new, never half of one

    def create(self, name: str, body: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        temp = self.path / f".{name}.{secrets.token_hex(4)}"
        temp.write_bytes(body)
        try:
            os.link(temp, self.path / name)  # whole, and only if absent (FileExistsError)
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class Manifest(ExportRun):
    """Append-only JSON-lines record of finished items, locked for the length of a run.

    Paths are stored relative to the folder that holds the manifest, so an entry
    is valid whatever the current directory of a later run. A "failed" line never
    erases an earlier success: what counts is the last success whose file is still
    there at its recorded size, in this shard's manifest or any other in the folder.

    Usage: ``with Manifest.open(folder) as manifest: ...``
    """

    def __init__(self, folder: Path, handle: IO[str], others: Iterable[Path] = ()) -> None:
        self.folder = folder
        self.path = Path(handle.name)
        self._fh = handle
        self._lock = threading.Lock()
        handle.seek(0)
        lines = [line for other in others for line in _read_lines(other)]
        self._entries = merge_entries([*lines, *handle.read().splitlines()])

    @classmethod
    @contextlib.contextmanager
    def open(cls, folder: Path, shard: Shard = None) -> Iterator[Manifest]:
        """The folder's manifest (of ``shard``), with an advisory lock held until the block ends (POSIX)."""
        manifest = cls.acquire(folder, shard)
        try:
            yield manifest
        finally:
            manifest.close()

    @classmethod
    def acquire(cls, folder: Path, shard: Shard = None) -> Manifest:
        path = folder / manifest_name(shard)
        handle = path.open("a+", encoding="utf-8")
        try:
            _lock(handle, folder)
            return cls(folder, handle, (p for p in _manifests(folder) if p != path))
        except BaseException:
            handle.close()
            raise

    def target(self, provider: str, recording_id: str, leg: str | None) -> FolderTarget:
        return FolderTarget(folder=self.folder, fixed=None, stem=item_stem(provider, recording_id, leg))

    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        """The earlier result if that item's file is still there at its recorded size."""
        done = self._entries.done.get((recording_id, leg))
        if done is None:
            return None
        for path in _entry_paths(self.folder, done):
            try:
                if path.is_file() and path.stat().st_size == done.bytes:
                    return done.result(path=path, location=str(path))
            except OSError:
                continue
        return None

    def record(self, item: BulkItem) -> None:
        result = item.result
        relative = None if result is None or result.path is None else _relative(result.path, self.folder)
        data = entry(item, relative)
        line = json.dumps(data, ensure_ascii=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            # Not kept in memory: a run never meets an id twice (the drivers drop repeats).

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()

    def board(self, provider: str, n: int) -> FolderBoard:
        return FolderBoard(self.folder, provider, n)


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def _entry_paths(folder: Path, done: Done) -> list[Path]:
    # Relative to the manifest's folder; older manifests held absolute or cwd-relative paths.
    return [folder / done.path, folder / Path(done.path).name]


def _manifests(folder: Path) -> list[Path]:
    names = glob.glob(glob.escape(str(folder)) + "/manifest*.jsonl")
    return sorted(Path(name) for name in names)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _lock(handle: IO[str], folder: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock (documented)
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ExportLockedError(
            f"another download_many run is exporting into {folder} (it holds {Path(handle.name).name}); "
            "wait for it to finish or use another folder"
        ) from None


@attrs.frozen
class Folder(Export):
    """A local folder as the destination of bulk runs."""

    path: Path

    def begin(self, provider: str, shard: Shard, lease_seconds: float = 0.0) -> Manifest:
        return Manifest.acquire(self.path, shard)  # a flock ends with its process: no lease to time out

    def status(self) -> ExportStatus:
        manifests = _manifests(self.path)
        if not manifests:
            raise NoExportError(f"no callrec export in {self.path} (no manifest*.jsonl)")
        shards = []
        for path in sorted(manifests, key=lambda p: _tag_order(_shard_tag(p))):
            pid = _lock_holder(path)
            lease = (
                None
                if pid is None
                else LeaseInfo(owner=f"{socket.gethostname()}:{pid}", written_at=None, expires_at=None)
            )
            entries = merge_entries(_read_lines(path))
            shards.append(shard_status(_shard_tag(path), entries, lease=lease, running=pid is not None))
        merged = merge_entries(line for path in manifests for line in _read_lines(path))
        known = {p.resolve() for done in merged.done.values() for p in _entry_paths(self.path, done)}
        orphans = sum(
            1
            for p in self.path.iterdir()
            if p.is_file() and not p.name.startswith((".", "manifest")) and p.resolve() not in known
        )
        return export_status(str(self.path), merged, tuple(shards), orphans)

    def verify(self, *, quick: bool = False, concurrency: int = 16, watch: Watch | None = None) -> VerifyReport:
        manifests = _manifests(self.path)
        if not manifests:
            raise NoExportError(f"no callrec export in {self.path} (no manifest*.jsonl)")
        entries = merge_entries(line for path in manifests for line in _read_lines(path))
        items = sorted(entries.done.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        watching = watch or Watch()
        watching.begin(len(items))

        def check(item: tuple[tuple[str, str | None], Done]) -> VerifyProblem | None:
            (rid, leg), done = item
            problem = _check_file(self.path, rid, leg, done, quick)
            watching.checked(rid, leg, str(_entry_paths(self.path, done)[0]), problem)
            return problem

        with ThreadPoolExecutor(concurrency, thread_name_prefix="callrec-verify") as pool:
            problems = tuple(p for p in pool.map(check, items) if p is not None)
        known = {p.resolve() for _, done in items for p in _entry_paths(self.path, done)}
        orphans = tuple(
            str(p)
            for p in sorted(self.path.iterdir())
            if p.is_file()
            and not p.name.startswith(".")
            and not p.name.startswith("manifest")
            and p.resolve() not in known
        )
        return VerifyReport(
            destination=str(self.path), checked=len(items), problems=problems, orphans=orphans, quick=quick
        )


def _shard_tag(path: Path) -> str:
    name = path.name.removeprefix("manifest").removesuffix(".jsonl")
    return name.removeprefix("-") or "all"


def _lock_holder(path: Path) -> int | None:
    """The pid holding an flock on ``path`` (Linux's /proc/locks; read only: status never takes the lock)."""
    try:
        st = path.stat()
        with open("/proc/locks", encoding="ascii") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return int(fields[4])
        except ValueError:
            continue
    return None


def _check_file(folder: Path, rid: str, leg: str | None, done: Done, quick: bool) -> VerifyProblem | None:
    paths = _entry_paths(folder, done)
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        return VerifyProblem(rid, leg, str(paths[0]), "missing", str(done.bytes), None)
    size = path.stat().st_size
    if size != done.bytes:
        return VerifyProblem(rid, leg, str(path), "size", str(done.bytes), str(size))
    if quick:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
    if digest.hexdigest() != done.sha256:
        return VerifyProblem(rid, leg, str(path), "sha256", done.sha256, digest.hexdigest())
    return None


def open_export(dest: str | os.PathLike[str], *, create: bool = True) -> Folder:
    """The destination folder, created (with its parents) if missing, as wget -P and rclone do."""
    folder = Path(dest).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"destination is not a folder: {folder}")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise NoExportError(f"not a folder: {folder}")
    return Folder(folder)
