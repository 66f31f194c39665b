"""The storage transport's connections: urllib3 pools, TLS made on first use, and a close that reaches them all.

- **Close closes.** urllib3 2.x no longer closes a pool that ``PoolManager.clear()`` drops: since
  urllib3/urllib3#2661 a pool closes its connections when it is garbage-collected, and ours sit in reference
  cycles, so a kept-alive storage socket stayed ESTABLISHED after the client's ``close()`` until the collector
  ran. ``Pools`` keeps (weakly) every pool its managers make and closes each one itself; and it keeps a way to
  stop every request in flight, so a connection checked out by another thread is shut down too (its read fails
  at once; ``Guard``), and one returned to a closed pool is closed by urllib3 on its way back.
- **TLS on first use.** ``httpx.create_ssl_context()`` (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``: what
  httpx trusts) loads a CA bundle, 35-60 ms: it is made when the first https pool (or https proxy) is, never
  for plain-http storage.
- **Fork**: a child process forgets (without closing: the parent still uses them) the parent's pools.
- **Interrupts**: ``Guard`` is one request's interrupt. The connection a request goes out on joins the Guard of
  the thread sending it (``sending``); interrupting shuts its socket down at the socket level
  (``socket.socket.shutdown``: ``SSLSocket.shutdown`` would drop the TLS layer and let the next read return
  ciphertext, the hazard of urllib3's ``HTTPResponse.shutdown()``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

import httpx
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["CLOSED", "Guard", "Pools", "sending"]

#: Connections kept per origin (httpx's default limit); more are opened when needed, and not kept.
_MAX_PER_ORIGIN: Final = 100
#: Why a request stopped when its transport was closed under it.
CLOSED: Final = "the storage client was closed"


class Guard:
    """One request's interrupt: shuts down the socket of the connection it is on; later reads fail at once."""

    def __init__(self) -> None:
        self.interrupted = False
        self.reused = False  # the request went out on a kept-alive connection
        self.reason = "the read was interrupted"
        self._conn: HTTPConnection | None = None
        self._lock = threading.Lock()

    def attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            if self.interrupted:
                _shutdown(conn)

    def interrupt(self, reason: str = "the read was interrupted") -> None:
        with self._lock:
            if not self.interrupted:
                self.interrupted, self.reason = True, reason
            if self._conn is not None:
                _shutdown(self._conn)

    def check(self) -> None:
        if self.interrupted:
            raise httpx.ReadError(self.reason)

    def detach(self) -> bool:
        """The connection goes back to the pool: a later interrupt (a deadline, a cancel) must not reach it.

        Returns whether an interrupt came first (the connection is then not reusable)."""
        with self._lock:
            self._conn = None
            return self.interrupted


def _shutdown(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not SSLSocket.shutdown: it unwraps TLS


#: ``sending.guard``: the Guard of the request this thread is sending (None between requests).
sending = threading.local()


class _Attach:
    """Mixed into urllib3's connections: the connection a request goes out on joins its Guard."""

    _callrec_requests = 0

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        guard: Guard | None = getattr(sending, "guard", None)
        if guard is not None:
            guard.attach(self)  # type: ignore[arg-type]  # an interrupt during the connect shuts it down now

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard: Guard | None = getattr(sending, "guard", None)
        self._callrec_requests += 1
        if guard is not None:
            guard.attach(self)  # type: ignore[arg-type]
            guard.reused = self._callrec_requests > 1 and getattr(self, "sock", None) is not None
            guard.check()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Attach, HTTPConnection):
    pass


class _HTTPSConnection(_Attach, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Managed(urllib3.PoolManager):
    """A PoolManager whose new pools get the owner's TLS context (https only) and are kept by the owner."""

    def __init__(self, owner: Pools, **kw: Any) -> None:
        super().__init__(maxsize=_MAX_PER_ORIGIN, block=False, **kw)
        self.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._owner = owner

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        if scheme == "https":
            context["ssl_context"] = self._owner.tls()
        return self._owner.adopt(super()._new_pool(scheme, host, port, context))


class _ProxyManaged(_Managed, urllib3.ProxyManager):
    """``_Managed`` through a proxy (TLS to an https proxy with the same context)."""

    def __init__(self, owner: Pools, proxy: str) -> None:
        tls = owner.tls() if proxy.startswith("https:") else None
        super().__init__(owner, proxy_url=proxy, proxy_ssl_context=tls)


class Pools:
    """One storage transport's urllib3 pool managers (one per proxy, None: direct); ``close()`` closes them all."""

    def __init__(self) -> None:
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._pools: weakref.WeakSet[HTTPConnectionPool] = weakref.WeakSet()
        self._in_flight: dict[int, Callable[[str], None]] = {}
        self._ids = 0
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        self._lock = threading.RLock()  # RLock: a manager made under it asks for tls() under it
        _ALL.add(self)

    def tls(self) -> ssl.SSLContext:
        """What httpx trusts (``SSL_CERT_FILE``/``SSL_CERT_DIR`` included), made once, on first use."""
        with self._lock:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            return self._tls

    def manager(self, proxy: str | None) -> urllib3.PoolManager:
        with self._lock:
            if self._closed:
                raise httpx.ReadError(CLOSED)
            manager = self._managers.get(proxy)
            if manager is None:
                manager = _Managed(self) if proxy is None else _ProxyManaged(self, proxy)
                self._managers[proxy] = manager
            return manager

    def adopt(self, pool: HTTPConnectionPool) -> HTTPConnectionPool:
        """Keep a new pool for ``close()``; one made as the transport closes is closed at once (its use fails)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._pools.add(pool)
        if closed:
            pool.close()
        return pool

    def track(self, stop: Callable[[str], None]) -> Callable[[], None]:
        """Register how to stop one request in flight (``close()`` calls ``stop(CLOSED)``); returns its untrack.

        On a closed transport ``stop`` is called at once."""
        with self._lock:
            closed = self._closed
            key = self._ids = self._ids + 1
            if not closed:
                self._in_flight[key] = stop
        if closed:
            stop(CLOSED)
        return lambda: self._untrack(key)

    def _untrack(self, key: int) -> None:
        with self._lock:
            self._in_flight.pop(key, None)

    def close(self) -> None:
        """Stop every request in flight (its socket is shut down now), close every pooled connection.

        A connection in use goes back to a closed pool when its reader lets go, and urllib3 then closes it."""
        with self._lock:
            self._closed = True
            stops, self._in_flight = list(self._in_flight.values()), {}
            pools, self._pools = list(self._pools), weakref.WeakSet()
            managers, self._managers = list(self._managers.values()), {}
        for stop in stops:
            stop(CLOSED)
        for pool in pools:
            pool.close()
        for manager in managers:
            manager.clear()

    def forget(self) -> None:
        """After a fork: drop (without closing: the parent still uses them) the parent's connections."""
        self._managers, self._pools, self._in_flight = {}, weakref.WeakSet(), {}
        self._lock = threading.RLock()


_ALL: weakref.WeakSet[Pools] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pools in list(_ALL):
        pools.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
