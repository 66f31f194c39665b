"""What the docs' examples run against: callrec.testing's fake APIs and moto's S3 server, both on loopback."""

from __future__ import annotations

import os
import secrets
import sys
import time
import types
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from callrec.testing import FakeServer

# The buckets the pages name (s3://my-bucket/..., s3://bucket/..., s3://calls-archive/...).
BUCKETS = ("my-bucket", "bucket", "calls-archive")


def _fresh_buckets(endpoint: str) -> None:
    """Forget every bucket (moto's reset API), then create the ones the pages name, empty."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    for bucket in BUCKETS:
        request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def docs_world(
    moto_endpoint: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A page's world: a fake server with the pages' recordings, empty buckets, the environment pointing at both,
    a fresh working folder; returns the names a page's hidden blocks may use."""
    # SiroClient(token="...") in "Your first URL" is taken literally, so this server accepts "..." as Siro's token.
    with FakeServer(siro_token="...") as fake:
        fake.add_recording("feather", "call_123")
        fake.add_recording("feather", "call_123", leg="supervisor")
        fake.add_recording("siro", "rec_456")
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        _fresh_buckets(moto_endpoint)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto_endpoint,
            # obstore.store.S3Store(...) built by hand (Object storage) takes plain http only when told; callrec's
            # own s3:// URLs accept http on loopback without it.
            "AWS_ALLOW_HTTP": "true",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_COPY_IF_NOT_EXISTS", "AWS_CHECKSUM_ALGORITHM", "AWS_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        # Shell blocks find this interpreter's `callrec` and `python` first.
        monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.chdir(tmp_path)

        def run_test(test: Callable[..., None]) -> None:
            """Call a test function from a page as pytest would, with callrec's fixtures (this page's server)."""
            fake.reset()
            fixtures = {"callrec_env": fake, "callrec_fake": fake}
            kwargs = {
                name: fixtures[name] if name in fixtures else tmp_path_factory.mktemp(name)
                for name in test.__code__.co_varnames[: test.__code__.co_argcount]
            }
            test(**kwargs)

        yield {
            "fake": fake,
            "run_test": run_test,
            # time.sleep(60) in a polling loop, shortened: the loop is what the page shows, not the minute.
            "fast_time": types.SimpleNamespace(sleep=lambda seconds: time.sleep(min(seconds, 0.05))),
            "__name__": f"callrec_docs_{secrets.token_hex(4)}",
        }
