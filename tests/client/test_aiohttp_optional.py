"""aiohttp is the opt-in extra `callrec[aiohttp]`: the async clients use it when it imports, httpx's transport otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from callrec import AsyncFeatherClient, AsyncSiroClient
from callrec._transport import AiohttpTransport, async_transport
from callrec.testing import FakeServer


@pytest.fixture
def no_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import aiohttp` fail as it does when the extra is not installed."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)


def test_async_transport_is_aiohttp_when_it_imports() -> None:
    assert isinstance(async_transport(), AiohttpTransport)


@pytest.mark.usefixtures("no_aiohttp")
def test_async_transport_is_httpx_own_without_aiohttp() -> None:
    assert async_transport() is None


@pytest.mark.usefixtures("no_aiohttp")
async def test_async_clients_mint_and_download_without_aiohttp(callrec_fake: FakeServer, tmp_path: Path) -> None:
    callrec_fake.add_recording("feather", "call_1")
    callrec_fake.add_recording("siro", "rec_1")
    env = callrec_fake.env()
    async with (
        AsyncFeatherClient(env["FEATHER_API_KEY"], base_url=env["FEATHER_BASE_URL"]) as feather,
        AsyncSiroClient(env["SIRO_AUTH_TOKEN"], base_url=env["SIRO_BASE_URL"]) as siro,
    ):
        assert (await feather.recording_url("call_1")).recording_id == "call_1"
        assert (await siro.recording_url("rec_1")).recording_id == "rec_1"
        result = await feather.download("call_1", tmp_path)
    assert result.path.stat().st_size == result.bytes > 0
