"""An object store (S3, GCS, Azure Blob) as a destination, on obstore (the ``cloud`` extra).

Layout under the destination's prefix::

    <prefix>/<provider>-<id>[-<leg>].<ext>              the recordings, and nothing else
    <prefix>/.callrec/<shard>/lease.json                 the run's lease (<shard>: "all", or "2-of-8"; ``_lease``)
    <prefix>/.callrec/<shard>/manifest/<time>-<run>.jsonl the manifest: batches of up to 1,000 JSON lines
    <prefix>/.callrec/<shard>/pending/<name>.json        a large recording's entry, written before its copy
    <prefix>/.callrec/<shard>/uploads/<token>            a large recording while it is assembled
    <prefix>/.callrec/clock/<token>                      a probe that reads the store's clock (deleted at once)

**A recording and its entry.** A recording that fits in a part (``PART_SIZE``) is written with one create-only
``PUT`` (``If-None-Match: *``; ``overwrite=True``: a plain PUT) carrying its own entry as user metadata
(``callrec-id``, ``callrec-leg``, ``callrec-sha256``). A larger one streams as a multipart upload to a staging
object, then is copied to its name with a create-only copy (obstore's create-only ``put`` never uses multipart, and
its multipart writer cannot send ``If-None-Match``; S3's create-only copy, ``copy_if_not_exists="multipart"``, is
an ``UploadPartCopy`` completed with ``If-None-Match: *``). S3's copy keeps no metadata, so a large recording's
entry is written first, as a small ``pending/`` object, and deleted once the manifest holds it. Either way a
recording stored without its manifest entry (a crash, a write the store applied but answered 5xx) is recognised
as this export's and adopted by the next run, or by the retry itself; an object whose metadata names another id,
or none, is someone else's and is never replaced without ``overwrite``.

**The manifest** is written in batches (``_manifest.Batch``: 1,000 entries or 5 s): about one PUT per thousand
recordings. A batch being filled is rewritten under the same key every 5 s, so a crash loses at most 5 s of
entries (their recordings are then adopted) and finished batches hold 1,000 entries each; a run's last, partial
batches are merged into full ones when the next run of its shard closes. A rerun reads one listing of the prefix
and one object per batch of the shards that can hold its ids: about N / 500 requests for N recordings.

**The lease** (``_lease``, a policy with no I/O): a create-only ``PUT`` with a random token in its body, renewed
with ``If-Match`` (GCS: the generation) every third of its ``lease_seconds``, deleted at the end if still ours;
expiry of another run's lease is judged on the store's clock; past its own validity a run commits nothing more.

Every call here blocks: the drivers run them on worker threads (the sink's, ``to_thread``), sync and async alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote, unquote, urlsplit

import attrs
import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError

from .._audio import EXTENSIONS, SNIFF_BYTES, extension_for, sniff_extension
from .._errors import DownloadError, ExportLockedError
from .._fleet import LIMIT_FILE, SCOUT_FILE, Board, BoardState, parse_limit, parse_scout
from .._lease import LEASE_SECONDS, Holder, LeaseClock, expires_at, new_token
from .._manifest import BATCH_ENTRIES, Batch, Done, Entries, entry
from .._redact import redact_text
from .._results import BulkItem, DownloadResult
from .._sink import FileSink
from . import (
    OBJECT_SCHEMES,
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

__all__ = ["LEASE_SECONDS", "PART_SIZE", "Bucket", "Lease", "ObjectTarget", "ObjectUpload", "open_export", "plan"]

log = logging.getLogger("callrec")

#: A recording up to this size goes in one PUT (held in memory); a larger one as a multipart upload of such parts.
PART_SIZE = 8 << 20
#: Parts of one multipart upload in flight at once (memory: about (1 + this) x PART_SIZE per large recording).
#: A 512 MiB recording into moto peaked at 69.5 MiB RSS with 1 (40 MiB/s), 76-78 MiB with 2 (45 MiB/s): 1 keeps
#: the 80 MiB bound with room; a bulk run's concurrency is what keeps the store busy.
UPLOAD_CONCURRENCY = 1
#: Objects read at once when a run begins (manifest batches) and by ``verify`` (recordings).
READ_CONCURRENCY = 16
#: Staging objects of single downloads (``.callrec/uploads/``) older than this are a crashed download's.
STALE_UPLOAD_SECONDS = 24 * 3600.0
_HASH_CHUNK = 1 << 20
_MIME = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
    "flac": "audio/flac",
}
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
#: User metadata a recording carries (values percent-encoded: headers are ASCII). Underscores, not hyphens: Azure
#: takes only C# identifiers as metadata names (``callrec-id`` is refused with 400 InvalidMetadata).
META_ID, META_LEG, META_SHA256 = "callrec_id", "callrec_leg", "callrec_sha256"


def same_etag(e_tag: str | None) -> str | None:
    """An ETag as compared: without quotes (Azure lists it bare and answers PUT and HEAD with it quoted)."""
    return None if e_tag is None else e_tag.strip().removeprefix("W/").strip('"')


def _store_now(bucket: Bucket) -> datetime:
    """The time on the store's clock: the ``Last-Modified`` of a probe object written now (then deleted)."""
    key = f"{STATE_DIR}/clock/{secrets.token_hex(8)}"
    obstore.put(bucket.store, key, b"")
    try:
        return obstore.head(bucket.store, key)["last_modified"]
    finally:
        with contextlib.suppress(Exception):
            obstore.delete(bucket.store, key)


def _update_mode(e_tag: str | None, version: str | None) -> dict[str, str]:
    """A conditional write's precondition: the ETag (S3, Azure) and the generation where the store has one (GCS
    needs it: obstore's GCS client refuses an update by ETag alone before sending anything)."""
    mode: dict[str, str] = {}
    if e_tag is not None:
        mode["e_tag"] = e_tag
    if version is not None:
        mode["version"] = version
    return mode


# -- where: URLs and stores ----------------------------------------------------


@attrs.frozen
class Bucket(Export):
    """An object store and the prefix a destination lives under (the store's own ``prefix``).

    ``base`` names it in results and messages (``s3://bucket/prefix``); it never holds credentials.
    """

    store: Any
    base: str

    def url_of(self, key: str) -> str:
        return f"{self.base.rstrip('/')}/{key}"

    def key_of(self, location: str) -> str:
        return location[len(self.base.rstrip("/")) + 1 :]

    def begin(self, provider: str, shard: Shard, lease_seconds: float = LEASE_SECONDS) -> BucketRun:
        return BucketRun(self, provider, shard, lease_seconds)

    def verify(
        self, *, quick: bool = False, concurrency: int = READ_CONCURRENCY, watch: Watch | None = None
    ) -> VerifyReport:
        with object_errors("read"):
            state = read_state(self, None)
            if not state.has_export:
                raise NoExportError(f"no callrec export at {self.base} (no manifest under {STATE_DIR}/)")
            known = {done.path for done in state.entries.done.values()}
            items = sorted(state.entries.done.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
            watching = watch or Watch()
            watching.begin(len(items))

            def check(item: tuple[tuple[str, str | None], Done]) -> VerifyProblem | None:
                (rid, leg), done = item
                problem = self._check(rid, leg, done, state.recordings, quick)
                watching.checked(rid, leg, self.url_of(done.path), problem)
                return problem

            with ThreadPoolExecutor(concurrency, thread_name_prefix="callrec-verify") as pool:
                problems = [p for p in pool.map(check, items) if p is not None]
        orphans = tuple(sorted(self.url_of(key) for key in state.recordings if key not in known))
        return VerifyReport(
            destination=self.base, checked=len(items), problems=tuple(problems), orphans=orphans, quick=quick
        )

    def status(self) -> ExportStatus:
        with object_errors("read"):
            state = read_state(self, None, by_tag=True)
            if not state.has_export and not state.leases:
                raise NoExportError(f"no callrec export at {self.base} (no manifest under {STATE_DIR}/)")
            leases = {tag: self._lease_info(tag, meta) for tag, meta in state.leases.items()}
        by_tag = state.by_tag or {}
        shards = tuple(
            shard_status(tag, by_tag.get(tag, Entries()), lease=leases.get(tag), running=tag in leases)
            for tag in sorted({*by_tag, *leases}, key=_tag_order)
        )
        known = {done.path for done in state.entries.done.values()}
        orphans = sum(1 for key in state.recordings if key not in known)
        return export_status(self.base, state.entries, shards, orphans)

    def _lease_info(self, tag: str, meta: Any) -> LeaseInfo | None:
        found = _read_lease(self, f"{STATE_DIR}/{tag}/lease.json", LEASE_SECONDS)
        if found is None:
            return None  # released since the listing
        holder, got = found
        written = got["last_modified"]
        return LeaseInfo(
            owner=holder.owner if holder is not None else "unknown",
            written_at=written,
            expires_at=expires_at(holder, written, LEASE_SECONDS),
        )

    def _check(
        self, rid: str, leg: str | None, done: Done, listing: dict[str, tuple[int, str | None]], quick: bool
    ) -> VerifyProblem | None:
        where, listed = self.url_of(done.path), listing.get(done.path)
        if listed is None:
            return VerifyProblem(rid, leg, where, "missing", str(done.bytes), None)
        size, e_tag = listed
        if size != done.bytes:
            return VerifyProblem(rid, leg, where, "size", str(done.bytes), str(size))
        if done.e_tag is not None and e_tag is not None and e_tag != same_etag(done.e_tag):
            return VerifyProblem(rid, leg, where, "e_tag", done.e_tag, e_tag)
        if quick:
            return None
        digest = hashlib.sha256()
        for chunk in obstore.get(self.store, done.path).stream(min_chunk_size=_HASH_CHUNK):
            digest.update(memoryview(chunk))
        if digest.hexdigest() != done.sha256:
            return VerifyProblem(rid, leg, where, "sha256", done.sha256, digest.hexdigest())
        return None


_BAD_ESCAPES = ("%2f", "%5c", "%00")


def _split(url: str) -> tuple[str, str, str, str | None]:
    """(scheme, container, prefix, object name or None) of an object-store URL, its path percent-decoded.

    obstore decodes percent-escapes in a URL's path, so every check is made on the decoded path (``%2e%2e`` is
    ``..``) and the prefix and name returned are what the store will write under. Escaped separators (``%2F``,
    ``%5C``) and NUL are refused: they would change which folder a key is in. A URL with credentials
    (``s3://KEY:SECRET@bucket``) is refused without repeating it.
    """
    parts = urlsplit(url)
    userinfo, at, _host = parts.netloc.rpartition("@")
    # abfs://container@account.dfs.core.windows.net names a container so; anything else before '@' is a credential.
    if at and (":" in userinfo or parts.scheme.lower() not in ("abfs", "abfss")):
        raise ValueError(
            "an object-store URL must not carry credentials (user:password@); they come from the environment"
        )
    scheme = parts.scheme.lower()
    if f"{scheme}://" not in OBJECT_SCHEMES:
        raise ValueError(f"not an object-store URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(
            "an object-store destination takes no query or fragment (credentials come from the environment)"
        )
    if not parts.netloc:
        raise ValueError(f"the object-store URL names no bucket or container: {url!r}")
    if any(bad in parts.path.lower() for bad in _BAD_ESCAPES):
        raise ValueError(f"the object-store URL must not hold an escaped '/', '\\\\' or NUL: {url!r}")
    path = unquote(parts.path, errors="strict").lstrip("/")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError(f"the object-store URL must not hold control characters: {url!r}")
    folder = path.rstrip("/")
    if folder and any(segment in ("", ".", "..") for segment in folder.split("/")):
        raise ValueError(f"the object-store URL must not hold empty, '.' or '..' segments (decoded): {url!r}")
    if not path or path.endswith("/"):
        return scheme, parts.netloc, folder, None
    prefix, _, name = path.rpartition("/")
    return scheme, parts.netloc, prefix, name


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def s3_options(environ: os._Environ[str] | dict[str, str] = os.environ) -> tuple[dict[str, str], dict[str, Any]]:
    """(config, client_options) callrec adds to an S3 store it builds from a URL.

    The endpoint, credentials and region stay the environment's (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` ...,
    read by obstore). A plain-``http://`` endpoint is allowed on loopback only (a local S3 such as moto or MinIO);
    anywhere else it is refused before anything is sent. Create-only copies and SHA-256 checksums are turned on
    unless the environment sets them (``AWS_COPY_IF_NOT_EXISTS``, ``AWS_CHECKSUM_ALGORITHM``).
    """
    config: dict[str, str] = {}
    if "AWS_COPY_IF_NOT_EXISTS" not in environ:
        config["copy_if_not_exists"] = "multipart"
    if "AWS_CHECKSUM_ALGORITHM" not in environ:
        config["checksum_algorithm"] = "SHA256"
    options: dict[str, Any] = {}
    endpoint = environ.get("AWS_ENDPOINT_URL") or environ.get("AWS_ENDPOINT")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme == "http":
            if not _is_loopback(parts.hostname or ""):
                raise ValueError(
                    f"refusing the plain-http S3 endpoint {parts.hostname}: http:// is allowed on loopback only "
                    "(use https://)"
                )
            options["allow_http"] = True
        elif parts.scheme != "https":
            raise ValueError(f"AWS_ENDPOINT_URL must be an http(s) URL, not {parts.scheme or 'no scheme'}")
    return config, options


def store_from_url(scheme: str, container: str, prefix: str) -> Any:
    """The obstore store of a destination URL's folder, configured from the environment."""
    from obstore.store import from_url

    # ``prefix`` is decoded (``_split``): quoted again here, so that obstore's decoding gives it back exactly.
    url = f"{scheme}://{container}/{quote(prefix, safe='/')}".rstrip("/")
    if scheme in ("s3", "s3a"):
        config, options = s3_options()
        store = from_url(url, config=cast(Any, config), client_options=cast(Any, options or None))
    else:
        store = from_url(url)
    if str(getattr(store, "prefix", None) or "").strip("/") != prefix:
        raise ValueError(f"the object-store URL's folder is not one the store can name exactly: {prefix!r}")
    return store


def _with_s3_options(store: Any) -> Any:
    """A user's S3Store, rebuilt with create-only copies and checksums when it was built without them."""
    from obstore.store import S3Store

    if not isinstance(store, S3Store):
        return store
    config = dict(store.config or {})
    extra, _ = s3_options()
    missing = {k: v for k, v in extra.items() if k not in config}
    if not missing:
        return store
    return S3Store(
        prefix=store.prefix,
        config=cast(Any, {**config, **missing}),
        client_options=store.client_options,
        retry_config=store.retry_config,
        credential_provider=store.credential_provider,
    )


def _describe_store(store: Any) -> str:
    """``s3://bucket/prefix`` for a store object (for locations and messages)."""
    config = getattr(store, "config", None) or {}
    prefix = str(getattr(store, "prefix", None) or "").strip("/")
    name = type(store).__name__
    if name == "S3Store":
        base = f"s3://{config.get('bucket', config.get('aws_bucket', ''))}"
    elif name == "GCSStore":
        base = f"gs://{config.get('bucket', config.get('google_bucket', ''))}"
    elif name == "AzureStore":
        base = f"az://{config.get('container_name', config.get('azure_container_name', ''))}"
    else:
        base = f"{name.removesuffix('Store').lower() or 'store'}://"
    return f"{base}/{prefix}".rstrip("/") if prefix else base


def _resolve(dest: object) -> tuple[Bucket, str | None]:
    if isinstance(dest, str):
        scheme, container, prefix, name = _split(dest)
        base = f"{scheme}://{container}/{prefix}".rstrip("/")
        return Bucket(store_from_url(scheme, container, prefix), base), name
    return Bucket(_with_s3_options(dest), _describe_store(dest)), None


def plan(dest: object, provider: str, recording_id: str, leg: str | None) -> ObjectTarget:
    """One download's target: ``s3://bucket/prefix/`` (a folder: its name is chosen) or ``s3://bucket/key.mp3``."""
    bucket, name = _resolve(dest)
    if name is not None and name == STATE_DIR:
        raise ValueError(f"{STATE_DIR} is callrec's own folder in a destination, not a recording's name")
    return ObjectTarget(bucket, provider, recording_id, leg, name, STATE_DIR, None, None)


def open_export(dest: object) -> Bucket:
    """A bulk run's destination: every URL is a prefix (``s3://bucket/exports`` and ``.../exports/`` alike)."""
    if isinstance(dest, str):
        scheme, container, prefix, name = _split(dest)
        prefix = "/".join(p for p in (prefix, name) if p)
        return Bucket(store_from_url(scheme, container, prefix), f"{scheme}://{container}/{prefix}".rstrip("/"))
    return _resolve(dest)[0]


@contextlib.contextmanager
def object_errors(doing: str = "write") -> Iterator[None]:
    """The store's failures as ``DownloadError`` (the obstore error as ``__cause__``); ``FileExistsError``,
    ``NoExportError`` and ``ExportLockedError`` stay themselves."""
    try:
        yield
    except (FileExistsError, NoExportError, ExportLockedError):
        raise
    except (BaseError, OSError) as exc:
        if isinstance(exc, TimeoutError):
            raise
        first = redact_text(str(exc).splitlines()[0] if str(exc) else "")[:300]
        raise DownloadError(f"could not {doing} the object store ({type(exc).__name__}: {first})") from exc


# -- one recording -----------------------------------------------------------


class _Aborted(Exception):
    """Given to an obstore writer's ``__exit__`` so that it aborts its multipart upload."""


class ObjectUpload:
    """What the sink writes into for an object: memory up to one part, then a multipart upload to a staging key.

    Behaves as the sink's file (``_sink.SinkFile``): ``seek(0)`` + ``truncate()`` start over (the multipart upload
    is aborted), ``close()`` throws everything away. :meth:`commit` makes it the named object.
    """

    def __init__(
        self, store: Any, staging_dir: str, part_size: int = PART_SIZE, metadata: dict[str, str] | None = None
    ) -> None:
        self._metadata = metadata or {}  # the recording's id and leg: Azure's and GCS's copies keep them
        self._store = store
        self._staging_dir = staging_dir
        self._part = part_size
        self._buf = bytearray()
        self._writer: Any = None
        self.staging: str | None = None

    @property
    def multipart(self) -> bool:
        return self._writer is not None

    def write(self, data: bytes | memoryview, /) -> int:
        if self._writer is not None:
            # obstore keeps a view of what it is given until its part is sent; the sink recycles ``data``: a copy.
            self._writer.write(bytes(data))
        else:
            self._buf += data
            if len(self._buf) > self._part:
                self._start()
        return len(data)

    def _start(self) -> None:
        self.staging = f"{self._staging_dir}/{secrets.token_hex(8)}"
        kind = sniff_extension(bytes(self._buf[:SNIFF_BYTES])) or ""
        self._writer = obstore.open_writer(
            self._store,
            self.staging,
            buffer_size=self._part,
            max_concurrency=UPLOAD_CONCURRENCY,
            attributes={**self._metadata, "Content-Type": _MIME.get(kind, "application/octet-stream")},
        )
        buffered, self._buf = self._buf, bytearray()
        self._writer.write(buffered)

    def seek(self, offset: int, /) -> int:
        if offset != 0:
            raise io.UnsupportedOperation("an upload starts over only from byte 0")
        self.close()
        return 0

    def truncate(self) -> int:
        return 0

    def flush(self) -> None:
        return None

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an upload has no file descriptor")

    def close(self) -> None:
        """Throw away what was written: the multipart upload, if one started, is aborted. Never raises."""
        writer, self._writer = self._writer, None
        self._buf = bytearray()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.__exit__(_Aborted, _Aborted("the download did not finish"), None)
            log.debug("callrec: aborted the multipart upload of %s", self.staging)

    def commit(
        self,
        key: str,
        *,
        overwrite: bool,
        content_type: str | None,
        metadata: dict[str, str],
        before_copy: Callable[[], None],
    ) -> tuple[str | None, str | None]:
        """Make the bytes the object ``key``: create-only unless ``overwrite`` (``AlreadyExistsError``).

        One PUT carries ``metadata``; a multipart upload calls ``before_copy`` (the pending entry) between the
        staging object's completion and the copy, which keeps no metadata on S3. Returns the object's (ETag,
        version) as the store reports them.
        """
        mode: Literal["create", "overwrite"] = "overwrite" if overwrite else "create"
        if self._writer is None:
            attributes: dict[str, str] = dict(metadata)
            if content_type:
                attributes["Content-Type"] = content_type
            body, self._buf = self._buf, bytearray()
            put = obstore.put(self._store, key, body, mode=mode, attributes=attributes, use_multipart=False)
            return put["e_tag"], put["version"]
        writer, self._writer = self._writer, None
        try:
            writer.close()  # completes the staging object
        except BaseException:
            with contextlib.suppress(Exception):
                writer.__exit__(_Aborted, _Aborted("completing the upload failed"), None)
            raise
        assert self.staging is not None
        try:
            before_copy()
            obstore.copy(self._store, self.staging, key, overwrite=overwrite)
        finally:
            with contextlib.suppress(Exception):
                obstore.delete(self._store, self.staging)
        meta = obstore.head(self._store, key)
        return meta["e_tag"], meta["version"]


class ObjectSink(FileSink):
    """The sink of an object: the bytes go to an :class:`ObjectUpload`; nothing to fsync, nothing on disk."""

    def __init__(self, upload: ObjectUpload) -> None:
        self.upload = upload
        super().__init__(upload, Path("<upload>"), writeback_every=0)

    def _make_durable(self) -> None:
        return None  # the store makes the object durable when it is committed

    def _remove_file(self) -> None:
        self.upload.close()


@attrs.frozen
class ObjectTarget(Target):
    """One recording's object: a name chosen in the store's prefix, or a fixed key.

    ``state_dir`` is where its staging upload (and, in a bulk run, its pending entry) goes; ``run`` is the bulk
    run it belongs to (its lease is checked before the commit), or None for a single download.
    """

    bucket: Bucket
    provider: str
    recording_id: str
    leg: str | None
    fixed: str | None
    state_dir: str
    listing: dict[str, tuple[int, str | None]] | None  # a bulk run's listing of the prefix; None: ask the store
    run: BucketRun | None

    @property
    def stem(self) -> str:
        return item_stem(self.provider, self.recording_id, self.leg)

    def key(self, content_type: str | None, head: bytes) -> str:
        return self.fixed if self.fixed is not None else f"{self.stem}.{extension_for(content_type, head)}"

    def candidates(self) -> list[str]:
        if self.fixed is not None:
            return [self.fixed]
        return [f"{self.stem}.{ext}" for ext in (*sorted(EXTENSIONS), "bin")]

    def _existing(self) -> list[str]:
        candidates = self.candidates()
        if self.listing is not None:
            return [key for key in candidates if key in self.listing]
        # A store lists by folder, not by name prefix: one HEAD per possible name (7 at most), not a folder listing.
        found = []
        for key in candidates:
            try:
                obstore.head(self.bucket.store, key)
            except FileNotFoundError:
                continue
            found.append(key)
        return found

    def refuse_existing(self) -> None:
        existing = self._existing()
        if existing:
            raise FileExistsError(f"{self.bucket.url_of(existing[0])} exists (pass overwrite=True to replace it)")

    def open_sink(self) -> ObjectSink:
        identity = {META_ID: quote(self.recording_id, safe=""), META_LEG: self.leg or ""}
        return ObjectSink(ObjectUpload(self.bucket.store, f"{self.state_dir}/uploads", metadata=identity))

    def metadata(self, sha256: str) -> dict[str, str]:
        """The entry a recording carries (user metadata), by which a later run knows it as this export's."""
        return {META_ID: quote(self.recording_id, safe=""), META_LEG: self.leg or "", META_SHA256: sha256}

    def commit(self, sink: FileSink, content_type: str | None, head: bytes, *, overwrite: bool) -> DownloadResult:
        assert isinstance(sink, ObjectSink)
        key = self.key(content_type, head)
        size, sha256 = sink.finish()
        if self.run is not None:
            self.run.check()  # a run that lost its lease commits nothing more

        def before_copy() -> None:
            if self.run is not None:
                self.run.write_pending(self, key, size, sha256, content_type)

        try:
            e_tag, _version = sink.upload.commit(
                key,
                overwrite=overwrite,
                content_type=content_type,
                metadata=self.metadata(sha256),
                before_copy=before_copy,
            )
        except AlreadyExistsError:
            # Ours if the store applied an earlier try of this write and answered 5xx; else someone else's.
            e_tag = self.ours(key, size, sha256)
            if e_tag is None:
                raise FileExistsError(f"{self.bucket.url_of(key)} exists (pass overwrite=True to replace it)") from None
            log.info("callrec: %s was already written by this download (a retried write)", self.bucket.url_of(key))
        if overwrite:
            for other in self._existing():  # the same recording under another extension
                if other != key:
                    obstore.delete(self.bucket.store, other)
        return DownloadResult(
            path=None,
            location=self.bucket.url_of(key),
            bytes=size,
            content_type=content_type,
            sha256=sha256,
            url_refreshes=0,
            e_tag=same_etag(e_tag),
        )

    def ours(self, key: str, size: int, sha256: str) -> str | None:
        """The ETag of ``key`` if it holds exactly these bytes of this recording; None if it is someone else's."""
        got = obstore.get(self.bucket.store, key, options={"head": True})
        meta, attributes = got.meta, got.attributes
        if int(meta["size"]) != size:
            return None
        if attributes.get(META_SHA256) == sha256 and unquote(attributes.get(META_ID, "")) == self.recording_id:
            return meta["e_tag"]
        digest = hashlib.sha256()  # no metadata (a copy on S3): the bytes say it
        for chunk in obstore.get(self.bucket.store, key).stream(min_chunk_size=_HASH_CHUNK):
            digest.update(memoryview(chunk))
        return meta["e_tag"] if digest.hexdigest() == sha256 else None

    def withdraw(self, result: DownloadResult) -> None:
        with contextlib.suppress(Exception):
            obstore.delete(self.bucket.store, self.bucket.key_of(result.location))

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return object_errors()


# -- bulk runs: state, the manifest and the lease -------------------------------


def shard_dir(shard: Shard) -> str:
    return f"{STATE_DIR}/{shard_tag(shard) or 'all'}"


def _relevant(tag: str, shard: Shard) -> bool:
    """Whether entries kept under ``tag`` can hold ids of ``shard`` (None: every tag; verify, unsharded runs)."""
    if shard is None or tag == "all":
        return True
    k, n = shard
    other_k, sep, other_n = tag.partition("-of-")
    if not sep or not other_k.isdigit() or not other_n.isdigit():
        return False
    return int(other_n) != n or int(other_k) == k  # a shard of another split can hold any id; of ours, only ours


@attrs.define
class State:
    """What a run (or ``verify``) reads of a prefix before it starts: one listing, then the manifest batches."""

    recordings: dict[str, tuple[int, str | None]] = attrs.field(factory=dict)  # key -> (size, ETag)
    entries: Entries = attrs.field(factory=Entries)
    own_partial: dict[str, list[str]] = attrs.field(factory=dict)  # this shard's partial batches: key -> lines
    own_legacy: list[str] = attrs.field(factory=list)  # this shard's per-item objects (callrec 0.x layout)
    own_pending: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)  # this shard's: key, entry
    pending: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # recording key -> its pending entry
    uploads: list[tuple[str, datetime]] = attrs.field(factory=list)  # staging objects: key, last modified
    has_export: bool = False
    requests: int = 0
    by_tag: dict[str, Entries] | None = None  # per shard, when asked for (``status``)
    leases: dict[str, Any] = attrs.field(factory=dict)  # tag -> the lease object's listing entry


def read_state(bucket: Bucket, shard: Shard, own: str | None = None, *, by_tag: bool = False) -> State:
    """List the prefix once; read the manifest batches (and pending entries) of every shard that can hold ids of
    ``shard``, ``READ_CONCURRENCY`` at a time. ``own`` (a run's ``.callrec/<shard>``) keeps that shard's partial
    batches and legacy objects so that its close can merge them."""
    state = State(by_tag={} if by_tag else None)
    to_read: list[tuple[str, str, str]] = []  # (key, kind, tag)
    for batch in obstore.list(bucket.store, chunk_size=1000):
        state.requests += 1
        for meta in batch:
            key = str(meta["path"])
            if not key.startswith(f"{STATE_DIR}/"):
                state.recordings[key] = (int(meta["size"]), same_etag(meta.get("e_tag")))
                continue
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "lease.json":
                state.leases[parts[1]] = meta
                continue
            if len(parts) < 4:
                continue
            tag, kind = parts[1], parts[2]
            if kind == "uploads":
                state.uploads.append((key, meta["last_modified"]))
            elif kind in ("manifest", "items", "failed", "pending") and _relevant(tag, shard):
                if kind != "pending":
                    state.has_export = True
                to_read.append((key, kind, tag))

    def read(key: str) -> str:
        return bytes(obstore.get(bucket.store, key).bytes()).decode("utf-8", "replace")

    with ThreadPoolExecutor(READ_CONCURRENCY, thread_name_prefix="callrec-manifest") as pool:
        bodies = list(pool.map(read, [key for key, _, _ in to_read]))
    state.requests += len(bodies)
    for (key, kind, tag), body in zip(to_read, bodies, strict=True):
        mine = own is not None and key.startswith(f"{own}/")
        lines = body.splitlines()
        if kind == "pending":
            try:
                data = json.loads(body)
                state.pending[str(data["path"])] = data
            except (ValueError, TypeError, KeyError):
                continue
            if mine:
                state.own_pending.append((key, data))
            continue
        state.entries.add_lines(lines)
        if state.by_tag is not None:
            state.by_tag.setdefault(tag, Entries()).add_lines(lines)
        if mine and kind == "manifest" and len(lines) < BATCH_ENTRIES:
            state.own_partial[key] = lines
        elif mine and kind in ("items", "failed"):
            state.own_legacy.append(key)
            state.own_partial[key] = lines
    return state


#: The longest obstore may retry one lease request (its default is minutes): a renewal that outlives its run
#: would extend a finished run's lease. Two retries, 0.1-1 s apart, within this.
LEASE_RETRY_SECONDS = 5.0


def _bounded_retries(store: Any, seconds: float) -> Any:
    """The same store with obstore's retries bounded to ``seconds``, for lease requests (a store obstore does not
    build from its fields, or with no retries of its own, is used as it is)."""
    if type(store).__name__ not in ("S3Store", "GCSStore", "AzureStore"):
        return store
    from datetime import timedelta

    retry = {
        "max_retries": 2,
        "retry_timeout": timedelta(seconds=seconds),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1), "base": 2.0},
    }
    try:
        return type(store)(
            prefix=store.prefix,
            config=store.config,
            client_options=store.client_options,  # (a "timeout" here makes obstore's GCS client refuse to build)
            retry_config=retry,
            credential_provider=store.credential_provider,
        )
    except Exception:  # a store obstore cannot rebuild from its own fields: its own retries, as configured
        return store


def _read_lease(bucket: Bucket, key: str, ttl: float) -> tuple[Holder | None, Any] | None:
    """(holder, meta) of the lease object, or None when there is none."""
    try:
        got = obstore.get(bucket.store, key)
    except FileNotFoundError:
        return None
    return Holder.parse(bytes(got.bytes()), ttl), got.meta


class Lease:
    """One run's hold on a prefix and shard: the I/O around ``_lease`` (which decides everything)."""

    def __init__(self, bucket: Bucket, key: str, holder: Holder, meta: Any, clock: LeaseClock) -> None:
        self.bucket, self.key, self.holder = bucket, key, holder  # ``bucket``: with bounded retries (``take``)
        self._e_tag: str | None = meta["e_tag"]
        self._version: str | None = meta.get("version")
        self._clock = clock
        self._renewals = 0
        self._lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="callrec-lease", daemon=True)
        self._thread.start()

    @property
    def where(self) -> str:
        return self.bucket.url_of(self.key)

    @classmethod
    def take(cls, bucket: Bucket, key: str, ttl: float = LEASE_SECONDS) -> Lease:
        """The lease, or ``ExportLockedError`` when another run holds it (and it has not expired on the store's
        clock). A write of ours that the store applied but answered with an error is recognised by its token."""
        holder = Holder(token=new_token(), owner=f"{socket.gethostname()}:{os.getpid()}", ttl=ttl)
        where = bucket.url_of(key)
        bucket = Bucket(_bounded_retries(bucket.store, min(LEASE_RETRY_SECONDS, ttl / 6)), bucket.base)
        for _ in range(2):
            sent = time.monotonic()
            try:
                put = obstore.put(bucket.store, key, holder.body(), mode="create")
            except AlreadyExistsError:
                pass
            else:
                return cls(bucket, key, holder, put, LeaseClock(ttl, sent))
            found = _read_lease(bucket, key, ttl)
            if found is None:
                continue  # released meanwhile: try once more
            other, meta = found
            if other is not None and other.token == holder.token:
                return cls(bucket, key, holder, meta, LeaseClock(ttl, sent))  # ours: applied, answered 5xx
            now = _store_now(bucket)
            until = expires_at(other, meta["last_modified"], ttl)
            if now < until:
                owner = other.owner if other is not None else "unknown"
                raise ExportLockedError(
                    f"another download_many run ({owner}) holds the lease {where} until "
                    f"{until.isoformat(timespec='seconds')} (the store's clock; now {now.isoformat(timespec='seconds')}"
                    "); wait for it to finish (or, if it crashed, for the lease to expire), or use another prefix "
                    "or shard"
                )
            sent = time.monotonic()
            try:
                put = obstore.put(
                    bucket.store, key, holder.body(), mode=cast(Any, _update_mode(meta["e_tag"], meta.get("version")))
                )
            except PreconditionError:
                again = _read_lease(bucket, key, ttl)
                if again is not None and again[0] is not None and again[0].token == holder.token:
                    return cls(bucket, key, holder, again[1], LeaseClock(ttl, sent))
                raise ExportLockedError(f"another run took over the expired lease {where} first") from None
            log.info("callrec: took over the expired lease %s (held by %s)", where, other.owner if other else "?")
            return cls(bucket, key, holder, put, LeaseClock(ttl, sent))
        raise ExportLockedError(f"the lease {where} keeps changing hands; try again")

    def _renew_loop(self) -> None:
        while True:
            with self._lock:
                wait = self._clock.next_attempt - time.monotonic()
            if self._stop.wait(max(wait, 0.0)):
                return
            self._renew_once()
            if self._lost:
                return

    def _renew_once(self) -> None:
        sent = time.monotonic()
        self._renewals += 1
        with self._lock:
            mode = _update_mode(self._e_tag, self._version)
        try:
            put = obstore.put(self.bucket.store, self.key, self.holder.body(self._renewals), mode=cast(Any, mode))
        except PreconditionError:
            try:
                found = _read_lease(self.bucket, self.key, self.holder.ttl)
            except Exception:
                found = None
                with self._lock:
                    self._clock.failed(time.monotonic())
                return
            if found is not None and found[0] is not None and found[0].token == self.holder.token:
                self._written(found[1], sent)  # our renewal was applied, then answered with an error
                return
            self._lost = True
            if not self._stop.is_set():  # a renewal that outlived its run's release finds the lease gone: fine
                log.warning("callrec: lost the lease %s: another run took it over", self.where)
            return
        except Exception as exc:  # 403, 5xx, a timeout: the lease holds until its own deadline; try again sooner
            with self._lock:
                self._clock.failed(time.monotonic())
                left = self._clock.valid_until - time.monotonic()
            log.warning(
                "callrec: could not renew the lease %s (%s); %.1f s of it left", self.where, type(exc).__name__, left
            )
            return
        self._written(put, sent)

    def _written(self, meta: Any, sent: float) -> None:
        with self._lock:
            self._e_tag, self._version = meta["e_tag"], meta.get("version")
            self._clock.written(sent)

    def check(self) -> None:
        """Raise ``ExportLockedError`` unless the lease is ours and valid now (by our monotonic clock)."""
        if self._lost:
            raise ExportLockedError(f"this run lost its lease {self.where} to another run")
        with self._lock:
            valid = self._clock.valid(time.monotonic())
        if not valid:
            raise ExportLockedError(
                f"this run could not renew its lease {self.where} in time: it stops before another run may take it"
            )

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (by its token). Never raises."""
        self._stop.set()
        # A renewal in flight ends within LEASE_RETRY_SECONDS (its retries are bounded), so none lands after this.
        self._thread.join(timeout=LEASE_RETRY_SECONDS + 1.0)
        with self._lock:
            valid = self._clock.valid(time.monotonic())
        # Only while it is still valid: then no other run can have taken it (a takeover needs its expiry on the
        # store's clock, a sixth of the ttl later), so the read-then-delete below cannot remove another run's
        # lease. Past its validity it is left to expire.
        if self._lost or not valid:
            return
        with contextlib.suppress(Exception):
            found = _read_lease(self.bucket, self.key, self.holder.ttl)
            if found is not None and found[0] is not None and found[0].token == self.holder.token:
                obstore.delete(self.bucket.store, self.key)


class BucketBoard(Board):
    """A fleet's board in a bucket: ``.callrec/fleet/<vendor>-<n>/``; one listing a read, and a GET of
    ``limit.json`` or ``scout.json`` only when its ETag moved. Ages are the objects' ``Last-Modified``."""

    def __init__(self, bucket: Bucket, provider: str, n: int) -> None:
        self.prefix = f"{STATE_DIR}/fleet/{fleet_name(provider, n)}"
        self._store = _bounded_retries(bucket.store, LEASE_RETRY_SECONDS)  # a poll, not a transfer: fail fast
        self._bodies: dict[str, tuple[str | None, bytes | None]] = {}  # name: (ETag, body) as last read

    def read(self) -> BoardState:
        with object_errors("read the fleet board of"):
            modified: dict[str, float] = {}
            tags: dict[str, str | None] = {}
            for batch in obstore.list(self._store, f"{self.prefix}/", chunk_size=1000):
                for meta in batch:
                    name = str(meta["path"]).rsplit("/", 1)[-1]
                    modified[name] = meta["last_modified"].timestamp()
                    tags[name] = same_etag(meta.get("e_tag"))
            bodies = {name: self._body(name, tags) for name in (LIMIT_FILE, SCOUT_FILE)}
        limit, scout = bodies[LIMIT_FILE], bodies[SCOUT_FILE]
        return BoardState(
            modified=modified,
            limit=None if limit is None else parse_limit(limit),
            scout=None if scout is None else parse_scout(scout),
        )

    def _body(self, name: str, tags: dict[str, str | None]) -> bytes | None:
        if name not in tags:
            self._bodies.pop(name, None)
            return None
        cached = self._bodies.get(name)
        if cached is not None and cached[0] is not None and cached[0] == tags[name]:
            return cached[1]
        try:
            body: bytes | None = bytes(obstore.get(self._store, f"{self.prefix}/{name}").bytes())
        except FileNotFoundError:
            body = None
        self._bodies[name] = (tags[name], body)
        return body

    def put(self, name: str, body: bytes) -> None:
        with object_errors("write the fleet board of"):
            obstore.put(self._store, f"{self.prefix}/{name}", body)

    def create(self, name: str, body: bytes) -> None:
        with object_errors("write the fleet board of"):
            try:
                obstore.put(self._store, f"{self.prefix}/{name}", body, mode="create")
            except AlreadyExistsError:
                raise FileExistsError(name) from None

    def delete(self, name: str) -> None:
        with object_errors("write the fleet board of"), contextlib.suppress(FileNotFoundError):
            obstore.delete(self._store, f"{self.prefix}/{name}")


class BucketRun(ExportRun):
    """A bulk run into a bucket prefix: its shard's lease, the state it read, and the manifest batch it fills."""

    def __init__(self, bucket: Bucket, provider: str, shard: Shard, lease_seconds: float = LEASE_SECONDS) -> None:
        self.bucket, self.provider = bucket, provider
        self.dir = shard_dir(shard)
        self._run = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(4)}"
        with object_errors("use"):
            self.lease = Lease.take(bucket, f"{self.dir}/lease.json", lease_seconds)
            try:
                state = read_state(bucket, shard, own=self.dir)
                self._clean_uploads(state.uploads)
            except BaseException:
                self.lease.release()
                raise
        self.state = state
        self.listing = state.recordings
        self.requests_at_start = state.requests
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._batch = Batch()
        self._pending: list[tuple[int, str]] = []  # (entry number, pending key) until its batch is saved
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="callrec-manifest", daemon=True)
        self._flusher.start()

    def _clean_uploads(self, uploads: list[tuple[str, datetime]]) -> None:
        """Staging objects a crashed run left: this shard's (no other run of it is alive: we hold its lease), and
        single downloads' older than a day. Multipart uploads that were never completed cannot be listed through
        obstore: docs/guides/object-storage.md asks for a lifecycle rule (S3: AbortIncompleteMultipartUpload)."""
        now = datetime.now(UTC)
        for key, modified in uploads:
            ours = key.startswith(f"{self.dir}/uploads/")
            single = key.startswith(f"{STATE_DIR}/uploads/")
            if ours or (single and (now - modified).total_seconds() > STALE_UPLOAD_SECONDS):
                with contextlib.suppress(FileNotFoundError):
                    obstore.delete(self.bucket.store, key)

    def target(self, provider: str, recording_id: str, leg: str | None) -> ObjectTarget:
        return ObjectTarget(self.bucket, provider, recording_id, leg, None, self.dir, self.listing, self)

    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        done = self.state.entries.done.get((recording_id, leg))
        if done is None:
            return None
        listed = self.listing.get(done.path)
        if listed is None or listed[0] != done.bytes:
            return None
        if done.e_tag is not None and listed[1] is not None and listed[1] != same_etag(done.e_tag):
            return None  # rewritten since (the same size, other bytes): not ours to skip
        return done.result(path=None, location=self.bucket.url_of(done.path))

    def unknown_object(self, recording_id: str, leg: str | None) -> bool:
        target = self.target(self.provider, recording_id, leg)
        return any(key in self.listing for key in target.candidates())

    def adopt(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        target = self.target(self.provider, recording_id, leg)
        for key in target.candidates():
            listed = self.listing.get(key)
            if listed is None:
                continue
            size, e_tag = listed
            with object_errors("read"):
                result = self._whose(target, key, size, e_tag)
            if result is not None:
                self.record(BulkItem(recording_id=recording_id, leg=leg, status="skipped", result=result))
                log.info("callrec: adopted %s (stored by a run that ended before its manifest entry)", result.location)
                return result
        return None

    def _whose(self, target: ObjectTarget, key: str, size: int, e_tag: str | None) -> DownloadResult | None:
        pending = self.state.pending.get(key)
        if (
            pending is not None
            and pending.get("recording_id") == target.recording_id
            and pending.get("leg") == target.leg
            and pending.get("bytes") == size
        ):
            sha256, content_type = str(pending.get("sha256", "")), pending.get("content_type")
        else:
            got = obstore.get(self.bucket.store, key, options={"head": True})
            attributes = got.attributes
            if unquote(attributes.get(META_ID, "\0")) != target.recording_id or attributes.get(META_LEG, "") != (
                target.leg or ""
            ):
                return None
            sha256, content_type = attributes.get(META_SHA256, ""), attributes.get("Content-Type")
            e_tag = same_etag(got.meta["e_tag"])
            if not sha256:  # a large recording copied on Azure or GCS: its id and leg, not its hash; read it
                digest = hashlib.sha256()
                for chunk in obstore.get(self.bucket.store, key).stream(min_chunk_size=_HASH_CHUNK):
                    digest.update(memoryview(chunk))
                sha256 = digest.hexdigest()
        return DownloadResult(
            path=None,
            location=self.bucket.url_of(key),
            bytes=size,
            content_type=content_type if isinstance(content_type, str) else None,
            sha256=sha256,
            url_refreshes=0,
            e_tag=e_tag,
        )

    def check(self) -> None:
        self.lease.check()

    def write_pending(self, target: ObjectTarget, key: str, size: int, sha256: str, content_type: str | None) -> None:
        """A large recording's entry, stored before its copy (which keeps no metadata on S3)."""
        pending_key = f"{self.dir}/pending/{target.stem}.json"
        data = {
            "recording_id": target.recording_id,
            "leg": target.leg,
            "path": key,
            "bytes": size,
            "sha256": sha256,
            "content_type": content_type,
        }
        obstore.put(self.bucket.store, pending_key, json.dumps(data, ensure_ascii=False).encode())
        with self._lock:
            self._pending.append((self._batch.added + 1, pending_key))

    def record(self, item: BulkItem) -> None:
        self.check()
        relative = None if item.result is None else self.bucket.key_of(item.result.location)
        data = entry(item, relative)
        with self._lock:
            due = self._batch.add(data, time.monotonic())
            if item.status == "skipped":  # an adoption: its pending entry, if any, can go at close
                self.state.entries.add(data)
            # Nothing else is kept: a run never meets an id twice (the drivers drop repeats), so a run over a
            # million new ids holds no entry per id.
        if due:
            self.flush()

    def flush(self) -> bool:
        """Write the batch being filled (whole, under its key). False, logged, when the store refused: the entries
        stay for the next try, and their recordings carry their own metadata meanwhile."""
        with self._flush_lock:
            with self._lock:
                if self._batch.unsaved_since is None:
                    return True
                body, count, generation = self._batch.body()
            key = f"{self.dir}/manifest/{self._run}-{generation:06d}.jsonl"
            try:
                obstore.put(self.bucket.store, key, body)
            except Exception as exc:
                log.warning(
                    "callrec: could not write the manifest batch %s (%s)", self.bucket.url_of(key), type(exc).__name__
                )
                return False
            with self._lock:
                self._batch.saved(count, generation, time.monotonic())
                done = [k for n, k in self._pending if n <= self._batch.saved_upto]
                self._pending = [(n, k) for n, k in self._pending if n > self._batch.saved_upto]
        for pending_key in done:
            with contextlib.suppress(Exception):
                obstore.delete(self.bucket.store, pending_key)
        return True

    def _flush_loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                due = self._batch.due(time.monotonic())
            if due:
                self.flush()

    def _merge_partials(self) -> None:
        """This shard's partial batches (earlier runs' last ones, and the 0.x per-item objects) as full batches."""
        old = self.state.own_partial
        if len(old) < 2 and not self.state.own_legacy:
            return
        lines = [line for key in sorted(old) for line in old[key]]
        for n, start in enumerate(range(0, len(lines), BATCH_ENTRIES)):
            chunk = lines[start : start + BATCH_ENTRIES]
            key = f"{self.dir}/manifest/{self._run}-merged-{n:06d}.jsonl"
            obstore.put(self.bucket.store, key, "".join(f"{line}\n" for line in chunk).encode("utf-8"))
        for key in old:
            with contextlib.suppress(FileNotFoundError):
                obstore.delete(self.bucket.store, key)

    def close(self) -> None:
        self._stop.set()
        self._flusher.join()
        try:
            saved = any(self.flush() for _ in range(3))
            if saved:
                self._merge_partials()
                for key, data in self.state.own_pending:  # a crashed run's, now that the manifest knows them
                    done = self.state.entries.done.get((str(data.get("recording_id")), data.get("leg")))
                    if done is not None and done.path == data.get("path"):
                        with contextlib.suppress(FileNotFoundError):
                            obstore.delete(self.bucket.store, key)
            else:
                log.warning(
                    "callrec: %d manifest entries of this run could not be written to %s; the next run adopts their "
                    "recordings from their metadata",
                    len(self._batch),
                    self.bucket.base,
                )
        except Exception as exc:
            log.warning("callrec: could not tidy the manifest of %s (%s)", self.bucket.base, type(exc).__name__)
        finally:
            self.lease.release()

    def board(self, provider: str, n: int) -> BucketBoard:
        return BucketBoard(self.bucket, provider, n)
