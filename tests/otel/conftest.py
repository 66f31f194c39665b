"""OpenTelemetry's SDK with an in-memory span exporter and metric reader, injected into callrec._otel per test.

The API's global providers can be set once per process, so the tests never set them: ``_otel._use``
points the facade at fresh providers and back at the globals afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from callrec import _otel
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

Labels = frozenset[tuple[str, object]]


@dataclass
class Telemetry:
    """What the SDK received: finished spans and metric points."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def points(self) -> dict[str, dict[Labels, NumberDataPoint | HistogramDataPoint]]:
        """Metric name -> {labels -> data point}, from one collection."""
        found: dict[str, dict[Labels, NumberDataPoint | HistogramDataPoint]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        assert isinstance(point, NumberDataPoint | HistogramDataPoint)
                        found.setdefault(metric.name, {})[frozenset((point.attributes or {}).items())] = point
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    _otel._use(tracer_provider, meter_provider)
    try:
        yield Telemetry(exporter, reader)
    finally:
        _otel._use(None, None)
        _otel.set_record_ids(False)
        tracer_provider.shutdown()
        meter_provider.shutdown()
