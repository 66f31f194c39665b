"""The GCS double through obstore's real GCS client (object_store's XML API): what the client sends, what it makes of
Google's answers, and that the double keeps Google's documented semantics. Callrec's GCS behaviour rests on these.
"""

from __future__ import annotations

import http.client
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import obstore
import pytest
from obstore.exceptions import (
    AlreadyExistsError,
    GenericError,
    NotModifiedError,
    PermissionDeniedError,
    PreconditionError,
)
from obstore.store import GCSStore, from_url

from .gcs_double import GCS, GCSRequest

MIB = 1024 * 1024


def store_of(gcs: GCS, prefix: str = "p") -> GCSStore:
    """A store built the way callrec builds one for ``gs://`` (``from_url``, the rest from the environment)."""
    store = from_url(gcs.url(prefix))
    assert isinstance(store, GCSStore)
    return store


def ops(gcs: GCS) -> list[str]:
    return [r.operation for r in gcs.server.requests]


def encoded(name: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02X}" for c in name)


def raw(gcs: GCS, method: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """A request straight to the double, for what object_store never sends (pins the double, not the client)."""
    host, port = gcs.endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, headers={"content-length": "0", **(headers or {})})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_from_url_reaches_the_double_without_oauth(gcs: GCS) -> None:
    """GOOGLE_SERVICE_ACCOUNT names a file with gcs_base_url and disable_oauth; GOOGLE_ALLOW_HTTP allows http://."""
    obstore.put(store_of(gcs), "a.txt", b"hello")
    assert gcs.get("p/a.txt") == b"hello"
    [put] = gcs.server.requests
    assert (put.method, put.bucket, put.key, put.query) == ("PUT", gcs.bucket, "p/a.txt", {})
    assert put.headers["authorization"] == "Bearer "  # disable_oauth: an empty token, no token request
    assert "x-goog-if-generation-match" not in put.headers  # plain put: overwrite, unconditional


def test_the_service_account_needs_private_key_id(gcs: GCS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented example file (gcs_base_url, disable_oauth, client_email, private_key) is refused by 0.14.2."""
    account = tmp_path / "sa.json"
    account.write_text(
        json.dumps({"gcs_base_url": gcs.endpoint, "disable_oauth": True, "client_email": "", "private_key": ""})
    )
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", str(account))
    with pytest.raises(GenericError, match="missing field `private_key_id`"):
        from_url(gcs.url("p"))
    assert gcs.server.requests == []


# -- put: create-only and conditional update ---------------------------------------------------------------------


def test_create_only_put_twice_is_already_exists(gcs: GCS) -> None:
    store = store_of(gcs)
    first = obstore.put(store, "a.txt", b"one", mode="create")
    with pytest.raises(AlreadyExistsError, match="412 Precondition Failed"):
        obstore.put(store, "a.txt", b"two", mode="create")
    assert gcs.get("p/a.txt") == b"one"
    assert [r.headers["x-goog-if-generation-match"] for r in gcs.server.requests] == ["0", "0"]
    obj = gcs.server.object(gcs.bucket, "p/a.txt")
    # PutResult: e_tag from the ETag header (quoted MD5 hex), version from x-goog-generation
    assert first == {"e_tag": obj.etag, "version": str(obj.generation)}
    assert obj.etag == '"f97c5d29941bfb1b2fdab0874906ab82"'  # md5(b"one")


def test_conditional_update_needs_the_version(gcs: GCS) -> None:
    """UpdateVersion on GCS is x-goog-if-generation-match: <version>; the e_tag is never sent."""
    store = store_of(gcs)
    first = obstore.put(store, "a.txt", b"one")
    second = obstore.put(store, "a.txt", b"two")
    gcs.server.clear()

    # e_tag alone: object_store refuses before sending anything
    with pytest.raises(GenericError, match="Version required for conditional update"):
        obstore.put(store, "a.txt", b"x", mode={"e_tag": second["e_tag"]})
    assert gcs.server.requests == []

    # a stale generation: 412 -> PreconditionError, nothing written
    with pytest.raises(PreconditionError, match="412"):
        obstore.put(store, "a.txt", b"x", mode={"e_tag": first["e_tag"], "version": first["version"]})
    assert gcs.get("p/a.txt") == b"two"

    # the current generation succeeds whatever the e_tag says
    third = obstore.put(store, "a.txt", b"three", mode={"e_tag": '"not-the-etag"', "version": second["version"]})
    assert gcs.get("p/a.txt") == b"three"
    assert int(third["version"]) > int(second["version"])
    assert [r.headers.get("x-goog-if-generation-match") for r in gcs.server.requests] == [
        first["version"],
        second["version"],
    ]
    assert all("if-match" not in r.headers for r in gcs.server.requests)


def test_head_and_get_read_generation_etag_and_last_modified(gcs: GCS) -> None:
    store = store_of(gcs)
    result = obstore.put(store, "a.txt", b"0123456789")
    obj = gcs.server.object(gcs.bucket, "p/a.txt")
    meta = obstore.head(store, "a.txt")
    assert meta["e_tag"] == result["e_tag"] and meta["version"] == result["version"] and meta["size"] == 10
    assert meta["last_modified"] == datetime.fromtimestamp(obj.updated, UTC)  # whole seconds (an HTTP date)

    assert bytes(obstore.get(store, "a.txt", options={"range": (2, 5)}).bytes()) == b"234"
    assert gcs.server.requests[-1].headers["range"] == "bytes=2-4"  # object_store's ranges are end-exclusive
    assert bytes(obstore.get(store, "a.txt", options={"version": result["version"]}).bytes()) == b"0123456789"
    assert gcs.server.requests[-1].query == {"generation": [result["version"]]}

    obstore.put(store, "a.txt", b"new")
    with pytest.raises(FileNotFoundError):  # no versioning: the replaced generation is gone
        obstore.get(store, "a.txt", options={"version": result["version"]})
    with pytest.raises(NotModifiedError):
        obstore.get(store, "a.txt", options={"if_none_match": gcs.server.object(gcs.bucket, "p/a.txt").etag})
    with pytest.raises(PreconditionError):
        obstore.get(store, "a.txt", options={"if_match": result["e_tag"]})


def test_user_metadata_round_trip(gcs: GCS) -> None:
    """Attributes go out as x-goog-meta-* and come back from HEAD; a later plain put replaces them (whole object)."""
    store = store_of(gcs)
    obstore.put(store, "a.mp3", b"id3", attributes={"callrec-id": "x", "Content-Type": "audio/mpeg"})
    put = gcs.server.requests[-1]
    assert put.headers["x-goog-meta-callrec-id"] == "x" and put.headers["content-type"] == "audio/mpeg"
    assert gcs.metadata("p/a.mp3") == {"callrec-id": "x"}

    attributes = obstore.get(store, "a.mp3", options={"head": True}).attributes
    assert attributes == {"callrec-id": "x", "Content-Type": "audio/mpeg"}
    assert gcs.server.requests[-1].method == "HEAD"

    obstore.put(store, "a.mp3", b"id3")
    assert obstore.get(store, "a.mp3", options={"head": True}).attributes == {
        "Content-Type": "application/octet-stream"
    }


def test_clock_offset_skews_last_modified(gcs: GCS) -> None:
    gcs.server.clock_offset = -7200.0
    store = store_of(gcs)
    obstore.put(store, "a.txt", b"x")
    skew = time.time() - obstore.head(store, "a.txt")["last_modified"].timestamp()
    assert 7199 <= skew <= 7205
    [listed] = obstore.list(store).collect()
    assert listed["last_modified"] == obstore.head(store, "a.txt")["last_modified"]


# -- delete and list -----------------------------------------------------------------------------------------------


def test_delete_of_a_missing_object_is_not_found(gcs: GCS) -> None:
    """Google answers 204 for a delete and 404 NoSuchKey for a missing object (S3 answers 204 for both)."""
    store = store_of(gcs)
    obstore.put(store, "a.txt", b"x")
    obstore.delete(store, "a.txt")
    assert gcs.objects() == {}
    with pytest.raises(FileNotFoundError):
        obstore.delete(store, "a.txt")
    assert ops(gcs)[-2:] == ["delete", "delete"]


def test_list_pages_past_1000_objects(gcs: GCS) -> None:
    for i in range(1205):
        gcs.put(f"p/rec/{i:05d}.mp3", b"x" * (i % 7))
    gcs.put("p/other/z.mp3", b"z")
    gcs.put("outside.mp3", b"o")
    store = store_of(gcs)
    listed = obstore.list(store, "rec").collect()
    assert len(listed) == 1205
    first = gcs.server.object(gcs.bucket, "p/rec/00000.mp3")
    assert listed[0] == {
        "path": "rec/00000.mp3",
        "size": 0,
        "e_tag": first.etag,
        "last_modified": datetime.fromtimestamp(first.updated, UTC),
        "version": None,  # the list answer carries <Generation>, but object_store 0.14.2 does not read it
    }
    assert [m["size"] for m in listed] == [i % 7 for i in range(1205)]
    pages: list[GCSRequest] = [r for r in gcs.server.requests if r.operation == "list"]
    assert [r.query.get("prefix") for r in pages] == [["p/rec/"], ["p/rec/"]]
    assert "continuation-token" not in pages[0].query and "continuation-token" in pages[1].query
    assert all(r.query["list-type"] == ["2"] for r in pages)

    top = obstore.list_with_delimiter(store)
    assert top["common_prefixes"] == ["other", "rec"] and top["objects"] == []
    assert gcs.server.requests[-1].query == {"list-type": ["2"], "delimiter": ["/"], "prefix": ["p/"]}
    after = obstore.list(store, "rec", offset="rec/01200.mp3").collect()
    assert [m["path"] for m in after] == [f"rec/{i:05d}.mp3" for i in range(1201, 1205)]
    assert gcs.server.requests[-1].query["start-after"] == ["p/rec/01200.mp3"]


# -- copy ----------------------------------------------------------------------------------------------------------


def test_copy_without_overwrite_onto_an_existing_object_is_already_exists(gcs: GCS) -> None:
    store = store_of(gcs)
    obstore.put(store, "src", b"new")
    obstore.put(store, "dst", b"old")
    with pytest.raises(AlreadyExistsError):
        obstore.copy(store, "src", "dst", overwrite=False)
    assert gcs.get("p/dst") == b"old"
    copy = gcs.server.requests[-1]
    assert (copy.method, copy.key, copy.operation) == ("PUT", "p/dst", "copy")
    # bucket/key, each percent-encoded as object_store encodes (every byte but ASCII letters and digits)
    assert copy.headers["x-goog-copy-source"] == f"{encoded(gcs.bucket)}/p%2Fsrc"
    assert copy.headers["x-goog-if-generation-match"] == "0"

    obstore.copy(store, "src", "fresh", overwrite=False)
    obstore.copy(store, "src", "dst")  # overwrite=True: no precondition
    assert gcs.get("p/fresh") == gcs.get("p/dst") == b"new"
    assert "x-goog-if-generation-match" not in gcs.server.requests[-1].headers
    with pytest.raises(FileNotFoundError):
        obstore.copy(store, "missing", "other", overwrite=False)


def test_copy_keeps_the_source_metadata(gcs: GCS) -> None:
    """object_store sends no x-goog-metadata-directive, so Google's default (COPY) applies."""
    store = store_of(gcs)
    obstore.put(store, "src", b"x", attributes={"callrec-id": "x", "Content-Type": "audio/wav"})
    obstore.copy(store, "src", "dst", overwrite=False)
    assert "x-goog-metadata-directive" not in gcs.server.requests[-1].headers
    assert gcs.metadata("p/dst") == {"callrec-id": "x"}
    assert obstore.get(store, "dst", options={"head": True}).attributes == {
        "callrec-id": "x",
        "Content-Type": "audio/wav",
    }
    source, copied = (gcs.server.object(gcs.bucket, k) for k in ("p/src", "p/dst"))
    assert copied.etag == source.etag and copied.generation > source.generation

    # the double's REPLACE (object_store never sends it): the request's metadata, not the source's
    replaced = raw(
        gcs,
        "PUT",
        f"/{gcs.bucket}/p/replaced",
        {"x-goog-copy-source": f"{gcs.bucket}/p/src", "x-goog-metadata-directive": "REPLACE", "x-goog-meta-k": "v"},
    )
    assert replaced.status == 200 and replaced.getheader("x-goog-generation")
    assert gcs.metadata("p/replaced") == {"k": "v"}


# -- multipart -----------------------------------------------------------------------------------------------------


def test_writer_uploads_20_mib_as_one_object(gcs: GCS) -> None:
    data = bytes(range(256)) * (20 * MIB // 256)
    with obstore.open_writer(store_of(gcs), "big.wav", buffer_size=8 * MIB, attributes={"callrec-id": "y"}) as w:
        w.write(data)
    assert gcs.objects() == {"p/big.wav": 20 * MIB} and gcs.get("p/big.wav") == data
    assert gcs.metadata("p/big.wav") == {"callrec-id": "y"}  # given when the upload is initiated
    assert gcs.unfinished_uploads() == []
    assert sorted(ops(gcs)) == ["complete", "initiate", "part", "part", "part"]
    parts = {
        r.query["partNumber"][0]: int(r.headers["content-length"]) for r in gcs.server.requests if r.operation == "part"
    }
    assert parts == {"1": 8 * MIB, "2": 8 * MIB, "3": 4 * MIB}
    assert gcs.server.object(gcs.bucket, "p/big.wav").etag.endswith('-3"')


def test_multipart_put_result_has_etag_and_generation(gcs: GCS) -> None:
    result = obstore.put(store_of(gcs), "big", io.BytesIO(b"a" * (12 * MIB)), use_multipart=True, chunk_size=5 * MIB)
    obj = gcs.server.object(gcs.bucket, "p/big")
    assert result == {"e_tag": obj.etag, "version": str(obj.generation)}  # from the XML body and x-goog-generation


def test_aborted_writer_leaves_no_upload(gcs: GCS) -> None:
    writer = obstore.open_writer(store_of(gcs), "big.wav", buffer_size=8 * MIB)
    writer.write(b"z" * (10 * MIB))
    writer.__exit__(ValueError, ValueError("caller failed"), None)
    assert gcs.objects() == {} and gcs.unfinished_uploads() == []
    assert {"initiate", "abort"} <= set(ops(gcs)) and "complete" not in ops(gcs)
    [abort] = [r for r in gcs.server.requests if r.operation == "abort"]
    [initiate] = [r for r in gcs.server.requests if r.operation == "initiate"]
    assert abort.method == "DELETE" and abort.query["uploadId"]
    assert initiate.query == {"uploads": [""]}


def test_a_failed_complete_is_aborted_and_a_failed_abort_stays_listed(gcs: GCS) -> None:
    """The writer aborts after a failed complete; ``unfinished_uploads`` sees the upload when that abort fails too."""
    big = b"z" * (10 * MIB)
    gcs.server.fail(lambda r: r.operation == "complete", 403)
    # a complete's status is not mapped (no PermissionDeniedError): a generic error, an OSError from the writer
    with (
        pytest.raises(OSError, match="Generic GCS error: Error performing complete multipart request") as raised,
        obstore.open_writer(store_of(gcs), "a.wav", buffer_size=8 * MIB) as w,
    ):
        w.write(big)
    assert type(raised.value) is OSError and "403 Forbidden" in str(raised.value)
    assert ops(gcs)[-2:] == ["complete", "abort"] and gcs.unfinished_uploads() == []

    gcs.server.fail(lambda r: r.operation == "complete", 403)
    gcs.server.fail(lambda r: r.operation == "abort", 403)
    # the abort's error replaces the complete's (still a plain OSError from the writer, whatever the status)
    with (
        pytest.raises(
            OSError, match=r"lacked the necessary privileges .* Error performing DELETE .*\?uploadId="
        ) as raised,
        obstore.open_writer(store_of(gcs), "b.wav", buffer_size=8 * MIB) as w,
    ):
        w.write(big)
    assert type(raised.value) is OSError
    assert gcs.objects() == {} and gcs.unfinished_uploads() == ["p/b.wav"]


def test_small_writer_is_one_plain_put(gcs: GCS) -> None:
    with obstore.open_writer(store_of(gcs), "small") as w:
        w.write(b"abc")
    assert ops(gcs) == ["put"] and "x-goog-if-generation-match" not in gcs.server.requests[0].headers


# -- faults ----------------------------------------------------------------------------------------------------------


def test_create_applied_then_answered_500_is_already_exists(gcs: GCS) -> None:
    """object_store retries a 5xx; the retry meets the object the first attempt wrote, so 412 -> AlreadyExists."""
    gcs.server.fail(lambda r: r.operation == "put", 500, apply=True)
    with pytest.raises(AlreadyExistsError, match="after 1 retries"):
        obstore.put(store_of(gcs), "a.txt", b"hello", mode="create")
    assert gcs.get("p/a.txt") == b"hello"  # written by the first attempt
    assert ops(gcs) == ["put", "put"]
    assert all(r.headers["x-goog-if-generation-match"] == "0" for r in gcs.server.requests)


def test_overwrite_applied_then_answered_500_succeeds_on_the_retry(gcs: GCS) -> None:
    gcs.server.fail(lambda r: r.operation == "put", 500, apply=True)
    result = obstore.put(store_of(gcs), "a.txt", b"hello")
    assert result["version"] == str(gcs.server.object(gcs.bucket, "p/a.txt").generation)
    assert ops(gcs) == ["put", "put"]


def test_faults_not_applied(gcs: GCS) -> None:
    store = store_of(gcs)
    gcs.server.fail(lambda r: r.operation == "put", 503)  # once, then the retry goes through
    obstore.put(store, "a.txt", b"x", mode="create")
    assert ops(gcs) == ["put", "put"] and gcs.get("p/a.txt") == b"x"
    gcs.server.fail(lambda r: r.operation == "put", 403)
    with pytest.raises(PermissionDeniedError):
        obstore.put(store, "b.txt", b"x")
    assert "p/b.txt" not in gcs.objects()


def test_the_double_answers_as_google_documents(gcs: GCS) -> None:
    """Status codes object_store's error mapping depends on, asked directly."""
    gcs.put("p/a", b"x")
    generation = gcs.server.object(gcs.bucket, "p/a").generation
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("PUT", "/{b}/p/a", {"x-goog-if-generation-match": "0"}, 412),
        ("PUT", "/{b}/p/a", {"x-goog-if-generation-match": str(generation)}, 200),
        ("PUT", "/{b}/p/new", {"x-goog-if-metageneration-match": "1"}, 412),  # metageneration needs the object
        ("GET", "/{b}/p/missing", {}, 404),
        ("GET", "/nobucket/p/a", {}, 404),
        ("GET", "/{b}/p/a", {"range": "bytes=5-"}, 416),
        ("DELETE", "/{b}/p/a?uploadId=nope", {}, 404),
        ("PUT", "/{b}/p/a?partNumber=1&uploadId=nope", {}, 404),
        ("DELETE", "/{b}/p/a", {}, 204),
    ]
    got = [raw(gcs, m, p.format(b=gcs.bucket), h).status for m, p, h, _ in cases]
    assert got == [want for *_, want in cases]
