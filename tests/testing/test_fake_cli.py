"""`python -m callrec.testing` serves in the foreground and prints its URLs and credentials."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

import httpx
import pytest


def _run(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "callrec.testing", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read_env(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    env: dict[str, str] = {}
    while "CALLREC_FAKE_READY" not in env:
        line = process.stdout.readline()
        assert line, f"server exited early: {process.stderr.read() if process.stderr else ''}"
        key, _, value = line.rstrip("\n").partition("=")
        env[key] = value
    return env


def _stop(process: subprocess.Popen[str], sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=10)
    finally:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = _run(["--no-validate"])
    try:
        yield process, _read_env(process)
    finally:
        if process.poll() is None:
            _stop(process, signal.SIGTERM)


def test_prints_env_lines_and_serves_the_demo_recordings(server: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    _, env = server

    assert env["FEATHER_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["CALLREC_FAKE_STORAGE_ORIGIN"].startswith("http://127.0.0.2:")
    assert set(env) >= {"FEATHER_API_KEY", "SIRO_AUTH_TOKEN", "SIRO_BASE_URL", "CALLREC_FAKE_ELSEWHERE_ORIGIN"}
    with httpx.Client() as http:
        signed = http.get(
            f"{env['FEATHER_BASE_URL']}/api/v1/agent-calls/call_demo/recording-url",
            headers={"X-API-Key": env["FEATHER_API_KEY"]},
        ).json()["url"]
        assert http.get(signed).content[:4] == b"RIFF"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_cleanly_on_signal(server: tuple[subprocess.Popen[str], dict[str, str]], sig: int) -> None:
    process, _ = server

    assert _stop(process, sig) == 0


def _free_port_run(count: int) -> int:
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        try:
            for offset, host in enumerate(["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"][:count]):
                with socket.socket() as check:
                    check.bind((host, base + offset))
        except OSError:
            continue
        return base
    pytest.skip("no run of free ports")


def test_port_option_puts_siro_and_storage_on_the_next_ports() -> None:
    port = _free_port_run(4)
    process = _run(["--no-validate", "--port", str(port), "--recording", "siro:rec_x", "--siro-token", "tok"])
    try:
        env = _read_env(process)
    finally:
        returncode = _stop(process, signal.SIGTERM)

    assert env["FEATHER_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert env["SIRO_BASE_URL"] == f"http://127.0.0.1:{port + 1}"
    assert env["CALLREC_FAKE_STORAGE_ORIGIN"] == f"http://127.0.0.2:{port + 2}"
    assert env["SIRO_AUTH_TOKEN"] == "tok"
    assert returncode == 0
