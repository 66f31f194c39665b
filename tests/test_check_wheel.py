"""scripts/check_wheel.py: what a wheel, an sdist and their metadata must and must not hold.

The full build-install-run check runs in CI (`make check-wheel`); these are its rules on file lists.
"""

from __future__ import annotations

import check_wheel
import pytest

GOOD_WHEEL = [
    *check_wheel.REQUIRED,
    "callrec/_client.py",
    "callrec/testing/_server.py",
    "feather_api/models/__init__.py",
    "callrec-0.1.0.dist-info/METADATA",
    "callrec-0.1.0.dist-info/RECORD",
]
GOOD_METADATA = """\
Metadata-Version: 2.4
Name: callrec
Requires-Dist: attrs>=23.1
Requires-Dist: httpx<0.29,>=0.28
Provides-Extra: aiohttp
Requires-Dist: aiohttp<4,>=3.10; extra == 'aiohttp'
Provides-Extra: cli
Requires-Dist: click>=8.1; extra == 'cli'
Requires-Dist: rich>=13; extra == 'cli'
Provides-Extra: cloud
Requires-Dist: obstore<0.13,>=0.12; extra == 'cloud'
Provides-Extra: testing
Requires-Dist: openapi-core<0.24,>=0.23; extra == 'testing'
Requires-Dist: pyyaml>=6.0; extra == 'testing'
"""
GOOD_ENTRY_POINTS = """\
[console_scripts]
callrec = callrec._cli:main

[pytest11]
callrec = callrec.testing._plugin
"""


def test_a_complete_wheel_has_no_problems() -> None:
    assert check_wheel.wheel_problems(GOOD_WHEEL) == []


@pytest.mark.parametrize("needed", check_wheel.REQUIRED)
def test_a_wheel_missing_a_required_file_is_refused(needed: str) -> None:
    names = [n for n in GOOD_WHEEL if n != needed]
    assert check_wheel.wheel_problems(names) == [f"missing {needed}"]


@pytest.mark.parametrize(
    "extra",
    [
        "tests/test_cli.py",
        "scripts/demo.py",
        "conftest.py",
        "benchmarks/suite.py",
        "callrec/__pycache__/_client.cpython-311.pyc",
        "feather_api/.ruff_cache/CACHEDIR.TAG",
        "callrec/_client.pyc",
    ],
)
def test_a_wheel_with_files_from_outside_the_packages_is_refused(extra: str) -> None:
    problems = check_wheel.wheel_problems([*GOOD_WHEEL, extra])
    assert len(problems) == 1
    assert extra in problems[0]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("callrec-0.1.0/tests/test_cli.py", False),
        ("callrec-0.1.0/scripts/demo.py", False),
        ("callrec-0.1.0/overlay/callrec/__init__.py", False),
        ("callrec-0.1.0/.venv-3.13/bin/python", True),
        ("callrec-0.1.0/.venv/pyvenv.cfg", True),
        ("callrec-0.1.0/dist/callrec-0.1.0.tar.gz", True),
        ("callrec-0.1.0/overlay/callrec/__pycache__/x.pyc", True),
    ],
)
def test_sdist_rules(name: str, bad: bool) -> None:
    assert bool(check_wheel.sdist_problems([name])) == bad


def test_good_metadata_has_no_problems() -> None:
    assert check_wheel.metadata_problems(GOOD_METADATA, GOOD_ENTRY_POINTS) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("aiohttp<4,>=3.10; extra == 'aiohttp'", "aiohttp<4,>=3.10", "aiohttp must come only with the 'aiohttp' extra"),
        ("click>=8.1; extra == 'cli'", "click>=8.1; extra == 'testing'", "click must come only with the 'cli' extra"),
        ("Provides-Extra: aiohttp\n", "", "no extra 'aiohttp'"),
        (
            "obstore<0.13,>=0.12; extra == 'cloud'",
            "obstore<0.13,>=0.12",
            "obstore must come only with the 'cloud' extra",
        ),
        ("Provides-Extra: cloud\n", "", "no extra 'cloud'"),
    ],
)
def test_metadata_that_pulls_an_extra_in_unconditionally_is_refused(old: str, new: str, problem: str) -> None:
    problems = check_wheel.metadata_problems(GOOD_METADATA.replace(old, new), GOOD_ENTRY_POINTS)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_metadata_without_the_console_script_or_pytest_plugin_is_refused() -> None:
    problems = check_wheel.metadata_problems(GOOD_METADATA, "[console_scripts]\n")
    assert len(problems) == 2
