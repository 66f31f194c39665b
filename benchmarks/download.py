"""4: downloads. One big recording against `curl -o`; many small ones against a plain asyncio loop.

Everything is served by `_file_server` (sendfile), so curl is limited by its own side, not by the server;
`curl -o /dev/null` against the same URL shows how much faster the server can go.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import callrec
import httpx
from callrec._transport import async_transport

#: A WAV header, so the SDK's audio sniffing accepts the bytes.
_WAV_HEAD = (
    b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data"
)


def write_recording(path: Path, size: int) -> Path:
    """A `size`-byte WAV-looking file (header, then a non-repeating pattern), written in 16 MiB blocks."""
    block = 16 << 20
    pattern = (bytes(range(256)) * (block // 256 + 1))[:block]
    with path.open("wb") as file:
        file.write(_WAV_HEAD)
        left = size - len(_WAV_HEAD)
        while left > 0:
            file.write(pattern[: min(block, left)])
            left -= block
    return path


def prepare(root: Path, big_size: int, small_count: int, small_size: int) -> list[str]:
    """Write `big.wav` and `small_0.wav`... (hard links of one file) into `root`; return the small ids."""
    root.mkdir(parents=True, exist_ok=True)
    write_recording(root / "big.wav", big_size)
    small = write_recording(root / "small.wav", small_size)
    ids = [f"small_{i}" for i in range(small_count)]
    for rid in ids:
        try:
            os.link(small, root / f"{rid}.wav")
        except OSError:
            shutil.copyfile(small, root / f"{rid}.wav")
    return ids


# Runs in a child process so its peak RSS is the download's alone.
_CHILD = """
import asyncio, json, sys, time, callrec
mode, base, key, rid, dest = sys.argv[1:6]
if mode == "sync":
    with callrec.FeatherClient(key, base_url=base) as client:
        started = time.perf_counter()
        result = client.download(rid, dest, overwrite=True)
        elapsed = time.perf_counter() - started
else:
    async def main():
        async with callrec.AsyncFeatherClient(key, base_url=base) as client:
            started = time.perf_counter()
            result = await client.download(rid, dest, overwrite=True)
            return result, time.perf_counter() - started
    result, elapsed = asyncio.run(main())
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "bytes": result.bytes, "peak_rss_kib": hwm}))
"""


@dataclass(frozen=True)
class Single:
    """One big download: bytes per second and the process's peak RSS in MiB."""

    rate: float
    peak_rss: float


def sdk_single(mode: str, base: str, key: str, recording_id: str, dest: Path, *, proxy: str | None = None) -> Single:
    """FeatherClient.download (mode "sync") or AsyncFeatherClient.download ("async") in a fresh process.

    With ``proxy``, the process has ``HTTP_PROXY`` set to it (its API and storage requests go through it)."""
    env = None
    if proxy is not None:
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "all_proxy")}
        env["HTTP_PROXY"] = proxy
    try:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, base, key, recording_id, str(dest)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    finally:
        dest.unlink(missing_ok=True)  # freed page cache is reused by the next run (see RESULTS.md)
    data = json.loads(out.strip().splitlines()[-1])
    return Single(data["bytes"] / data["seconds"], data["peak_rss_kib"] / 1024)


# The first download in a fresh process (callrec imported, not timed) and a second one on the same client: what
# setup the first pays (TLS context, pools, budgets). The baseline does the same two requests with httpx.Client.
_FIRST = """
import json, sys, time
mode, base, key, first, second, folder = sys.argv[1:7]
if mode == "sdk":
    import callrec
    client = callrec.FeatherClient(key, base_url=base)
    def fetch(rid, dest):
        client.download(rid, dest, overwrite=True)
else:
    import httpx
    client = httpx.Client()
    def fetch(rid, dest):
        url = client.get(f"{base}/api/v1/agent-calls/{rid}/recording-url", headers={"X-API-Key": key}).json()["url"]
        with client.stream("GET", url) as response, open(dest, "wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
times = []
for rid in (first, second):
    started = time.perf_counter()
    fetch(rid, f"{folder}/{mode}-{rid}.wav")
    times.append(time.perf_counter() - started)
client.close()
print(json.dumps(times))
"""


def first_download(
    mode: str, base: str, key: str, ids: tuple[str, str], folder: Path, *, bytecode: bool = True
) -> tuple[float, float]:
    """(first, second) download's seconds in a fresh process: mode "sdk" (FeatherClient) or "httpx" (the same two
    requests on one httpx.Client). Imports are not timed, but callrec imports what a download needs on first use.

    `bytecode`: modules load from cached bytecode, as from any installed package (written under `folder` by the
    first such run, whatever PYTHONDONTWRITEBYTECODE says); False: PYTHONDONTWRITEBYTECODE=1, as these
    machines set it, so a checkout's modules (no __pycache__ beside them) compile in each process; installed
    packages keep the bytecode pip wrote.
    """
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    out = subprocess.run(
        [sys.executable, "-c", _FIRST, mode, base, key, *ids, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    first, second = json.loads(out.strip().splitlines()[-1])
    return first, second


def curl_single(url: str, dest: Path | None, *, fsync: bool = False, proxy: str | None = None) -> float | None:
    """curl's own figure (`%{speed_download}`, bytes/s) for `curl -o dest` (None: /dev/null); None without curl.

    With `fsync`, the file is then fsynced and the rate is size / (curl's time_total + the fsync): what a
    durable curl download costs, as the SDK's is.
    """
    curl = shutil.which("curl")
    if curl is None:
        return None
    target = str(dest) if dest is not None else os.devnull
    try:
        out = subprocess.run(
            [
                curl,
                "-sS",
                "--fail",
                *(["-x", proxy] if proxy else ["--noproxy", "*"]),
                "-o",
                target,
                "-w",
                "%{speed_download} %{time_total} %{size_download}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        speed, total, size = (float(field) for field in out.split())
        if fsync and dest is not None:
            started = time.perf_counter()
            fd = os.open(dest, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return size / (total + time.perf_counter() - started)
    finally:
        if dest is not None:
            dest.unlink(missing_ok=True)
    return speed


def proxied(base: str, key: str, folder: Path, rounds: int) -> tuple[list[float], list[float]]:
    """The big download through a loopback forward proxy: (sync SDK rates, curl -o -x rates), interleaved."""
    from . import _servers

    sdk: list[float] = []
    curl: list[float] = []
    with _servers.forward_proxy() as info:
        proxy = info["PROXY_URL"]
        url = signed_url(base, key, "big")
        for _ in range(rounds):
            rate = curl_single(url, folder / "curl-proxy.wav", proxy=proxy)
            if rate is not None:
                curl.append(rate)
            sdk.append(sdk_single("sync", base, key, "big", folder / "sdk-proxy.wav", proxy=proxy).rate)
    return sdk, curl


def copy_rate(source: Path, dest: Path) -> float:
    """Bytes per second of a plain 1 MiB-block copy of `source` to a new file (no fsync): the local write side."""
    size = source.stat().st_size
    buffer = memoryview(bytearray(1 << 20))
    try:
        started = time.perf_counter()
        with source.open("rb", buffering=0) as src, dest.open("wb", buffering=0) as out:
            while count := src.readinto(buffer):
                out.write(buffer[:count])
        return size / (time.perf_counter() - started)
    finally:
        dest.unlink(missing_ok=True)


def signed_url(base: str, key: str, recording_id: str) -> str:
    with callrec.FeatherClient(key, base_url=base) as client:
        return client.recording_url(recording_id).url


def spread(values: list[float], scale: float = 1.0) -> str:
    """`min-max` of the runs behind a median, for the notes."""
    return f"{min(values) / scale:.0f}-{max(values) / scale:.0f}"


@dataclass(frozen=True)
class BigFigures:
    """Every round of the big download, bytes/s; curl lists are empty without curl."""

    curl_file: list[float]
    curl_null: list[float]
    curl_fsync: list[float]
    copy: list[float]
    sync: list[Single]
    async_: list[Single]


def big(base: str, key: str, source: Path, folder: Path, rounds: int, *, warm_up: bool) -> BigFigures:
    """Interleave curl -o (plain, to /dev/null, then fsynced), a local copy, the sync and async SDK, `rounds` times."""
    folder.mkdir(parents=True, exist_ok=True)
    url = signed_url(base, key, "big")
    if warm_up:  # untimed: the first large writes of a fresh VM fault in new memory (see RESULTS.md)
        curl_single(url, folder / "warm.wav")
        sdk_single("sync", base, key, "big", folder / "warm.wav")
    figures = BigFigures([], [], [], [], [], [])
    for _ in range(rounds):
        rate = curl_single(url, folder / "curl.wav")
        if rate is not None:
            figures.curl_file.append(rate)
            figures.curl_null.append(curl_single(url, None) or 0.0)
            figures.curl_fsync.append(curl_single(url, folder / "curl.wav", fsync=True) or 0.0)
        figures.copy.append(copy_rate(source, folder / "copy.wav"))
        figures.sync.append(sdk_single("sync", base, key, "big", folder / "sync.wav"))
        figures.async_.append(sdk_single("async", base, key, "big", folder / "async.wav"))
    return figures


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
    return await _loop_many(base, key, ids, dest, concurrency, durable=False)


async def _durable_many(base: str, key: str, ids: list[str], dest: Path, concurrency: int) -> float:
    """The same loop doing what the SDK must per file: sha256 of the body, fsync of the file and of the folder."""
    return await _loop_many(base, key, ids, dest, concurrency, durable=True)


async def _loop_many(base: str, key: str, ids: list[str], dest: Path, concurrency: int, *, durable: bool) -> float:
    gate = asyncio.Semaphore(concurrency)
    async with (
        httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, transport=async_transport()) as api,
        httpx.AsyncClient() as storage,  # httpx's own transport, as an SDK user without callrec would
    ):

        async def one(rid: str) -> None:
            async with gate:
                minted = (await api.get(f"/api/v1/agent-calls/{rid}/recording-url")).raise_for_status().json()
                async with storage.stream("GET", minted["url"]) as response:
                    response.raise_for_status()
                    digest = hashlib.sha256()
                    with (dest / f"{rid}.wav").open("wb") as file:
                        async for chunk in response.aiter_raw():
                            file.write(chunk)
                            if durable:
                                digest.update(chunk)
                        if durable:  # off the event loop, as the SDK does its commit
                            file.flush()
                            await asyncio.to_thread(_fsync_file_and_folder, file.fileno(), dest)

        started = time.perf_counter()
        await asyncio.gather(*(one(rid) for rid in ids))
        return len(ids) / (time.perf_counter() - started)


def _fsync_file_and_folder(fd: int, folder: Path) -> None:
    os.fsync(fd)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class Many:
    """recordings/s of each round: the SDK, the plain loop, and the loop doing the SDK's hashing and fsyncs."""

    sdk: list[float]
    plain: list[float]
    durable: list[float]


def many(
    base: str, key: str, ids: list[str], folder: Path, concurrency: int, rounds: int, *, warm_up: bool = True
) -> Many:
    """Each round: the plain loop, the SDK, the durable loop, one after the other, each into an empty folder.

    An untimed round first (``warm_up``): right after the 512 MiB downloads, whichever ran first paid for the
    memory they freed (this VM hands it back to the host; see RESULTS.md). ``os.sync()`` between runs: deleting
    the last run's fsynced files makes the filesystem discard their blocks (ext4 mounted with ``discard``), and
    the next run's fsyncs waited behind that: the SDK measured 200-212/s after the durable loop and 251-265/s
    without it in between, the loop that never fsyncs did not notice.
    """
    figures = Many([], [], [])
    target = folder / "many"
    for round_ in range(rounds + (1 if warm_up else 0)):
        for runner, rates in ((_plain_many, figures.plain), (_sdk_many, figures.sdk), (_durable_many, figures.durable)):
            shutil.rmtree(target, ignore_errors=True)
            os.sync()  # the last run's deletions (and their discards) are done before this one is timed
            target.mkdir(parents=True)
            rate = asyncio.run(runner(base, key, ids, target, concurrency))
            if round_ > 0 or not warm_up:
                rates.append(rate)
    shutil.rmtree(target, ignore_errors=True)
    return figures
