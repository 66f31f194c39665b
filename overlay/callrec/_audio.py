"""Recognising audio: by content type (for file extensions) and by magic bytes (to refuse error pages)."""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "extension_for", "looks_like_audio"]

#: Bytes needed to recognise every format below.
SNIFF_BYTES = 12

_EXTENSIONS = {
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/m4a": "m4a",
    "audio/aac": "m4a",
    "video/mp4": "m4a",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "application/ogg": "ogg",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}
#: Every extension a download can get (from the content type or the magic bytes), "bin" aside.
EXTENSIONS = frozenset({*_EXTENSIONS.values(), "wav", "m4a", "mp3", "ogg", "webm", "flac"})


def extension_for(content_type: str | None, head: bytes = b"") -> str:
    """File extension for a content type, falling back to the magic bytes, then "bin"."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _EXTENSIONS:
        return _EXTENSIONS[mime]
    return sniff_extension(head) or "bin"


def sniff_extension(head: bytes) -> str | None:
    """The extension the first bytes announce, or None if they are not a known audio format."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:4] == b"fLaC":
        return "flac"
    return None


def looks_like_audio(head: bytes) -> bool:
    """True when the first bytes are a known audio container (an XML/HTML error page is not)."""
    return sniff_extension(head) is not None
