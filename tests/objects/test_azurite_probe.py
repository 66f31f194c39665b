"""What obstore 0.12.1 does against Azure Blob Storage (Azurite), pinned: the Azure destination builds on each fact.

Each test names the fact; a failure here after an obstore or Azurite upgrade means the Azure export's assumptions
(create-only writes, ETag updates, metadata, create-only copies, abandoned blocks, retried writes) need a look.
The last test pins the same retried-write fact on S3 (moto) for comparison.
"""

from __future__ import annotations

import time
from typing import Any

import obstore
import pytest
from obstore.exceptions import AlreadyExistsError, GenericError, PreconditionError
from obstore.store import from_url

from .azurite import Azure
from .conftest import S3
from .store_proxy import StoreRequest

MiB = 1 << 20


class Abandoned(Exception):
    """Raised into a writer's ``__exit__`` to abort it, as an exception in a ``with`` block would."""


@pytest.fixture
def store(azure: Azure) -> Any:
    return from_url(azure.url("p/"))  # configured from AZURE_STORAGE_USE_EMULATOR / AZURITE_BLOB_STORAGE_URL


def _wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _block_put(key: str) -> Any:
    return lambda r: r.method == "PUT" and r.key == key and r.query.get("comp") == ["block"]


def test_create_only_put_refuses_an_existing_blob(azure: Azure, store: Any) -> None:
    obstore.put(store, "a", b"1", mode="create")
    with pytest.raises(AlreadyExistsError, match="409"):  # Azure: 409 BlobAlreadyExists (If-None-Match: *)
        obstore.put(store, "a", b"2", mode="create")
    assert azure.get("p/a") == b"1"
    # The proxy reads Azurite's path style: /account/container/blob.
    assert azure.proxy.requests[0] == StoreRequest("PUT", azure.container, "p/a", {}, "devstoreaccount1")


def test_an_update_needs_the_current_etag(azure: Azure, store: Any) -> None:
    first = obstore.put(store, "b", b"1")
    assert first["e_tag"] is not None and first["e_tag"].startswith('"')  # PutResult: the quoted ETag header
    assert first["version"] is None  # no blob versioning on Azurite (nor by default on Azure)
    second = obstore.put(store, "b", b"2", mode={"e_tag": first["e_tag"]})
    with pytest.raises(PreconditionError, match="412"):  # stale: 412 ConditionNotMet
        obstore.put(store, "b", b"3", mode={"e_tag": first["e_tag"]})
    assert azure.get("p/b") == b"2"
    # list() gives the ETag unquoted (as List Blobs' XML has it); head() quoted; If-Match takes either.
    [listed] = obstore.list(store).collect()
    assert listed["e_tag"] == second["e_tag"].strip('"')
    assert obstore.head(store, "b")["e_tag"] == second["e_tag"]
    obstore.put(store, "b", b"4", mode={"e_tag": listed["e_tag"]})
    assert azure.get("p/b") == b"4"


def test_attributes_become_content_type_and_user_metadata(azure: Azure, store: Any) -> None:
    obstore.put(store, "c", b"x", attributes={"Content-Type": "audio/mpeg", "callrec_id": "x"})
    assert azure.metadata("p/c") == {"callrec_id": "x"}
    assert obstore.get(store, "c", options={"head": True}).attributes == {
        "Content-Type": "audio/mpeg",
        "callrec_id": "x",
    }
    assert obstore.get(store, "c").attributes == {"Content-Type": "audio/mpeg", "callrec_id": "x"}
    # Header names go lowercase on the wire, so a metadata name comes back lowercased.
    obstore.put(store, "d", b"x", attributes={"CallrecId": "x"})
    assert obstore.get(store, "d", options={"head": True}).attributes == {
        "Content-Type": "application/octet-stream",
        "callrecid": "x",
    }
    # Metadata names must be C# identifiers: a hyphen is refused (400 InvalidMetadata, as on Azure) and nothing lands.
    with pytest.raises(GenericError, match="InvalidMetadata"):
        obstore.put(store, "e", b"x", attributes={"callrec-id": "x"})
    assert set(azure.objects()) == {"p/c", "p/d"}


def test_create_only_copy_refuses_an_existing_blob_and_keeps_the_metadata(azure: Azure, store: Any) -> None:
    obstore.put(store, "a", b"mine", attributes={"Content-Type": "audio/mpeg", "callrec_id": "x"})
    azure.put("p/b", b"theirs", {"owner": "other"})
    with pytest.raises(AlreadyExistsError, match="409"):  # (its message names the source, p/a)
        obstore.copy(store, "a", "b", overwrite=False)
    assert azure.get("p/b") == b"theirs" and azure.metadata("p/b") == {"owner": "other"}
    obstore.copy(store, "a", "c", overwrite=False)
    assert azure.get("p/c") == b"mine" and azure.metadata("p/c") == {"callrec_id": "x"}
    assert obstore.head(store, "c")["size"] == 4
    assert obstore.get(store, "c", options={"head": True}).attributes["Content-Type"] == "audio/mpeg"


def test_an_aborted_writer_leaves_its_staged_blocks_uncommitted(azure: Azure, store: Any) -> None:
    writer = obstore.open_writer(store, "big", buffer_size=5 * MiB)
    for _ in range(12):  # of 20 MiB: two 5 MiB blocks go up (Put Block) while the rest is buffered
        writer.write(b"x" * MiB)
    _wait_for(lambda: len([r for r in azure.proxy.requests if _block_put("p/big")(r)]) == 2)
    _wait_for(lambda: len(azure.uncommitted_blocks("p/big")) == 2)
    azure.proxy.clear()
    writer.__exit__(Abandoned, Abandoned(), None)
    # Azure cannot abort an upload: the blocks stay staged on the name (Azure drops them after a week).
    assert azure.proxy.writes() == []  # no Put Block List, no delete
    assert azure.objects() == {}
    assert azure.unfinished_uploads() == ["p/big"]
    assert len(azure.uncommitted_blocks("p/big")) == 2


def test_an_aborted_writer_does_not_wait_for_blocks_in_flight(azure: Azure, store: Any) -> None:
    azure.proxy.delay(_block_put("p/slow"), 3.0, once=False)  # each Put Block reaches Azurite 3 s late
    writer = obstore.open_writer(store, "slow", buffer_size=5 * MiB)
    for _ in range(12):
        writer.write(b"x" * MiB)
    _wait_for(lambda: len([r for r in azure.proxy.requests if _block_put("p/slow")(r)]) == 2)
    writer.__exit__(Abandoned, Abandoned(), None)
    assert azure.uncommitted_blocks("p/slow") == []  # returned before the blocks landed...
    _wait_for(lambda: len(azure.uncommitted_blocks("p/slow")) == 2, seconds=10)  # ...which they still do
    assert azure.objects() == {}


def test_a_create_that_was_applied_but_answered_500_is_retried_into_already_exists(azure: Azure, store: Any) -> None:
    azure.proxy.fail(lambda r: r.method == "PUT" and r.key == "p/f", 500, apply=True)
    with pytest.raises(AlreadyExistsError, match="after 1 retries"):  # the retry meets the blob the 500 hid
        obstore.put(store, "f", b"1", mode="create")
    assert [(r.method, r.key) for r in azure.proxy.requests] == [("PUT", "p/f"), ("PUT", "p/f")]
    assert azure.get("p/f") == b"1"
    # An overwrite is simply retried: no error, one blob.
    azure.proxy.fail(lambda r: r.method == "PUT" and r.key == "p/g", 500, apply=True)
    obstore.put(store, "g", b"2")
    assert azure.get("p/g") == b"2"


def test_s3_create_that_was_applied_but_answered_500_is_retried_into_already_exists(s3: S3) -> None:
    store = from_url(s3.url("p/"), client_options={"allow_http": True})
    s3.proxy.fail(lambda r: r.method == "PUT" and r.key == "p/f", 500, apply=True)
    with pytest.raises(AlreadyExistsError, match="412"):  # S3: If-None-Match: * answers 412 on the retry
        obstore.put(store, "f", b"1", mode="create")
    assert [(r.method, r.key) for r in s3.proxy.requests] == [("PUT", "p/f"), ("PUT", "p/f")]
    assert s3.get("p/f") == b"1"
