"""``download_many(dest=...)`` (``dest_dir=`` deprecated), ``export()`` over any iterable with counts only, and
``lease_seconds`` checked before anything is sent: sync and async, into a folder, on the fake server."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import callrec
import pytest
from callrec.testing import FakeServer
from fake_clients import afeather, feather


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def call(fake: FakeServer, mode: str, method: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        with feather(fake) as client:
            return getattr(client, method)(*args, **kw)

    async def run() -> Any:
        async with afeather(fake) as client:
            return await getattr(client, method)(*args, **kw)

    return asyncio.run(run())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
def test_dest_dir_still_works_with_a_deprecation_warning_that_points_at_the_caller(
    fake: FakeServer, tmp_path: Path, mode: str
) -> None:
    fake.add_recording("feather", "a")
    with pytest.warns(DeprecationWarning, match="dest_dir") as caught:
        items = call(fake, mode, "download_many", ["a"], dest_dir=tmp_path)
    assert [i.status for i in items] == ["downloaded"]
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [i.status for i in call(fake, mode, "download_many", ["a"], dest=tmp_path)] == ["skipped"]
    with pytest.raises(TypeError, match="once"):
        call(fake, mode, "download_many", ["a"], tmp_path, dest_dir=tmp_path)
    with pytest.raises(TypeError, match="needs a destination"):
        call(fake, mode, "download_many", ["a"])


@MODES
def test_export_reads_a_generator_as_it_goes_and_returns_counts_only(
    fake: FakeServer, tmp_path: Path, mode: str
) -> None:
    for i in range(30):
        fake.add_recording("feather", f"g{i}")
    read: list[str] = []

    def ids() -> Iterator[str]:
        for i in range(32):
            rid = "g0" if i == 31 else f"g{i}"  # a repeat at the end
            read.append(rid)
            yield "missing" if i == 30 else rid

    seen: list[callrec.BulkItem] = []
    summary = call(fake, mode, "export", ids(), tmp_path, concurrency=4, on_item=seen.append)
    assert summary == callrec.ExportSummary(downloaded=30, skipped=0, failed=1, bytes=summary.bytes)
    assert summary.total == 31 and not summary.ok and summary.bytes > 0
    assert len(seen) == 31 and len(read) == 32
    again = call(fake, mode, "export", (f"g{i}" for i in range(30)), tmp_path)
    assert (again.downloaded, again.skipped, again.failed) == (0, 30, 0)


@MODES
@pytest.mark.parametrize("bad", [0, 0.5, -1, float("nan"), float("inf"), True, "600"])
def test_lease_seconds_is_checked_before_anything_is_sent(
    fake: FakeServer, tmp_path: Path, mode: str, bad: Any
) -> None:
    fake.add_recording("feather", "a")
    with pytest.raises(ValueError, match="lease_seconds"):
        call(fake, mode, "download_many", ["a"], tmp_path, lease_seconds=bad)
    assert fake.requests == []
