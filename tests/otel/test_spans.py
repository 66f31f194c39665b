"""The span tree the drivers produce through callrec._otel, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio

import callrec
import pytest
from callrec import _otel
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from . import scenario
from .conftest import Telemetry


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def test_a_download_is_a_span_with_mint_transfer_and_commit_children_and_a_resign_event(telemetry: Telemetry) -> None:
    scenario.download(scenario.GOOD_ID, fail=False)

    spans = {s.name: s for s in telemetry.spans()}
    assert list(spans) == [_otel.MINT, _otel.TRANSFER, _otel.COMMIT, _otel.DOWNLOAD]
    download = spans[_otel.DOWNLOAD]
    assert download.parent is None
    for child in (_otel.MINT, _otel.TRANSFER, _otel.COMMIT):
        assert _parent(spans[child]) == _id(download)
    assert dict(download.attributes or {}) == {
        "callrec.vendor": "feather",
        "callrec.leg": "main",
        "callrec.bytes": scenario.BYTES,
        "callrec.url_refreshes": 1,
        "callrec.item.status": "downloaded",
    }
    assert dict(spans[_otel.MINT].attributes or {}) == {"server.address": "api.feather.example"}
    assert dict(spans[_otel.TRANSFER].attributes or {}) == {"server.address": "storage.example.com"}
    (resign,) = spans[_otel.TRANSFER].events
    assert resign.name == _otel.RESIGN
    assert dict(resign.attributes or {}) == {"callrec.url_refreshes": 1, "http.response.status_code": 403}
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.values())
    scope = download.instrumentation_scope
    assert scope is not None and (scope.name, scope.version) == ("callrec", callrec.__version__)


def test_a_bulk_run_nests_each_download_and_keeps_a_failure_on_its_own_item(telemetry: Telemetry) -> None:
    scenario.bulk_run()

    run = telemetry.span(_otel.DOWNLOAD_MANY)
    downloads = [s for s in telemetry.spans() if s.name == _otel.DOWNLOAD]
    assert [_parent(d) for d in downloads] == [_id(run), _id(run)]
    assert run.status.status_code is StatusCode.UNSET  # the failure was caught per item
    assert dict(run.attributes or {}) == {"callrec.vendor": "feather", "callrec.items": 2, "callrec.concurrency": 4}

    good, bad = downloads
    assert good.status.status_code is StatusCode.UNSET
    assert bad.status.status_code is StatusCode.ERROR
    assert (bad.attributes or {})["error.type"] == "callrec.DownloadError"
    failed_transfer = [s for s in telemetry.spans() if s.name == _otel.TRANSFER and _parent(s) == _id(bad)]
    assert [s.status.status_code for s in failed_transfer] == [StatusCode.ERROR]
    assert [s.name for s in telemetry.spans() if _parent(s) == _id(bad)] == [_otel.MINT, _otel.TRANSFER]  # no commit


def test_an_exception_is_recorded_once_where_it_escapes_first_with_its_text_scrubbed(telemetry: Telemetry) -> None:
    with pytest.raises(callrec.DownloadError):
        scenario.download(scenario.BAD_ID, fail=True)

    transfer, download = telemetry.span(_otel.TRANSFER), telemetry.span(_otel.DOWNLOAD)
    (event,) = transfer.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "callrec.DownloadError"
    message = attributes["exception.message"]
    assert message == (
        "storage answered 403 for https://storage.example.com/<path>?<redacted> (recording <recording_id>)"
        " after Authorization: Bearer <redacted>"
    )
    assert transfer.status.description == message
    stacktrace = str(attributes["exception.stacktrace"])
    assert "callrec.DownloadError: " + message in stacktrace
    assert scenario.SIGNATURE not in stacktrace and scenario.BAD_ID not in stacktrace

    # The outer span says it failed and how, but does not record the same exception again.
    assert download.events == ()
    assert download.status.status_code is StatusCode.ERROR
    assert download.status.description is None
    assert (download.attributes or {})["error.type"] == "callrec.DownloadError"


def test_a_builtin_exception_has_its_bare_name_as_error_type(telemetry: Telemetry) -> None:
    with pytest.raises(ValueError, match="bad"), _otel.span(_otel.COMMIT):
        raise ValueError("bad")
    assert (telemetry.span(_otel.COMMIT).attributes or {})["error.type"] == "ValueError"


def test_cancellation_ends_the_span_without_an_error(telemetry: Telemetry) -> None:
    with pytest.raises(asyncio.CancelledError), _otel.span(_otel.TRANSFER):
        raise asyncio.CancelledError
    transfer = telemetry.span(_otel.TRANSFER)
    assert transfer.status.status_code is StatusCode.UNSET
    assert transfer.events == ()
    assert transfer.end_time is not None


def test_ids_are_absent_by_default_and_present_once_opted_in(telemetry: Telemetry) -> None:
    scenario.download(scenario.GOOD_ID, fail=False)
    assert _otel.RECORDING_ID not in (telemetry.span(_otel.DOWNLOAD).attributes or {})
    telemetry.exporter.clear()

    _otel.set_record_ids(True)
    scenario.download(scenario.GOOD_ID, fail=False)
    with pytest.raises(callrec.DownloadError):
        scenario.download(scenario.BAD_ID, fail=True)

    good, bad = [s for s in telemetry.spans() if s.name == _otel.DOWNLOAD]
    assert (good.attributes or {})[_otel.RECORDING_ID] == scenario.GOOD_ID
    assert (bad.attributes or {})[_otel.RECORDING_ID] == scenario.BAD_ID
    (event,) = [e for s in telemetry.spans() for e in s.events if e.name == "exception"]
    message = str((event.attributes or {})["exception.message"])
    assert f"/recordings/{scenario.BAD_ID}/main.mp3?<redacted>" in message  # the id, never the query
    assert scenario.SIGNATURE not in message


async def test_async_tasks_nest_under_the_span_they_were_started_in(telemetry: Telemetry) -> None:
    async def one(rid: str) -> None:
        with _otel.span(_otel.DOWNLOAD, {"callrec.vendor": "siro"}):
            await asyncio.sleep(0)
            with _otel.span(_otel.TRANSFER):
                await asyncio.sleep(0)

    with _otel.span(_otel.DOWNLOAD_MANY):
        await asyncio.gather(one("a"), one("b"), one("c"))

    run = telemetry.span(_otel.DOWNLOAD_MANY)
    downloads = {_id(s) for s in telemetry.spans() if s.name == _otel.DOWNLOAD}
    assert {_parent(s) for s in telemetry.spans() if s.name == _otel.DOWNLOAD} == {_id(run)}
    assert {_parent(s) for s in telemetry.spans() if s.name == _otel.TRANSFER} == downloads
    assert len(downloads) == 3


def test_span_handle_event_and_set_reach_that_span_not_the_current_one(telemetry: Telemetry) -> None:
    with _otel.span(_otel.DOWNLOAD) as download, _otel.span(_otel.TRANSFER):
        download.event(_otel.RESIGN, {"callrec.url_refreshes": 2})
        download.set({"callrec.bytes": 5, "url.full": "https://x.example/a?sig=1"})
    assert [e.name for e in telemetry.span(_otel.DOWNLOAD).events] == [_otel.RESIGN]
    assert telemetry.span(_otel.TRANSFER).events == ()
    assert dict(telemetry.span(_otel.DOWNLOAD).attributes or {}) == {"callrec.bytes": 5}


def test_enabled_says_whether_spans_record(telemetry: Telemetry) -> None:
    assert _otel.enabled()
    assert _otel.span(_otel.DOWNLOAD) is not _otel.NULL_SPAN
