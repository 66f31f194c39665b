"""The metric values a bulk run leaves, read back from the SDK's in-memory metric reader."""

from __future__ import annotations

from callrec import _otel
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

from . import scenario
from .conftest import Telemetry

FEATHER = frozenset({("callrec.vendor", "feather")})


def _status(status: str) -> frozenset[tuple[str, object]]:
    return FEATHER | {("callrec.item.status", status)}


def _values(telemetry: Telemetry) -> dict[str, dict[frozenset[tuple[str, object]], float]]:
    values: dict[str, dict[frozenset[tuple[str, object]], float]] = {}
    for name, points in telemetry.points().items():
        for labels, point in points.items():
            values.setdefault(name, {})[labels] = point.count if isinstance(point, HistogramDataPoint) else point.value
    return values


def test_a_bulk_run_counts_items_bytes_requests_throttles_and_durations(telemetry: Telemetry) -> None:
    scenario.bulk_run()

    assert _values(telemetry) == {
        "callrec.items": {_status("downloaded"): 1, _status("failed"): 1},
        "callrec.bytes": {FEATHER: scenario.BYTES},
        "callrec.api.requests": {FEATHER: 4},
        "callrec.throttled": {FEATHER: 2},
        "callrec.download.duration": {_status("downloaded"): 1, _status("failed"): 1},
    }
    durations = telemetry.points()["callrec.download.duration"]
    downloaded = durations[_status("downloaded")]
    assert isinstance(downloaded, HistogramDataPoint)
    assert downloaded.sum == 0.4
    assert downloaded.explicit_bounds[:3] == (0.05, 0.1, 0.25)


def test_instruments_have_their_units(telemetry: Telemetry) -> None:
    _otel.record_item("downloaded", "siro", 10, 1.5)
    _otel.record_throttle("siro")
    _otel.record_api_request("siro")
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    units = {m.name: m.unit for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert units == {
        "callrec.items": "{item}",
        "callrec.bytes": "By",
        "callrec.download.duration": "s",
        "callrec.throttled": "{response}",
        "callrec.api.requests": "{request}",
    }


def test_counters_accumulate_per_vendor_and_status(telemetry: Telemetry) -> None:
    for _ in range(3):
        _otel.record_item("skipped", "siro", 0, 0.01)
    _otel.record_item("downloaded", "siro", 100, 2.0)
    _otel.record_item("downloaded", "feather", 50, 1.0)
    points = telemetry.points()
    items = points["callrec.items"]
    siro = frozenset({("callrec.vendor", "siro")})
    assert {labels: p.value for labels, p in items.items() if isinstance(p, NumberDataPoint)} == {
        siro | {("callrec.item.status", "skipped")}: 3,
        siro | {("callrec.item.status", "downloaded")}: 1,
        _status("downloaded"): 1,
    }
    bytes_ = {labels: p.value for labels, p in points["callrec.bytes"].items() if isinstance(p, NumberDataPoint)}
    assert bytes_ == {siro: 100, FEATHER: 50}  # skips wrote nothing and add no point


def test_a_label_value_that_is_not_a_plain_token_is_dropped(telemetry: Telemetry) -> None:
    _otel.record_throttle("https://api.feather.example/?key=abc")
    assert _values(telemetry) == {"callrec.throttled": {frozenset(): 1}}
