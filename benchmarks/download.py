"""4: downloads. One big recording against `curl -o`; many small ones against a plain asyncio loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import callrec
import httpx
from callrec._transport import async_transport

#: A WAV header, so the SDK's audio sniffing accepts the bytes.
_WAV_HEAD = (
    b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data"
)


def write_recording(path: Path, size: int) -> Path:
    """A `size`-byte WAV-looking file (header, then zeros), written in 16 MiB blocks."""
    block = 16 << 20
    with path.open("wb") as file:
        file.write(_WAV_HEAD)
        left = size - len(_WAV_HEAD)
        zeros = bytes(min(block, max(left, 0)))
        while left > 0:
            file.write(zeros[: min(block, left)])
            left -= block
    return path


# Runs in a child process so its peak RSS is the download's alone.
_CHILD = """
import json, sys, time, callrec
base, key, rid, dest = sys.argv[1:5]
with callrec.FeatherClient(key, base_url=base) as client:
    started = time.perf_counter()
    result = client.download(rid, dest, overwrite=True)
    elapsed = time.perf_counter() - started
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "bytes": result.bytes, "peak_rss_kib": hwm}))
"""


def sdk_single(base: str, key: str, recording_id: str, dest: Path) -> tuple[float, float]:
    """(bytes per second, peak RSS in MiB) of FeatherClient.download in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, base, key, recording_id, str(dest)], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["bytes"] / data["seconds"], data["peak_rss_kib"] / 1024


def curl_single(url: str, dest: Path) -> float | None:
    """Bytes per second of `curl -o` on the same signed URL (None when curl is not installed)."""
    curl = shutil.which("curl")
    if curl is None:
        return None
    started = time.perf_counter()
    subprocess.run([curl, "-sS", "--fail", "-o", str(dest), url], check=True)
    elapsed = time.perf_counter() - started
    return dest.stat().st_size / elapsed


def signed_url(base: str, key: str, recording_id: str) -> str:
    with callrec.FeatherClient(key, base_url=base) as client:
        return client.recording_url(recording_id).url


async def _sdk_many(base: str, key: str, ids: list[str], dest: Path, concurrency: int) -> float:
    async with callrec.AsyncFeatherClient(key, base_url=base) as client:
        started = time.perf_counter()
        items = await client.download_many(ids, dest, concurrency=concurrency, overwrite=True)
        elapsed = time.perf_counter() - started
    failed = [item for item in items if item.status != "downloaded"]
    if failed:
        raise RuntimeError(f"{len(failed)} downloads failed, e.g. {failed[0]}")
    return len(ids) / elapsed


async def _plain_many(base: str, key: str, ids: list[str], dest: Path, concurrency: int) -> float:
    """The baseline: gather + Semaphore, mint with a GET, stream each signed URL to a file, the SDK's transports."""
    gate = asyncio.Semaphore(concurrency)
    async with (
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, transport=async_transport()) as api,
        httpx.AsyncClient() as storage,  # the SDK's storage client is on httpx's own transport too
    ):

        async def one(rid: str) -> None:
            async with gate:
                minted = (await api.get(f"/api/v1/agent-calls/{rid}/recording-url")).raise_for_status().json()
                async with storage.stream("GET", minted["url"]) as response:
                    response.raise_for_status()
                    with (dest / f"{rid}.wav").open("wb") as file:
                        async for chunk in response.aiter_raw():
                            file.write(chunk)

        started = time.perf_counter()
        await asyncio.gather(*(one(rid) for rid in ids))
        return len(ids) / (time.perf_counter() - started)


def many(base: str, key: str, ids: list[str], folder: Path, concurrency: int) -> tuple[float, float]:
    """(SDK recordings/s, plain-loop recordings/s), each into its own empty folder."""
    sdk_dir, plain_dir = folder / "sdk", folder / "plain"
    for path in (sdk_dir, plain_dir):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    plain = asyncio.run(_plain_many(base, key, ids, plain_dir, concurrency))
    sdk = asyncio.run(_sdk_many(base, key, ids, sdk_dir, concurrency))
    return sdk, plain


def recording_args(folder: Path, big_size: int, small_count: int, small_size: int) -> list[str]:
    """--recording arguments for the fake server: `big` plus `small_0...`, and the files behind them."""
    os.makedirs(folder, exist_ok=True)
    big = write_recording(folder / "big.wav", big_size)
    small = write_recording(folder / "small.wav", small_size)
    return [f"feather:big={big}", *(f"feather:small_{i}={small}" for i in range(small_count))]
