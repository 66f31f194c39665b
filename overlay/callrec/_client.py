"""The public clients: FeatherClient, SiroClient and their async twins.

Each class writes out its public signature (IDEs read them) and hands over to
its driver. AsyncFeatherClient and AsyncSiroClient are written in
``_async_client.py``; FeatherClient and SiroClient are generated from them
into ``_sync_client.py``. How a policy difference between the flavours is
kept impossible to write by accident:

- Every decision lives once, in flavour-free code: the call engine
  (``_engine.ApiCall``: request, judging responses and exceptions, retry,
  backoff, deadline, logging), the transfer policy (``_download.Transfer``),
  the bulk rules (``_bulk``) and the shared checks (``_base``, ``_config``,
  ``_validate``).
- The drivers only move bytes and sleep, and the sync driver is not written
  by hand: ``scripts/unasync.py`` generates ``_sync_client.py`` from
  ``_async_client.py`` by token substitution (as httpcore does), and
  ``make check-generated`` and ``tests/test_unasync.py`` fail when the
  committed file differs from what the script writes. The only difference
  left is ``_io_async`` against ``_io_sync`` (sleep, deadline scope, threads,
  the bounded task runner).
- The public classes are unasync'd with their driver, so their signatures
  cannot drift either (``tests/test_exported_members.py`` also compares them).
"""

from __future__ import annotations

from ._async_client import AsyncFeatherClient, AsyncSiroClient
from ._sync_client import FeatherClient, SiroClient

__all__ = ["AsyncFeatherClient", "AsyncSiroClient", "FeatherClient", "SiroClient"]
