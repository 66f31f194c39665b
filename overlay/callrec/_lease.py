"""The lease of a bulk run in a bucket, as a policy with no I/O: when it is valid, when to renew, whose it is.

One run per prefix and shard holds ``.callrec/<shard>/lease.json``. What decides things here, and why:

- **Whose it is: a random token in the body.** A write the store applied but answered 5xx is retried by the
  client and then refused (412: the ETag moved, or the object now exists). Reading the lease back and finding our
  own token says the write was ours: we hold it. Without the token the run called its own lease someone else's and
  left it behind, blocking the prefix for a whole lease.
- **Whether another run's lease expired: the store's clock, never ours.** Expiry is the lease object's
  ``Last-Modified`` plus the ``ttl`` in its body, compared with the time *on the store* now (the ``Last-Modified``
  of a probe object written just then). A machine whose clock is ten minutes ahead no longer takes over a live lease.
  ``Last-Modified`` has one-second resolution: :data:`CLOCK_RESOLUTION` is added before a lease counts as expired.
- **Whether our own lease still holds: our monotonic clock.** A renewal is a conditional write; once it succeeds,
  the lease is ours until ``ttl`` after the moment the write was *sent* (the store stamped it no earlier). Past
  ``valid_until`` (that moment + ``ttl`` - ``margin``) the run commits nothing more and raises
  ``ExportLockedError``, whatever made the renewals fail (403, 500, a timeout, a partition): by then another run
  may lawfully take the lease over. ``margin`` is a sixth of ``ttl``, so another run's clock probe, a renewal in
  flight and the one-second resolution all fit inside it.
- **When to renew:** every third of ``ttl`` after the last success; after a failure, again after a fifteenth of
  ``ttl`` (at least 0.1 s), so two or three attempts fit before ``valid_until``.

The I/O around it (obstore puts with ETag, or ETag and generation on GCS) is ``_destinations.objects.Lease``.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import attrs

__all__ = ["CLOCK_RESOLUTION", "LEASE_SECONDS", "Holder", "LeaseClock", "expires_at", "new_token"]

#: How long a run's lease holds without renewal: the longest a crashed run keeps its prefix and shard locked.
LEASE_SECONDS = 600.0
#: ``Last-Modified`` is an HTTP date: whole seconds. A lease is expired only this long after it looks it.
CLOCK_RESOLUTION = 1.0
#: The shortest lease callrec accepts (tests and short jobs): the renewal schedule needs room.
MIN_LEASE_SECONDS = 1.0


def new_token() -> str:
    """A run's token: 128 random bits, in the lease body and nowhere else."""
    return secrets.token_hex(16)


@attrs.frozen
class Holder:
    """What a lease's body says: the run's token, who it is (host:pid, for messages) and its ``ttl``."""

    token: str
    owner: str
    ttl: float

    def body(self, renewal: int = 0) -> bytes:
        return json.dumps(
            {"token": self.token, "owner": self.owner, "ttl": self.ttl, "renewal": renewal}, sort_keys=True
        ).encode()

    @classmethod
    def parse(cls, raw: bytes, default_ttl: float) -> Holder | None:
        """The holder in a lease body; None when it is not one (then it is judged with ``default_ttl``)."""
        try:
            data: Any = json.loads(raw)
            ttl = float(data.get("ttl", default_ttl))
            if not ttl > 0:  # nan, 0, negative: a lease that says nothing useful lasts the default
                ttl = default_ttl
            # callrec 0.x wrote no token (and its expiry on its own clock, which is ignored): nobody's token.
            return cls(token=str(data.get("token", "")), owner=str(data.get("owner", "unknown")), ttl=ttl)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def expires_at(holder: Holder | None, last_modified: datetime, default_ttl: float) -> datetime:
    """When a lease object written at ``last_modified`` (store clock) expires, on the store's clock."""
    ttl = holder.ttl if holder is not None else default_ttl
    return last_modified + timedelta(seconds=ttl + CLOCK_RESOLUTION)


@attrs.define
class LeaseClock:
    """Our own lease's validity and renewal schedule, on a monotonic clock the caller reads.

    Usage: ``clock = LeaseClock(ttl, sent_at)``; after each successful write ``clock.written(sent_at)``; after a
    failed one ``clock.failed(now)``; ``clock.valid(now)`` before each commit; sleep until ``clock.next_attempt``.
    """

    ttl: float
    sent_at: float
    next_attempt: float = 0.0
    failures: int = 0

    def __attrs_post_init__(self) -> None:
        self.written(self.sent_at)

    @property
    def margin(self) -> float:
        return self.ttl / 6

    @property
    def valid_until(self) -> float:
        return self.sent_at + self.ttl - self.margin

    def valid(self, now: float) -> bool:
        return now < self.valid_until

    def written(self, sent_at: float) -> None:
        """A write of the lease that was sent at ``sent_at`` succeeded (or was found to be ours)."""
        self.sent_at = max(self.sent_at, sent_at)
        self.failures = 0
        self.next_attempt = self.sent_at + self.ttl / 3

    def failed(self, now: float) -> None:
        """A renewal failed for a reason that does not say the lease is gone (5xx, 403, a timeout)."""
        self.failures += 1
        self.next_attempt = min(now + max(self.ttl / 15, 0.1), self.valid_until)
