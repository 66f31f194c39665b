"""`FakeServer`: the Feather API, the Siro API and their storage on loopback, with faults on demand."""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl

from . import _http, _storage
from . import faults as f
from ._apply import apply
from ._audio import wav_tone
from ._feather import FeatherApi
from ._recordings import VENDORS, Recording, Recordings, Vendor
from ._signing import SignedUrl, Signer
from ._siro import SiroApi
from ._spec import SpecValidator

OriginName = f.OriginName
_ORIGINS: tuple[OriginName, ...] = ("feather", "siro", "storage", "elsewhere")
_START_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request one of the fake origins received, recorded before any fault applied.

    Attributes:
        origin: "feather", "siro", "storage" or "elsewhere".
        method: The request method, e.g. "GET".
        path: The raw (percent-encoded) path.
        query: The raw query string, without "?".
        headers: The headers in arrival order, names as sent.
        body: The request body.
    """

    origin: OriginName
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return _http.first_header(self.headers, name)

    @property
    def params(self) -> dict[str, str]:
        """The query parameters (the last value wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))


class FakeOrigin:
    """One origin of a `FakeServer`, and the faults it applies.

    Usage: `fake.feather.queue(faults.Status(503))`, `fake.storage.always(faults.Latency(0.05))`.
    """

    def __init__(self, server: FakeServer, name: OriginName) -> None:
        self.name: OriginName = name
        self._server = server
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[f.Fault, ...]] = collections.deque()
        self._always: tuple[f.Fault, ...] = ()
        self._buckets: dict[f.RateLimit, tuple[float, float]] = {}  # fault -> (tokens, when)
        self._throttled = 0

    def __repr__(self) -> str:
        return f"<FakeOrigin {self.name}>"

    @property
    def url(self) -> str:
        """The base URL, e.g. "http://127.0.0.1:50123"."""
        return self._server._origin_url(self.name)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests this origin received, oldest first."""
        return self._server.requests_to(self.name)

    @property
    def pending(self) -> int:
        """How many queued fault entries are still waiting for a request."""
        return len(self._queue)

    def queue(self, *entries: f.Fault | tuple[f.Fault, ...]) -> None:
        """Apply each entry to one upcoming request, in order; then answer normally again.

        A tuple entry combines several faults on one request.
        """
        with self._lock:
            for entry in entries:
                self._queue.append(entry if isinstance(entry, tuple) else (entry,))

    def always(self, *faults: f.Fault) -> None:
        """Apply these faults to every request from now on (before any queued one)."""
        with self._lock:
            self._always = (*self._always, *faults)

    @property
    def throttled(self) -> int:
        """How many requests a `RateLimit` fault refused."""
        return self._throttled

    def clear(self) -> None:
        """Drop queued and standing faults (and the buckets of `RateLimit` faults)."""
        with self._lock:
            self._queue.clear()
            self._always = ()
            self._buckets.clear()
            self._throttled = 0

    def _throttle(self, faults: tuple[f.Fault, ...]) -> tuple[f.Fault, ...]:
        """The faults, with each `RateLimit` that has no token for this request turned into its answer."""
        if not any(isinstance(fault, f.RateLimit) for fault in faults):
            return faults
        out: list[f.Fault] = []
        now = time.monotonic()
        with self._lock:
            for fault in faults:
                if not isinstance(fault, f.RateLimit):
                    out.append(fault)
                    continue
                tokens, when = self._buckets.get(fault, (float(fault.burst), now))
                tokens = min(float(fault.burst), tokens + (now - when) * fault.per_second)
                if tokens >= 1.0:
                    self._buckets[fault] = (tokens - 1.0, now)
                else:
                    self._buckets[fault] = (tokens, now)
                    self._throttled += 1
                    out.append(f.Status(fault.status, retry_after=fault.retry_after))
        return tuple(out)

    def _take(self) -> tuple[f.Fault, ...]:
        with self._lock:
            if self._queue:
                return self._always + self._queue.popleft()
            return self._always


class FakeServer:
    """The Feather API, the Siro API and their storage on loopback sockets, with faults on demand.

    It runs its own event loop in a background thread, so sync and async tests can
    both use it. Feather and Siro listen on `host` (127.0.0.1); storage and the
    "elsewhere" origin (which only records requests) listen on `storage_host`
    (127.0.0.2) so cross-origin rules apply to signed URLs and redirects.

    Usage:

        with FakeServer() as fake:
            fake.add_recording("feather", "call_123")
            fake.feather.queue(faults.Status(503, retry_after="1"))

    Args:
        validate_requests: Check API requests against the vendored OpenAPI specs
            (needs the `testing` extra) and answer off-spec ones as the vendor does.
        url_ttl: Lifetime of minted signed URLs, in seconds.
        siro_expiration_unit: Siro's `expiration` in epoch "ms" or "s".
        feather_api_key: The accepted Feather key (default: random per server).
        siro_token: The accepted Siro token (default: random per server).
        host: Where the two APIs listen.
        storage_host: Where storage and "elsewhere" listen.
        port: 0 for ephemeral ports, or N for Feather on N, Siro on N+1,
            storage on N+2 and elsewhere on N+3.
        record_requests: Keep `requests` (turn off for long benchmarks).
    """

    def __init__(
        self,
        *,
        validate_requests: bool = True,
        url_ttl: float = 3600.0,
        siro_expiration_unit: Literal["ms", "s"] = "ms",
        feather_api_key: str | None = None,
        siro_token: str | None = None,
        host: str = "127.0.0.1",
        storage_host: str = "127.0.0.2",
        port: int = 0,
        record_requests: bool = True,
    ) -> None:
        if url_ttl <= 0:
            raise ValueError("url_ttl must be > 0")
        if siro_expiration_unit not in ("ms", "s"):
            raise ValueError('siro_expiration_unit must be "ms" or "s"')
        self.feather_api_key: str = feather_api_key or f"fk_test_{secrets.token_hex(16)}"
        self.siro_token: str = siro_token or f"siro_test_{secrets.token_hex(16)}"
        for credential in (self.feather_api_key, self.siro_token):
            if not credential.isascii() or not credential.isprintable():
                raise ValueError("credentials must be printable ASCII")
        self.url_ttl = url_ttl
        self.validate_requests = validate_requests
        self.record_requests = record_requests
        self._hosts: dict[OriginName, str] = {
            "feather": host,
            "siro": host,
            "storage": storage_host,
            "elsewhere": storage_host,
        }
        self._wanted_port = port
        self._clock_offset = 0.0
        self._signer = Signer(self._now)
        self._recordings = Recordings()
        self._requests: list[RecordedRequest] = []
        self._request_ids = itertools.count(1)
        self._request_id_prefix = secrets.token_hex(4)
        self._date_cache: tuple[int, str] = (0, "")
        self.feather = FakeOrigin(self, "feather")
        self.siro = FakeOrigin(self, "siro")
        self.storage = FakeOrigin(self, "storage")
        self.elsewhere = FakeOrigin(self, "elsewhere")
        feather_validator = SpecValidator("feather_api") if validate_requests else None
        siro_validator = SpecValidator("siro_api") if validate_requests else None
        self._feather_api = FeatherApi(self.feather_api_key, self._recordings, self._mint, feather_validator)
        self._siro_api = SiroApi(self.siro_token, self._recordings, self._mint, siro_validator, siro_expiration_unit)
        self._ports: dict[OriginName, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeServer:
        """Bind the four listeners and start serving in a background thread."""
        if self._thread is not None:
            raise RuntimeError("FakeServer is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(target=self._run, args=(loop, ready), name="callrec-fake-server", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every listener and connection and stop the background thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT)
            loop.close()
            self._loop = self._thread = None
            self._ports.clear()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = ", ".join(f"{name}={self._origin_url(name)}" for name in _ORIGINS) if self._ports else "stopped"
        return f"<FakeServer {state}>"

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())

    async def _listen(self) -> None:
        for index, name in enumerate(_ORIGINS):
            port = self._wanted_port + index if self._wanted_port else 0
            server = await asyncio.start_server(
                functools.partial(self._connection, name),
                self._hosts[name],
                port,
                limit=_http.MAX_HEAD_BYTES,
                reuse_address=True,
            )
            self._servers.append(server)
            self._ports[name] = server.sockets[0].getsockname()[1]

    async def _connection(self, name: OriginName, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _http.serve_connection(reader, writer, lambda request: self._answer(name, request))
        except asyncio.CancelledError:
            # Only `_shutdown` cancels. Ending normally matters: on 3.11 asyncio's
            # stream callback calls `task.exception()`, which raises for a cancelled task.
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        await asyncio.sleep(0)

    # -- answering -------------------------------------------------------------

    def _answer(self, name: OriginName, request: _http.Request) -> tuple[_http.Response, _http.Delivery]:
        if self.record_requests:
            self._requests.append(
                RecordedRequest(name, request.method, request.path, request.query, request.headers, request.body)
            )
        origin = getattr(self, name)
        assert isinstance(origin, FakeOrigin)
        response, plan = apply(
            origin._throttle(origin._take()),
            origin=name,
            target=request.target,
            normal=lambda ignore_range: self._normal(name, request, ignore_range),
            origin_url=self._origin_url,
            expire_urls=self.expire_urls,
        )
        response.headers.append(("Date", self._http_date()))
        response.headers.append(("x-request-id", f"req_{self._request_id_prefix}{next(self._request_ids):08x}"))
        return response, plan

    def _normal(self, name: OriginName, request: _http.Request, ignore_range: bool) -> _http.Response:
        if name == "feather":
            return self._feather_api.handle(request)
        if name == "siro":
            return self._siro_api.handle(request)
        if name == "storage":
            return _storage.handle(request, self._signer, self._recordings, ignore_range=ignore_range)
        return _http.Response(200, [("Content-Type", "text/plain")], b"elsewhere\n")

    def _http_date(self) -> str:
        second = int(self._now())
        cached_second, value = self._date_cache
        if cached_second != second:
            value = formatdate(second, usegmt=True)
            self._date_cache = (second, value)
        return value

    def _now(self) -> float:
        return time.time() + self._clock_offset

    def _mint(self, recording: Recording) -> SignedUrl:
        return self._signer.mint(self.storage_origin, recording.path, self.url_ttl)

    def _origin_url(self, name: str) -> str:
        if name.startswith(("http://", "https://")):
            return name.rstrip("/")
        try:
            port = self._ports[name]  # type: ignore[index]  # any other name is a KeyError, reported below
        except KeyError:
            if name in _ORIGINS:
                raise RuntimeError("FakeServer is not started") from None
            raise ValueError(f"unknown origin {name!r}; use one of {_ORIGINS} or an absolute URL") from None
        return f"http://{self._hosts[name]}:{port}"  # type: ignore[index]  # checked just above

    # -- public helpers --------------------------------------------------------

    @property
    def feather_base_url(self) -> str:
        """Base URL of the Feather API, e.g. "http://127.0.0.1:50123"."""
        return self._origin_url("feather")

    @property
    def siro_base_url(self) -> str:
        """Base URL of the Siro API."""
        return self._origin_url("siro")

    @property
    def storage_origin(self) -> str:
        """Origin of the storage that signed URLs point at (on 127.0.0.2)."""
        return self._origin_url("storage")

    @property
    def elsewhere_origin(self) -> str:
        """An origin that only records requests: where cross-origin redirects lead."""
        return self._origin_url("elsewhere")

    def env(self) -> dict[str, str]:
        """The environment variables that point an SDK at this server."""
        return {
            "FEATHER_API_KEY": self.feather_api_key,
            "FEATHER_BASE_URL": self.feather_base_url,
            "SIRO_AUTH_TOKEN": self.siro_token,
            "SIRO_BASE_URL": self.siro_base_url,
        }

    def add_recording(
        self,
        vendor: Vendor,
        recording_id: str,
        *,
        leg: Literal["main", "supervisor"] = "main",
        data: bytes | None = None,
        content_type: str = "audio/wav",
    ) -> bytes:
        """Register a recording (replacing any with the same key) and return its bytes.

        Args:
            vendor: "feather" or "siro".
            recording_id: The call id (Feather) or recording id (Siro).
            leg: "main" or "supervisor" (Feather's `?type=`); Siro has only "main".
            data: The audio bytes; None generates a one-second WAV tone.
            content_type: What storage sends as `Content-Type`.
        """
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS}, got {vendor!r}")
        if leg not in ("main", "supervisor") or (vendor == "siro" and leg != "main"):
            raise ValueError(f"unsupported leg {leg!r} for {vendor}")
        body = wav_tone() if data is None else bytes(data)
        self._recordings.add(vendor, recording_id, leg, body, content_type, self._now())
        return body

    def signed_url(self, vendor: Vendor, recording_id: str, *, leg: str = "main") -> str:
        """Mint a signed storage URL for a registered recording, as the API would."""
        recording = self._recordings.get(vendor, recording_id, leg)
        if recording is None:
            raise KeyError(f"no {vendor} recording {recording_id!r} leg {leg!r}")
        return self._mint(recording).url

    def expire_urls(self) -> None:
        """Make every signed URL minted so far answer 403 "Request has expired"."""
        self._signer.expire_all()

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward (signed URL expiry, `expiresAt`, `Date`)."""
        self._clock_offset += seconds

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (a copy)."""
        return list(self._requests)

    def requests_to(self, origin: OriginName) -> list[RecordedRequest]:
        """The requests one origin received, oldest first."""
        return [request for request in self._requests if request.origin == origin]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests.clear()

    def reset(self) -> None:
        """Forget recorded requests and drop every fault (recordings stay)."""
        self.clear_requests()
        for origin in self._iter_origins():
            origin.clear()

    def _iter_origins(self) -> Iterator[FakeOrigin]:
        return iter((self.feather, self.siro, self.storage, self.elsewhere))
