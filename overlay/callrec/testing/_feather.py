"""The Feather AI API: `GET /api/v1/agent-calls/{id}/recording-url?type=main|supervisor`."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

from ._http import Request, Response
from ._recordings import Recording, Recordings
from ._signing import SignedUrl
from ._spec import SpecValidator

JSON = "application/json; charset=utf-8"
LEGS = ("main", "supervisor")
NOT_FOUND_MESSAGE = "Agent call not found or has no recording"
_ROUTE = re.compile(r"/api/v1/agent-calls/([^/]+)/recording-url")

# The spec documents only BAD_REQUEST and INTERNAL_SERVER_ERROR codes (the latter
# for both 500 and 503); other statuses borrow the HTTP reason in the same style.
_MESSAGES = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Unauthorized"),
    500: ("INTERNAL_SERVER_ERROR", "Internal server error"),
    503: ("INTERNAL_SERVER_ERROR", "Unable to generate a fresh presigned URL; retry shortly"),
}


def error(status: int, message: str | None = None) -> Response:
    """A Feather error body: `{"status", "message", "code", "success": false}`."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code, default = _MESSAGES.get(status, (phrase.upper().replace(" ", "_").replace("-", "_"), phrase))
    body = {"status": status, "message": message or default, "code": code, "success": False}
    return Response(status, [("Content-Type", JSON)], json.dumps(body).encode())


def iso_utc(epoch: float) -> str:
    """`2026-01-02T03:04:05.000Z`, the way Feather writes `expiresAt`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FeatherApi:
    """Answers the Feather recording-url route the way the vendored spec describes."""

    def __init__(
        self,
        api_key: str,
        recordings: Recordings,
        mint: Callable[[Recording], SignedUrl],
        validator: SpecValidator | None,
    ) -> None:
        self._api_key = api_key.encode()
        self._recordings = recordings
        self._mint = mint
        self._validator = validator

    def handle(self, request: Request) -> Response:
        match = _ROUTE.fullmatch(request.path)
        if match is None or request.method != "GET":
            return error(404, f"Route {request.method}:{request.path} not found")
        key = request.header("x-api-key")
        if key is None or not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), self._api_key):
            return error(401)
        if self._validator is not None:
            issues = self._validator.issues(
                request.method, request.path, request.query, request.headers, request.header("content-type") or "", b""
            )
            if issues:
                return error(400, "; ".join(issue.message for issue in issues))
        legs = parse_qs(request.query).get("type", ["main"])
        leg = legs[-1]
        if leg not in LEGS:
            return error(400, f"Invalid query parameter type: {leg!r} is not one of ['main', 'supervisor']")
        recording = self._recordings.get("feather", unquote(match.group(1)), leg)
        if recording is None:
            return error(400, NOT_FOUND_MESSAGE)
        signed = self._mint(recording)
        body = {"url": signed.url, "expiresAt": iso_utc(signed.expires_at)}
        return Response(200, [("Content-Type", JSON)], json.dumps(body).encode())
