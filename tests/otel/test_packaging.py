"""opentelemetry-api comes only with the `otel` extra (scripts/check_wheel.py's rule, and pyproject.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import check_wheel

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = "callrec = callrec._cli:main\ncallrec = callrec.testing._plugin\n"
METADATA = """\
Metadata-Version: 2.4
Name: callrec
Provides-Extra: aiohttp
Provides-Extra: cli
Provides-Extra: cloud
Provides-Extra: testing
Provides-Extra: otel
Requires-Dist: opentelemetry-api<2,>=1.30{marker}
"""


def test_opentelemetry_api_is_allowed_with_the_otel_extra() -> None:
    assert check_wheel.metadata_problems(METADATA.format(marker="; extra == 'otel'"), ENTRY_POINTS) == []


def test_opentelemetry_api_pulled_in_unconditionally_is_refused() -> None:
    (problem,) = check_wheel.metadata_problems(METADATA.format(marker=""), ENTRY_POINTS)
    assert problem.startswith("opentelemetry-api must come only with the 'otel' extra")


def test_the_otel_extra_is_the_api_alone() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [r.split(">")[0] for r in project["optional-dependencies"]["otel"]] == ["opentelemetry-api"]
    assert not any("opentelemetry" in r for r in project["dependencies"])
