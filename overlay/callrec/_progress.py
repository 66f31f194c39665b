"""How far a bulk run (or ``verify``) has got: one set of counters that the progress bar, the CLI's status lines, a
caller's own poll and OpenTelemetry all read, so that no two of them can disagree.

Usage::

    progress = callrec.ExportProgress()
    threading.Thread(target=lambda: feather.download_many(ids, "s3://b/p/", progress=progress)).start()
    print(progress.snapshot().line())   # any time, from any thread
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ._budget import RateStats
from ._results import BulkItem, ExportSummary

__all__ = ["ExportProgress", "ProgressSnapshot"]

_MIB = float(1 << 20)


@attrs.frozen
class ProgressSnapshot:
    """The counters at one moment.

    Attributes:
        done: items finished (downloaded + skipped + failed); total: all of them, or None when not known (``export``
            over a generator).
        downloaded, skipped, failed: items by outcome; bytes: bytes written by this run.
        elapsed: seconds since the run started; api_rate: API requests/s over the last second; throttled: 429/503
            answers so far (storage's included); eta: seconds left at the rate so far (None without a total).
    """

    done: int
    total: int | None
    downloaded: int
    skipped: int
    failed: int
    bytes: int
    elapsed: float
    api_rate: float
    throttled: int
    checking: bool = False  # ``verify``: skipped counts entries that match, failed those that do not

    @property
    def mib_per_s(self) -> float:
        return self.bytes / _MIB / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if self.total is None or self.done == 0 or self.elapsed <= 0:
            return None
        return max(self.total - self.done, 0) * self.elapsed / self.done

    def line(self) -> str:
        """One status line: ``412/1000 done (41%): downloaded 400, skipped 10, failed 2; 3.1 req/s, throttled 0,
        1.2 MiB/s; elapsed 2m13s, eta 3m10s``. No id, no URL: nothing secret."""
        if self.total is None:
            head = f"{self.done} done"
        else:
            share = 100.0 * self.done / self.total if self.total else 100.0
            head = f"{self.done}/{self.total} done ({share:.0f}%)"
        eta = "" if self.eta is None else f", eta {_duration(self.eta)}"
        if self.checking:
            head = head.replace(" done", " checked")
            return f"{head}: ok {self.skipped}, problems {self.failed}; elapsed {_duration(self.elapsed)}{eta}"
        return (
            f"{head}: downloaded {self.downloaded}, skipped {self.skipped}, failed {self.failed}; "
            f"{self.api_rate:.1f} req/s, throttled {self.throttled}, {self.mib_per_s:.1f} MiB/s; "
            f"elapsed {_duration(self.elapsed)}{eta}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON fields of a status line (``--log-format json``) and of ``--json``'s summary."""
        return {
            "done": self.done,
            "total": self.total,
            "downloaded": self.downloaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "api_rate": round(self.api_rate, 3),
            "throttled": self.throttled,
            "mib_per_s": round(self.mib_per_s, 3),
            "elapsed": round(self.elapsed, 3),
            "eta": None if self.eta is None else round(self.eta, 1),
        }


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"


class ExportProgress:
    """Counters a bulk run updates as its items finish; thread-safe, poll :meth:`snapshot` from anywhere.

    Pass one to ``download_many(..., progress=)``, ``export(..., progress=)`` or ``verify(..., progress=)``; the
    run sets ``total`` when it knows it and connects the client's request counters (``rate_stats``).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._stats: Callable[[], RateStats] | None = None
        self.total: int | None = None
        self._counts = {"downloaded": 0, "skipped": 0, "failed": 0}
        self._bytes = 0
        self._checking = False

    def start(self, total: int | None, stats: Callable[[], RateStats] | None) -> None:
        """Called by the run as it begins: the clock starts now and the counts from zero (a ``total`` the caller
        set is kept when the run cannot know it)."""
        with self._lock:
            self._started = self._clock()
            self._counts = dict.fromkeys(self._counts, 0)
            self._bytes = 0
            self.total = total if total is not None else self.total
            self._stats = stats

    def item(self, item: BulkItem) -> None:
        """Count one finished item."""
        with self._lock:
            self._counts[item.status] += 1
            if item.status == "downloaded" and item.result is not None:
                self._bytes += item.result.bytes

    def checked(self, ok: bool) -> None:
        """Count one entry ``verify`` checked (as skipped when it matches, failed when it does not)."""
        with self._lock:
            self._checking = True
            self._counts["skipped" if ok else "failed"] += 1

    def summary(self) -> ExportSummary:
        """The counts as ``export`` returns them."""
        with self._lock:
            counts, nbytes = dict(self._counts), self._bytes
        return ExportSummary(counts["downloaded"], counts["skipped"], counts["failed"], nbytes)

    def snapshot(self) -> ProgressSnapshot:
        stats = self._stats() if self._stats is not None else None
        with self._lock:
            counts, nbytes, total, started = dict(self._counts), self._bytes, self.total, self._started
            checking = self._checking
        return ProgressSnapshot(
            done=sum(counts.values()),
            total=total,
            downloaded=counts["downloaded"],
            skipped=counts["skipped"],
            failed=counts["failed"],
            bytes=nbytes,
            elapsed=max(self._clock() - started, 0.0),
            api_rate=stats.rate if stats is not None else 0.0,
            throttled=stats.throttled if stats is not None else 0,
            checking=checking,
        )
