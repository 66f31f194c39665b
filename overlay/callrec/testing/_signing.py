"""S3-presigned-style URLs for the fake storage: mint, verify, expire."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qs, urlencode

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class Verdict(Enum):
    """What storage makes of a signed URL."""

    VALID = "valid"
    MISSING = "missing"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A minted URL and the moment (epoch seconds) storage stops honouring it."""

    url: str
    expires_at: float


class Signer:
    """Mints and checks signed storage URLs with a per-server secret.

    Every minted URL gets a sequence number so `expire_all` can expire exactly
    the URLs minted before it, which one-second `X-Amz-Date` resolution cannot.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._secret = secrets.token_bytes(32)
        self._clock = clock
        self._lock = threading.Lock()
        self._sequence = 0
        self._expired_upto = 0
        self._minted: dict[str, int] = {}

    def _signature(self, path: str, amz_date: str, expires: str) -> str:
        message = f"{path}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def mint(self, origin: str, path: str, ttl: float) -> SignedUrl:
        """Sign `path` (already percent-encoded) on `origin` for `ttl` seconds."""
        issued = math.floor(self._clock())
        amz_date = time.strftime(_DATE_FORMAT, time.gmtime(issued))
        expires = str(max(1, math.ceil(ttl)))
        signature = self._signature(path, amz_date, expires)
        with self._lock:
            self._sequence += 1
            self._minted[signature] = self._sequence
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"FAKEACCESSKEY/{amz_date[:8]}/us-east-1/s3/aws4_request",
                "X-Amz-Date": amz_date,
                "X-Amz-Expires": expires,
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": signature,
            }
        )
        return SignedUrl(f"{origin}{path}?{query}", issued + int(expires))

    def expire_all(self) -> None:
        """From now on every URL minted so far is expired."""
        with self._lock:
            self._expired_upto = self._sequence

    def verify(self, path: str, query: str) -> Verdict:
        """Check a storage request's path and raw query string."""
        params = parse_qs(query)
        try:
            amz_date = params["X-Amz-Date"][0]
            expires = params["X-Amz-Expires"][0]
            signature = params["X-Amz-Signature"][0]
        except KeyError:
            return Verdict.MISSING
        if not hmac.compare_digest(signature, self._signature(path, amz_date, expires)):
            return Verdict.BAD_SIGNATURE
        issued = calendar.timegm(time.strptime(amz_date, _DATE_FORMAT))
        if self._clock() >= issued + int(expires):
            return Verdict.EXPIRED
        with self._lock:
            sequence = self._minted.get(signature)
            if sequence is not None and sequence <= self._expired_upto:
                return Verdict.EXPIRED
        return Verdict.VALID
