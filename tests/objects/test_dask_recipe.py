"""The docs' Dask recipe (docs/guides/fleets.md), run as written on a local cluster: N workers export disjoint
shards into one bucket, and the result equals one worker's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from callrec.testing import FakeServer

from .conftest import S3

pytest.importorskip("distributed")

RECIPE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "fleets.md"


def recipe() -> dict[str, Any]:
    """The code block between the page's recipe markers, executed (the test runs exactly what users copy)."""
    text = RECIPE_PAGE.read_text(encoding="utf-8")
    match = re.search(r"<!-- recipe: dask -->\n```python\n(.*?)```\n<!-- /recipe -->", text, re.DOTALL)
    assert match, "docs/guides/fleets.md lost its Dask recipe"
    namespace: dict[str, Any] = {"__name__": "callrec_docs_recipe"}  # not importable: cloudpickle sends it by value
    exec(compile(match.group(1), str(RECIPE_PAGE), "exec"), namespace)  # noqa: S102
    return namespace


def state(s3: S3, prefix: str) -> dict[str, tuple[int, str]]:
    """Each recording's (size, sha256) as the merged manifests record it, keyed by name."""
    entries = {}
    for key in s3.objects(f"{prefix}.callrec/"):
        if "/items/" in key:
            entry = json.loads(s3.get(key))
            entries[entry["path"]] = (entry["bytes"], entry["sha256"])
    return entries


def test_three_dask_workers_export_what_one_worker_exports(callrec_env: FakeServer, s3: S3) -> None:
    ids = [f"call_{i}" for i in range(30)]
    for rid in ids:
        callrec_env.add_recording("feather", rid)
    code = recipe()
    # Worker processes inherit the environment: the fake APIs (callrec_env) and the bucket (the s3 fixture).
    counts = code["export"](ids, s3.url("fleet/"), 3, 300.0)
    assert [c["failed"] for c in counts] == [0, 0, 0]
    assert all(c["downloaded"] > 0 for c in counts)  # every worker had a share
    assert sum(c["downloaded"] for c in counts) == len(ids)  # disjoint shards covering every id
    assert {k.split("/")[2] for k in s3.objects("fleet/.callrec/")} == {"1-of-3", "2-of-3", "3-of-3"}

    alone = code["export_shard"](1, 1, ids, s3.url("alone/"), 300.0)
    assert alone == {"downloaded": len(ids), "skipped": 0, "failed": 0}
    fleet_objects = {k.removeprefix("fleet/"): v for k, v in s3.recordings("fleet/").items()}
    alone_objects = {k.removeprefix("alone/"): v for k, v in s3.recordings("alone/").items()}
    assert fleet_objects == alone_objects and len(fleet_objects) == len(ids)
    assert state(s3, "fleet/") == state(s3, "alone/")
    rerun = code["export"](ids, s3.url("fleet/"), 3, 300.0)
    assert rerun == [{"downloaded": 0, "skipped": c["downloaded"], "failed": 0} for c in counts]
