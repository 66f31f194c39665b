"""OpenTelemetry switches of callrec (``callrec[otel]``): what you may need beside an SDK set up at start-up.

Usage::

    from callrec.otel import httpx_request_hook, set_record_ids, telemetry_url

Spans and metrics come from ``callrec._otel`` through ``opentelemetry-api`` only; with no SDK configured (or the
API not installed) every call is a no-op. ``set_record_ids(True)`` lets recording ids into telemetry (off by
default: ids can be personal data). The hooks keep the HTTP instrumentations from exporting signed URLs.
"""

from ._otel import httpx_async_request_hook, httpx_request_hook, set_record_ids, telemetry_url

__all__ = ["httpx_async_request_hook", "httpx_request_hook", "set_record_ids", "telemetry_url"]
