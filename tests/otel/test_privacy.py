"""A walk over everything a bulk run exports: no credential, no signed query string, and no id by default."""

from __future__ import annotations

import re

import pytest
from callrec import _otel

from . import scenario
from .conftest import Telemetry

#: What the SDK generates itself on an exception event (their values scrubbed by callrec).
EXCEPTION_KEYS = {"exception.type", "exception.message", "exception.stacktrace", "exception.escaped"}
FORBIDDEN = (
    scenario.API_KEY,
    scenario.SIGNATURE,
    "X-Amz-Signature",
    "X-Amz-Credential",
    "AKIAEXAMPLE",
    "X-Amz-Algorithm",
)
QUERY = re.compile(r"\?(?!<redacted>)[^\s=&]+=")


def exported(telemetry: Telemetry) -> list[tuple[str, str, object]]:
    """(where, key, value) for every name, attribute, event, status text and metric label exported."""
    found: list[tuple[str, str, object]] = []
    for span in telemetry.spans():
        found.append(("span name", "", span.name))
        found += [(f"span {span.name}", k, v) for k, v in (span.attributes or {}).items()]
        found.append((f"status of {span.name}", "", span.status.description or ""))
        for event in span.events:
            found.append((f"event on {span.name}", "", event.name))
            found += [(f"event {event.name}", k, v) for k, v in (event.attributes or {}).items()]
        for link in span.links:
            found += [(f"link on {span.name}", k, v) for k, v in (link.attributes or {}).items()]
    for name, points in telemetry.points().items():
        found.append(("metric name", "", name))
        for labels in points:
            found += [(f"metric {name}", k, v) for k, v in labels]
    assert len(found) > 40  # the walk saw the run
    return found


def test_nothing_exported_holds_a_credential_a_signed_query_or_an_id_by_default(telemetry: Telemetry) -> None:
    scenario.bulk_run()

    for where, key, value in exported(telemetry):
        text = f"{key}={value}"
        for secret in (*FORBIDDEN, *scenario.IDS):
            assert secret not in text, f"{secret!r} in {where}: {text[:300]}"
        assert not QUERY.search(text), f"a query string in {where}: {text[:300]}"
        assert "Bearer fk_" not in text
        if key and not where.startswith("event exception"):
            assert key in _otel._ALLOWED and key != _otel.RECORDING_ID, f"{key} in {where}"
        elif key:
            assert key in EXCEPTION_KEYS


def test_opting_in_exports_ids_and_still_no_credential_or_signed_query(telemetry: Telemetry) -> None:
    _otel.set_record_ids(True)
    scenario.bulk_run()

    walked = exported(telemetry)
    ids = [value for _where, key, value in walked if key == _otel.RECORDING_ID]
    assert ids == list(scenario.IDS)
    for where, key, value in walked:
        text = f"{key}={value}"
        for secret in FORBIDDEN:
            assert secret not in text, f"{secret!r} in {where}: {text[:300]}"
        assert not QUERY.search(text), f"a query string in {where}: {text[:300]}"


@pytest.mark.parametrize("opted_in", [False, True])
def test_an_exception_with_a_signed_url_leaves_no_trace_of_its_query(telemetry: Telemetry, opted_in: bool) -> None:
    _otel.set_record_ids(opted_in)
    signed = scenario.SIGNED_URL.format(rid="rec_1")
    with pytest.raises(RuntimeError), _otel.span(_otel.TRANSFER):
        _give_up_on(signed)

    for _where, key, value in _span_walk(telemetry):
        assert scenario.SIGNATURE not in f"{key}={value}"
        assert "X-Amz-" not in f"{key}={value}"


def _give_up_on(signed: str) -> None:
    try:
        raise ConnectionError(f"reset while reading {signed}")
    except ConnectionError as exc:  # chained: the cause's text is in the stack trace too
        raise RuntimeError(f"gave up on {signed}") from exc


def _span_walk(telemetry: Telemetry) -> list[tuple[str, str, object]]:
    (span,) = telemetry.spans()
    walked: list[tuple[str, str, object]] = [("span", k, v) for k, v in (span.attributes or {}).items()]
    walked.append(("status", "", span.status.description or ""))
    for event in span.events:
        walked += [("event", k, v) for k, v in (event.attributes or {}).items()]
    assert any("stacktrace" in key and "ConnectionError" in str(value) for _w, key, value in walked)
    return walked
