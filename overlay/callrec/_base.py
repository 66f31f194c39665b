"""What the four clients share apart from I/O: configuration, copies, reprs, the generated client, input checks."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar, Self

import httpx

from . import _otel
from ._budget import Budgets, RateStats
from ._config import NOT_GIVEN, ClientConfig
from ._destinations import DestinationLike, ExportRun, Target, plan
from ._download import DEFAULT_DOWNLOAD_DEADLINE
from ._engine import ApiCall
from ._redact import install_log_redaction
from ._storage import Storage
from ._validate import check_recording_id, check_seconds
from ._vendors import Vendor

__all__ = ["BaseClient"]


class BaseClient:
    """Configuration and everything decided before the first byte moves."""

    _vendor: ClassVar[Vendor]
    _http: Any
    _storage: Storage[Any]

    def _setup(
        self,
        config: ClientConfig,
        http: Any,
        *,
        owns_http: bool,
        storage: Storage[Any],
        owns_storage: bool,
        budgets: Budgets | None = None,
    ) -> None:
        self._config = config
        # One budget per origin for the client and all its copies (see _budget): the API's, each storage host's.
        self._budgets = budgets or Budgets(f"{config.vendor.name} API", rate_limit=config.rate_limit)
        self._http = http
        self._owns_http = owns_http  # an http_client the user gave stays open: it is theirs
        self._storage = storage
        self._owns_storage = owns_storage  # the original client; with_options() copies borrow
        self._generated: Any = None
        self._lock = threading.Lock()
        install_log_redaction()

    # -- settings (read-only; with_options() makes a copy with others) ----

    @property
    def base_url(self) -> httpx.URL:
        return self._config.base_url

    @property
    def timeout(self) -> httpx.Timeout:
        return self._config.timeout

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    @property
    def deadline(self) -> float:
        return self._config.deadline

    @property
    def rate_limit(self) -> float | None:
        """Requests per second this client never exceeds towards the API (None: found from throttling)."""
        return self._config.rate_limit

    def _telemetry(self, recording_id: str, leg: str | None) -> dict[str, str]:
        """A span's attributes: vendor and leg; the id only reaches telemetry when the user opted in (_otel)."""
        attributes = {"callrec.vendor": self._vendor.name, _otel.RECORDING_ID: recording_id}
        if leg is not None:
            attributes["callrec.leg"] = leg
        return attributes

    def _count_response(self, status: int) -> None:
        _otel.record_api_request(self._vendor.name)
        if status in (429, 503):
            _otel.record_throttle(self._vendor.name)

    def rate_stats(self) -> RateStats:
        """The API request budget now: the sending rate, the pacing rate, throttled answers (storage's included)."""
        api = self._budgets.api.stats()
        return RateStats(rate=api.rate, limit=api.limit, throttled=self._budgets.throttled(), requests=api.requests)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self.base_url)!r}, max_retries={self.max_retries})"

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout = NOT_GIVEN,
        max_retries: int = NOT_GIVEN,
        deadline: float = NOT_GIVEN,
        rate_limit: float | None = NOT_GIVEN,
    ) -> Self:
        """A copy with other timeout/retry/deadline/rate settings, sharing this client's pools and request budget.

        The copy borrows the pools: closing it closes nothing, and it stops working
        once this client is closed. Its requests draw from this client's request
        budget (a throttle seen by either slows both); ``rate_limit`` caps the copy's
        own requests on top of that.

        Usage: ``client.with_options(timeout=5, max_retries=0).recording_url("id")``
        """
        config = self._config.evolve(timeout=timeout, max_retries=max_retries, deadline=deadline, rate_limit=rate_limit)
        budgets = self._budgets if rate_limit is NOT_GIVEN else self._budgets.limited(config.rate_limit)
        clone = type(self).__new__(type(self))
        clone._setup(config, self._http, owns_http=False, storage=self._storage, owns_storage=False, budgets=budgets)
        return clone

    # -- calls ------------------------------------------------------------

    def _api_call(
        self, recording_id: str, leg: str | None, deadline: float | None = None, *, patient: bool = False
    ) -> ApiCall:
        return ApiCall(
            self._config,
            check_recording_id(recording_id),
            leg,
            deadline=deadline,
            budget=self._budgets.api,
            patient=patient,
        )

    def _plan_download(
        self,
        recording_id: str,
        dest: DestinationLike | ExportRun,
        leg: str | None,
        deadline: float | None,
    ) -> tuple[Target, float]:
        """Check inputs and the destination before any request: (where it goes, its deadline as a monotonic time).

        The drivers then ask the target whether it would replace something (``refuse_existing``, off the event
        loop: for a bucket that is a request).
        """
        recording_id = check_recording_id(recording_id)
        seconds = DEFAULT_DOWNLOAD_DEADLINE if deadline is None else check_seconds("deadline", deadline)
        if isinstance(dest, ExportRun):
            target = dest.target(self._vendor.name, recording_id, leg)
        else:
            target = plan(dest, self._vendor.name, recording_id, leg)
        return target, time.monotonic() + seconds

    def _generated_client(self) -> Any:
        """The generated AuthenticatedClient on this client's own connection pool (built once)."""
        with self._lock:
            if self._generated is None:
                from importlib import import_module

                cls = import_module(self._vendor.package).AuthenticatedClient
                auth = self._vendor.auth_header.lower()
                headers = {k: v for k, v in self._config.headers.items() if k.lower() != auth}
                generated = cls(
                    base_url=str(self.base_url),
                    token=self._config.credential,
                    auth_header_name=self._vendor.auth_header,
                    prefix="",
                    headers=headers,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
                # The same httpx client callrec sends with: the user's http_client (proxies,
                # CA bundle, mTLS, transport) when one was given. prepare() adds the base URL,
                # callrec's headers and the credential to each generated operation's request.
                if isinstance(self._http, httpx.Client):
                    generated.set_httpx_client(self._http)
                else:
                    generated.set_async_httpx_client(self._http)
                self._generated = generated
            return self._generated
