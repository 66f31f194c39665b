"""pytest plugin: the `callrec_fake` and `callrec_env` fixtures.

Registered as the `callrec` pytest11 entry point, so installing callrec is enough.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import FakeServer


@pytest.fixture
def callrec_fake() -> Iterator[FakeServer]:
    """A started `FakeServer`, stopped after the test."""
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def callrec_env(callrec_fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """`callrec_fake`, with FEATHER_*/SIRO_* environment variables pointing at it."""
    for name, value in callrec_fake.env().items():
        monkeypatch.setenv(name, value)
    return callrec_fake
