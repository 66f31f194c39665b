"""OpenTelemetry spans and metrics through ``opentelemetry-api`` only (the ``callrec[otel]`` extra).

The drivers call this module and nothing else of OpenTelemetry. It picks no SDK and no
exporter: the application configures those, and until it does every call here is a no-op.

Usage::

    from . import _otel

    with _otel.span(_otel.DOWNLOAD, {VENDOR: "feather", _otel.RECORDING_ID: rid}) as sp:
        with _otel.span(_otel.MINT):
            ...
        _otel.event(_otel.RESIGN, {URL_REFRESHES: 1})
        sp.set({BYTES: n})          # VENDOR, URL_REFRESHES, BYTES: the attribute names listed below
    _otel.record_item("downloaded", "feather", n, seconds)

Spans (kind INTERNAL; HTTP client spans are left to opentelemetry-instrumentation-httpx/-urllib3)::

    callrec.download_many            one bulk run
    └── callrec.download             one recording (one leg) into a destination
        ├── callrec.mint             minting the signed URL (callrec.recording_url inside)
        ├── callrec.transfer         the bytes; event callrec.resign for each re-signed URL
        └── callrec.commit           making the file or object final
    callrec.recording_url            a client.recording_url call

Metrics: ``callrec.items`` (counter; ``callrec.item.status``, ``callrec.vendor``), ``callrec.bytes``
(counter, By), ``callrec.throttled`` (counter), ``callrec.api.requests`` (counter; backends derive
the rate) and ``callrec.download.duration`` (histogram, s).

HTTP client spans come from opentelemetry-instrumentation-httpx and -urllib3 when the application
enables them, with :func:`httpx_request_hook` / :func:`httpx_async_request_hook` and
``url_filter=telemetry_url`` so that their ``url.full`` carries no signed query (nor an id).

Privacy: every attribute and label passes :func:`filter_attributes` (an allow-list of keys, a check
per value, and a refusal of anything that looks like a signed query or a credential). Recording ids
can be personal data (phone calls): ``callrec.recording_id`` is kept only after
``set_record_ids(True)``, and exception text is scrubbed of URL queries, credentials, URL paths and
the ids of the enclosing spans.

Cost: callrec imports no opentelemetry module itself: it looks for the API once the application has
imported it (an application that sets a provider has). Without opentelemetry-api, or with it but no SDK
provider set, :func:`span` returns the shared
:data:`NULL_SPAN` and the ``record_*`` functions return after a provider check (no allocation).
"""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from ._redact import redact_text

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "COMMIT",
    "DOWNLOAD",
    "DOWNLOAD_MANY",
    "MINT",
    "NULL_SPAN",
    "RECORDING_ID",
    "RECORDING_URL",
    "RESIGN",
    "TRANSFER",
    "AttributeValue",
    "SpanHandle",
    "enabled",
    "event",
    "filter_attributes",
    "httpx_async_request_hook",
    "httpx_request_hook",
    "record_api_request",
    "record_item",
    "record_throttle",
    "server_address",
    "set_record_ids",
    "span",
    "telemetry_url",
]

AttributeValue = str | bool | int | float

#: Span names.
RECORDING_URL: Final = "callrec.recording_url"
DOWNLOAD: Final = "callrec.download"
DOWNLOAD_MANY: Final = "callrec.download_many"
MINT: Final = "callrec.mint"
TRANSFER: Final = "callrec.transfer"
COMMIT: Final = "callrec.commit"
#: Event name, on the transfer span: a URL expired (or was refused) and a fresh one was minted.
RESIGN: Final = "callrec.resign"
#: The one attribute that names a recording; dropped unless :func:`set_record_ids` opted in.
RECORDING_ID: Final = "callrec.recording_id"

#: Histogram advice for download durations: tens of milliseconds (skips) to many minutes (long calls).
_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# --- the attribute policy ---------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_ERROR_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,254}")
#: A value that looks like a signed URL, a query string or a credential: refused whatever its key.
_SUSPECT = re.compile(
    r"://[^\s]*[?@]"  # a URL with a query or userinfo
    r"|[?&][^\s=&?]+="  # a query parameter, with or without a URL around it
    r"|(?i:x-amz-|x-goog-|signature|credential|api[_-]?key|authorization|password|secret|token)\s*[=:]"
    r"|(?i:\bbearer\s+\S|\bbasic\s+[A-Za-z0-9+/]{8,})"
    r"|\beyJ[\w-]{8,}\.[\w-]{8,}\."  # a JWT
)


def _token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _host(value: object) -> bool:
    return isinstance(value, str) and _HOST.fullmatch(value) is not None


def _error_type(value: object) -> bool:
    return isinstance(value, str) and _ERROR_TYPE.fullmatch(value) is not None


def _recording_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 256


#: Every key an attribute, event attribute or metric label may have, and what its value must be.
#: Semantic-convention names where one exists; the rest under ``callrec.``. Adding a key is a review.
_ALLOWED: Final[Mapping[str, Callable[[object], bool]]] = {
    "callrec.vendor": _token,
    "callrec.leg": _token,
    "callrec.item.status": _token,
    "callrec.destination.kind": _token,  # "file", "s3", "gs", "az", "memory": a scheme, never the URL
    "callrec.bytes": _count,
    "callrec.url_refreshes": _count,
    "callrec.items": _count,
    "callrec.concurrency": _count,
    "callrec.attempts": _count,
    RECORDING_ID: _recording_id,
    "error.type": _error_type,
    "server.address": _host,
    "server.port": _count,
    "http.request.method": _token,
    "http.response.status_code": _count,
    "http.request.resend_count": _count,
}


def filter_attributes(attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    """The attributes that may leave the process: allowed keys with valid, unsuspicious values.

    Every span attribute, event attribute and metric label passes here. A key off the allow-list,
    a value of the wrong shape, a string that looks like a signed URL, a query or a credential, and
    ``callrec.recording_id`` without :func:`set_record_ids` are dropped silently.
    """
    if not attributes:
        return {}
    kept: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        check = _ALLOWED.get(key)
        if check is None or not check(value) or (key == RECORDING_ID and not _record_ids):
            continue
        if isinstance(value, str) and _SUSPECT.search(value):
            continue
        kept[key] = value
    return kept


def server_address(url: str) -> str:
    """The host of url, for ``server.address`` (never the URL: its path and query can identify a call).

    "" when url has none; the filter drops an empty value.
    """
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def telemetry_url(url: str) -> str:
    """url as an HTTP client span may show it: scheme, host and port, the path only once ids are opted in.

    Never the query: a signed URL's query is a bearer credential, and opentelemetry-util-http's
    ``redact_url`` blanks only AWSAccessKeyId, Signature, sig and X-Goog-Signature (not SigV4's
    X-Amz-Signature or X-Amz-Credential). ``URLLib3Instrumentor().instrument(url_filter=telemetry_url)``.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or not host:
        return "<unparseable url>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{(parts.path or '/') if _record_ids else '/'}"


def httpx_request_hook(span: Span, request: Any) -> None:
    """``request_hook`` for ``HTTPXClientInstrumentor``: rewrites the span's URL with :func:`telemetry_url`."""
    url = telemetry_url(str(request.url))
    shown = getattr(span, "attributes", None) or {}  # an SDK span shows its attributes; the API's does not
    for key in [k for k in ("url.full", "http.url") if k in shown] or ["url.full"]:
        span.set_attribute(key, url)


async def httpx_async_request_hook(span: Span, request: Any) -> None:
    """``async_request_hook`` for ``HTTPXClientInstrumentor`` (it must be a coroutine function)."""
    httpx_request_hook(span, request)


def set_record_ids(enabled: bool) -> None:
    """Opt in (or back out) of ``callrec.recording_id`` on spans, process-wide; off by default.

    Recording ids name phone calls, which can be personal data, so they leave the process only
    when the application asks. While off, ids are also scrubbed from recorded exception text.
    """
    global _record_ids
    _record_ids = enabled


_record_ids = False

# --- scrubbing free text (exception messages and stack traces) ---------------------------------------

_SECRET_PARAM = re.compile(
    r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential"
    r"|signature|sig|token|access_token|api[_-]?key|key|password|secret)=[^&\s\"'<>#]+"
)
_SECRET_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"://[^/\s@]+@")
#: A URL's path: API paths and storage keys carry recording ids (".../agent-calls/call_123/...").
_URL_PATH = re.compile(r"(https?://[^/\s\"'<>?#]+)/[^\s\"'<>?#]*?(?=[.,:;)\]]*(?:[\s\"'<>?#]|$))")
#: The recording ids of the enclosing spans, scrubbed from exception text unless ids are opted in.
_IDS: ContextVar[tuple[str, ...]] = ContextVar("callrec_otel_ids", default=())


def _scrub(text: str) -> str:
    """Exception text with no signed query, credential, URL path or enclosing recording id."""
    text = _USERINFO.sub("://<redacted>@", redact_text(text))
    text = _SECRET_SCHEME.sub(r"\1 <redacted>", _SECRET_PARAM.sub(r"\1=<redacted>", text))
    if not _record_ids:
        text = _URL_PATH.sub(r"\1/<path>", text)
        for rid in _IDS.get():
            text = re.sub(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", "<recording_id>", text)
    return text


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the original error
        return "<unprintable>"


def _error_type_of(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


#: Set on an exception once a span recorded it: semantic conventions advise recording it once,
#: and outer spans (where the ids of inner spans are no longer known) add only status and error.type.
_RECORDED: Final = "_callrec_otel_recorded"

# --- resolving opentelemetry lazily --------------------------------------------------------------


class _Api:
    """The opentelemetry-api functions used here, imported together on first use (ImportError when absent)."""

    __slots__ = (
        "attach",
        "detach",
        "error",
        "get_current_span",
        "meter_provider",
        "set_span_in_context",
        "status",
        "tracer_provider",
    )

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        self.attach = context.attach
        self.detach = context.detach
        self.get_current_span = trace.get_current_span
        self.set_span_in_context = trace.set_span_in_context
        self.status = trace.Status
        self.error = trace.StatusCode.ERROR
        self.tracer_provider: Callable[[], object | None] = trace.get_tracer_provider
        self.meter_provider: Callable[[], object | None] = metrics.get_meter_provider
        # The public getters cost ~1.5 µs a call even with no SDK (each misses os.environ, which raises
        # and catches KeyError inside), twice per API call on the no-op path. The API keeps the provider
        # in a module global, None until an application sets one; reading it costs ~30 ns. The API offers
        # no public "is a provider set?"; if these names go, the public getters serve (tests/otel says so).
        trace.get_tracer_provider()  # as the first get would: loads a provider named by OTEL_PYTHON_TRACER_PROVIDER
        metrics.get_meter_provider()
        if hasattr(trace, "_TRACER_PROVIDER"):
            self.tracer_provider = lambda: trace._TRACER_PROVIDER
        metrics_internal: Any = getattr(metrics, "_internal", None)
        if hasattr(metrics_internal, "_METER_PROVIDER"):
            self.meter_provider = lambda: metrics_internal._METER_PROVIDER


def _fast_provider_reads() -> bool:
    """Whether the provider checks read the API's globals (else its ~1.5 µs getters): for a test."""
    api = _api if _loaded else _load()
    return api is not None and api.tracer_provider.__name__ == api.meter_provider.__name__ == "<lambda>"


_api: _Api | None = None
_loaded = False
#: Providers injected by :func:`_use` (tests); None means the global ones.
_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None
#: (provider, its callrec tracer or None when it is the API's placeholder), for the last provider seen.
_tracer_cache: tuple[object, Tracer | None] | None = None
_instruments_cache: tuple[object, _Instruments | None] | None = None


def _load() -> _Api | None:
    """The API, once the application has imported it; None (and a look again on the next call) before.

    Until something imports ``opentelemetry.trace`` or ``opentelemetry.metrics``, no provider can have been
    set, so every span would be the API's non-recording one and every measurement dropped: importing the
    API only to learn that costs a first download ~10 ms (it pulls importlib.metadata). A provider set
    later is picked up on the next call, as the API's own proxies would.
    """
    global _api, _loaded
    modules = sys.modules
    if "opentelemetry.trace" not in modules and "opentelemetry.metrics" not in modules:
        return None
    try:
        _api = _Api()
    except ImportError:
        _api = None
    _loaded = True
    return _api


def _version() -> str:
    from . import __version__  # read on first use, not at import (see __init__)

    return __version__


def _is_placeholder(provider: object) -> bool:
    """The API's own providers (proxy, no-op) record nothing; an SDK's live in another package."""
    return type(provider).__module__.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


def _tracer() -> Tracer | None:
    """The tracer of callrec from the current provider, or None when nothing would record."""
    global _tracer_cache
    api = _api if _loaded else _load()
    if api is None:
        return None
    provider = _tracer_provider or api.tracer_provider()
    if provider is None:
        return None
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = None if _is_placeholder(provider) else cast("TracerProvider", provider).get_tracer("callrec", _version())
    _tracer_cache = (provider, tracer)
    return tracer


def enabled() -> bool:
    """Whether spans are recorded (an SDK tracer provider is set): lets a driver skip costly attributes."""
    return _tracer() is not None


# --- spans --------------------------------------------------------------------------------------


class SpanHandle:
    """What :func:`span` yields. This base is the no-op used when nothing records; it holds no state."""

    __slots__ = ()

    def __enter__(self) -> SpanHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def set(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add attributes (filtered) to this span, e.g. the bytes written once they are known."""

    def event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Add an event (attributes filtered) to this span rather than to the current one."""


#: The shared no-op span: reentrant, so one object serves every call.
NULL_SPAN: Final = SpanHandle()


class _RecordingSpan(SpanHandle):
    """A span started on ``__enter__``, current inside the block, ended (with any error) on ``__exit__``."""

    __slots__ = ("_attributes", "_context_token", "_ids_token", "_name", "_span", "_tracer")

    def __init__(self, tracer: Tracer, name: str, attributes: Mapping[str, AttributeValue] | None) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._span: Span | None = None
        self._context_token: Token[Context] | None = None
        self._ids_token: Token[tuple[str, ...]] | None = None

    def __enter__(self) -> SpanHandle:
        assert _api is not None  # a _RecordingSpan exists only once a tracer was found
        self._remember_id(self._attributes)
        span = self._tracer.start_span(self._name, attributes=filter_attributes(self._attributes))
        self._span = span
        self._context_token = _api.attach(_api.set_span_in_context(span))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            # Exception, not BaseException: cancellation and exits are not errors (as in opentelemetry's use_span).
            if isinstance(exc, Exception):
                _record_error(span, exc)
        finally:
            if self._ids_token is not None:
                # ValueError: exited in another context than entered (an async generator); nothing to undo.
                with contextlib.suppress(ValueError):
                    _IDS.reset(self._ids_token)
            if self._context_token is not None and _api is not None:
                _api.detach(self._context_token)
            span.end()

    def set(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._span is not None:
            self._remember_id(attributes)
            self._span.set_attributes(filter_attributes(attributes))

    def event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        if self._span is not None:
            self._span.add_event(name, filter_attributes(attributes))

    def _remember_id(self, attributes: Mapping[str, AttributeValue] | None) -> None:
        rid = attributes.get(RECORDING_ID) if attributes else None
        if isinstance(rid, str) and rid:
            token = _IDS.set((*_IDS.get(), rid))
            if self._ids_token is None:  # reset() to the first token restores the value before this span
                self._ids_token = token


def _record_error(span: Span, exc: Exception) -> None:
    """Status ERROR and ``error.type``; the exception event (scrubbed text) only where it was first seen."""
    assert _api is not None
    error_type = _error_type_of(exc)
    if _error_type(error_type):
        span.set_attribute("error.type", error_type)
    if getattr(exc, _RECORDED, False):
        span.set_status(_api.status(_api.error))
        return
    message = _scrub(_safe_str(exc))
    stacktrace = _scrub("".join(traceback.format_exception(exc)))
    span.record_exception(exc, attributes={"exception.message": message, "exception.stacktrace": stacktrace})
    span.set_status(_api.status(_api.error, message))
    # An exception type without __dict__ refuses the mark: outer spans then record it again.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _RECORDED, True)


def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> SpanHandle:
    """A context manager for one span named ``name``, child of the current span.

    ``with span(DOWNLOAD, {...}) as sp:`` starts the span on entry (attributes filtered), makes it
    current, and on exit ends it; an exception leaving the block sets status ERROR and ``error.type``
    and is recorded once, its message and stack trace scrubbed. Returns :data:`NULL_SPAN` when
    nothing records. Works in sync and async code (the current span is a contextvar).
    """
    tracer = _tracer()
    if tracer is None:
        return NULL_SPAN
    return _RecordingSpan(tracer, name, attributes)


def event(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
    """Add an event (attributes filtered) to the current span, e.g. ``event(RESIGN, {...})``."""
    if _tracer() is None:
        return
    assert _api is not None
    current = _api.get_current_span()
    if current.is_recording():
        current.add_event(name, filter_attributes(attributes))


# --- metrics ------------------------------------------------------------------------------------


class _Instruments:
    """The instruments of callrec on one meter provider, and their label sets (few: built once, reused)."""

    __slots__ = ("api_requests", "bytes", "duration", "items", "labels", "throttled")

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("callrec", _version())
        self.items: Counter = meter.create_counter(
            "callrec.items", "{item}", "Recordings a download or bulk run finished, by outcome."
        )
        self.bytes: Counter = meter.create_counter("callrec.bytes", "By", "Bytes of audio written to destinations.")
        self.throttled: Counter = meter.create_counter(
            "callrec.throttled", "{response}", "Vendor API answers that asked the client to slow down."
        )
        self.api_requests: Counter = meter.create_counter(
            "callrec.api.requests", "{request}", "Requests sent to a vendor API, retries included."
        )
        self.duration: Histogram = meter.create_histogram(
            "callrec.download.duration",
            "s",
            "Time to finish one recording, minting to commit.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.labels: dict[tuple[str, str], dict[str, AttributeValue]] = {}

    def label(self, vendor: str, status: str = "") -> dict[str, AttributeValue]:
        key = (vendor, status)
        labels = self.labels.get(key)
        if labels is None:
            raw: dict[str, AttributeValue] = {"callrec.vendor": vendor}
            if status:
                raw["callrec.item.status"] = status
            labels = filter_attributes(raw)
            if len(self.labels) < 256:  # the label values are enums; a bug must not grow this without end
                self.labels[key] = labels
        return labels


def _instruments() -> _Instruments | None:
    """The instruments on the current meter provider, or None when nothing would record."""
    global _instruments_cache
    api = _api if _loaded else _load()
    if api is None:
        return None
    provider = _meter_provider or api.meter_provider()
    if provider is None:
        return None
    cached = _instruments_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    instruments = None if _is_placeholder(provider) else _Instruments(cast("MeterProvider", provider))
    _instruments_cache = (provider, instruments)
    return instruments


def record_item(status: str, vendor: str, nbytes: int, seconds: float) -> None:
    """Count one finished recording: ``callrec.items``, ``callrec.bytes`` and ``callrec.download.duration``."""
    instruments = _instruments()
    if instruments is None:
        return
    labels = instruments.label(vendor, status)
    instruments.items.add(1, labels)
    if nbytes > 0:
        instruments.bytes.add(nbytes, instruments.label(vendor))
    instruments.duration.record(seconds, labels)


def record_throttle(vendor: str) -> None:
    """Count one throttled answer (429 or a Retry-After) from a vendor's API: ``callrec.throttled``."""
    instruments = _instruments()
    if instruments is not None:
        instruments.throttled.add(1, instruments.label(vendor))


def record_api_request(vendor: str) -> None:
    """Count one request sent to a vendor's API (each retry too): ``callrec.api.requests``."""
    instruments = _instruments()
    if instruments is not None:
        instruments.api_requests.add(1, instruments.label(vendor))


def _use(tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
    """Tests: record into these providers instead of the global ones (None: back to the global)."""
    global _tracer_provider, _meter_provider, _tracer_cache, _instruments_cache
    _tracer_provider, _meter_provider = tracer_provider, meter_provider
    _tracer_cache = _instruments_cache = None
