"""A smoke run of every benchmark with tiny sizes, so `make bench` cannot rot (the figures are not checked)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.__main__ import main  # the repo root is not on sys.path under every runner
from benchmarks.suite import QUICK, SUITE, render, write_results

_UNITS = {"µs/call", "calls/s", "MiB/s", "MiB", "recordings/s", "ms", "s", "requests/recording", "requests", "KiB/id"}


@pytest.mark.parametrize("name", sorted(SUITE))
def test_each_benchmark_returns_sane_rows_at_tiny_sizes(name: str, tmp_path: Path) -> None:
    rows = SUITE[name](QUICK, tmp_path, lambda _text: None)
    assert rows
    for row in rows:
        assert row.benchmark[0].isdigit() and row.subject and row.unit in _UNITS, row
        assert math.isfinite(row.value) and row.value > 0, row
        if row.baseline is not None:
            assert math.isfinite(row.baseline) and row.baseline > 0, row
            assert row.ratio is not None and row.ratio > 0, row
        assert (row.met is None) == (row.target == ""), row
    assert render(rows).count("\n| ") == len(rows) + 1  # the header row plus one per result


def test_results_file_keeps_the_notes_below_the_marker(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    rows = SUITE["generate"](QUICK, tmp_path, lambda _text: None)
    write_results(out, rows)
    out.write_text(out.read_text() + "\n## Before and after\n\nkept\n")
    write_results(out, rows)
    text = out.read_text()
    assert "| 6 make generate |" in text and text.count("## Before and after") == 1
    assert "cores, Python" in text


def test_command_line_quick_run_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "RESULTS.md"
    assert main(["--quick", "--only", "generate", "--out", str(out)]) == 0
    assert "| benchmark |" in capsys.readouterr().out
    assert out.exists()
