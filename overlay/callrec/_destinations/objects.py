"""An object store (S3, GCS, Azure Blob) as a destination, on obstore (the ``cloud`` extra).

Layout under the destination's prefix::

    <prefix>/<provider>-<id>[-<leg>].<ext>         the recordings, and nothing else
    <prefix>/.callrec/<shard>/lease.json            the run's lease (<shard>: "all", or "2-of-8")
    <prefix>/.callrec/<shard>/items/<name>.json     the manifest: one small object per finished item
    <prefix>/.callrec/<shard>/failed/<name>.json    items that failed (never erase a success)
    <prefix>/.callrec/<shard>/uploads/<token>       a large recording while it is assembled

How a recording is uploaded: one that fits in a part (``PART_SIZE``) is held in memory and written with one
create-only ``PUT`` (``If-None-Match: *``; ``overwrite=True``: a plain PUT). A larger one streams as a multipart
upload to a staging object under ``.callrec/<shard>/uploads/``, ``UPLOAD_CONCURRENCY`` parts in flight, then is
copied to its name with a create-only copy and the staging object is deleted. obstore's create-only ``put`` never
uses multipart, and its multipart writer cannot send ``If-None-Match`` on ``CompleteMultipartUpload``; its
create-only copy can (S3: ``copy_if_not_exists="multipart"``, an ``UploadPartCopy`` completed with
``If-None-Match: *``, server-side; GCS and Azure: their own preconditions). So a recording appears only complete,
is never written over without ``overwrite``, and a failed or cancelled transfer aborts its multipart upload.

A run holds a lease (a create-only ``PUT`` of ``lease.json``, renewed with ``If-Match`` every third of its
``LEASE_SECONDS``, deleted at the end); a lease past its expiry is taken over with ``If-Match`` on its ETag, so
a crashed run blocks its prefix for at most ``LEASE_SECONDS``. Every call here blocks: the drivers run them on
worker threads (the sink's, ``to_thread``), sync and async alike.
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import attrs
import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError

from .._audio import EXTENSIONS, SNIFF_BYTES, extension_for, sniff_extension
from .._bulk import BulkItem, entry_result, manifest_entry, merge_entries
from .._download import DownloadResult
from .._errors import DownloadError, ExportLockedError
from .._redact import redact_text
from .._sink import FileSink
from . import (
    OBJECT_SCHEMES,
    STATE_DIR,
    Export,
    ExportRun,
    Shard,
    Target,
    VerifyProblem,
    VerifyReport,
    item_stem,
    shard_tag,
)

__all__ = ["LEASE_SECONDS", "PART_SIZE", "Bucket", "ObjectTarget", "ObjectUpload", "open_export", "plan"]

log = logging.getLogger("callrec")

#: A recording up to this size goes in one PUT (held in memory); a larger one as a multipart upload of such parts.
PART_SIZE = 8 << 20
#: Parts of one multipart upload in flight at once (memory: about (1 + this) x PART_SIZE per large recording).
#: A 512 MiB recording into moto peaked at 69.5 MiB RSS with 1 (40 MiB/s), 76-78 MiB with 2 (45 MiB/s): 1 keeps
#: the 80 MiB bound with room; a bulk run's concurrency is what keeps the store busy.
UPLOAD_CONCURRENCY = 1
#: How long a run's lease holds without renewal: the longest a crashed run keeps its prefix and shard locked.
LEASE_SECONDS = 600.0
#: Manifest objects read at once when a run begins (each is a few hundred bytes).
_READ_CONCURRENCY = 16
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

    def begin(self, provider: str, shard: Shard) -> BucketRun:
        return BucketRun(self, provider, shard)

    def verify(self) -> VerifyReport:
        with object_errors("read"):
            listing, entries = _read_state(self)
            problems: list[VerifyProblem] = []
            for (rid, leg), entry in sorted(entries.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
                problems.extend(self._check(rid, leg, entry, listing))
        return VerifyReport(destination=self.base, checked=len(entries), problems=tuple(problems))

    def _check(self, rid: str, leg: str | None, entry: dict[str, Any], listing: dict[str, int]) -> list[VerifyProblem]:
        key = str(entry["path"])
        where, size = self.url_of(key), listing.get(key)
        if size is None:
            return [VerifyProblem(rid, leg, where, "missing", str(entry["bytes"]), None)]
        if size != entry["bytes"]:
            return [VerifyProblem(rid, leg, where, "size", str(entry["bytes"]), str(size))]
        digest = hashlib.sha256()
        for chunk in obstore.get(self.store, key).stream(min_chunk_size=_HASH_CHUNK):
            digest.update(memoryview(chunk))
        expected = str(entry.get("sha256"))
        if digest.hexdigest() != expected:
            return [VerifyProblem(rid, leg, where, "sha256", expected, digest.hexdigest())]
        return []


def _split(url: str) -> tuple[str, str, str, str | None]:
    """(scheme, container, prefix, object name or None) of an object-store URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if f"{scheme}://" not in OBJECT_SCHEMES:
        raise ValueError(f"not an object-store URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(
            "an object-store destination takes no query or fragment (credentials come from the environment)"
        )
    if not parts.netloc:
        raise ValueError(f"the object-store URL names no bucket or container: {url!r}")
    path = parts.path.lstrip("/")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError(f"the object-store URL must not hold '.' or '..' segments: {url!r}")
    if not path or path.endswith("/"):
        return scheme, parts.netloc, path.rstrip("/"), None
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

    url = f"{scheme}://{container}/{prefix}".rstrip("/")
    if scheme in ("s3", "s3a"):
        config, options = s3_options()
        return from_url(url, config=cast(Any, config), client_options=cast(Any, options or None))
    return from_url(url)


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
    return ObjectTarget(bucket, item_stem(provider, recording_id, leg), name, f"{STATE_DIR}/uploads", None)


def open_export(dest: object) -> Bucket:
    """A bulk run's destination: every URL is a prefix (``s3://bucket/exports`` and ``.../exports/`` alike)."""
    if isinstance(dest, str):
        scheme, container, prefix, name = _split(dest)
        prefix = "/".join(p for p in (prefix, name) if p)
        return Bucket(store_from_url(scheme, container, prefix), f"{scheme}://{container}/{prefix}".rstrip("/"))
    return _resolve(dest)[0]


@contextlib.contextmanager
def object_errors(doing: str = "write") -> Iterator[None]:
    """The store's failures as ``DownloadError`` (the obstore error as ``__cause__``); ``FileExistsError`` stays."""
    try:
        yield
    except (FileExistsError, ExportLockedError):
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

    def __init__(self, store: Any, staging_dir: str, part_size: int = PART_SIZE) -> None:
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
            attributes={"Content-Type": _MIME.get(kind, "application/octet-stream")},
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

    def commit(self, key: str, *, overwrite: bool, content_type: str | None) -> None:
        """Make the bytes the object ``key``: create-only unless ``overwrite`` (``AlreadyExistsError``)."""
        mode: Literal["create", "overwrite"] = "overwrite" if overwrite else "create"
        if self._writer is None:
            attributes = {"Content-Type": content_type} if content_type else None
            body, self._buf = self._buf, bytearray()
            obstore.put(self._store, key, body, mode=mode, attributes=attributes, use_multipart=False)
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()  # completes the staging object
        except BaseException:
            with contextlib.suppress(Exception):
                writer.__exit__(_Aborted, _Aborted("completing the upload failed"), None)
            raise
        assert self.staging is not None
        try:
            obstore.copy(self._store, self.staging, key, overwrite=overwrite)
        finally:
            with contextlib.suppress(Exception):
                obstore.delete(self._store, self.staging)


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
    """One recording's object: a name chosen in the store's prefix, or a fixed key."""

    bucket: Bucket
    stem: str
    fixed: str | None
    staging: str
    listing: dict[str, int] | None  # a bulk run's listing of the prefix; None: ask the store

    def key(self, content_type: str | None, head: bytes) -> str:
        return self.fixed if self.fixed is not None else f"{self.stem}.{extension_for(content_type, head)}"

    def _candidates(self) -> list[str]:
        if self.fixed is not None:
            return [self.fixed]
        return [f"{self.stem}.{ext}" for ext in (*sorted(EXTENSIONS), "bin")]

    def _existing(self) -> list[str]:
        candidates = self._candidates()
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
        return ObjectSink(ObjectUpload(self.bucket.store, self.staging))

    def commit(self, sink: FileSink, content_type: str | None, head: bytes, *, overwrite: bool) -> DownloadResult:
        assert isinstance(sink, ObjectSink)
        key = self.key(content_type, head)
        size, sha256 = sink.finish()
        try:
            sink.upload.commit(key, overwrite=overwrite, content_type=content_type)
        except AlreadyExistsError:
            raise FileExistsError(f"{self.bucket.url_of(key)} exists (pass overwrite=True to replace it)") from None
        if overwrite:
            for other in self._existing():  # the same recording under another extension
                if other != key:
                    obstore.delete(self.bucket.store, other)
        location = self.bucket.url_of(key)
        return DownloadResult(
            path=None, location=location, bytes=size, content_type=content_type, sha256=sha256, url_refreshes=0
        )

    def withdraw(self, result: DownloadResult) -> None:
        with contextlib.suppress(Exception):
            obstore.delete(self.bucket.store, self.bucket.key_of(result.location))

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return object_errors()


# -- bulk runs: the manifest and the lease -------------------------------------


def shard_dir(shard: Shard) -> str:
    return f"{STATE_DIR}/{shard_tag(shard) or 'all'}"


def _read_state(bucket: Bucket) -> tuple[dict[str, int], dict[tuple[str, str | None], dict[str, Any]]]:
    """(every object under the prefix with its size, the merged manifest of every shard)."""
    listing: dict[str, int] = {}
    for batch in obstore.list(bucket.store, chunk_size=1000):
        for meta in batch:
            listing[meta["path"]] = int(meta["size"])
    keys = [k for k in listing if k.startswith(f"{STATE_DIR}/") and "/items/" in k and k.endswith(".json")]

    def read(key: str) -> str:
        return bytes(obstore.get(bucket.store, key).bytes()).decode("utf-8", "replace")

    with ThreadPoolExecutor(_READ_CONCURRENCY, thread_name_prefix="callrec-manifest") as pool:
        bodies = list(pool.map(read, sorted(keys)))
    return listing, merge_entries(bodies)


class Lease:
    """One run's hold on a prefix and shard: ``lease.json``, taken create-only, renewed and released by ETag."""

    def __init__(self, bucket: Bucket, key: str, e_tag: str, ttl: float) -> None:
        self.bucket, self.key, self.ttl = bucket, key, ttl
        self._e_tag = e_tag
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="callrec-lease", daemon=True)
        self._thread.start()

    @staticmethod
    def _body(ttl: float) -> bytes:
        holder = {
            "owner": f"{socket.gethostname()}:{os.getpid()}",
            "expires": time.time() + ttl,
            "expires_at": datetime.fromtimestamp(time.time() + ttl, UTC).isoformat(timespec="seconds"),
        }
        return json.dumps(holder).encode()

    @classmethod
    def take(cls, bucket: Bucket, key: str, ttl: float | None = None) -> Lease:
        """The lease, or ``ExportLockedError`` when another run holds it (and it has not expired)."""
        ttl = LEASE_SECONDS if ttl is None else ttl
        where = bucket.url_of(key)
        try:
            put = obstore.put(bucket.store, key, cls._body(ttl), mode="create")
        except AlreadyExistsError:
            try:
                got = obstore.get(bucket.store, key)
            except FileNotFoundError:  # released meanwhile: try once more
                put = obstore.put(bucket.store, key, cls._body(ttl), mode="create")
                return cls(bucket, key, str(put["e_tag"]), ttl)
            meta, raw = got.meta, bytes(got.bytes())
            expires, owner = _lease_expiry(raw, meta, ttl)
            if expires > time.time():
                until = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
                raise ExportLockedError(
                    f"another download_many run ({owner}) holds the lease {where} until {until}; wait for it to "
                    "finish (or, if it crashed, for the lease to expire), or use another prefix or shard"
                ) from None
            try:
                put = obstore.put(bucket.store, key, cls._body(ttl), mode={"e_tag": meta["e_tag"]})
            except PreconditionError:
                raise ExportLockedError(f"another run took over the expired lease {where} first") from None
            log.info("callrec: took over the expired lease %s (held by %s)", where, owner)
        return cls(bucket, key, str(put["e_tag"]), ttl)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                put = obstore.put(self.bucket.store, self.key, self._body(self.ttl), mode={"e_tag": self._e_tag})
            except PreconditionError:
                self._lost = True
                log.warning("callrec: lost the lease %s: another run took it over", self.bucket.url_of(self.key))
                return
            except Exception as exc:  # the store is unreachable for now: the next tick tries again
                log.warning(
                    "callrec: could not renew the lease %s (%s)", self.bucket.url_of(self.key), type(exc).__name__
                )
                continue
            self._e_tag = str(put["e_tag"])

    def check(self) -> None:
        if self._lost:
            raise ExportLockedError(f"this run lost its lease {self.bucket.url_of(self.key)} to another run")

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours. Never raises."""
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            if not self._lost and obstore.head(self.bucket.store, self.key)["e_tag"] == self._e_tag:
                obstore.delete(self.bucket.store, self.key)


def _lease_expiry(raw: bytes, meta: Any, ttl: float) -> tuple[float, str]:
    """(expiry as a Unix time, holder) of a lease object; unreadable: its last change plus ``ttl``."""
    try:
        data = json.loads(raw)
        return float(data["expires"]), str(data.get("owner", "unknown"))
    except (ValueError, KeyError, TypeError):
        return meta["last_modified"].timestamp() + ttl, "unknown"


class BucketRun(ExportRun):
    """A bulk run into a bucket prefix: its shard's lease, the listing and every shard's manifest."""

    def __init__(self, bucket: Bucket, provider: str, shard: Shard) -> None:
        self.bucket, self.provider = bucket, provider
        self.dir = shard_dir(shard)
        with object_errors("use"):
            self.lease = Lease.take(bucket, f"{self.dir}/lease.json")
            try:
                self.listing, self._done = _read_state(bucket)
                for key in [k for k in self.listing if k.startswith(f"{self.dir}/uploads/")]:
                    obstore.delete(bucket.store, key)  # left by a run of this shard that crashed mid-commit
            except BaseException:
                self.lease.release()
                raise
        self._lock = threading.Lock()

    def target(self, provider: str, recording_id: str, leg: str | None) -> ObjectTarget:
        stem = item_stem(provider, recording_id, leg)
        return ObjectTarget(self.bucket, stem, None, f"{self.dir}/uploads", self.listing)

    def completed(self, recording_id: str, leg: str | None) -> DownloadResult | None:
        entry = self._done.get((recording_id, leg))
        if entry is None or self.listing.get(str(entry["path"])) != entry["bytes"]:
            return None
        return entry_result(entry, path=None, location=self.bucket.url_of(str(entry["path"])))

    def record(self, item: BulkItem) -> None:
        self.lease.check()
        relative = None if item.result is None else self.bucket.key_of(item.result.location)
        entry = manifest_entry(item, relative)
        folder = "items" if item.status != "failed" else "failed"
        key = f"{self.dir}/{folder}/{item_stem(self.provider, item.recording_id, item.leg)}.json"
        with object_errors("write the manifest to"):
            obstore.put(self.bucket.store, key, json.dumps(entry, ensure_ascii=False).encode())
        if item.status != "failed":
            with self._lock:
                self._done[(item.recording_id, item.leg)] = entry

    def close(self) -> None:
        self.lease.release()
