"""Turn the faults for one request into the response and how it goes on the wire."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import _feather, _siro, _storage
from . import faults as f
from ._http import Delivery, Response

_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_NON_AUDIO_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)


def status_response(origin: str, fault: f.Status) -> Response:
    """The answer for a `Status` fault: the vendor's error shape unless a body is given."""
    if fault.body is not None:
        body = fault.body.encode() if isinstance(fault.body, str) else fault.body
        response = Response(fault.code, [("Content-Type", fault.content_type or "application/json")], body)
    elif origin == "feather":
        response = _feather.error(fault.code)
    elif origin == "siro":
        response = _siro.error(fault.code)
    else:
        response = _storage.status_error(fault.code)
    if fault.retry_after is not None:
        response.headers.append(("Retry-After", str(fault.retry_after)))
    if fault.retry_after_ms is not None:
        response.headers.append(("retry-after-ms", str(fault.retry_after_ms)))
    if fault.headers:
        response.headers.extend(fault.headers.items())
    return response


def _html(status: int) -> Response:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    page = _NGINX_PAGE.format(status=status, phrase=phrase).encode()
    return Response(status, [("Content-Type", "text/html"), ("Server", "nginx")], page)


def apply(
    faults: Sequence[f.Fault],
    *,
    origin: str,
    target: str,
    normal: Callable[[bool], Response],
    origin_url: Callable[[str], str],
    expire_urls: Callable[[], None],
) -> tuple[Response, Delivery]:
    """Build the answer for one request.

    Args:
        faults: Standing faults first, then the queued ones; later ones win.
        origin: Which origin is answering.
        target: The request target (path and query), for redirects.
        normal: The normal answer; its argument says whether to ignore Range.
        origin_url: Maps an origin name to its base URL.
        expire_urls: Expires every URL minted so far.
    """
    plan = Delivery()
    replace: f.Fault | None = None
    ignore_range = False
    for fault in faults:
        if isinstance(fault, f.Latency):
            plan.delay += fault.seconds
        elif isinstance(fault, f.StallBeforeHeaders):
            plan.stall_then_close = fault.seconds
        elif isinstance(fault, f.Trickle):
            plan.trickle = (fault.chunk_size, fault.interval)
        elif isinstance(fault, f.Chunked):
            plan.chunked = True
        elif isinstance(fault, f.Reset):
            if fault.after_bytes is None:
                plan.reset_before = True
            else:
                plan.body_limit = fault.after_bytes
                plan.reset_after_limit = True
        elif isinstance(fault, f.ShortBody):
            plan.body_limit = -fault.missing
        elif isinstance(fault, f.CutBody):
            plan.body_limit = fault.after_bytes
            plan.declare_length = False
        elif isinstance(fault, f.ExpireMidDownload):
            plan.body_limit = fault.after_bytes
            plan.on_cut = expire_urls
        elif isinstance(fault, f.IgnoreRange):
            ignore_range = True
        else:
            replace = fault

    if plan.reset_before or plan.stall_then_close is not None:
        return Response(0), plan
    response = _replacement(replace, origin, target, normal, ignore_range, origin_url)
    if plan.body_limit is not None and plan.body_limit < 0:  # ShortBody: keep the full Content-Length
        plan.body_limit = max(0, len(response.body) + plan.body_limit)
    return response, plan


def _replacement(
    fault: f.Fault | None,
    origin: str,
    target: str,
    normal: Callable[[bool], Response],
    ignore_range: bool,
    origin_url: Callable[[str], str],
) -> Response:
    if fault is None:
        return normal(ignore_range)
    if isinstance(fault, f.Status):
        return status_response(origin, fault)
    if isinstance(fault, f.MalformedJson):
        whole = normal(ignore_range)
        return Response(200, [("Content-Type", "application/json")], whole.body[: len(whole.body) // 2])
    if isinstance(fault, f.HtmlProxyError):
        return _html(fault.status)
    if isinstance(fault, f.SiroError):
        return _siro.data_error(fault.message)
    if isinstance(fault, f.RedirectTo):
        location = origin_url(fault.origin) + target
        return Response(fault.status, [("Location", location), ("Content-Type", "text/plain")], b"Redirecting")
    if isinstance(fault, f.ExpiredUrl):
        return _storage.expired()
    if isinstance(fault, f.GcsExpiredToken):
        return _storage.gcs_expired_token()
    if isinstance(fault, f.NonAudio):
        whole = normal(ignore_range)
        content_type = whole.header("content-type") if whole.status < 300 else None
        page = fault.body if fault.body is not None else _NON_AUDIO_PAGE
        return Response(200, [("Content-Type", content_type or "audio/mpeg")], page)
    if isinstance(fault, f.Garbage):
        return Response(fault.status, [("Content-Type", fault.content_type)], fault.body)
    raise TypeError(f"not a fault: {fault!r}")
