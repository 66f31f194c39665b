"""The object-store promises, the same tests against S3 (moto), Azure Blob (Azurite) and GCS (the XML API double),
a fleet's board (``BucketBoard``) among them.

``store`` is the ``s3``, ``azure`` or ``gcs`` fixture's object, given what the three do not all have: ``metadata``,
``put`` and ``delete`` (S3: through boto3 straight to moto), ``fail(rule, status, once=, apply=)`` (S3 and Azure:
the recording proxy's; GCS: the double's own) and ``requests``/``writes()``, the log of what the SDK sent. A rule
receives the request as the proxy or the double parsed it: ``method``, ``key`` (the full, decoded key, prefix
included) and ``query`` (lists of values) on all three.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import callrec
import pytest
from callrec._budget import RequestBudget
from callrec._destinations import objects
from callrec._fleet import SCOUT_FILE, Decision, Pacer
from callrec.testing import FakeServer, faults

from .azurite import Azure
from .conftest import S3
from .gcs_double import GCS
from .test_object_export import LARGE, download, download_many, manifest_entries

SMALL_IDS = [f"c{i}" for i in range(1, 6)]
IDS = ["c0", *SMALL_IDS]  # c0 is the large one (20 MiB: multipart to a staging object, then a create-only copy)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
LEASE = "p/.callrec/all/lease.json"

assert len(LARGE) > objects.PART_SIZE


# -- the three stores, one interface ---------------------------------------------------------------------------------


class _Common:
    """Faults and the request log, the same on the three stores (``_faulty``: the proxy, or the GCS double).

    The proxies and the double are shared by the session: the log is filtered to this bucket (or container), so a
    request a previous test's background thread sends late is not counted here.
    """

    kind: str

    @property
    def _faulty(self) -> Any:
        raise NotImplementedError

    @property
    def _name(self) -> str:
        raise NotImplementedError

    def fail(self, rule: Callable[[Any], bool], status: int = 500, *, once: bool = True, apply: bool = False) -> None:
        self._faulty.fail(lambda r: r.bucket == self._name and rule(r), status, once=once, apply=apply)

    @property
    def requests(self) -> list[Any]:
        return [r for r in list(self._faulty.requests) if r.bucket == self._name]

    def writes(self) -> list[Any]:
        return [r for r in self.requests if r.is_write]

    def clear_log(self) -> None:
        """Forget the request log (and any fault not yet used)."""
        self._faulty.clear()


class MatrixS3(_Common, S3):
    kind = "s3"

    @property
    def _faulty(self) -> Any:
        return self.proxy

    @property
    def _name(self) -> str:
        return self.bucket

    def metadata(self, key: str) -> dict[str, str]:
        return dict(self.client.head_object(Bucket=self.bucket, Key=key)["Metadata"])

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Write an object as another writer would (straight to moto); returns its ETag."""
        put = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=dict(metadata or {}))
        return str(put["ETag"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class MatrixAzure(_Common, Azure):
    kind = "azure"

    @property
    def _faulty(self) -> Any:
        return self.proxy

    @property
    def _name(self) -> str:
        return self.container


class MatrixGCS(_Common, GCS):
    kind = "gcs"

    @property
    def _faulty(self) -> Any:
        return self.server

    @property
    def _name(self) -> str:
        return self.bucket


_MATRIX: dict[str, type[Any]] = {"s3": MatrixS3, "azure": MatrixAzure, "gcs": MatrixGCS}
STORES = ["s3", "azure", "gcs"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Any:
    """The ``s3``, ``azure`` or ``gcs`` fixture's object, as its ``Matrix*`` subclass (same fields)."""
    inner = request.getfixturevalue(request.param)
    return _MATRIX[request.param](*(getattr(inner, field.name) for field in attrs.fields(type(inner))))


def _own_metadata(meta: Mapping[str, str]) -> dict[str, str]:
    """callrec's user metadata, names lower-cased (Azure sends header names lower-case; Azurite keeps them)."""
    return {k.lower(): v for k, v in meta.items() if k.lower().startswith("callrec")}


def _outside_state(requests: list[Any]) -> list[Any]:
    return [r for r in requests if r.key and "/.callrec/" not in f"/{r.key}"]


def _lease_put(request: Any) -> bool:
    return bool(request.method == "PUT" and request.key == LEASE)


# -- 1. one download -------------------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("size", ["small", "large"])
def test_a_download_into_a_prefix_lands_as_one_object_and_is_never_replaced_without_overwrite(
    fake: FakeServer, store: Any, mode: str, size: str
) -> None:
    data = fake.add_recording("feather", "c1", data=LARGE if size == "large" else None)
    result = download(fake, mode, "c1", store.url("p/"))
    key = "p/feather-c1-main.wav"
    assert result.location == store.url(key) and result.path is None
    assert (result.bytes, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    # One object: no staging object (.callrec/uploads/), no manifest, no lease for a single download.
    assert store.objects() == {key: len(data)}
    assert store.get(key) == data
    # S3 and GCS: no multipart upload left. Azure: the staging blob's blocks were all committed by its Put Block
    # List, then the blob was deleted; nothing stays uncommitted on any name (observed: [] for the large one too).
    assert store.unfinished_uploads() == []
    parts = [r for r in store.requests if "partNumber" in r.query or r.query.get("comp") == ["block"]]
    assert bool(parts) is (size == "large")

    store.clear_log()
    with pytest.raises(FileExistsError, match=re.escape(f"{store.url(key)} exists")):
        download(fake, mode, "c1", store.url("p/"))
    assert store.writes() == []
    assert store.objects() == {key: len(data)} and store.get(key) == data


# -- 2. bulk, then a rerun -------------------------------------------------------------------------------------------


@MODES
def test_a_bulk_export_then_a_rerun_skips_everything_with_no_download_and_no_write_outside_state(
    fake: FakeServer, store: Any, mode: str
) -> None:
    data = {rid: fake.add_recording("feather", rid, data=LARGE if rid == "c0" else None) for rid in IDS}
    items = download_many(fake, mode, IDS, store.url("p/"), concurrency=3)
    assert [i.status for i in items] == ["downloaded"] * len(IDS)
    assert store.recordings("p/") == {f"p/feather-{rid}-main.wav": len(data[rid]) for rid in IDS}
    state = list(store.objects("p/.callrec/"))
    assert len(state) == 1 and state[0].startswith("p/.callrec/all/manifest/"), state  # lease and pending gone
    assert store.unfinished_uploads() == []
    for rid in SMALL_IDS:
        assert _own_metadata(store.metadata(f"p/feather-{rid}-main.wav")) == {
            "callrec_id": rid,
            "callrec_leg": "main",
            "callrec_sha256": hashlib.sha256(data[rid]).hexdigest(),
        }

    fake.clear_requests()
    store.clear_log()
    again = download_many(fake, mode, IDS, store.url("p/"), concurrency=3)
    assert [i.status for i in again] == ["skipped"] * len(IDS)
    assert again[1].result is not None and again[1].result.location == store.url("p/feather-c1-main.wav")
    assert fake.requests_to("storage") == [] and fake.requests == []
    assert _outside_state(store.writes()) == []
    assert {r.key for r in store.writes()} == {LEASE}  # taken, then released; no manifest batch rewritten


# -- 3. a crash before the manifest batch ----------------------------------------------------------------------------


def _lose_the_manifest(store: Any) -> None:
    """What a crash before the batch write leaves: the recordings, no manifest batch (nor pending entry)."""
    batches = [k for k in store.objects("p/.callrec/") if k.startswith("p/.callrec/all/manifest/")]
    assert batches
    for key in batches:
        store.delete(key)
    assert store.objects("p/.callrec/") == {}


def test_recordings_whose_manifest_batch_was_lost_are_adopted_from_their_metadata(fake: FakeServer, store: Any) -> None:
    """Small recordings (one PUT each) carry their entry as metadata: the rerun adopts them all, downloads and
    writes no recording, and writes a new manifest batch, which verify then reads."""
    for rid in SMALL_IDS:
        fake.add_recording("feather", rid)
    download_many(fake, "sync", SMALL_IDS, store.url("p/"))
    _lose_the_manifest(store)
    fake.clear_requests()
    store.clear_log()
    again = download_many(fake, "sync", SMALL_IDS, store.url("p/"))
    assert [i.status for i in again] == ["skipped"] * len(SMALL_IDS)
    assert fake.requests_to("storage") == []
    assert _outside_state(store.writes()) == []
    report = callrec.verify(store.url("p/"))
    assert report.ok and report.checked == len(SMALL_IDS) and report.orphans == ()


_LARGE_NOT_ADOPTED = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason=(
        "S3 only: a large recording whose manifest batch was lost (its pending entry already deleted once a batch "
        "held it) is not recognised as the export's: S3's create-only copy (UploadPartCopy, obstore's "
        "copy_if_not_exists=multipart) keeps none of the staging object's metadata, so nothing says whose it is "
        "and the rerun refuses it with FileExistsError. Azure's and GCS's copies keep the id and leg."
    ),
)


@pytest.mark.parametrize(
    "store",
    [pytest.param(kind, marks=_LARGE_NOT_ADOPTED) if kind == "s3" else kind for kind in STORES],
    indirect=True,
)
def test_a_large_recording_whose_manifest_batch_was_lost_is_adopted_too(fake: FakeServer, store: Any) -> None:
    """The same crash with the large recording among them. Its staging object carries its id and leg (not its
    sha256, unknown when the upload starts); Azure's Copy Blob and GCS's copy keep them, so the rerun adopts it
    (reading it once for its sha256). S3's UploadPartCopy keeps none: xfail there (see the mark)."""
    for rid in IDS:
        fake.add_recording("feather", rid, data=LARGE if rid == "c0" else None)
    download_many(fake, "sync", IDS, store.url("p/"), concurrency=3)
    _lose_the_manifest(store)
    fake.clear_requests()
    store.clear_log()
    again = download_many(fake, "sync", IDS, store.url("p/"), concurrency=3)
    failed = {i.recording_id: repr(i.error) for i in again if i.status != "skipped"}
    assert failed == {}
    assert _outside_state(store.writes()) == []
    report = callrec.verify(store.url("p/"))
    assert report.ok and report.checked == len(IDS) and report.orphans == ()


def test_a_large_recording_whose_run_crashed_before_its_batch_is_adopted_from_its_pending_entry(
    fake: FakeServer, store: Any
) -> None:
    """What a crash before the batch write really leaves for a large recording: its pending entry (deleted only
    once a saved batch holds it). Rebuilt here as ``write_pending`` writes it; the rerun adopts from it, then
    deletes it once its own batch holds the entry."""
    data = fake.add_recording("feather", "c0", data=LARGE)
    download_many(fake, "sync", ["c0"], store.url("p/"))
    _lose_the_manifest(store)
    pending = {
        "recording_id": "c0",
        "leg": "main",
        "path": "feather-c0-main.wav",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "audio/wav",
    }
    store.put("p/.callrec/all/pending/feather-c0-main.json", json.dumps(pending).encode())
    fake.clear_requests()
    store.clear_log()
    again = download_many(fake, "sync", ["c0"], store.url("p/"))
    assert [(i.status, i.error) for i in again] == [("skipped", None)]
    assert fake.requests_to("storage") == [] and _outside_state(store.writes()) == []
    assert [k for k in store.objects("p/.callrec/") if "/pending/" in k] == []
    report = callrec.verify(store.url("p/"))
    assert report.ok and report.checked == 1 and report.orphans == ()


# -- 4. a create-only PUT the store applied, answered 500 ------------------------------------------------------------


def test_a_recording_put_applied_then_answered_500_is_recognised_as_the_run_s_own(fake: FakeServer, store: Any) -> None:
    ids = SMALL_IDS[:3]
    for rid in ids:
        fake.add_recording("feather", rid)
    key = "p/feather-c2-main.wav"
    store.fail(lambda r: r.method == "PUT" and r.key == key and not r.query, 500, apply=True)
    items = download_many(fake, "sync", ids, store.url("p/"))
    assert [i.status for i in items] == ["downloaded"] * 3, [repr(i.error) for i in items]
    puts = [r for r in store.requests if r.method == "PUT" and r.key == key]
    assert len(puts) == 2  # applied + 500, then obstore's retry met the object (412 on S3/GCS, 409 on Azure)
    report = callrec.verify(store.url("p/"))
    assert report.ok and report.checked == 3 and report.orphans == ()


# -- 5. leases -------------------------------------------------------------------------------------------------------


def test_a_held_lease_refuses_a_second_run_before_any_request(fake: FakeServer, store: Any) -> None:
    fake.add_recording("feather", "c1")
    store.put(LEASE, json.dumps({"token": "x", "owner": "busy:2", "ttl": 60}).encode())
    with pytest.raises(callrec.ExportLockedError, match="busy:2"):
        download_many(fake, "sync", ["c1"], store.url("p/"))
    assert fake.requests == []
    assert json.loads(store.get(LEASE))["token"] == "x"  # left alone
    assert store.recordings() == {}


def test_an_expired_lease_is_taken_over_and_deleted_at_the_end(fake: FakeServer, store: Any) -> None:
    """On GCS the takeover is an update conditional on the lease object's generation."""
    for rid in SMALL_IDS[:2]:
        fake.add_recording("feather", rid)
    store.put(LEASE, json.dumps({"token": "dead", "owner": "gone:1", "ttl": 1}).encode())
    stale = store.server.object(store.bucket, LEASE).generation if store.kind == "gcs" else None
    time.sleep(2.2)  # its ttl + Last-Modified's one-second resolution, on the store's clock
    store.clear_log()
    items = download_many(fake, "sync", SMALL_IDS[:2], store.url("p/"))
    assert [i.status for i in items] == ["downloaded", "downloaded"]
    assert LEASE not in store.objects()
    # The create-only PUT (refused: 412 on S3 and GCS, 409 on Azure), the conditional takeover, the release.
    assert [r.method for r in store.writes() if r.key == LEASE] == ["PUT", "PUT", "DELETE"]
    if store.kind == "gcs":
        create, takeover = [r for r in store.requests if _lease_put(r)]
        assert create.headers["x-goog-if-generation-match"] == "0"
        assert takeover.headers["x-goog-if-generation-match"] == str(stale)  # the stale lease's generation


def test_a_run_renews_its_lease_while_it_works(fake: FakeServer, store: Any) -> None:
    ids = SMALL_IDS[:4]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.4))
    items = download_many(fake, "sync", ids, store.url("p/"), concurrency=1, lease_seconds=1.0)
    assert [i.status for i in items] == ["downloaded"] * 4
    assert len([r for r in store.requests if _lease_put(r)]) >= 3  # taken + renewed (every 1/3 s over ~1.6 s)
    assert LEASE not in store.objects()


# -- 6. renewals refused past the lease's validity -------------------------------------------------------------------


def test_a_lease_that_cannot_be_renewed_stops_the_run_and_leaves_no_recording_without_its_entry(
    fake: FakeServer, store: Any
) -> None:
    ids = SMALL_IDS[:4]
    for rid in ids:
        fake.add_recording("feather", rid)
    fake.storage.always(faults.Latency(0.4))
    taken: list[float] = []
    lock = threading.Lock()

    def renewal(request: Any) -> bool:
        """Every PUT of the lease after the first (which takes it), for 2 s: twice the lease's validity (1 s less a
        sixth). Not for ever: obstore retries a 500 itself, backing off (observed: 11 refused PUTs for one renewal),
        and ``Lease.release`` now waits only 0.5 s for it, so a refusal without end leaves that renewal retrying
        in the background long after the test."""
        if not _lease_put(request):
            return False
        with lock:
            if not taken:
                taken.append(time.monotonic())
                return False
            return time.monotonic() - taken[0] < 2.0

    store.fail(renewal, 500, once=False)
    with pytest.raises(callrec.ExportLockedError, match="could not renew"):
        download_many(fake, "sync", ids, store.url("p/"), concurrency=1, lease_seconds=1.0)
    assert len([r for r in store.requests if _lease_put(r)]) >= 3  # taken, then refused (obstore's retries)
    recordings = set(store.recordings("p/"))
    entries = {f"p/{e['path']}" for e in manifest_entries(store, "p/") if e.get("path")}
    assert recordings == entries and len(recordings) < len(ids)  # it stopped, and every recording has its entry


# -- 7. verify --quick -----------------------------------------------------------------------------------------------


def test_quick_verify_reads_no_recording_and_names_a_missing_and_a_rewritten_object(
    fake: FakeServer, store: Any
) -> None:
    ids = SMALL_IDS[:4]
    for rid in ids:
        fake.add_recording("feather", rid)
    download_many(fake, "sync", ids, store.url("p/"))
    assert callrec.verify(store.url("p/"), quick=True).ok
    store.delete("p/feather-c1-main.wav")
    body = bytearray(store.get("p/feather-c2-main.wav"))
    body[100] ^= 0xFF
    store.put("p/feather-c2-main.wav", bytes(body))  # the same size, other bytes
    store.clear_log()
    report = callrec.verify(store.url("p/"), quick=True)
    assert [r for r in store.requests if r.key.endswith(".wav")] == []  # the listing and the manifest only
    assert report.quick and report.checked == 4 and not report.ok
    assert [(p.recording_id, p.problem) for p in report.problems] == [("c1", "missing"), ("c2", "e_tag")]
    assert report.problems[0].location == store.url("p/feather-c1-main.wav")


# -- a fleet's board (_fleet): create-only claims, whole bodies, the store's ages, faults -----------------------------


FLEET_IDS = [f"c{i}" for i in range(1, 9)]


def board_of(bucket_store: Any, n: int = 2) -> objects.BucketBoard:
    return objects.BucketBoard(objects.open_export(bucket_store.url("p/")), "feather", n)


def test_claims_are_create_only_bodies_whole_and_a_read_lists_once(store: Any) -> None:
    board = board_of(store)
    assert board.read().modified == {}
    board.create(SCOUT_FILE, json.dumps({"token": "a", "by": "1/2"}).encode())
    with pytest.raises(FileExistsError):
        board.create(SCOUT_FILE, json.dumps({"token": "b", "by": "2/2"}).encode())
    board.put("limit.json", json.dumps({"limit": 59.5, "by": "1/2"}).encode())
    board.put("running-1", b"")
    state = board.read()
    assert (state.scout, state.limit) == ("a", 59.5)
    assert sorted(state.modified) == ["limit.json", "running-1", "scout.json"]
    assert max(state.modified.values()) - min(state.modified.values()) < 60  # the store's own clock, in seconds
    store.clear_log()
    again = board.read()
    assert (again.scout, again.limit) == ("a", 59.5)
    gets = [r for r in store.requests if not r.is_write and r.key and r.key.endswith((SCOUT_FILE, "limit.json"))]
    assert gets == []  # unchanged ETags: listed, not read again
    board.delete(SCOUT_FILE)
    board.delete(SCOUT_FILE)  # gone already: fine
    assert board.read().scout is None
    assert {k for k in store.objects("p/")} == {
        "p/.callrec/fleet/feather-2/limit.json",
        "p/.callrec/fleet/feather-2/running-1",
    }


def test_a_claim_the_store_applied_but_answered_500_is_read_back_as_ours(store: Any) -> None:
    store.fail(lambda r: r.is_write and r.key.endswith(SCOUT_FILE), 500, apply=True)  # then obstore retries: exists
    budget = RequestBudget("feather API")
    pacer = Pacer(board_of(store), (1, 2), budget).start()
    try:
        assert pacer.decision == Decision(False, None)  # scouting, not waiting for a scout that is itself
        assert json.loads(store.get(f"p/.callrec/fleet/feather-2/{SCOUT_FILE}"))["token"] == pacer.token
    finally:
        pacer.close()
    assert store.objects("p/.callrec/fleet/") == {}


def test_an_export_whose_board_answers_500_to_everything_still_exports_every_recording(
    fake: FakeServer, store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for rid in FLEET_IDS:
        fake.add_recording("feather", rid)

    def on_board(r: Any) -> bool:  # its objects, and the listings of its folder
        return "/.callrec/fleet/" in f"/{r.key}" or any(".callrec/fleet" in p for p in r.query.get("prefix", []))

    store.fail(on_board, 500, once=False)
    caplog.set_level(logging.WARNING, logger="callrec")
    items = [item for k in (1, 2) for item in download_many(fake, "sync", FLEET_IDS, store.url("p/"), shard=(k, 2))]
    assert sorted(item.recording_id for item in items) == sorted(FLEET_IDS)
    assert {item.status for item in items} == {"downloaded"}
    warnings = [r.getMessage() for r in caplog.records if "callrec fleet" in r.getMessage()]
    assert any("could not read the board" in m for m in warnings)
    assert all(store.url("p/") not in m and "?" not in m for m in warnings)  # no URL, no query in a log line
