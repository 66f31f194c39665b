"""A fast loopback storage (and minimal Feather API) for the download benchmarks: bodies go out with sendfile.

callrec.testing's storage writes bodies from Python in 64 KiB pieces and tops out near 90 MiB/s, so a client
that is faster than that cannot be measured against it. Here the kernel sends the file (`loop.sendfile`), so
curl and the SDK are limited by their own side.

- `GET /api/v1/agent-calls/{id}/recording-url` answers `{"url": ".../files/{id}.wav?Signature=bench", ...}`.
- `GET /files/{name}` sends `ROOT/{name}` (Content-Length, ETag; `Range: bytes=N-` gives a 206).

Usage: `python -m benchmarks._file_server ROOT` prints FEATHER_BASE_URL=..., FEATHER_API_KEY=...,
CALLREC_FAKE_STORAGE_ORIGIN=... and CALLREC_FAKE_READY=1, then serves until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
from email.utils import formatdate
from pathlib import Path

_API = re.compile(r"^/api/v1/agent-calls/([A-Za-z0-9_.-]+)/recording-url$")
_FILE = re.compile(r"^/files/([A-Za-z0-9_.-]+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")
_API_KEY = "bench-key"  # a loopback benchmark server's fixed key, not a secret


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _small(status: str, body: bytes, content_type: str) -> bytes:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Date": formatdate(usegmt=True)}
    return _head(status, headers) + body


class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage_origin = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                path = target.split("?", 1)[0]
                if method != "GET":
                    writer.write(_small("405 Method Not Allowed", b"", "text/plain"))
                elif match := _API.match(path):
                    body = json.dumps(
                        {
                            "url": f"{self.storage_origin}/files/{match.group(1)}.wav?Signature=bench",
                            "expiresAt": "2099-01-01T00:00:00Z",
                        }
                    ).encode()
                    if headers.get("x-api-key") == _API_KEY:
                        writer.write(_small("200 OK", body, "application/json"))
                    else:
                        writer.write(_small("401 Unauthorized", b"{}", "application/json"))
                elif match := _FILE.match(path):
                    await self._send_file(writer, match.group(1), headers.get("range"))
                else:
                    writer.write(_small("404 Not Found", b"", "text/plain"))
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _send_file(self, writer: asyncio.StreamWriter, name: str, range_header: str | None) -> None:
        try:
            file = (self.root / name).open("rb")
        except FileNotFoundError:
            writer.write(_small("404 Not Found", b"", "text/plain"))
            return
        with file:
            stat = os.fstat(file.fileno())
            size, start = stat.st_size, 0
            headers = {
                "Content-Type": "audio/wav",
                "ETag": f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}"',
                "Accept-Ranges": "bytes",
            }
            status = "200 OK"
            match = _RANGE.match(range_header or "")
            if match and int(match.group(1)) < size:
                start, status = int(match.group(1)), "206 Partial Content"
                headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
            headers["Content-Length"] = str(size - start)
            writer.write(_head(status, headers))
            await asyncio.get_running_loop().sendfile(writer.transport, file, start, size - start)


async def _main(root: Path) -> None:
    app = _Server(root)
    server = await asyncio.start_server(app.serve, "127.0.0.1", 0, limit=64 * 1024)
    port = server.sockets[0].getsockname()[1]
    app.storage_origin = f"http://127.0.0.1:{port}"
    print(f"FEATHER_BASE_URL=http://127.0.0.1:{port}", flush=True)
    print(f"FEATHER_API_KEY={_API_KEY}", flush=True)
    print(f"CALLREC_FAKE_STORAGE_ORIGIN={app.storage_origin}", flush=True)
    print("CALLREC_FAKE_READY=1", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._file_server", description=__doc__)
    parser.add_argument("root", type=Path, help="folder whose files are served under /files/")
    asyncio.run(_main(parser.parse_args(argv).root))


if __name__ == "__main__":
    main()
