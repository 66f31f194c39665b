"""Signed URLs stay out of every log line, httpcore's DEBUG traces included."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from callrec import DownloadError, _io_async
from callrec._transport import async_storage_transport
from callrec.testing import FakeServer, faults

from .conftest import Mode, async_client, sync_client


def download(fake: FakeServer, mode: Mode, dest: Path) -> None:
    if mode == "sync":
        with sync_client(fake, "feather") as client:
            client.download("call_1", dest)
        return

    async def run() -> None:
        async with async_client(fake, "feather") as client:
            await client.download("call_1", dest)

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_storage_redirect_location_is_redacted_in_httpcore_debug_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, mode: Mode
) -> None:
    # Async storage goes through aiohttp when it is installed; httpcore's traces are the subject here.
    monkeypatch.setattr(_io_async, "storage_transport", async_storage_transport)
    caplog.set_level(logging.DEBUG)
    with FakeServer() as fake:
        fake.add_recording("feather", "call_1")
        fake.storage.queue(faults.RedirectTo("elsewhere"))
        with pytest.raises(DownloadError, match="redirected"):
            download(fake, mode, tmp_path)
        signature = fake.requests_to("storage")[0].params["X-Amz-Signature"]
    httpcore_lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpcore")]
    assert any("Location" in line for line in httpcore_lines), "httpcore logged the redirect's headers"
    assert not [line for line in httpcore_lines if "X-Amz-" in line or signature in line]
    assert signature not in caplog.text
