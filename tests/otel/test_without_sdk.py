"""The no-op paths, each in a fresh interpreter: without opentelemetry-api, and with it but no SDK set.

Fresh interpreters because the API's global providers can be set only once per process, and because
"not importable" is simulated by ``sys.modules["opentelemetry"] = None`` before callrec first looks.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from callrec import _otel

# The calls a driver makes, then checks that none of them recorded or allocated a span.
EXERCISE = """
import sys
from callrec import _otel

attrs = {"callrec.vendor": "feather", _otel.RECORDING_ID: "call_1"}
handles = []
for _ in range(3):
    with _otel.span(_otel.DOWNLOAD, attrs) as sp:
        handles.append(sp)
        sp.set({"callrec.bytes": 1})
        sp.event(_otel.RESIGN)
        _otel.event(_otel.RESIGN, {"callrec.url_refreshes": 1})
    _otel.record_item("downloaded", "feather", 10, 0.1)
    _otel.record_throttle("feather")
    _otel.record_api_request("feather")
assert all(h is _otel.NULL_SPAN for h in handles), handles
assert not _otel.enabled()
try:
    with _otel.span(_otel.TRANSFER):
        raise KeyError("kept")
except KeyError as exc:
    assert exc.args == ("kept",)
else:
    raise AssertionError("the exception was swallowed")
"""


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_without_opentelemetry_every_call_is_a_no_op() -> None:
    out = _run(
        'import sys\nsys.modules["opentelemetry"] = None  # as when callrec[otel] is not installed\n'
        + EXERCISE
        + 'print(_otel._api is None, sorted(m for m in sys.modules if m.startswith("opentelemetry.")))\n'
    )
    assert out.split() == ["True", "[]"]


def test_with_the_api_imported_but_no_sdk_every_call_is_a_no_op() -> None:
    out = _run(
        "import opentelemetry.trace\n" + EXERCISE + "print(_otel._api is not None, _otel._fast_provider_reads())\n"
    )
    assert out.split() == ["True", "True"]


def test_an_api_nobody_imported_is_not_imported_by_callrec() -> None:
    # Installed (the dev venv has it) but not imported by the application: no provider can be set, so callrec
    # does not pay ~10 ms importing it to find that out, on every call of EXERCISE.
    out = _run(EXERCISE + 'print(_otel._api is None, sorted(m for m in sys.modules if "opentelemetry" in m))\n')
    assert out.split() == ["True", "[]"]


def test_import_callrec_imports_no_opentelemetry_module() -> None:
    out = _run('import sys, callrec, callrec._otel\nprint(sorted(m for m in sys.modules if "opentelemetry" in m))')
    assert out.strip() == "[]"


def test_an_sdk_set_after_callrec_was_first_used_is_picked_up() -> None:
    _run(
        EXERCISE
        + """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

with _otel.span(_otel.DOWNLOAD, {"callrec.vendor": "feather"}):
    pass
_otel.record_api_request("feather")
assert [s.name for s in exporter.get_finished_spans()] == [_otel.DOWNLOAD]
names = [m.name for r in reader.get_metrics_data().resource_metrics for s in r.scope_metrics for m in s.metrics]
assert names == ["callrec.api.requests"], names
"""
    )


def test_provider_checks_read_the_apis_globals_not_its_slow_getters() -> None:
    # If an opentelemetry-api release renames _TRACER_PROVIDER or _METER_PROVIDER, the facade still works
    # through the public getters (~1.5 µs a call more); this test says when to look again.
    assert _otel._fast_provider_reads()
