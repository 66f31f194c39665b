"""A reverse proxy on loopback in front of moto's S3 server: it records every request and can fail chosen ones.

Real parts on both sides (obstore talks HTTP to it, it talks HTTP to moto); what it adds is a log of what the SDK
sent (method, key, query) and faults a real store produces: an error status for one kind of request.
"""

from __future__ import annotations

import html
import http.client
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@attrs.frozen
class S3Request:
    method: str
    bucket: str
    key: str
    query: dict[str, list[str]]

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "DELETE")


Rule = Callable[[S3Request], bool]


class S3Proxy:
    """``url`` forwards to ``upstream``; ``requests`` is what it saw; ``fail(rule, status)`` answers matches."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.requests: list[S3Request] = []
        self._faults: list[tuple[Rule, int, bool]] = []
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

    def fail(self, rule: Rule, status: int = 403, *, once: bool = True) -> None:
        with self._lock:
            self._faults.append((rule, status, once))

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def writes(self) -> list[S3Request]:
        return [r for r in self.requests if r.is_write]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        request = S3Request(handler.command, bucket, key, parse_qs(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        seen = [request]
        if handler.command == "POST" and "delete" in request.query:  # DeleteObjects: the keys are in the body
            keys = re.findall(rb"<Key>(.*?)</Key>", body)
            seen = [S3Request("DELETE", bucket, html.unescape(k.decode()), {}) for k in keys] or seen
        with self._lock:
            self.requests.extend(seen)
            fault = next(((rule, status, once) for rule, status, once in self._faults if rule(request)), None)
            if fault is not None and fault[2]:
                self._faults.remove(fault)
        if fault is not None:
            payload = b"<Error><Code>AccessDenied</Code><Message>injected by the test</Message></Error>"
            handler.send_response(fault[1])
            handler.send_header("content-type", "application/xml")
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            handler.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP and name.lower() != "content-length":
                    handler.send_header(name, value)
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            upstream.close()
