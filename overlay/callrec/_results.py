"""What downloads produce: :class:`DownloadResult` (one recording) and :class:`BulkItem` (one id of a bulk run).

Plain values with no behaviour, so that the transfer (``_download``), the bulk rules (``_bulk``), the manifest
(``_manifest``) and the destinations (``_destinations``) can all name them without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

__all__ = ["BulkItem", "DownloadResult", "ExportSummary", "Status"]

Status = Literal["downloaded", "skipped", "failed"]


@attrs.frozen
class DownloadResult:
    """What a download produced.

    Attributes:
        path: the final file (None for an object in a store).
        bytes: its size.
        content_type: the storage host's Content-Type.
        sha256: hex digest of the recording.
        url_refreshes: how many fresh URLs had to be minted (expiry before or during the transfer).
        location: where it is: the file's path, or the object's URL (``s3://bucket/prefix/name.mp3``).
        e_tag: the object's ETag in a store (None for a file); a rerun skips it only while the listing agrees.
    """

    path: Path | None
    bytes: int
    content_type: str | None
    sha256: str
    url_refreshes: int
    location: str = attrs.field(kw_only=True)
    e_tag: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class BulkItem:
    """The outcome for one id: downloaded, skipped (already complete), or failed with ``error``."""

    recording_id: str
    leg: str | None
    status: Status
    result: DownloadResult | None = None
    error: Exception | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@attrs.frozen
class ExportSummary:
    """What an ``export`` did, in counts (it keeps no item): downloaded, skipped, failed, and bytes written."""

    downloaded: int
    skipped: int
    failed: int
    bytes: int

    @property
    def total(self) -> int:
        return self.downloaded + self.skipped + self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0
