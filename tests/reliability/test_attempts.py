"""One attempt is one request on the wire: no transport resends behind the SDK's retry loop."""

from __future__ import annotations

import asyncio

import pytest
from callrec import APIConnectionError
from callrec.testing import FakeServer, faults

from .conftest import VendorName, async_client


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize(
    "fault", [faults.Reset(), faults.StallBeforeHeaders(0.02)], ids=["reset", "disconnect before headers"]
)
def test_async_client_with_no_retries_sends_exactly_one_request_when_the_connection_breaks(
    vendor: VendorName, fault: faults.Fault
) -> None:
    async def call(fake: FakeServer) -> None:
        async with async_client(fake, vendor, max_retries=0) as client:
            await client.recording_url("call_1")

    with FakeServer() as fake:
        fake.add_recording(vendor, "call_1")
        getattr(fake, vendor).always(fault)
        with pytest.raises(APIConnectionError):
            asyncio.run(call(fake))
        assert len(fake.requests_to(vendor)) == 1
