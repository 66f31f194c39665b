"""Loopback servers for the benchmarks, each in its own process so the client is what gets measured."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_READY = "CALLREC_FAKE_READY"
_START_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The benchmarks folder must be importable by the child (for the latency driver).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_HERE.parent), env.get("PYTHONPATH", "")) if p)
    return env


@contextmanager
def _child(argv: Sequence[str]) -> Iterator[dict[str, str]]:
    """Run `argv`, read KEY=value lines up to CALLREC_FAKE_READY=1, yield them, then stop the child."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        info: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            key, sep, value = line.strip().partition("=")
            if sep:
                info[key] = value
            if key == _READY:
                break
        if _READY not in info:
            raise RuntimeError(f"server {argv!r} exited before it was ready (status {proc.wait()})")
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def fake_server(recordings: Sequence[str] = (), latency: float = 0.0) -> Iterator[dict[str, str]]:
    """callrec.testing's FakeServer in a child process, validation and request recording off.

    With `latency`, a small driver runs the server with `fake.feather.always(faults.Latency(latency))`
    (latency is an in-process fault, so `python -m callrec.testing` cannot set it).
    """
    args = ["--no-validate", "--no-record"]
    for spec in recordings or ("feather:call_demo", "siro:rec_demo"):
        args += ["--recording", spec]
    if latency:
        argv = [sys.executable, "-m", "benchmarks._latency_server", "--latency", str(latency), *args]
    else:
        argv = [sys.executable, "-m", "callrec.testing", *args]
    with _child(argv) as info:
        yield info


@contextmanager
def raw_server() -> Iterator[dict[str, str]]:
    """A minimal asyncio HTTP/1.1 server answering every request with the same small JSON body."""
    with _child([sys.executable, "-m", "benchmarks._raw_server"]) as info:
        yield info


@contextmanager
def file_server(root: Path) -> Iterator[dict[str, str]]:
    """The sendfile storage and minimal Feather API of `_file_server`, serving the files in `root`."""
    with _child([sys.executable, "-m", "benchmarks._file_server", str(root)]) as info:
        yield info


@contextmanager
def forward_proxy() -> Iterator[dict[str, str]]:
    """A forward proxy on loopback (tests/forward_proxy.py) in its own process: PROXY_URL."""
    with _child([sys.executable, "-m", "benchmarks._forward_proxy"]) as info:
        yield info
