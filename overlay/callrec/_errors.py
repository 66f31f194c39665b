"""The callrec exception hierarchy and the one status-to-class mapping.

::

    CallrecError
     ├── MissingCredentialsError        no API key / token (names the env var)
     ├── APIConnectionError             could not reach the API, or the connection broke
     │    └── APITimeoutError           a timeout or the overall deadline passed
     ├── APIStatusError                 the API answered with an error status
     │    ├── BadRequestError           400
     │    ├── AuthenticationError       401
     │    ├── PermissionDeniedError     403
     │    ├── NotFoundError             404
     │    ├── UnprocessableEntityError  422 (.issues: the ZodError issues)
     │    ├── RateLimitError            429
     │    └── InternalServerError       >= 500
     │         └── ServiceUnavailableError  503
     ├── RecordingUnavailableError      the API answered but gave no usable URL
     ├── UnexpectedResponseError        a 2xx not shaped as the spec says, non-JSON, or a 3xx
     ├── DownloadError                  the recording could not be downloaded intact
     └── ExportLockedError              another download_many run is exporting into the same folder

Messages never contain credentials or signed-URL query strings.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CallrecError",
    "DownloadError",
    "ExportLockedError",
    "InternalServerError",
    "MissingCredentialsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecordingUnavailableError",
    "ServiceUnavailableError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
]


class CallrecError(Exception):
    """Base class of every error callrec raises on purpose."""


class MissingCredentialsError(CallrecError):
    """No credential was given and its environment variable is unset or empty."""

    def __init__(self, env_var: str, keyword: str) -> None:
        super().__init__(f"no credential: pass {keyword}=... or set the {env_var} environment variable")
        self.env_var = env_var


class APIConnectionError(CallrecError):
    """The API could not be reached or the connection failed mid-response.

    Attributes:
        request: the ``httpx.Request`` that failed (None for the overall deadline).
        __cause__: the transport exception (``httpx.ConnectError``, ``httpx.ReadTimeout``, ...).
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """A request timed out, or the call's overall deadline passed."""


class APIStatusError(CallrecError):
    """The API answered with an error status.

    Attributes:
        status_code: the HTTP status.
        code: the vendor's error code, when it sends one (Feather ``code``, Siro ``name``).
        message: the vendor's message, when there is one.
        body: the decoded JSON body, or the text for a non-JSON body.
        request_id: the ``x-request-id`` the API sent, if any.
        response: the ``httpx.Response``.
    """

    def __init__(
        self,
        message: str | None,
        *,
        response: httpx.Response,
        body: Any,
        code: str | None = None,
    ) -> None:
        self.status_code = response.status_code
        self.code = code
        self.message = message
        self.body = body
        self.request_id = response.headers.get("x-request-id")
        self.response = response
        reason = response.reason_phrase or "error"
        text = f"{self.status_code} {reason}" + (f": {message}" if message else "")
        if code:
            text += f" ({code})"
        super().__init__(f"[{self.request_id}] {text}" if self.request_id else text)


class BadRequestError(APIStatusError):
    """400: the request was refused (Feather also uses it for "no such call or no recording")."""


class AuthenticationError(APIStatusError):
    """401: the credential is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the credential may not access this recording."""


class NotFoundError(APIStatusError):
    """404: no such recording."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed the vendor's validation; ``issues`` lists why."""

    def __init__(self, message: str | None, *, response: httpx.Response, body: Any, code: str | None = None) -> None:
        super().__init__(message, response=response, body=body, code=code)
        raw = body.get("issues") if isinstance(body, dict) else None
        self.issues: list[dict[str, Any]] = [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """5xx: the vendor failed."""


class ServiceUnavailableError(InternalServerError):
    """503: the vendor is temporarily unable to answer."""


class RecordingUnavailableError(CallrecError):
    """The API answered but gave no usable URL (e.g. Siro's 200 with ``error: true``)."""

    def __init__(self, message: str, *, recording_id: str, request_id: str | None = None) -> None:
        super().__init__(f"[{request_id}] {message}" if request_id else message)
        self.recording_id = recording_id
        self.request_id = request_id


class UnexpectedResponseError(CallrecError):
    """A response the spec does not allow: a malformed 2xx, a non-JSON body, a 3xx."""

    def __init__(self, message: str, *, response: httpx.Response | None = None) -> None:
        self.response = response
        self.status_code = response.status_code if response is not None else None
        self.request_id = response.headers.get("x-request-id") if response is not None else None
        super().__init__(f"[{self.request_id}] {message}" if self.request_id else message)


class DownloadError(CallrecError):
    """The recording could not be downloaded intact; nothing was written.

    Attributes:
        transient: True when the storage host kept failing in a way that may pass
            (5xx, resets, cut bodies) after the client's retries ran out;
            ``download_many`` tries such an item once more with a fresh URL.
        retry_after: the delay the storage host asked for with its last answer, if any.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after: float | None = None


class ExportLockedError(CallrecError):
    """Another ``download_many`` run holds the folder's manifest; two runs would interleave it."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The most specific error class for an HTTP error status (documented or not)."""
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if status_code >= 500:
        return InternalServerError
    return APIStatusError
