"""A real forward proxy on loopback for tests: absolute-form requests are forwarded, CONNECT is tunnelled."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class ForwardProxy:
    """Forwards each request it receives (one per connection) and records the request lines it saw."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            line, _, rest = head.partition(b"\r\n")
            self.lines.append(line.decode())
            method, target, version = line.decode().split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                leftover = rest.partition(b"\r\n\r\n")[2]
            else:
                parts = urlsplit(target)
                upstream = socket.create_connection((parts.hostname or "", parts.port or 80))
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                kept = [h for h in rest.split(b"\r\n\r\n")[0].split(b"\r\n") if h]
                kept = [h for h in kept if not h.lower().startswith((b"connection:", b"proxy-"))]
                request = f"{method} {path} {version}\r\n".encode() + b"".join(h + b"\r\n" for h in kept)
                upstream.sendall(request + b"Connection: close\r\n\r\n")  # one request per connection
                leftover = b""
            with upstream:
                if leftover:
                    upstream.sendall(leftover)
                pump = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                pump.start()
                _pipe(conn, upstream)
                pump.join()

    def close(self) -> None:
        self.sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 20):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
