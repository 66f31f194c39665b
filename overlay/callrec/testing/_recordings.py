"""The recordings a fake server holds, keyed by vendor, id and leg, and by storage path."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal, TypeAlias
from urllib.parse import quote

Vendor: TypeAlias = Literal["feather", "siro"]
VENDORS: tuple[Vendor, ...] = ("feather", "siro")

_EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/flac": "flac",
}


@dataclass(frozen=True, slots=True)
class Recording:
    """One stored recording and the validators storage sends for it."""

    vendor: Vendor
    id: str
    leg: str
    data: bytes
    content_type: str
    path: str
    etag: str
    last_modified: str


def storage_path(vendor: str, recording_id: str, leg: str, content_type: str) -> str:
    """`/<vendor>/<id>/<leg>.<ext>`, the id percent-encoded as one segment."""
    extension = _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "bin")
    return f"/{vendor}/{quote(recording_id, safe='')}/{leg}.{extension}"


class Recordings:
    """Thread-safe registry: tests add from their thread, the server reads from its loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str, str], Recording] = {}
        self._by_path: dict[str, Recording] = {}

    def add(self, vendor: Vendor, recording_id: str, leg: str, data: bytes, content_type: str, now: float) -> Recording:
        path = storage_path(vendor, recording_id, leg, content_type)
        recording = Recording(
            vendor=vendor,
            id=recording_id,
            leg=leg,
            data=data,
            content_type=content_type,
            path=path,
            etag=f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            last_modified=formatdate(now, usegmt=True),
        )
        with self._lock:
            old = self._by_key.pop((vendor, recording_id, leg), None)
            if old is not None:
                self._by_path.pop(old.path, None)
            self._by_key[vendor, recording_id, leg] = recording
            self._by_path[path] = recording
        return recording

    def get(self, vendor: str, recording_id: str, leg: str) -> Recording | None:
        return self._by_key.get((vendor, recording_id, leg))

    def at_path(self, path: str) -> Recording | None:
        return self._by_path.get(path)
