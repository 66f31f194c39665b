"""Object-store tests: a real S3 API (moto's server mode) on loopback, behind a recording proxy; no mocks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

pytest.importorskip("obstore")
boto3 = pytest.importorskip("boto3")
import botocore.config  # noqa: E402  (with boto3)

moto_server = pytest.importorskip("moto.server")

from fake_clients import fake, no_backoff  # noqa: E402,F401  (fixtures: fake APIs, no backoff sleeps)

from .store_proxy import S3Proxy  # noqa: E402


@pytest.fixture(scope="session")
def s3_proxy(moto_endpoint: str) -> Iterator[S3Proxy]:
    proxy = S3Proxy(moto_endpoint)
    try:
        yield proxy
    finally:
        proxy.close()


@attrs.frozen
class S3:
    """A fresh bucket on moto, reached through the recording proxy (``AWS_ENDPOINT_URL`` points there)."""

    bucket: str
    endpoint: str
    proxy: S3Proxy
    client: Any  # boto3, straight to moto: the test's own view of the bucket

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def objects(self, prefix: str = "") -> dict[str, int]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def recordings(self, prefix: str = "") -> dict[str, int]:
        """Objects under ``prefix`` outside ``.callrec/``."""
        return {k: v for k, v in self.objects(prefix).items() if "/.callrec/" not in f"/{k}"}

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def unfinished_uploads(self) -> list[str]:
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }


@pytest.fixture
def s3(moto_endpoint: str, s3_proxy: S3Proxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    # moto reports the composite SHA-256 of a multipart upload as if it were the whole object's (no "-N", no
    # ChecksumType COMPOSITE, which real S3 sends and botocore then skips), so botocore's default response check
    # fails on every multipart object; the tests compare bytes and sha256 themselves.
    client = boto3.client(
        "s3",
        config=botocore.config.Config(response_checksum_validation="when_required"),
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    bucket = f"callrec-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    store = S3(bucket, s3_proxy.url, s3_proxy, client)
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_COPY_IF_NOT_EXISTS", "AWS_CHECKSUM_ALGORITHM", "AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    s3_proxy.clear()
    yield store
    s3_proxy.clear()


from .azurite import azure, azurite_endpoint, azurite_proxy  # noqa: E402,F401
from .gcs_double import gcs, gcs_endpoint  # noqa: E402,F401
