"""callrec: call recordings from Feather AI and Siro, one call away.

Usage::

    from callrec import FeatherClient

    with FeatherClient() as feather:  # reads FEATHER_API_KEY
        url = feather.recording_url("call_123")
"""

# ruff: noqa: E402 - __getattr__ must exist before the imports below: ._client imports __version__.

# __version__ is pyproject.toml's [project] version, read from the installed distribution's metadata on
# first use (so `import callrec` need not pay for importlib.metadata). Vendored copies cannot ask (there
# the callrec distribution is absent or another copy), so scripts/vendor.py writes it into the next line.
_VENDORED_VERSION: str | None = None
__version__: str


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    version = _VENDORED_VERSION
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version("callrec")
        except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
            version = "0+unknown"
    globals()["__version__"] = version
    return version


from ._budget import RateStats
from ._client import AsyncFeatherClient, AsyncSiroClient, FeatherClient, SiroClient
from ._destinations import ExportStatus, LeaseInfo, ShardStatus, VerifyProblem, VerifyReport, status, verify
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CallrecError,
    DownloadError,
    ExportLockedError,
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
from ._progress import ExportProgress, ProgressSnapshot
from ._results import BulkItem, DownloadResult, ExportSummary
from ._signed_url import SignedUrl
from ._validate import Leg

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
    "ExportLockedError",
    "ExportProgress",
    "ExportStatus",
    "ExportSummary",
    "FeatherClient",
    "InternalServerError",
    "LeaseInfo",
    "Leg",
    "Link",
    "MissingCredentialsError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgressSnapshot",
    "RateLimitError",
    "RateStats",
    "RecordingUnavailableError",
    "ServiceUnavailableError",
    "ShardStatus",
    "SignedUrl",
    "SiroClient",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "VerifyProblem",
    "VerifyReport",
    "__version__",
    "status",
    "verify",
]

# Show public names as callrec.X rather than callrec._module.X (as httpx does).
for _name in __all__:
    _obj = globals().get(_name)  # __version__ may not be read yet
    if getattr(_obj, "__module__", "").startswith("callrec._"):
        _obj.__module__ = "callrec"
del _name, _obj
