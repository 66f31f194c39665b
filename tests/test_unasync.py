"""_sync_client.py is exactly what scripts/unasync.py writes from _async_client.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import unasync

ROOT = Path(__file__).resolve().parent.parent


def test_committed_sync_driver_is_the_unasync_of_the_async_one() -> None:
    proc = subprocess.run(
        [sys.executable, ROOT / "scripts" / "unasync.py", "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unasync_turns_async_constructs_into_sync_ones() -> None:
    source = (
        '"""The async driver: x."""\n'
        "from . import _io_async as _io\n"
        "class AsyncClientBase:\n"
        "    async def f(self, c: httpx.AsyncClient) -> AsyncLink:\n"
        "        async with c.stream() as r:\n"
        "            async for chunk in r.aiter_raw():\n"
        "                await _io.sleep(1)\n"
        "        await r.aclose()\n"
    )
    out = unasync.unasync(source)
    code = out.split('"""', 2)[2]  # after the header comment and the docstring
    assert "async" not in code.lower() and "await" not in code
    for expected in (
        "from . import _io_sync as _io",
        "class SyncClientBase:",
        "def f(self, c: httpx.Client) -> Link:",
        "with c.stream() as r:",
        "for chunk in r.iter_raw():",
        "_io.sleep(1)",
        "r.close()",
    ):
        assert expected in out, expected


def test_a_hand_edit_of_the_sync_driver_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "_sync_client.py"
    target.write_text(unasync.unasync(unasync.SOURCE.read_text()) + "# a decision only sync has\n")
    monkeypatch.setattr(unasync, "TARGET", target)
    assert unasync.main(["--check"]) == 1
    target.write_text(unasync.unasync(unasync.SOURCE.read_text()))
    assert unasync.main(["--check"]) == 0
