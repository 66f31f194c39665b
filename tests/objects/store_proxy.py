"""A reverse proxy on loopback in front of an object store (moto's S3, Azurite): it records and can fail requests.

Real parts on both sides (obstore talks HTTP to it, it talks HTTP to the store); what it adds is a log of what the
SDK sent (method, key, query) and faults a real store produces: an error status for one kind of request, before or
after the store applied it, or a slow answer.
"""

from __future__ import annotations

import html
import http.client
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
#: Error codes for the injected answers: S3 reads <Code>, Azure the x-ms-error-code header (and <Code> too).
_CODES = {403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict", 412: "PreconditionFailed", 503: "ServerBusy"}


@attrs.frozen
class StoreRequest:
    """One request as the store would read it: ``bucket`` is the bucket (S3) or the container (Azure)."""

    method: str
    bucket: str
    key: str
    query: dict[str, list[str]]
    account: str = ""  # Azurite's path style names the account first; S3 path style has none

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "DELETE")


S3Request = StoreRequest
Rule = Callable[[StoreRequest], bool]


@attrs.frozen
class _Fault:
    rule: Rule
    once: bool
    status: int = 0  # 0: answer with the store's own response
    apply: bool = False  # forward first, then replace the answer with ``status``
    delay: float = 0.0


class StoreProxy:
    """``url`` forwards to ``upstream``; ``requests`` is what it saw; ``fail``/``delay`` act on matching requests.

    ``prefix_segments`` is how many leading path segments come before the key: 1 for S3 path style
    (``/bucket/key``), 2 for Azurite (``/devstoreaccount1/container/blob``); the last of them is ``bucket``.
    """

    def __init__(self, upstream: str, *, prefix_segments: int = 1) -> None:
        self.upstream = urlsplit(upstream)
        self.prefix_segments = prefix_segments
        self.requests: list[StoreRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, rule: Rule, status: int = 403, *, once: bool = True, apply: bool = False) -> None:
        """Answer matches with ``status``; with ``apply`` the store applies the request first (its answer is lost)."""
        with self._lock:
            self._faults.append(_Fault(rule, once, status=status, apply=apply))

    def delay(self, rule: Rule, seconds: float, *, once: bool = True) -> None:
        """Hold matches for ``seconds`` before forwarding them: a slow store, or a window for a race."""
        with self._lock:
            self._faults.append(_Fault(rule, once, delay=seconds))

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def writes(self) -> list[StoreRequest]:
        return [r for r in self.requests if r.is_write]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def parse(self, method: str, target: str) -> StoreRequest:
        """The request a path (with its query) names."""
        parts = urlsplit(target)
        segments = unquote(parts.path).lstrip("/").split("/", self.prefix_segments)
        segments += [""] * (self.prefix_segments + 1 - len(segments))
        prefix, key = segments[: self.prefix_segments], segments[self.prefix_segments]
        query = parse_qs(parts.query, keep_blank_values=True)
        return StoreRequest(method, prefix[-1], key, query, "/".join(prefix[:-1]))

    def _seen(self, request: StoreRequest, body: bytes) -> list[StoreRequest]:
        """What the request does to objects: a bulk delete names its keys in the body."""
        if request.method != "POST":
            return [request]
        if "delete" in request.query:  # S3 DeleteObjects
            keys = re.findall(rb"<Key>(.*?)</Key>", body)
            deletes = [attrs.evolve(request, method="DELETE", key=html.unescape(k.decode()), query={}) for k in keys]
            return deletes or [request]
        if request.query.get("comp") == ["batch"]:  # Azure Blob Batch: one HTTP request per sub-request
            targets = re.findall(rb"^DELETE (\S+) HTTP/1\.1\r?$", body, re.MULTILINE)
            return [self.parse("DELETE", t.decode()) for t in targets] or [request]
        return [request]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = self.parse(handler.command, handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.extend(self._seen(request, body))
            fault = next((f for f in self._faults if f.rule(request)), None)
            if fault is not None and fault.once:
                self._faults.remove(fault)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status and not fault.apply:
            self._inject(handler, fault.status)
            return
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):  # the store dropped it (e.g. its container went): so do we
            handler.close_connection = True
            return
        finally:
            upstream.close()
        if fault is not None and fault.status:  # applied upstream; the client never learns how it went
            self._inject(handler, fault.status)
            return
        handler.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP and name.lower() != "content-length":
                handler.send_header(name, value)
        # A HEAD answer's length is the object's size (obstore's head() reads it), not that of the empty body.
        size = response.getheader("content-length") if handler.command == "HEAD" else None
        handler.send_header("content-length", size or str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    @staticmethod
    def _inject(handler: BaseHTTPRequestHandler, status: int) -> None:
        code = _CODES.get(status, "InternalError" if status >= 500 else "InjectedFault")
        payload = f"<Error><Code>{code}</Code><Message>injected by the test</Message></Error>".encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/xml")
        handler.send_header("x-ms-error-code", code)
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)


S3Proxy = StoreProxy
