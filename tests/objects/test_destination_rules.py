"""Destination rules that need no server: URL parsing, store configuration, shards; and folder shards and verify."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import callrec
import pytest
from callrec._bulk import in_shard, shard_of
from callrec._destinations import is_object_store, open_export, plan
from callrec._destinations import objects as obj
from callrec._validate import check_shard
from callrec.testing import FakeServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bkt/", ("s3", "bkt", "", None)),
        ("s3://bkt", ("s3", "bkt", "", None)),
        ("s3://bkt/a/b/", ("s3", "bkt", "a/b", None)),
        ("s3://bkt/a/b/call.wav", ("s3", "bkt", "a/b", "call.wav")),
        ("s3://bkt/call.wav", ("s3", "bkt", "", "call.wav")),
        ("S3://bkt/x/", ("s3", "bkt", "x", None)),
        ("gs://bucket/p/q/", ("gs", "bucket", "p/q", None)),
        ("az://container/p/", ("az", "container", "p", None)),
        ("abfs://container@acct.dfs.core.windows.net/p/", ("abfs", "container@acct.dfs.core.windows.net", "p", None)),
        ("s3://bkt/my%20exports/", ("s3", "bkt", "my exports", None)),  # decoded: what obstore writes under
        ("s3://bkt/a/x%41y.wav", ("s3", "bkt", "a", "xAy.wav")),
    ],
)
def test_an_object_store_url_splits_into_scheme_bucket_prefix_and_name(url: str, expected: tuple[Any, ...]) -> None:
    assert obj._split(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:///prefix/", "names no bucket"),
        ("s3://bkt/a/../b/", "'..' segments"),
        ("s3://bkt/./b", "'..' segments"),
        ("s3://bkt/x/%2e%2e/y/", "'..' segments"),  # obstore would decode it and write outside the prefix
        ("s3://bkt/x/%2E/y/", "'..' segments"),
        ("s3://bkt/x//y/", "empty"),
        ("s3://bkt/x%2Fy/", "escaped"),
        ("s3://bkt/x%5cy/", "escaped"),
        ("s3://bkt/x%00y/", "escaped"),
        ("s3://bkt/x%0Ay/", "control characters"),
        ("s3://bkt/p/?X-Amz-Signature=abc", "no query or fragment"),
        ("s3://bkt/p/#frag", "no query or fragment"),
        ("http://bkt/p/", "not an object-store URL"),
    ],
)
def test_a_bad_object_store_url_is_refused_before_anything_is_sent(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        obj._split(url)


@pytest.mark.parametrize(
    "url", ["s3://AKIAEXAMPLE:s3cr3tK3y@bkt/p/", "gs://user:s3cr3tK3y@bkt/p/", "s3://AKIAEXAMPLE@bkt/p/"]
)
def test_credentials_in_an_object_store_url_are_refused_without_being_repeated(url: str) -> None:
    with pytest.raises(ValueError, match="must not carry credentials") as caught:
        obj._split(url)
    assert "s3cr3tK3y" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)


def test_callrec_s_own_folder_is_not_a_recording_name() -> None:
    with pytest.raises(ValueError, match=r"\.callrec is callrec's own folder"):
        plan("s3://bkt/p/.callrec", "feather", "c1", "main")


@pytest.mark.parametrize(
    ("environ", "config", "options"),
    [
        ({}, {"copy_if_not_exists": "multipart", "checksum_algorithm": "SHA256"}, {}),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, None, {"allow_http": True}),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.2:9000"}, None, {"allow_http": True}),
        ({"AWS_ENDPOINT_URL": "http://[::1]:9000"}, None, {"allow_http": True}),
        ({"AWS_ENDPOINT_URL": "http://localhost:9000"}, None, {"allow_http": True}),
        ({"AWS_ENDPOINT": "http://127.0.0.1:9000"}, None, {"allow_http": True}),
        ({"AWS_ENDPOINT_URL": "https://s3.example.com"}, None, {}),
        (
            {"AWS_COPY_IF_NOT_EXISTS": "header:cf-copy-destination-if-none-match:*"},
            {"checksum_algorithm": "SHA256"},
            {},
        ),
        ({"AWS_CHECKSUM_ALGORITHM": "CRC64NVME"}, {"copy_if_not_exists": "multipart"}, {}),
    ],
)
def test_an_s3_store_gets_create_only_copies_checksums_and_plain_http_only_on_loopback(
    environ: dict[str, str], config: dict[str, str] | None, options: dict[str, Any]
) -> None:
    got_config, got_options = obj.s3_options(environ)
    if config is not None:
        assert got_config == config
    assert got_options == options


@pytest.mark.parametrize(
    "endpoint", ["http://10.0.0.5:9000", "http://s3.internal:9000", "http://127.0.0.1.nip.io", "ftp://127.0.0.1"]
)
def test_a_plain_http_endpoint_off_loopback_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"loopback only|http\(s\) URL"):
        obj.s3_options({"AWS_ENDPOINT_URL": endpoint})


def test_gcs_and_azure_urls_make_their_stores_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from obstore.store import AzureStore, GCSStore

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    gcs = open_export("gs://bucket/exports/2026")
    assert isinstance(gcs, obj.Bucket) and isinstance(gcs.store, GCSStore)
    assert (gcs.store.prefix, gcs.base) == ("exports/2026", "gs://bucket/exports/2026")
    azure = plan("az://container/p/", "siro", "r1", None)
    assert isinstance(azure, obj.ObjectTarget) and isinstance(azure.bucket.store, AzureStore)
    assert (azure.bucket.store.prefix, azure.bucket.base, azure.stem) == ("p", "az://container/p", "siro-r1")
    assert obj._describe_store(azure.bucket.store) == "az://container/p"


@pytest.mark.parametrize(
    ("dest", "expected"),
    [
        ("s3://b/p", True),
        ("GS://b", True),
        ("az://c/p", True),
        ("./s3:", False),
        ("exports", False),
        (Path("x"), False),
    ],
)
def test_what_counts_as_an_object_store_destination(dest: Any, expected: bool) -> None:
    assert is_object_store(dest) is expected


def test_an_obstore_store_object_counts_as_a_destination() -> None:
    from obstore.store import MemoryStore

    assert is_object_store(MemoryStore())


# -- shards -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ((1, 1), (1, 1)), ((2, 3), (2, 3)), ("3/3", (3, 3)), (" 1 / 8 ", (1, 8))],
)
def test_a_shard_is_k_of_n(value: Any, expected: Any) -> None:
    assert check_shard(value) == expected


@pytest.mark.parametrize(
    "value", [(0, 3), (4, 3), (1, 0), (-1, 2), (True, 2), (1.0, 2), [1, 2], (1, 2, 3), "0/3", "2", "a/b", "1/3/4"]
)
def test_a_bad_shard_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="shard"):
        check_shard(value)


@pytest.mark.parametrize(
    ("recording_id", "n", "shard"),
    # Pinned: the same id must land in the same shard on every machine, Python and release (a changed hash
    # would make every worker of a running backfill take other ids).
    [("call_0", 3, 2), ("call_3", 3, 3), ("call_5", 3, 1), ("rec_ü/1", 5, 1), ("", 7, 2), ("call_0", 1, 1)],
)
def test_the_shard_of_an_id_is_a_pinned_stable_hash(recording_id: str, n: int, shard: int) -> None:
    assert shard_of(recording_id, n) == shard
    digest = hashlib.sha256(recording_id.encode()).digest()
    assert shard == int.from_bytes(digest[:8], "big") % n + 1


def test_the_shard_is_the_same_in_another_process_with_another_hash_seed() -> None:
    ids = [f"id-{i}" for i in range(50)]
    code = "import json, sys; from callrec._bulk import shard_of; print(json.dumps([shard_of(i, 4) for i in sys.argv[1:]]))"
    out = subprocess.run(
        [sys.executable, "-c", code, *ids],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        check=True,
    )
    assert json.loads(out.stdout) == [shard_of(i, 4) for i in ids]


def test_shards_partition_the_ids() -> None:
    ids = [f"id-{i}" for i in range(300)]
    parts = [list(in_shard(ids, (k, 4))) for k in range(1, 5)]
    assert sorted(i for part in parts for i in part) == sorted(ids)
    assert all(40 < len(part) < 110 for part in parts)  # roughly even (expected 75 each)


# -- a folder: shards, merged manifests, verify ----------------------------------------------------------------------


@pytest.fixture
def fake() -> Any:
    with FakeServer() as server:
        yield server


def test_folder_shards_keep_their_own_manifests_and_a_rerun_merges_them(fake: FakeServer, tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(12)]
    for rid in ids:
        fake.add_recording("feather", rid)
    with callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as client:
        runs = [client.download_many(ids, tmp_path, shard=(k, 2)) for k in (1, 2)]
        assert sorted(i.recording_id for run in runs for i in run) == sorted(ids)
        assert {p.name for p in tmp_path.glob("manifest*")} == {"manifest-1-of-2.jsonl", "manifest-2-of-2.jsonl"}
        fake.clear_requests()
        again = client.download_many(ids, tmp_path)
    assert {i.status for i in again} == {"skipped"} and fake.requests == []


def test_verify_a_folder_names_a_deleted_and_a_changed_file(fake: FakeServer, tmp_path: Path) -> None:
    for rid in ("a", "b", "c"):
        fake.add_recording("feather", rid)
    with callrec.FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as client:
        client.download_many(["a", "b", "c"], tmp_path)
    assert callrec.verify(tmp_path).ok
    (tmp_path / "feather-a-main.wav").unlink()
    changed = tmp_path / "feather-b-main.wav"
    data = bytearray(changed.read_bytes())
    data[50] ^= 1
    changed.write_bytes(bytes(data))
    report = callrec.verify(tmp_path)
    assert report.checked == 3
    assert [(p.recording_id, p.problem) for p in report.problems] == [("a", "missing"), ("b", "sha256")]


def test_verify_refuses_a_folder_that_is_not_there_or_holds_no_export(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        callrec.verify(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no callrec export"):
        callrec.verify(tmp_path / "empty")
    assert not (tmp_path / "nope").exists()
