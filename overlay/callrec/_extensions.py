"""The request and response extensions through which a download talks to callrec's storage transport.

Both sides need these names: ``_download`` and the clients put them on requests and read them from responses,
and ``_storage_http`` (the transport) honours and offers them. They live here, apart from either, so that the
transport does not import the module that builds it (``_transport``).
"""

from __future__ import annotations

__all__ = ["BODY_READER", "DEADLINE", "INTERRUPTIBLE", "MIN_FILL"]

#: The response extension through which callrec's storage transport offers the body's reader
#: (``_storage_http.Body``, with ``readinto``; async: ``_storage_http.AsyncBody``, which runs a reading loop on a
#: worker thread).
BODY_READER = "callrec_body_reader"
#: Storage request extension: the download's deadline (a ``time.monotonic()`` value), for every phase.
DEADLINE = "callrec_deadline"
#: Storage request extension: ``register(interrupt) -> unregister``, so a stopping sync bulk run can interrupt
#: the request (``_io_sync.interruptible``).
INTERRUPTIBLE = "callrec_interruptible"
#: A body reader's ``readinto`` returns once this much is in the buffer: the reader then hands over often and,
#: while the sink is full, hashes (FileSink.wait_for_room). Filling whole 1 MiB buffers instead took the 512 MiB
#: benchmark download from ~1,040 to ~580 MiB/s (``_download.read_body`` reads a rest that fits the buffer whole).
MIN_FILL = 64 * 1024
