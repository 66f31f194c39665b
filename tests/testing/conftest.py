"""Fixtures for the callrec.testing tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from callrec.testing import FakeServer


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http
