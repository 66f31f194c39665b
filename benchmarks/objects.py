"""8: exporting into object storage. download_many into a moto bucket against a plain loop (download, then
obstore.put), the same moto and concurrency; moto's own put rate alone; peak RSS of one big recording into it.

moto's S3 server runs in its own process (`python -m moto.server`), so its CPU and memory are not the client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import callrec
import httpx
from callrec._transport import async_transport

BUCKET = "callrec-bench"
_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto() -> Iterator[dict[str, str]]:
    """moto's S3 server on loopback in a child process, one bucket made; yields the environment that reaches it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()  # noqa: S310 (loopback)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        env = {**_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
        reset(endpoint)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset(endpoint: str) -> None:
    """Empty moto (``/moto-api/reset``) and make the bucket again: each run starts from the same state (moto keeps
    every object in memory, and a run after 600 MiB of earlier ones measured up to 30% slower)."""
    for url, method in ((f"{endpoint}/moto-api/reset", "POST"), (f"{endpoint}/{BUCKET}", "PUT")):
        urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30).close()  # noqa: S310


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _store(prefix: str) -> object:
    from obstore.store import S3Store

    return S3Store(BUCKET, prefix=prefix, client_options={"allow_http": True})


async def sdk_many(base: str, key: str, ids: list[str], prefix: str, concurrency: int) -> float:
    async with callrec.AsyncFeatherClient(key, base_url=base) as client:
        started = time.perf_counter()
        items = await client.download_many(ids, f"s3://{BUCKET}/{prefix}/", concurrency=concurrency)
        elapsed = time.perf_counter() - started
    failed = [item for item in items if item.status != "downloaded"]
    if failed:
        raise RuntimeError(f"{len(failed)} exports failed, e.g. {failed[0]}")
    return len(ids) / elapsed


async def plain_many(
    base: str, key: str, ids: list[str], prefix: str, concurrency: int, *, manifest: bool = False
) -> float:
    """The baseline a user would write: gather + Semaphore, mint, GET the body, obstore.put_async it.

    With ``manifest``, it also puts one small JSON object per item, as the SDK's manifest does (a second PUT).
    """
    import obstore

    store = _store(prefix)
    gate = asyncio.Semaphore(concurrency)
    async with (
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, transport=async_transport()) as api,
        httpx.AsyncClient() as storage,
    ):

        async def one(rid: str) -> None:
            async with gate:
                minted = (await api.get(f"/api/v1/agent-calls/{rid}/recording-url")).raise_for_status().json()
                body = (await storage.get(minted["url"])).raise_for_status().content
                await obstore.put_async(store, f"{rid}.wav", body)  # type: ignore[arg-type]
                if manifest:
                    entry = json.dumps({"recording_id": rid, "bytes": len(body)}).encode()
                    await obstore.put_async(store, f".callrec/items/{rid}.json", entry)  # type: ignore[arg-type]

        started = time.perf_counter()
        await asyncio.gather(*(one(rid) for rid in ids))
        return len(ids) / (time.perf_counter() - started)


async def put_only(count: int, size: int, prefix: str, concurrency: int) -> float:
    """moto's ceiling: obstore.put_async of `count` objects of `size` bytes, nothing downloaded."""
    import obstore

    store = _store(prefix)
    body = b"\0" * size
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await obstore.put_async(store, f"{index}.bin", body)  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


@dataclass(frozen=True)
class Rounds:
    sdk: list[float]
    plain: list[float]
    with_manifest: list[float]
    ceiling: list[float]


def many(base: str, key: str, ids: list[str], size: int, concurrency: int, rounds: int) -> Rounds:
    """Interleaved rounds (plain loop, SDK, loop + manifest, put only), each on an emptied moto; a warm-up first."""
    figures = Rounds([], [], [], [])
    endpoint = os.environ["AWS_ENDPOINT_URL"]

    def fresh(run: Any) -> float:
        reset(endpoint)
        return float(asyncio.run(run))

    for round_ in range(rounds + 1):
        plain = fresh(plain_many(base, key, ids, "plain", concurrency))
        sdk = fresh(sdk_many(base, key, ids, "sdk", concurrency))
        with_manifest = fresh(plain_many(base, key, ids, "manifest", concurrency, manifest=True))
        ceiling = fresh(put_only(len(ids), size, "put", concurrency))
        if round_:
            figures.plain.append(plain)
            figures.sdk.append(sdk)
            figures.with_manifest.append(with_manifest)
            figures.ceiling.append(ceiling)
    return figures


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


def big_into_bucket(base: str, key: str, rid: str, env: dict[str, str]) -> tuple[float, float]:
    """(bytes/s, peak RSS MiB) of FeatherClient.download of one recording into the bucket, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, base, key, rid, f"s3://{BUCKET}/big/"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["bytes"] / data["seconds"], data["peak_rss_kib"] / 1024
