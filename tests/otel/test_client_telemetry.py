"""The clients' own telemetry, against callrec.testing's fake APIs: the span tree of a download and of a bulk run
with a failure and a re-sign, its metrics, and nothing secret or identifying in any of it (sync and async)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from callrec.testing import FakeServer, faults
from fake_clients import afeather, feather, instant_backoff

from .conftest import Telemetry

MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    instant_backoff(monkeypatch)


def run(fake: FakeServer, mode: str, method: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        with feather(fake) as client:
            return getattr(client, method)(*args, **kw)

    async def go() -> Any:
        async with afeather(fake) as client:
            return await getattr(client, method)(*args, **kw)

    return asyncio.run(go())


@MODES
def test_a_download_is_a_span_with_the_mint_transfer_and_commit_under_it(
    telemetry: Telemetry, tmp_path: Path, mode: str
) -> None:
    with FakeServer() as fake:
        fake.add_recording("feather", "call_7")
        result = run(fake, mode, "download", "call_7", tmp_path)
    spans = {s.name: s for s in telemetry.spans()}
    assert set(spans) == {"callrec.download", "callrec.recording_url", "callrec.transfer", "callrec.commit"}
    root = spans["callrec.download"]
    assert root.parent is None
    for child in ("callrec.recording_url", "callrec.transfer", "callrec.commit"):
        assert spans[child].parent is not None and spans[child].parent.span_id == root.context.span_id
    assert dict(root.attributes or {}) == {
        "callrec.vendor": "feather",
        "callrec.leg": "main",
        "callrec.bytes": result.bytes,
        "callrec.url_refreshes": 0,
    }
    points = telemetry.points()
    assert sum(p.value for p in points["callrec.api.requests"].values()) == 1


@MODES
def test_a_bulk_run_with_a_failure_and_a_resign_has_its_tree_and_metrics_and_no_id_or_secret(
    telemetry: Telemetry, tmp_path: Path, mode: str
) -> None:
    with FakeServer() as fake:
        for rid in ("r1", "r2"):
            fake.add_recording("feather", rid)
        fake.storage.queue(faults.ExpiredUrl())  # the first storage GET: an expired URL, re-signed
        items = run(fake, mode, "download_many", ["r1", "r2", "r_missing"], tmp_path, concurrency=1)
        secrets_ = (fake.feather_api_key, "X-Amz-Signature", "Signature=", "r_missing", "r1", "r2")
    assert [i.status for i in items] == ["downloaded", "downloaded", "failed"]
    spans = telemetry.spans()
    run_span = telemetry.span("callrec.download_many")
    downloads = [s for s in spans if s.name == "callrec.download"]
    assert len(downloads) == 3 and all(s.parent.span_id == run_span.context.span_id for s in downloads)  # type: ignore[union-attr]
    failed = [s for s in downloads if s.status.status_code.name == "ERROR"]
    assert len(failed) == 1 and dict(failed[0].attributes or {}).get("error.type") == "callrec.BadRequestError"
    resigns = [e for s in spans for e in s.events if e.name == "callrec.resign"]
    assert len(resigns) == 1
    points = telemetry.points()
    items_by_status = {dict(k)["callrec.item.status"]: p.value for k, p in points["callrec.items"].items()}
    assert items_by_status == {"downloaded": 2, "failed": 1}
    assert sum(p.value for p in points["callrec.bytes"].values()) == sum(i.result.bytes for i in items[:2])
    # Every attribute, event attribute, exception text and label: no credential, no signed query, no id.
    texts: list[str] = []
    for s in spans:
        texts += [f"{k}={v}" for k, v in (s.attributes or {}).items()]
        for e in s.events:
            texts += [e.name, *(f"{k}={v}" for k, v in (e.attributes or {}).items())]
    for metric in points.values():
        for labels in metric:
            texts += [f"{k}={v}" for k, v in labels]
    joined = "\n".join(texts)
    for secret in secrets_:
        assert secret not in joined, secret
