"""The storage origin: signed GETs and HEADs of recordings, with Range and If-Range."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from ._http import Request, Response
from ._recordings import Recording, Recordings
from ._signing import Signer, Verdict

XML = "application/xml"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

EXPIRED_MESSAGE = "Request has expired"


def s3_error(status: int, code: str, message: str) -> Response:
    """An S3-style XML error document."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    )
    return Response(status, [("Content-Type", XML)], body.encode())


def expired() -> Response:
    return s3_error(403, "AccessDenied", EXPIRED_MESSAGE)


def gcs_expired_token() -> Response:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message>"
        "<Details>Request signature expired.</Details></Error>"
    )
    return Response(400, [("Content-Type", XML)], body.encode())


_S3_CODES = {
    400: ("InvalidRequest", "Invalid request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def status_error(status: int) -> Response:
    """The S3 error body storage sends for a bare status fault."""
    code, message = _S3_CODES.get(status, ("ServiceError", f"Status {status}"))
    return s3_error(status, code, message)


def handle(request: Request, signer: Signer, recordings: Recordings, *, ignore_range: bool) -> Response:
    """Answer one storage request."""
    if request.method not in ("GET", "HEAD"):
        return s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
    verdict = signer.verify(request.path, request.query)
    if verdict is Verdict.MISSING:
        return s3_error(403, "AccessDenied", "Query-string authentication requires the Signature, Expires parameters")
    if verdict is Verdict.BAD_SIGNATURE:
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if verdict is Verdict.EXPIRED:
        return expired()
    recording = recordings.at_path(request.path)
    if recording is None:
        return status_error(404)
    return _serve(request, recording, ignore_range=ignore_range)


def _serve(request: Request, recording: Recording, *, ignore_range: bool) -> Response:
    data = recording.data
    headers = [
        ("Content-Type", recording.content_type),
        ("ETag", recording.etag),
        ("Last-Modified", recording.last_modified),
        ("Accept-Ranges", "bytes"),
    ]
    range_header = None if ignore_range else request.header("range")
    if range_header is None:
        return Response(200, headers, data)
    if_range = request.header("if-range")
    if if_range is not None and if_range not in (recording.etag, recording.last_modified):
        return Response(200, headers, data)
    match = _RANGE.fullmatch(range_header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return Response(200, headers, data)  # several ranges or another unit: a full answer is allowed
    size = len(data)
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size - 1
        unsatisfiable = int(last) == 0 or size == 0
    else:
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
        if last != "" and int(last) < start:
            return Response(200, headers, data)  # an invalid range is ignored (RFC 9110 14.1.1)
        unsatisfiable = start >= size
    if unsatisfiable:
        answer = s3_error(416, "InvalidRange", "The requested range is not satisfiable")
        answer.headers.append(("Content-Range", f"bytes */{size}"))
        return answer
    headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    return Response(206, headers, data[start : end + 1])
