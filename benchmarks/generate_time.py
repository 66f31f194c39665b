"""6: wall time of the generator run behind `make generate` (reported only)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def measure() -> float:
    """Seconds for scripts/generate.py (both vendors), writing into a temporary folder, not generated/."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(_ROOT / "scripts" / "generate.py"), "--out", out],
            check=True,
            capture_output=True,
            cwd=_ROOT,
        )
        return time.perf_counter() - started
