"""The default transport of the async clients: aiohttp under httpx's API, when aiohttp is installed.

httpx's own async transport (httpcore on anyio) spends several times more CPU per
request than aiohttp (encode/httpx#3215): at concurrency 32 on two cores the SDK
minted ~430 URLs/s on it and ~2,000/s on this transport (benchmarks/RESULTS.md).
Users keep httpx's API: requests and responses are httpx objects, and passing your
own ``http_client=httpx.AsyncClient(...)`` opts out.

Why not httpx-aiohttp's ``AiohttpTransport`` (which openai-python ships)? As of
0.2.0 it maps every ``aiohttp.ClientConnectionError`` (resets, a server hanging
up) to ``httpx.ConnectTimeout``, lets other aiohttp errors escape unmapped, puts
signed URLs into error text, and keeps aiohttp's cookie jar. The SDK's retry and
resume logic keys off httpx's exception classes, and storage requests must carry
no cookies, so this module does the mapping itself; it can go if upstream's does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from ._extensions import BODY_READER, DEADLINE, INTERRUPTIBLE, MIN_FILL
from ._redact import redact_text

if TYPE_CHECKING:
    import aiohttp

# The storage extensions are re-exported: ``_download`` and the clients import them from here.
__all__ = [
    "BODY_READER",
    "DEADLINE",
    "INTERRUPTIBLE",
    "MIN_FILL",
    "async_storage_transport",
    "async_transport",
    "storage_transport",
]

#: httpx's defaults, so switching transports does not change pool behaviour.
_MAX_CONNECTIONS = 100
_KEEPALIVE_EXPIRY = 5.0


def _environment_names_a_proxy() -> bool:
    """What httpx reads (trust_env); it mounts those proxies only when it picks the transport itself."""
    import urllib.request  # here, not at `import callrec`: it costs ~15 ms

    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def async_transport() -> httpx.AsyncBaseTransport | None:
    """An aiohttp-backed transport, or None (httpx's own) when aiohttp is not importable.

    Also None when the environment names a proxy (HTTP_PROXY, HTTPS_PROXY,
    ALL_PROXY): httpx's own transport then routes through it and honours
    NO_PROXY exactly as the sync clients do, so both flavours follow the
    environment the same way (httpx mounts environment proxies only when it
    picks the transport itself).
    """
    if _environment_names_a_proxy():
        return None
    try:
        import aiohttp  # noqa: F401  # imported here, not at `import callrec`: it costs ~100 ms
    except ImportError:
        return None
    return AiohttpTransport()


def _mapped(exc: BaseException) -> httpx.TransportError:
    """The httpx exception httpx's own transport would raise for an aiohttp failure."""
    import aiohttp

    text = f"{type(exc).__name__}: {redact_text(str(exc))}"
    cls: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        cls = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        cls = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        cls = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.InvalidURL):
        cls = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientConnectionError | OSError):
        cls = httpx.ReadError
    else:
        cls = httpx.TransportError
    return cls(text)


def _is_aiohttp_error(exc: BaseException) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            if _is_aiohttp_error(exc):
                # `from None`: aiohttp's text can hold the signed URL's query string.
                raise _mapped(exc) from None
            raise

    async def aclose(self) -> None:
        # A body read to the end returns the connection to the pool; otherwise it is closed.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one lazily created aiohttp ClientSession.

    No cookie jar (httpx's client keeps cookies where the SDK wants them), no
    redirects, no decompression (httpx decodes), httpx's per-phase timeouts.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        # httpx's CA bundle and SSL_CERT_FILE handling, so TLS trust does not change with the transport.
        connector = aiohttp.TCPConnector(
            limit=_MAX_CONNECTIONS, keepalive_timeout=_KEEPALIVE_EXPIRY, ssl=httpx.create_ssl_context()
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        # aiohttp silently resends an idempotent request once after a reset or a disconnect
        # (aiohttp/client.py, "retry_persistent_connection"), even on a fresh connection, so
        # max_retries=2 meant up to 6 requests and async differed from sync. The SDK's retry
        # loop is the only one. No public switch exists as of aiohttp 3.14; aiohttp's own
        # test_utils sets the same attribute. It can go if aiohttp gains a public option.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp
        import yarl

        if self._session is None:
            self._session = self._new_session()  # in the running loop, as aiohttp requires
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            content: bytes | None = request.content or None
        except httpx.RequestNotRead:
            content = await request.aread() or None
        try:
            response = await self._session.request(
                request.method,
                # encoded=True: send the path and query byte for byte (a signed URL's signature covers them).
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except Exception as exc:
            if _is_aiohttp_error(exc):
                raise _mapped(exc) from None
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def storage_transport() -> httpx.BaseTransport:
    """The storage transport (``_storage_http``: urllib3), in every environment, proxies included."""
    from ._storage_http import StorageTransport  # here, not at `import callrec`: it loads urllib3

    return StorageTransport()


def async_storage_transport() -> httpx.AsyncBaseTransport:
    """The same transport for the async clients, its blocking steps on the event loop's worker threads."""
    from ._storage_http import AsyncStorageTransport

    return AsyncStorageTransport()
