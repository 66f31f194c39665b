"""1: sync overhead of FeatherClient.recording_url against raw httpx.Client.get + json() on the same endpoint."""

from __future__ import annotations

import time

import callrec
import httpx


def measure(base: str, key: str, calls: int, rounds: int = 10) -> tuple[float, float]:
    """(SDK seconds per call, raw httpx seconds per call), interleaved in `rounds` blocks."""
    url = f"{base}/api/v1/agent-calls/call_demo/recording-url"
    per_round = max(1, calls // rounds)
    sdk_time = raw_time = 0.0
    with callrec.FeatherClient(key, base_url=base) as client, httpx.Client(headers={"X-API-Key": key}) as http:
        client.recording_url("call_demo")
        http.get(url).raise_for_status().json()
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(per_round):
                client.recording_url("call_demo")
            sdk_time += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(per_round):
                response = http.get(url)
                response.raise_for_status()
                response.json()
            raw_time += time.perf_counter() - started
    done = per_round * rounds
    return sdk_time / done, raw_time / done
