"""A minimal keep-alive HTTP/1.1 server on asyncio Protocols: the fastest local baseline we can write.

Every request gets the same small JSON body (a Feather-shaped recording URL). Prints
CALLREC_FAKE_FEATHER_BASE_URL=... and CALLREC_FAKE_READY=1, then serves until terminated.
"""

from __future__ import annotations

import asyncio
import json
import signal

_BODY = json.dumps({"url": "http://127.0.0.2:9/rec.wav?Signature=x", "expiresAt": "2099-01-01T00:00:00Z"}).encode()
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY


class _Protocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.buffer = self.buffer[end + 4 :]  # the benchmarks send no request bodies
            self.transport.write(_RESPONSE)


async def _main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"FEATHER_BASE_URL=http://127.0.0.1:{port}", flush=True)
    print("CALLREC_FAKE_READY=1", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(_main())
