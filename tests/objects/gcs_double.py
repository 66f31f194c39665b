"""A Google Cloud Storage double on loopback, for the XML API requests object_store's GCS client sends.

No emulator on PyPI or npm speaks the XML API that object_store uses (``/bucket/key``, ``?uploads``, list-type=2),
so this one follows Google's XML API reference for exactly those requests: upload (``PUT``, with
``x-goog-if-generation-match``), download and metadata (``GET``/``HEAD``, ``Range``, ``?generation``, ``If-*``),
``DELETE``, list (``GET /bucket?list-type=2``), copy (``PUT`` with ``x-goog-copy-source``) and XML multipart uploads.
Status codes and headers are Google's: 200 for uploads and copies, 204 for deletes, 206 for ranges, 304, 404
(``NoSuchKey``/``NoSuchUpload``/``NoSuchBucket``), 412 (``PreconditionFailed``), XML ``<Error>`` bodies.

What a test gets besides a store: ``requests`` (what the client sent), ``fail(rule, status, apply=...)`` (a fault, or
the request applied and then answered with an error: the "written but answered 500" case), ``clock_offset`` (the
store's clock, used for Last-Modified, skewed against the test's) and ``unfinished_uploads(bucket)``.

Assumptions where Google's reference is silent: generations are a per-double counter (microsecond-clock seeded, as
Google's look), there is no object versioning (a replaced generation is gone), and an XML multipart object's ETag is
S3's ``"md5-of-part-md5s-N"`` (Google documents that it is not the object's MD5).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import attrs
import pytest

MIN_PART = 5 * 1024 * 1024  # every XML multipart part but the last (Google: 5 MiB to 5 GiB)
MAX_KEYS = 1000  # list page size: Google's default and ceiling
_XMLNS = "http://doc.s3.amazonaws.com/2006-03-01"  # the namespace Google's XML list answers carry

# Request headers kept in the log: preconditions, copy and metadata directives, ranges, user metadata (x-goog-meta-*)
_RECORDED = {
    "authorization",
    "content-type",
    "content-length",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
}

_CODES = {
    400: ("InvalidArgument", "Invalid argument."),
    401: ("AuthenticationRequired", "Authentication required."),
    403: ("AccessDenied", "Access denied."),
    404: ("NoSuchKey", "The specified key does not exist."),
    409: ("Conflict", "A conflicting operation is in progress."),
    412: ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold."),
    416: ("InvalidRange", "The requested range cannot be satisfied."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    501: ("NotImplemented", "A header or query you provided requested a function that is not implemented."),
    503: ("ServiceUnavailable", "Service unavailable. Please try again."),
}


@attrs.frozen
class GCSRequest:
    """One request as the double saw it: ``key`` is decoded, ``headers`` the selected ones (lower-case names)."""

    method: str
    bucket: str
    key: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "DELETE")

    @property
    def operation(self) -> str:
        """A name for the XML API call: put, copy, get, head, delete, list, initiate, part, complete, abort."""
        q = self.query
        if self.method == "GET" and not self.key:
            return "list-uploads" if "uploads" in q else "list"
        if self.method == "POST":
            return "initiate" if "uploads" in q else "complete" if "uploadId" in q else "post"
        if self.method == "PUT":
            if "uploadId" in q:
                return "part"
            return "copy" if "x-goog-copy-source" in self.headers else "put"
        if self.method == "DELETE":
            return "abort" if "uploadId" in q else "delete"
        return self.method.lower()


Rule = Callable[[GCSRequest], bool]


@attrs.define
class GCSObject:
    data: bytes
    generation: int
    metageneration: int
    etag: str  # quoted, as the ETag header carries it
    updated: float  # epoch seconds on the store's clock, whole seconds (Last-Modified's resolution)
    content_type: str
    metadata: dict[str, str]  # user metadata, without the x-goog-meta- prefix
    headers: dict[str, str]  # stored Cache-Control, Content-Disposition, Content-Encoding, Content-Language
    md5: bytes | None  # None for a multipart (composite) object: Google keeps no MD5 for those


@attrs.define
class Upload:
    key: str
    upload_id: str
    initiated: float
    content_type: str
    metadata: dict[str, str]
    headers: dict[str, str]
    generation_match: str | None
    parts: dict[int, tuple[bytes, str]] = attrs.field(factory=dict)  # number -> (data, quoted etag)


class _Answer(Exception):
    """An XML API error answer."""

    def __init__(self, status: int, code: str | None = None, details: str = "") -> None:
        super().__init__(status, code, details)
        self.status = status
        self.code = code or _CODES.get(status, ("Error", ""))[0]
        self.details = details


@attrs.define
class _Response:
    status: int
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    length: int | None = None  # Content-Length when it differs from the body (HEAD)


def _error_body(status: int, code: str, details: str) -> bytes:
    message = _CODES.get(status, (code, "Error."))[1]
    text = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
    )
    if details:
        text += f"<Details>{escape(details)}</Details>"
    return (text + "</Error>").encode()


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()  # Google's ETag and x-goog-hash md5, not security


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def _parse_http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    bare = etag.strip('"')
    return any(t == "*" or t.removeprefix("W/").strip('"') == bare for t in tags)


class GCSDouble:
    """``url`` is the XML API endpoint (``gcs_base_url``); buckets live in memory until ``delete_bucket``."""

    def __init__(self) -> None:
        self.requests: list[GCSRequest] = []
        self.clock_offset: float = 0.0
        self._buckets: dict[str, dict[str, GCSObject]] = {}
        self._uploads: dict[str, dict[str, Upload]] = {}
        self._faults: list[tuple[Rule, int, bool, bool]] = []
        self._generation = 0
        self._lock = threading.RLock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _any(self) -> None:
                double._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- the test's side ------------------------------------------------------------------------------------------

    def now(self) -> float:
        """The store's clock: the machine's plus ``clock_offset`` seconds."""
        return time.time() + self.clock_offset

    def fail(self, rule: Rule, status: int = 503, *, once: bool = True, apply: bool = False) -> None:
        """Answer requests matching ``rule`` with ``status``; ``apply=True`` performs them first (written, then 5xx)."""
        with self._lock:
            self._faults.append((rule, status, once, apply))

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.clock_offset = 0.0

    def writes(self) -> list[GCSRequest]:
        return [r for r in self.requests if r.is_write]

    def create_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.setdefault(name, {})
            self._uploads.setdefault(name, {})

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.pop(name, None)
            self._uploads.pop(name, None)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        with self._lock:
            return {k: len(o.data) for k, o in sorted(self._buckets[bucket].items()) if k.startswith(prefix)}

    def object(self, bucket: str, key: str) -> GCSObject:
        """A copy of the stored object (KeyError when missing)."""
        with self._lock:
            return attrs.evolve(self._buckets[bucket][key])

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> GCSObject:
        with self._lock:
            md5 = _md5(data)
            obj = self._store(bucket, key, data, f'"{md5.hex()}"', md5, content_type, dict(metadata or {}), {})
            return attrs.evolve(obj)

    def delete_object(self, bucket: str, key: str) -> None:
        with self._lock:
            self._buckets[bucket].pop(key, None)

    def unfinished_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads initiated and neither completed nor aborted, oldest first."""
        with self._lock:
            return [u.key for u in sorted(self._uploads[bucket].values(), key=lambda u: u.initiated)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- state ----------------------------------------------------------------------------------------------------

    def _next_generation(self) -> int:
        self._generation = max(self._generation + 1, int(time.time() * 1_000_000))
        return self._generation

    def _store(
        self,
        bucket: str,
        key: str,
        data: bytes,
        etag: str,
        md5: bytes | None,
        content_type: str,
        metadata: dict[str, str],
        headers: dict[str, str],
    ) -> GCSObject:
        obj = GCSObject(
            data=data,
            generation=self._next_generation(),
            metageneration=1,
            etag=etag,
            updated=float(int(self.now())),
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            md5=md5,
        )
        self._buckets[bucket][key] = obj
        return obj

    # -- HTTP -----------------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(key)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        selected = {k: v for k, v in headers.items() if k in _RECORDED or k.startswith("x-goog-")}
        request = GCSRequest(handler.command, bucket, key, parse_qs(parts.query, keep_blank_values=True), selected)
        with self._lock:  # logged on arrival: an upload the client gives up on mid-body is still in the log
            self.requests.append(request)
            fault = next((f for f in self._faults if f[0](request)), None)
            if fault is not None and fault[2]:
                self._faults.remove(fault)
        try:
            body = self._read_body(handler, headers)
        except (ConnectionError, ValueError):
            handler.close_connection = True
            return
        if fault is not None and not fault[3]:
            response = self._error(fault[1], None, "injected by the test")
        else:
            try:
                with self._lock:
                    response = self._dispatch(request, headers, body)
            except _Answer as answer:
                response = self._error(answer.status, answer.code, answer.details)
            if fault is not None:  # applied, then answered with the fault's status
                response = self._error(fault[1], None, "injected by the test after applying the request")
        try:
            self._send(handler, request.method, response)
        except ConnectionError:  # the client went away (an aborted writer drops its in-flight parts)
            handler.close_connection = True

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(headers.get("content-length") or 0)
        return handler.rfile.read(length) if length else b""

    @staticmethod
    def _error(status: int, code: str | None, details: str) -> _Response:
        code = code or _CODES.get(status, ("Error", ""))[0]
        return _Response(status, {"content-type": "application/xml; charset=UTF-8"}, _error_body(status, code, details))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, method: str, response: _Response) -> None:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if response.status not in (204, 304):
            length = response.length if response.length is not None else len(response.body)
            handler.send_header("content-length", str(length))
        handler.send_header("x-guploader-uploadid", secrets.token_hex(8))
        handler.end_headers()
        if method != "HEAD" and response.status not in (204, 304):
            handler.wfile.write(response.body)

    def _dispatch(self, r: GCSRequest, headers: dict[str, str], body: bytes) -> _Response:
        if r.bucket not in self._buckets:
            raise _Answer(404, "NoSuchBucket", f"The specified bucket does not exist: {r.bucket}")
        if not r.key:
            if r.method == "GET" and "uploads" in r.query:
                return self._list_uploads(r)
            if r.method == "GET" and r.query.get("list-type") == ["2"]:
                return self._list(r)
            raise _Answer(501, details=f"{r.method} on a bucket with {sorted(r.query)}")
        match r.operation:
            case "put":
                return self._put(r, headers, body)
            case "copy":
                return self._copy(r, headers)
            case "get" | "head":
                return self._get(r, headers)
            case "delete":
                return self._delete(r, headers)
            case "initiate":
                return self._initiate(r, headers)
            case "part":
                return self._part(r, body)
            case "complete":
                return self._complete(r, body)
            case "abort":
                return self._abort(r)
        raise _Answer(501, details=f"{r.method} {sorted(r.query)}")

    # -- objects --------------------------------------------------------------------------------------------------

    @staticmethod
    def _object_headers(obj: GCSObject) -> dict[str, str]:
        h = {
            "etag": obj.etag,
            "last-modified": _http_date(obj.updated),
            "content-type": obj.content_type,
            "x-goog-generation": str(obj.generation),
            "x-goog-metageneration": str(obj.metageneration),
            "x-goog-stored-content-length": str(len(obj.data)),
            "x-goog-stored-content-encoding": obj.headers.get("content-encoding", "identity"),
            "x-goog-storage-class": "STANDARD",
        }
        if obj.md5 is not None:
            h["x-goog-hash"] = "md5=" + base64.b64encode(obj.md5).decode()
        h.update(obj.headers)
        h.update({f"x-goog-meta-{k}": v for k, v in obj.metadata.items()})
        return h

    @staticmethod
    def _write_preconditions(obj: GCSObject | None, headers: dict[str, str], prefix: str = "x-goog-if-") -> None:
        """x-goog-if-generation-match (0: must not exist) and x-goog-if-metageneration-match, else 412."""
        want = headers.get(f"{prefix}generation-match")
        if want is not None:
            current = obj.generation if obj is not None else 0
            if not want.strip().isdigit():
                raise _Answer(400, details=f"invalid {prefix}generation-match: {want!r}")
            if int(want) != current:
                raise _Answer(412)
        want = headers.get(f"{prefix}metageneration-match")
        if want is not None and (obj is None or not want.strip().isdigit() or int(want) != obj.metageneration):
            raise _Answer(412)

    @staticmethod
    def _attributes(headers: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
        content_type = headers.get("content-type") or "application/octet-stream"
        metadata = {k.removeprefix("x-goog-meta-"): v for k, v in headers.items() if k.startswith("x-goog-meta-")}
        stored = {
            k: v
            for k, v in headers.items()
            if k in ("cache-control", "content-disposition", "content-encoding", "content-language")
        }
        return content_type, metadata, stored

    def _put(self, r: GCSRequest, headers: dict[str, str], body: bytes) -> _Response:
        """Upload: 200, ETag + x-goog-generation; a failed x-goog-if-generation-match is 412 PreconditionFailed."""
        objects = self._buckets[r.bucket]
        self._write_preconditions(objects.get(r.key), headers)
        md5 = _md5(body)
        content_type, metadata, stored = self._attributes(headers)
        obj = self._store(r.bucket, r.key, body, f'"{md5.hex()}"', md5, content_type, metadata, stored)
        h = {k: v for k, v in self._object_headers(obj).items() if k.startswith("x-goog-") or k == "etag"}
        h = {k: v for k, v in h.items() if not k.startswith("x-goog-meta-") and k != "x-goog-storage-class"}
        return _Response(200, h)

    def _copy(self, r: GCSRequest, headers: dict[str, str]) -> _Response:
        """x-goog-copy-source: bucket/object; COPY keeps the source's metadata, REPLACE takes the request's."""
        source_bucket, _, source_key = unquote(headers["x-goog-copy-source"]).lstrip("/").partition("/")
        source_key, _, generation = source_key.partition("#")  # bucket/object#generation names one generation
        if source_bucket not in self._buckets:
            raise _Answer(404, "NoSuchBucket", f"The specified bucket does not exist: {source_bucket}")
        source = self._buckets[source_bucket].get(source_key)
        if source is None or (generation and generation != str(source.generation)):
            raise _Answer(404, "NoSuchKey", f"No such object: {source_bucket}/{source_key}")
        self._write_preconditions(source, headers, "x-goog-copy-source-if-")
        self._write_preconditions(self._buckets[r.bucket].get(r.key), headers)
        directive = headers.get("x-goog-metadata-directive", "COPY").upper()
        if directive == "REPLACE":
            content_type, metadata, stored = self._attributes(headers)
        elif directive == "COPY":
            content_type, metadata, stored = source.content_type, dict(source.metadata), dict(source.headers)
        else:
            raise _Answer(400, details=f"invalid x-goog-metadata-directive: {directive}")
        obj = self._store(r.bucket, r.key, source.data, source.etag, source.md5, content_type, metadata, stored)
        result = (
            f"<?xml version='1.0' encoding='UTF-8'?><CopyObjectResult><LastModified>{_iso(obj.updated)}</LastModified>"
            f"<ETag>{escape(obj.etag)}</ETag></CopyObjectResult>"
        )
        h = {
            "content-type": "application/xml; charset=UTF-8",
            "x-goog-generation": str(obj.generation),
            "x-goog-metageneration": str(obj.metageneration),
        }
        return _Response(200, h, result.encode())

    def _get(self, r: GCSRequest, headers: dict[str, str]) -> _Response:
        """GET/HEAD: 200, or 206 with Content-Range; If-None-Match/If-Modified-Since 304; other failures 412."""
        obj = self._buckets[r.bucket].get(r.key)
        generation = r.query.get("generation", [None])[0]
        if obj is None or (generation is not None and generation != str(obj.generation)):
            raise _Answer(404, "NoSuchKey", f"No such object: {r.bucket}/{r.key}")
        self._write_preconditions(obj, headers)
        h = self._object_headers(obj)
        if "if-match" in headers:
            if not _etag_matches(headers["if-match"], obj.etag):
                raise _Answer(412)
        elif "if-unmodified-since" in headers:
            since = _parse_http_date(headers["if-unmodified-since"])
            if since is not None and obj.updated > since:
                raise _Answer(412)
        not_modified = False
        if "if-none-match" in headers:
            not_modified = _etag_matches(headers["if-none-match"], obj.etag)
        elif "if-modified-since" in headers:
            since = _parse_http_date(headers["if-modified-since"])
            not_modified = since is not None and obj.updated <= since
        if not_modified:
            return _Response(304, {k: v for k, v in h.items() if k in ("etag", "last-modified", "x-goog-generation")})
        size = len(obj.data)
        h["accept-ranges"] = "bytes"
        span = self._range(headers.get("range"), size)
        if span is None:
            return _Response(200, h, obj.data if r.method == "GET" else b"", size)
        start, end = span
        h["content-range"] = f"bytes {start}-{end}/{size}"
        data = obj.data[start : end + 1]
        return _Response(206, h, data if r.method == "GET" else b"", len(data))

    @staticmethod
    def _range(header: str | None, size: int) -> tuple[int, int] | None:
        """(first, last) byte of a single ``bytes=`` range; None for no range (or one Google ignores)."""
        if not header or not header.startswith("bytes=") or "," in header:
            return None
        first, _, last = header.removeprefix("bytes=").strip().partition("-")
        try:
            if not first:  # suffix: the last N bytes
                n = int(last)
                if n == 0:
                    raise _Answer(416)
                return max(size - n, 0), size - 1
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        except ValueError:
            return None
        if start >= size or end < start:
            raise _Answer(416)
        return start, end

    def _delete(self, r: GCSRequest, headers: dict[str, str]) -> _Response:
        """DELETE: 204 No Content; a missing object is 404 NoSuchKey (unlike S3, which answers 204)."""
        objects = self._buckets[r.bucket]
        obj = objects.get(r.key)
        generation = r.query.get("generation", [None])[0]
        if obj is None or (generation is not None and generation != str(obj.generation)):
            raise _Answer(404, "NoSuchKey", f"No such object: {r.bucket}/{r.key}")
        self._write_preconditions(obj, headers)
        del objects[r.key]
        return _Response(204)

    # -- list -----------------------------------------------------------------------------------------------------

    def _list(self, r: GCSRequest) -> _Response:
        """list-type=2: prefix, delimiter, start-after, continuation-token, max-keys (at most 1000)."""
        q = {k: v[0] for k, v in r.query.items()}
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        try:
            max_keys = min(int(q.get("max-keys", MAX_KEYS)), MAX_KEYS)
        except ValueError as e:
            raise _Answer(400, details="invalid max-keys") from e
        after, after_prefix = q.get("start-after", ""), False
        if "continuation-token" in q:
            try:
                token = base64.urlsafe_b64decode(q["continuation-token"].encode()).decode()
            except ValueError as e:
                raise _Answer(400, details="invalid continuation-token") from e
            after, after_prefix = token[2:], token.startswith("P:")
        contents: list[tuple[str, GCSObject]] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for key in sorted(self._buckets[r.bucket]):
            if not key.startswith(prefix) or key <= after or (after_prefix and key.startswith(after)):
                continue
            rest = key[len(prefix) :]
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)] if delimiter and delimiter in rest else ""
            if common and prefixes and prefixes[-1] == common:
                continue
            if len(contents) + len(prefixes) == max_keys:
                truncated = True
                break
            if common:
                prefixes.append(common)
                last = "P:" + common
            else:
                contents.append((key, self._buckets[r.bucket][key]))
                last = "K:" + key
        out = [f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='{_XMLNS}'>"]
        out.append(f"<Name>{escape(r.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>")
        out.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            out.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            out.append(
                f"<NextContinuationToken>{base64.urlsafe_b64encode(last.encode()).decode()}</NextContinuationToken>"
            )
        for key, obj in contents:
            out.append(
                f"<Contents><Key>{escape(key)}</Key><Generation>{obj.generation}</Generation>"
                f"<MetaGeneration>{obj.metageneration}</MetaGeneration><LastModified>{_iso(obj.updated)}</LastModified>"
                f"<ETag>{escape(obj.etag)}</ETag><Size>{len(obj.data)}</Size></Contents>"
            )
        out.extend(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        out.append("</ListBucketResult>")
        return _Response(200, {"content-type": "application/xml; charset=UTF-8"}, "".join(out).encode())

    # -- XML multipart uploads ------------------------------------------------------------------------------------

    def _upload(self, r: GCSRequest) -> Upload:
        upload = self._uploads[r.bucket].get(r.query["uploadId"][0])
        if upload is None or upload.key != r.key:
            raise _Answer(404, "NoSuchUpload", "The specified multipart upload does not exist.")
        return upload

    def _initiate(self, r: GCSRequest, headers: dict[str, str]) -> _Response:
        """POST ?uploads: metadata and preconditions are given here, the object appears at completion."""
        content_type, metadata, stored = self._attributes(headers)
        upload_id = secrets.token_urlsafe(24)
        upload = Upload(
            r.key,
            upload_id,
            time.monotonic(),
            content_type,
            metadata,
            stored,
            headers.get("x-goog-if-generation-match"),
        )
        self._uploads[r.bucket][upload_id] = upload
        text = (
            f"<?xml version='1.0' encoding='UTF-8'?><InitiateMultipartUploadResult xmlns='{_XMLNS}'>"
            f"<Bucket>{escape(r.bucket)}</Bucket><Key>{escape(r.key)}</Key><UploadId>{upload_id}</UploadId>"
            "</InitiateMultipartUploadResult>"
        )
        return _Response(200, {"content-type": "application/xml; charset=UTF-8"}, text.encode())

    def _part(self, r: GCSRequest, body: bytes) -> _Response:
        """PUT ?partNumber&uploadId: 200 with the part's ETag (its MD5); the same number again replaces the part."""
        upload = self._upload(r)
        try:
            number = int(r.query["partNumber"][0])
        except (KeyError, ValueError) as e:
            raise _Answer(400, details="invalid partNumber") from e
        if not 1 <= number <= 10_000:
            raise _Answer(400, details="partNumber must be 1 to 10000")
        md5 = _md5(body)
        etag = f'"{md5.hex()}"'
        upload.parts[number] = (body, etag)
        return _Response(200, {"etag": etag, "x-goog-hash": "md5=" + base64.b64encode(md5).decode()})

    def _complete(self, r: GCSRequest, body: bytes) -> _Response:
        """POST ?uploadId: parts in ascending order, ETags matching, all but the last at least 5 MiB."""
        upload = self._upload(r)
        try:
            root = ET.fromstring(body)  # noqa: S314 - the body comes from the client under test, on loopback
        except ET.ParseError as e:
            raise _Answer(400, "MalformedXML", "The XML you provided was not well-formed.") from e
        listed: list[tuple[int, str]] = []
        for part in root.iter():
            if part.tag.rsplit("}", 1)[-1] != "Part":
                continue
            fields = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in part}
            listed.append((int(fields.get("PartNumber", "0")), fields.get("ETag", "")))
        if not listed:
            raise _Answer(400, "MalformedXML", "The XML you provided was not well-formed.")
        numbers = [n for n, _ in listed]
        if numbers != sorted(set(numbers)):
            raise _Answer(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        chunks = []
        for i, (number, etag) in enumerate(listed):
            stored = upload.parts.get(number)
            if stored is None or stored[1].strip('"') != etag.strip('"'):
                raise _Answer(400, "InvalidPart", f"part {number} was not uploaded or its ETag does not match")
            if i < len(listed) - 1 and len(stored[0]) < MIN_PART:
                raise _Answer(400, "EntityTooSmall", f"part {number} is smaller than 5 MiB")
            chunks.append(stored[0])
        self._write_preconditions(
            self._buckets[r.bucket].get(r.key),
            {"x-goog-if-generation-match": upload.generation_match} if upload.generation_match is not None else {},
        )
        digest = _md5(b"".join(bytes.fromhex(upload.parts[n][1].strip('"')) for n in numbers)).hex()
        etag = f'"{digest}-{len(numbers)}"'
        obj = self._store(
            r.bucket, r.key, b"".join(chunks), etag, None, upload.content_type, upload.metadata, upload.headers
        )
        del self._uploads[r.bucket][upload.upload_id]
        text = (
            f"<?xml version='1.0' encoding='UTF-8'?><CompleteMultipartUploadResult xmlns='{_XMLNS}'>"
            f"<Location>{escape(self.url)}/{escape(r.bucket)}/{escape(r.key)}</Location>"
            f"<Bucket>{escape(r.bucket)}</Bucket><Key>{escape(r.key)}</Key><ETag>{escape(etag)}</ETag>"
            "</CompleteMultipartUploadResult>"
        )
        h = {
            "content-type": "application/xml; charset=UTF-8",
            "x-goog-generation": str(obj.generation),
            "x-goog-metageneration": str(obj.metageneration),
        }
        return _Response(200, h, text.encode())

    def _abort(self, r: GCSRequest) -> _Response:
        """DELETE ?uploadId: 204, the parts are dropped; an unknown upload is 404 NoSuchUpload."""
        upload = self._upload(r)
        del self._uploads[r.bucket][upload.upload_id]
        return _Response(204)

    def _list_uploads(self, r: GCSRequest) -> _Response:
        """GET ?uploads: the unfinished uploads (one page; object_store never asks, tests may)."""
        out = [f"<?xml version='1.0' encoding='UTF-8'?><ListMultipartUploadsResult xmlns='{_XMLNS}'>"]
        out.append(f"<Bucket>{escape(r.bucket)}</Bucket><IsTruncated>false</IsTruncated>")
        for u in sorted(self._uploads[r.bucket].values(), key=lambda u: (u.key, u.initiated)):
            out.append(f"<Upload><Key>{escape(u.key)}</Key><UploadId>{u.upload_id}</UploadId></Upload>")
        out.append("</ListMultipartUploadsResult>")
        return _Response(200, {"content-type": "application/xml; charset=UTF-8"}, "".join(out).encode())


# -- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[GCSDouble]:
    """The double (one per session; each ``gcs`` gets its own bucket). Its ``url`` is the endpoint."""
    double = GCSDouble()
    try:
        yield double
    finally:
        double.close()


@attrs.frozen
class GCS:
    """A fresh bucket on the double; ``env()`` points ``gs://`` URLs there through a service-account file."""

    bucket: str
    endpoint: str
    server: GCSDouble
    service_account: Path  # {"gcs_base_url": endpoint, "disable_oauth": true, ...}

    def url(self, prefix: str = "") -> str:
        return f"gs://{self.bucket}/{prefix}"

    def objects(self, prefix: str = "") -> dict[str, int]:
        return self.server.objects(self.bucket, prefix)

    def recordings(self, prefix: str = "") -> dict[str, int]:
        """Objects under ``prefix`` outside ``.callrec/``."""
        return {k: v for k, v in self.objects(prefix).items() if "/.callrec/" not in f"/{k}"}

    def get(self, key: str) -> bytes:
        return self.server.object(self.bucket, key).data

    def metadata(self, key: str) -> dict[str, str]:
        """User metadata (``x-goog-meta-*`` without the prefix)."""
        return dict(self.server.object(self.bucket, key).metadata)

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> GCSObject:
        return self.server.put_object(self.bucket, key, data, metadata=metadata)

    def delete(self, key: str) -> None:
        self.server.delete_object(self.bucket, key)

    def unfinished_uploads(self) -> list[str]:
        return self.server.unfinished_uploads(self.bucket)

    def env(self) -> dict[str, str]:
        # object_store reads gcs_base_url and disable_oauth only from a service account (file or key; private_key_id
        # is required, empty will do). obstore 0.12.1 sent plain http without GOOGLE_ALLOW_HTTP; it is set anyway.
        return {"GOOGLE_SERVICE_ACCOUNT": str(self.service_account), "GOOGLE_ALLOW_HTTP": "true"}


_GOOGLE_ENV = (
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "SERVICE_ACCOUNT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_BASE_URL",
    "GOOGLE_BEARER_TOKEN",
    "GOOGLE_SKIP_SIGNATURE",
    "GOOGLE_BUCKET",
    "GOOGLE_BUCKET_NAME",
)


@pytest.fixture
def gcs(
    gcs_endpoint: GCSDouble, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GCS]:
    bucket = f"callrec-{secrets.token_hex(4)}"
    gcs_endpoint.create_bucket(bucket)
    account = tmp_path_factory.mktemp("gcs-service-account") / "service-account.json"
    key: dict[str, Any] = {
        "gcs_base_url": gcs_endpoint.url,
        "disable_oauth": True,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    }
    account.write_text(json.dumps(key))
    store = GCS(bucket, gcs_endpoint.url, gcs_endpoint, account)
    for name in _GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    gcs_endpoint.clear()
    yield store
    gcs_endpoint.clear()
    gcs_endpoint.delete_bucket(bucket)
