"""The fake storage serves signed URLs the way S3 does: validators, Range, If-Range, expiry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from callrec.testing import FakeServer
from fake_helpers import feather_get

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def url(fake: FakeServer) -> str:
    fake.add_recording("feather", "call_1", data=DATA, content_type="audio/wav")
    return fake.signed_url("feather", "call_1")


def test_signed_url_is_s3_presigned_style(fake: FakeServer, url: str) -> None:
    parts = urlsplit(url)
    query = parse_qs(parts.query)

    assert f"{parts.scheme}://{parts.netloc}" == fake.storage_origin
    assert parts.path == "/feather/call_1/main.wav"
    assert query["X-Amz-Expires"] == ["3600"]
    assert len(query["X-Amz-Signature"][0]) == 64
    assert query["X-Amz-Date"][0].endswith("Z")


def test_get_serves_bytes_with_validators(client: httpx.Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith(" GMT")


def test_head_sends_headers_without_body(client: httpx.Client, url: str) -> None:
    response = client.head(url)

    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


def test_api_url_downloads_the_registered_bytes(fake: FakeServer, client: httpx.Client) -> None:
    expected = fake.add_recording("feather", "call_tone")

    signed = feather_get(client, fake, "call_tone").json()["url"]

    assert expected[:4] == b"RIFF"
    assert client.get(signed).content == expected


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "body"),
    [
        ("bytes=100-", 206, "bytes 100-10239/10240", DATA[100:]),
        ("bytes=0-9", 206, "bytes 0-9/10240", DATA[:10]),
        ("bytes=10000-99999", 206, "bytes 10000-10239/10240", DATA[10000:]),
        ("bytes=-16", 206, "bytes 10224-10239/10240", DATA[-16:]),
        ("bytes=10240-", 416, "bytes */10240", None),
        ("bytes=-0", 416, "bytes */10240", None),
        ("bytes=0-1,5-6", 200, None, DATA),
        ("bytes=9-3", 200, None, DATA),
        ("items=0-1", 200, None, DATA),
    ],
)
def test_range_requests(
    client: httpx.Client, url: str, range_header: str, status: int, content_range: str | None, body: bytes | None
) -> None:
    response = client.get(url, headers={"Range": range_header})

    assert response.status_code == status
    assert response.headers.get("content-range") == content_range
    if body is not None:
        assert response.content == body
    else:
        assert b"<Code>InvalidRange</Code>" in response.content


def test_if_range_with_matching_etag_honours_range(client: httpx.Client, url: str) -> None:
    etag = client.head(url).headers["etag"]

    response = client.get(url, headers={"Range": "bytes=5-", "If-Range": etag})

    assert response.status_code == 206
    assert response.content == DATA[5:]


def test_if_range_with_stale_etag_sends_the_whole_new_body(fake: FakeServer, client: httpx.Client, url: str) -> None:
    old_etag = client.head(url).headers["etag"]
    fake.add_recording("feather", "call_1", data=b"replaced", content_type="audio/wav")

    response = client.get(fake.signed_url("feather", "call_1"), headers={"Range": "bytes=5-", "If-Range": old_etag})

    assert response.status_code == 200
    assert response.content == b"replaced"


def test_if_range_with_last_modified_date_honours_range(client: httpx.Client, url: str) -> None:
    last_modified = client.head(url).headers["last-modified"]

    response = client.get(url, headers={"Range": "bytes=5-", "If-Range": last_modified})

    assert response.status_code == 206


def test_expired_url_is_s3_403_request_has_expired(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.advance_clock(3601)

    response = client.get(url)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/xml"
    assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in response.content


def test_url_is_valid_until_its_ttl(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.advance_clock(3590)

    assert client.get(url).status_code == 200


def test_expire_urls_expires_minted_urls_but_not_new_ones(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.expire_urls()

    assert client.get(url).status_code == 403
    assert client.get(fake.signed_url("feather", "call_1")).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda u: u.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200"),
        lambda u: u.replace("/call_1/", "/call_2/"),
        lambda u: u[:-1] + ("0" if u[-1] != "0" else "1"),
    ],
    ids=["expiry", "path", "signature"],
)
def test_tampered_url_is_signature_does_not_match(client: httpx.Client, url: str, tamper: object) -> None:
    assert callable(tamper)
    response = client.get(tamper(url))

    assert response.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.content


def test_unsigned_url_is_access_denied(fake: FakeServer, client: httpx.Client, url: str) -> None:
    response = client.get(f"{fake.storage_origin}/feather/call_1/main.wav")

    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content


def test_signed_url_for_removed_path_is_no_such_key(fake: FakeServer, client: httpx.Client, url: str) -> None:
    fake.add_recording("feather", "call_1", data=b"now mp3", content_type="audio/mpeg")  # moves to main.mp3

    response = client.get(url)

    assert response.status_code == 404
    assert b"<Code>NoSuchKey</Code>" in response.content


def test_storage_refuses_writes(client: httpx.Client, url: str) -> None:
    assert client.put(url, content=b"x").status_code == 405
