"""The Siro API: `POST /v1/core/recordings/{id}/signedUrl`."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote

from ._http import Request, Response
from ._recordings import Recording, Recordings
from ._signing import SignedUrl
from ._spec import SpecValidator

JSON = "application/json"
NOT_FOUND_MESSAGE = "Recording not found"
_ROUTE = re.compile(r"/v1/core/recordings/([^/]*)/signedUrl")


def error(status: int, message: str | None = None) -> Response:
    """A Siro error body: `{"error": message}`."""
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
    return _json(status, {"error": message})


def zod_error(issues: list[dict[str, Any]]) -> Response:
    """422 with the ZodError body Siro documents."""
    return _json(422, {"name": "ZodError", "issues": issues})


def data_error(message: str) -> Response:
    """200 that reports failure inside `data`, as Siro sometimes does."""
    return _json(200, {"data": {"error": True, "errorMessage": message}})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status, [("Content-Type", JSON)], json.dumps(body).encode())


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "number", float: "number"}.get(type(value), "unknown")


class SiroApi:
    """Answers the Siro signedUrl route the way the vendored spec describes."""

    def __init__(
        self,
        token: str,
        recordings: Recordings,
        mint: Callable[[Recording], SignedUrl],
        validator: SpecValidator | None,
        expiration_unit: Literal["ms", "s"],
    ) -> None:
        self._token = token.encode()
        self._recordings = recordings
        self._mint = mint
        self._validator = validator
        self._expiration_unit = expiration_unit

    def handle(self, request: Request) -> Response:
        match = _ROUTE.fullmatch(request.path)
        if match is None or request.method != "POST":
            return error(404, "Not Found")
        token = request.header("x-siro-auth-token")
        if token is None:
            return error(401, "Missing x-siro-auth-token header")
        if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._token):
            return error(401, "Invalid or expired token")
        if request.body.strip():
            try:
                payload = json.loads(request.body)
            except ValueError:
                return error(400, "Malformed JSON in request body")
            if not isinstance(payload, dict):
                received = _json_type(payload)
                issue = {
                    "code": "invalid_type",
                    "expected": "object",
                    "received": received,
                    "path": [],
                    "message": f"Expected object, received {received}",
                }
                return zod_error([issue])
        recording_id = unquote(match.group(1))
        if not recording_id:
            issue = {"code": "too_small", "path": ["id"], "message": "String must contain at least 1 character(s)"}
            return zod_error([issue])
        if self._validator is not None:
            content_type = request.header("content-type") or ""
            issues = self._validator.issues(
                request.method, request.path, request.query, request.headers, content_type, request.body
            )
            if issues:
                found = [{"code": "custom", "path": [i.name] if i.name else [], "message": i.message} for i in issues]
                return zod_error(found)
        recording = self._recordings.get("siro", recording_id, "main")
        if recording is None:
            return error(404, NOT_FOUND_MESSAGE)
        signed = self._mint(recording)
        expiration = signed.expires_at * 1000 if self._expiration_unit == "ms" else signed.expires_at
        return _json(200, {"data": {"error": False, "url": signed.url, "expiration": int(expiration)}})
