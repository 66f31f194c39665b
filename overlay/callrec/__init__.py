"""callrec: call recordings from Feather AI and Siro, one call away.

Usage::

    from callrec import FeatherClient

    with FeatherClient() as feather:  # reads FEATHER_API_KEY
        url = feather.recording_url("call_123")
"""

__version__ = "0.1.0"

from ._bulk import BulkItem
from ._client import AsyncFeatherClient, AsyncSiroClient, FeatherClient, SiroClient
from ._download import DownloadResult
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CallrecError,
    DownloadError,
    InternalServerError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RecordingUnavailableError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    UnprocessableEntityError,
)
from ._link import AsyncLink, Link
from ._signed_url import SignedUrl

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncFeatherClient",
    "AsyncLink",
    "AsyncSiroClient",
    "AuthenticationError",
    "BadRequestError",
    "BulkItem",
    "CallrecError",
    "DownloadError",
    "DownloadResult",
    "FeatherClient",
    "InternalServerError",
    "Link",
    "MissingCredentialsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecordingUnavailableError",
    "ServiceUnavailableError",
    "SignedUrl",
    "SiroClient",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "__version__",
]

# Show public names as callrec.X rather than callrec._module.X (as httpx does).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("callrec._"):
        _obj.__module__ = "callrec"
del _name, _obj
