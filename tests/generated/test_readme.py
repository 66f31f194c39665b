"""The docs' "Using the generated clients directly" examples, run as written against the fake APIs (with their
outputs checked; tests/docs runs every example of every page too)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from callrec.testing import FakeServer, faults

README = Path(__file__).resolve().parents[2] / "docs" / "generated-clients.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})  # noqa: S102
    return out.getvalue()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.add_recording("feather", "call_123", leg="supervisor")
        server.add_recording("siro", "rec_456")
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def test_readme_has_one_example_per_vendor() -> None:
    examples = _examples()
    assert len(examples) == 2
    assert "feather_api" in examples[0] and "siro_api" in examples[1]
    assert "asyncio_detailed" in examples[1]  # one sync, one async


@pytest.mark.parametrize(("index", "vendor"), [(0, "feather"), (1, "siro")])
def test_readme_example_gets_a_url(fake: FakeServer, index: int, vendor: str) -> None:
    printed = _run(_examples()[index])
    assert printed.startswith("expires at "), printed
    (request,) = fake.requests_to(vendor)  # type: ignore[arg-type]
    secret = fake.feather_api_key if vendor == "feather" else fake.siro_token
    assert secret in (request.header("X-API-Key"), request.header("x-siro-auth-token"))


@pytest.mark.parametrize(("index", "vendor"), [(0, "feather"), (1, "siro")])
def test_readme_example_reports_a_520_without_raising(fake: FakeServer, index: int, vendor: str) -> None:
    getattr(fake, vendor).queue(faults.Status(520, body="origin down", content_type="text/plain"))
    assert _run(_examples()[index]) == "failed: 520 None\n"
