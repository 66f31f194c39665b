"""2: async bulk URL minting at concurrency 32: the SDK against stock httpx and raw aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import callrec
import httpx

from ._common import run_concurrently

Runner = Callable[[Mapping[str, str], int, int], Coroutine[Any, Any, float]]


def _feather(info: Mapping[str, str]) -> tuple[str, str]:
    """(recording-url endpoint, API key) of the fake Feather API."""
    return f"{info['FEATHER_BASE_URL']}/api/v1/agent-calls/call_demo/recording-url", info.get("FEATHER_API_KEY", "k")


async def sdk(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """callrec.AsyncFeatherClient with its default transport."""
    async with callrec.AsyncFeatherClient(info["FEATHER_API_KEY"], base_url=info["FEATHER_BASE_URL"]) as client:
        await client.recording_url("call_demo")  # connect outside the timing
        return await run_concurrently(lambda _i: client.recording_url("call_demo"), total, concurrency)


async def sdk_siro(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """callrec.AsyncSiroClient (a POST per URL) with its default transport."""
    async with callrec.AsyncSiroClient(info["SIRO_AUTH_TOKEN"], base_url=info["SIRO_BASE_URL"]) as client:
        await client.recording_url("rec_demo")
        return await run_concurrently(lambda _i: client.recording_url("rec_demo"), total, concurrency)


async def sdk_native(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """callrec.AsyncFeatherClient on a stock httpx.AsyncClient passed as http_client (the opt-out)."""
    async with (
        httpx.AsyncClient() as http,
        callrec.AsyncFeatherClient(info["FEATHER_API_KEY"], base_url=info["FEATHER_BASE_URL"], http_client=http) as c,
    ):
        await c.recording_url("call_demo")
        return await run_concurrently(lambda _i: c.recording_url("call_demo"), total, concurrency)


async def _httpx_get_json(http: httpx.AsyncClient, url: str, total: int, concurrency: int) -> float:
    async def call(_i: int) -> None:
        (await http.get(url)).raise_for_status().json()

    await call(0)
    return await run_concurrently(call, total, concurrency)


async def stock_httpx(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """httpx.AsyncClient().get(...).json(), httpx's own transport."""
    url, key = _feather(info)
    async with httpx.AsyncClient(headers={"X-API-Key": key}) as http:
        return await _httpx_get_json(http, url, total, concurrency)


async def httpx_aiohttp(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """httpx.AsyncClient on httpx-aiohttp's AiohttpTransport."""
    from httpx_aiohttp import AiohttpTransport

    url, key = _feather(info)
    async with httpx.AsyncClient(headers={"X-API-Key": key}, transport=AiohttpTransport()) as http:
        return await _httpx_get_json(http, url, total, concurrency)


async def httpx_callrec_transport(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """httpx.AsyncClient on callrec's own aiohttp transport (what the SDK uses), without the SDK."""
    from callrec._transport import AiohttpTransport

    url, key = _feather(info)
    async with httpx.AsyncClient(headers={"X-API-Key": key}, transport=AiohttpTransport()) as http:
        return await _httpx_get_json(http, url, total, concurrency)


async def raw_aiohttp(info: Mapping[str, str], total: int, concurrency: int) -> float:
    """aiohttp.ClientSession().get(...).json()."""
    import aiohttp

    url, key = _feather(info)
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as session:

        async def call(_i: int) -> None:
            async with session.get(url) as response:
                response.raise_for_status()
                await response.json()

        await call(0)
        return await run_concurrently(call, total, concurrency)


RUNNERS: dict[str, Runner] = {
    "stock_httpx": stock_httpx,
    "sdk": sdk,
    "sdk_siro": sdk_siro,
    "sdk_native": sdk_native,
    "httpx_aiohttp": httpx_aiohttp,
    "httpx_callrec_transport": httpx_callrec_transport,
    "raw_aiohttp": raw_aiohttp,
}


def measure(name: str, info: Mapping[str, str], total: int, concurrency: int) -> float:
    """Calls per second for one runner, in a fresh event loop."""
    return asyncio.run(RUNNERS[name](info, total, concurrency))
