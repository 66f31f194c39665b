"""A bulk run as the drivers will report it, through callrec._otel only: one recording downloaded after a
re-sign and a throttled mint, one failing with a signed URL, an API key and its id in the error text."""

from __future__ import annotations

import callrec
from callrec import _otel

API_KEY = "fk_live_SECRETKEY1234567890"
API_URL = "https://api.feather.example/api/v1/agent-calls/{rid}/recording-url"
SIGNATURE = "deadbeefcafebabe0123456789"
SIGNED_URL = (
    "https://storage.example.com/recordings/{rid}/main.mp3"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101"
    f"&X-Amz-Signature={SIGNATURE}"
)
GOOD_ID = "call_7f3a9c21"
BAD_ID = "call_0b5e4d88"
IDS = (GOOD_ID, BAD_ID)
BYTES = 48_000


def download(rid: str, *, fail: bool) -> None:
    """One recording: mint (throttled once), transfer (re-signed once, or failing), commit."""
    signed = SIGNED_URL.format(rid=rid)
    attributes: dict[str, _otel.AttributeValue] = {
        "callrec.vendor": "feather",
        "callrec.leg": "main",
        _otel.RECORDING_ID: rid,
        "url.full": signed,  # a driver's slip: not on the allow-list, never exported
    }
    with _otel.span(_otel.DOWNLOAD, attributes) as download_span:
        with _otel.span(_otel.MINT, {"server.address": _otel.server_address(API_URL)}):
            _otel.record_api_request("feather")
            _otel.record_throttle("feather")
            _otel.record_api_request("feather")
        with _otel.span(_otel.TRANSFER, {"server.address": _otel.server_address(signed)}):
            if fail:
                raise callrec.DownloadError(
                    f"storage answered 403 for {signed} (recording {rid}) after Authorization: Bearer {API_KEY}"
                )
            _otel.event(
                _otel.RESIGN, {"callrec.url_refreshes": 1, "http.response.status_code": 403, "url.full": signed}
            )
        with _otel.span(_otel.COMMIT, {"callrec.destination.kind": "file"}):
            pass
        download_span.set({"callrec.bytes": BYTES, "callrec.url_refreshes": 1, "callrec.item.status": "downloaded"})


def bulk_run() -> None:
    """download_many over both ids: the failure is caught per item, as download_many does."""
    with _otel.span(_otel.DOWNLOAD_MANY, {"callrec.vendor": "feather", "callrec.items": 2, "callrec.concurrency": 4}):
        download(GOOD_ID, fail=False)
        _otel.record_item("downloaded", "feather", BYTES, 0.4)
        try:
            download(BAD_ID, fail=True)
        except callrec.DownloadError:
            _otel.record_item("failed", "feather", 0, 0.2)
