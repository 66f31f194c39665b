"""5: import cost of `import callrec` against `import httpx`, from -X importtime in fresh interpreters."""

from __future__ import annotations

import statistics
import subprocess
import sys


def cumulative_us(module: str) -> int:
    """The cumulative microseconds -X importtime reports for `module` itself, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"; a top-level import has no indent.
        if not line.startswith("import time:"):
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if name.strip() == module and not name.startswith("  "):
            total += int(cumulative)
    if total == 0:
        raise RuntimeError(f"no importtime line for {module!r}")
    return total


def measure(runs: int) -> tuple[float, float]:
    """(median µs for callrec, median µs for httpx) over `runs` fresh interpreters each, interleaved."""
    callrec_us: list[int] = []
    httpx_us: list[int] = []
    for _ in range(runs):
        callrec_us.append(cumulative_us("callrec"))
        httpx_us.append(cumulative_us("httpx"))
    return statistics.median(callrec_us), statistics.median(httpx_us)


def eager_modules() -> list[str]:
    """Top-level modules `import callrec` loads (to spot heavy eager imports)."""
    code = "import sys, callrec; print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()
