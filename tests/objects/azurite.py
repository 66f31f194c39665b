"""Azure Blob Storage tests: Azurite (npm, pinned in tests/azurite) on loopback, behind the recording proxy; no mocks.

obstore reaches Azurite through ``StoreProxy`` (``AZURITE_BLOB_STORAGE_URL`` points there); the test's own view
talks to Azurite directly with SharedKey-signed REST calls, so no Azure SDK is needed to check what was written.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import os
import queue
import re
import secrets
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import attrs
import pytest

from .store_proxy import StoreProxy

#: Azurite's (and the legacy emulator's) well-known account and key; object_store uses the same by default.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BLOB = Path(__file__).resolve().parents[1] / "azurite" / "node_modules" / ".bin" / "azurite-blob"
#: Any version passes with --skipApiVersionCheck; this one has every operation the view uses.
API_VERSION = "2023-11-03"
#: The SharedKey string-to-sign's standard headers, in order (then x-ms-* headers, then the resource).
_SIGNED = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
_META = "x-ms-meta-"
#: Keys obstore (object_store's ``from_env``) would read as another credential or endpoint than the emulator's.
_OTHER_AZURE_ENV = (
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_SKIP_SIGNATURE",
    "AZURE_STORAGE_ENDPOINT",
    "AZURE_ENDPOINT",
    "AZURE_CONTAINER_NAME",
    "AZURE_USE_FABRIC_ENDPOINT",
)


def _xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314  (Azurite's answers, on loopback)


class BlobError(Exception):
    """A non-2xx answer from Azurite to the test's own view."""

    def __init__(self, status: int, code: str, body: bytes) -> None:
        super().__init__(f"{status} {code}: {body[:300]!r}")
        self.status = status
        self.code = code


@attrs.frozen
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@attrs.frozen
class BlobClient:
    """A few Blob REST calls to Azurite, signed with SharedKey (the spec's "Authorize with Shared Key")."""

    endpoint: str  # http://127.0.0.1:PORT, Azurite itself (path style: /account/container/blob)
    account: str = ACCOUNT
    key: str = ACCOUNT_KEY

    def request(
        self,
        method: str,
        container: str,
        blob: str = "",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        ok: tuple[int, ...] = (200, 201, 202, 206),
    ) -> Response:
        path = "/" + "/".join(quote(p, safe="/~") for p in (self.account, container, blob) if p)
        query = dict(query or {})
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        sent |= {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
        if body or method in ("PUT", "POST"):
            sent["content-length"] = str(len(body))
        sent["authorization"] = f"SharedKey {self.account}:{self._sign(method, path, query, sent)}"
        parts = urlsplit(self.endpoint)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request(method, f"{path}?{urlencode(query)}" if query else path, body=body, headers=sent)
            response = connection.getresponse()
            result = Response(response.status, response.headers, response.read())
        finally:
            connection.close()
        if result.status not in ok:
            raise BlobError(result.status, result.headers.get("x-ms-error-code", ""), result.body)
        return result

    def _sign(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
        standard = [headers.get(name, "") for name in _SIGNED]
        if standard[2] == "0":  # since 2015-02-21 a zero Content-Length is signed as empty
            standard[2] = ""
        canonical_headers = "".join(
            f"{name}:{headers[name].strip()}\n" for name in sorted(h for h in headers if h.startswith("x-ms-"))
        )
        resource = f"/{self.account}{path}" + "".join(
            f"\n{name.lower()}:{query[name]}" for name in sorted(query, key=str.lower)
        )
        to_sign = "\n".join([method, *standard]) + "\n" + canonical_headers + resource
        digest = hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def create_container(self, container: str) -> None:
        self.request("PUT", container, query={"restype": "container"})

    def delete_container(self, container: str) -> None:
        self.request("DELETE", container, query={"restype": "container"}, ok=(202, 404))

    def list_blobs(self, container: str, prefix: str = "", *, uncommitted: bool = False) -> dict[str, int]:
        """Name to size; with ``uncommitted`` also names that have only uncommitted blocks (size 0)."""
        found: dict[str, int] = {}
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix}
            if uncommitted:
                query["include"] = "uncommittedblobs"
            if marker:
                query["marker"] = marker
            root = _xml(self.request("GET", container, query=query).body)
            for blob in root.iter("Blob"):
                found[blob.findtext("Name", "")] = int(blob.findtext("Properties/Content-Length") or 0)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return found


@attrs.frozen
class Azure:
    """A fresh container on Azurite, reached by obstore through the recording proxy (same interface as ``S3``)."""

    container: str
    endpoint: str  # the proxy's URL: what obstore's AZURITE_BLOB_STORAGE_URL points at
    proxy: StoreProxy
    client: BlobClient  # straight to Azurite: the test's own view of the container

    def url(self, prefix: str = "") -> str:
        return f"az://{self.container}/{prefix}"

    def objects(self, prefix: str = "") -> dict[str, int]:
        return self.client.list_blobs(self.container, prefix)

    def recordings(self, prefix: str = "") -> dict[str, int]:
        """Objects under ``prefix`` outside ``.callrec/``."""
        return {k: v for k, v in self.objects(prefix).items() if "/.callrec/" not in f"/{k}"}

    def get(self, key: str) -> bytes:
        return self.client.request("GET", self.container, key).body

    def metadata(self, key: str) -> dict[str, str]:
        """The blob's user metadata (``x-ms-meta-*``), names as Azurite stored them."""
        headers = self.client.request("HEAD", self.container, key).headers
        return {name[len(_META) :]: value for name, value in headers.items() if name.lower().startswith(_META)}

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Write a block blob as another writer would; returns its ETag."""
        headers = {"x-ms-blob-type": "BlockBlob"} | {f"{_META}{k}": v for k, v in (metadata or {}).items()}
        return str(self.client.request("PUT", self.container, key, headers=headers, body=data).headers["etag"])

    def delete(self, key: str) -> None:
        self.client.request("DELETE", self.container, key, ok=(202,))

    def uncommitted_blocks(self, key: str) -> list[str]:
        """Block ids staged on ``key`` (Put Block) but in no committed block list: Get Block List, uncommitted."""
        query = {"comp": "blocklist", "blocklisttype": "uncommitted"}
        response = self.client.request("GET", self.container, key, query=query, ok=(200, 404))
        if response.status == 404:
            return []
        return [b.findtext("Name", "") for b in _xml(response.body).iter("Block")]

    def unfinished_uploads(self) -> list[str]:
        """Names holding uncommitted blocks: Azure's counterpart of S3's unfinished multipart uploads.

        Azure has no list of uploads in progress: blocks are staged on the blob name itself and expire after a
        week if never committed. List Blobs with ``include=uncommittedblobs`` adds names that have only such
        blocks; Get Block List (``blocklisttype=uncommitted``) on each name says whether any are left.
        """
        names = self.client.list_blobs(self.container, uncommitted=True)
        return sorted(name for name in names if self.uncommitted_blocks(name))

    def env(self) -> dict[str, str]:
        """What obstore (object_store's emulator mode) reads: path-style URLs under the endpoint, SharedKey."""
        return {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": self.endpoint,
            "AZURE_STORAGE_ACCOUNT_NAME": self.client.account,
            "AZURE_STORAGE_ACCOUNT_KEY": self.client.key,
        }


def _start(command: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str, collections.deque[str]]:
    """Start Azurite in its own process group; return it, its URL, and the tail of its output."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    tail: collections.deque[str] = collections.deque(maxlen=50)

    def drain() -> None:  # keep reading so a chatty Azurite never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            tail.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 60
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        if match := re.search(r"successfully listens on (http://\S+)", line):
            return process, match.group(1), tail
    _stop(process)
    raise RuntimeError(f"Azurite did not start listening: {''.join(tail)}")


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop the whole group (npm's .bin shim may have children), then reap it."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service on a free loopback port for the session (in memory: nothing left on disk)."""
    if not AZURITE_BLOB.exists():
        reason = f"Azurite is not installed ({AZURITE_BLOB} is missing): run `make azurite`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    command = [
        str(AZURITE_BLOB),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",  # Azurite prints the port it got
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--inMemoryPersistence",
        "--extentMemoryLimit",
        "1024",
        "--silent",
    ]
    process, url, _ = _start(command, tmp_path_factory.mktemp("azurite"))
    try:
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def azurite_proxy(azurite_endpoint: str) -> Iterator[StoreProxy]:
    proxy = StoreProxy(azurite_endpoint, prefix_segments=2)  # /devstoreaccount1/container/blob
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def azure(azurite_endpoint: str, azurite_proxy: StoreProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    client = BlobClient(azurite_endpoint)
    container = f"callrec-{secrets.token_hex(4)}"
    client.create_container(container)
    store = Azure(container, azurite_proxy.url, azurite_proxy, client)
    for name in _OTHER_AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    azurite_proxy.clear()
    try:
        yield store
    finally:
        azurite_proxy.clear()
        client.delete_container(container)  # in-memory: give the blobs' memory back
