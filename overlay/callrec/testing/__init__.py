"""callrec.testing: a local fake of the Feather AI and Siro APIs and their storage.

A real HTTP/1.1 server on loopback (like stripe-mock) with faults on demand:

    from callrec.testing import FakeServer, faults

    with FakeServer() as fake:
        fake.add_recording("feather", "call_123")
        fake.feather.queue(faults.Status(503, retry_after="1"))
        ...  # point the SDK at fake.env()

The pytest plugin provides the `callrec_fake` and `callrec_env` fixtures;
`python -m callrec.testing` runs the server in the foreground.
"""

from . import faults
from ._cli import main
from ._server import FakeOrigin, FakeServer, RecordedRequest

__all__ = ["FakeOrigin", "FakeServer", "RecordedRequest", "faults", "main"]

for _name in ("FakeOrigin", "FakeServer", "RecordedRequest", "main"):
    globals()[_name].__module__ = __name__
del _name
