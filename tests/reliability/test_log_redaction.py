"""Signed URLs stay out of every log line, httpcore's DEBUG traces included."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from callrec import DownloadError, _io_async, _io_sync
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
@pytest.mark.parametrize("transport", ["callrec", "httpx"])
def test_storage_redirect_location_is_redacted_in_debug_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, mode: Mode, transport: str
) -> None:
    # "httpx": storage on httpx's own transport, as under a proxy; httpcore's DEBUG traces then carry the headers.
    if transport == "httpx":
        monkeypatch.setattr(_io_sync, "storage_transport", lambda: None)
        monkeypatch.setattr(_io_async, "storage_transport", lambda: None)
    caplog.set_level(logging.DEBUG)
    with FakeServer() as fake:
        fake.add_recording("feather", "call_1")
        fake.storage.queue(faults.RedirectTo("elsewhere"))
        with pytest.raises(DownloadError, match="redirected"):
            download(fake, mode, tmp_path)
        signature = fake.requests_to("storage")[0].params["X-Amz-Signature"]
    httpcore_lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpcore")]
    redirects = [line for line in httpcore_lines if "Location" in line]
    # callrec's storage transport logs nothing; httpx's logs the redirect's headers, redacted.
    assert bool(redirects) is (transport == "httpx")
    assert not [line for line in httpcore_lines if "X-Amz-" in line or signature in line]
    assert signature not in caplog.text
