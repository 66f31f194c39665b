"""The fault matrix: every fault in callrec.testing.faults, both vendors, sync and async.

Read a row as "inject this on that route, expect that". API-route rows call
``recording_url``; storage-route rows call ``download``. ``Recovered(attempts=N)``
means the call succeeded (a SignedUrl; a byte-identical file) and the route's
origin received exactly N requests; ``Raises(E, attempts=N)`` means exactly
``E`` (not a subclass) after N requests. ``url_refreshes`` counts the extra
URLs a download had to mint from the API. Faults are queued for one request
each unless the row says ``always``. Client retries: 2, for the API and the
storage host alike (3 attempts each: one retry policy); URL refreshes: 3.

One FakeServer serves the whole module (reset between rows). Everything each
row produced (requests received, logs at DEBUG, exception and result texts)
is kept, and the last test checks across all of it that no credential, cookie
or URL signature went anywhere it should not.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import callrec
import pytest
from callrec import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CallrecError,
    DownloadError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RecordingUnavailableError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    UnprocessableEntityError,
)
from callrec.testing import FakeServer, RecordedRequest, faults
from callrec.testing.faults import (
    Chunked,
    CutBody,
    ExpiredUrl,
    ExpireMidDownload,
    Garbage,
    GcsExpiredToken,
    HtmlProxyError,
    IgnoreRange,
    Latency,
    MalformedJson,
    NonAudio,
    RateLimit,
    RedirectTo,
    Reset,
    ShortBody,
    SiroError,
    StallBeforeHeaders,
    Status,
    Trickle,
)
from forward_proxy import ForwardProxy

from .conftest import AsyncClient, Mode, SyncClient, VendorName, async_client, sync_client

# -- the vocabulary of the table ------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """The call succeeded after exactly ``attempts`` requests to the faulty origin."""

    attempts: int
    url_refreshes: int = 0


@dataclass(frozen=True)
class Raises:
    """The call raised exactly ``error`` after exactly ``attempts`` requests to the faulty origin."""

    error: type[CallrecError]
    attempts: int
    url_refreshes: int = 0


Entry = faults.Fault | tuple[faults.Fault, ...]


@dataclass(frozen=True)
class Row:
    route: Literal["api", "storage"]
    what: str
    inject: tuple[Entry, ...]
    expect: Recovered | Raises
    always: bool = False
    vendors: tuple[VendorName, ...] = ("feather", "siro")
    timeout: float | None = None  # the client's per-attempt timeout
    deadline: float | None = None  # recording_url: the client's deadline; download: the download's

    @property
    def id(self) -> str:
        return f"{self.route}: {self.what}"


def api(what: str, *inject: Entry, expect: Recovered | Raises, **kw: Any) -> Row:
    return Row("api", what, inject, expect, **kw)


def storage(what: str, *inject: Entry, expect: Recovered | Raises, **kw: Any) -> Row:
    return Row("storage", what, inject, expect, **kw)


SHORT = 0.1  # a client timeout the stalls below outlast
COOKIE = "sid=cookie-secret-7f3a; Path=/"
SIGNATURE_MISMATCH = Status(
    403,
    body=b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
    b"<Message>The request signature we calculated does not match the signature you provided.</Message></Error>",
    content_type="application/xml",
)

MATRIX: list[Row] = [
    # ---- API route: recording_url -------------------------------------------------------------------
    api("503, 503 then 200", Status(503), Status(503), expect=Recovered(attempts=3)),
    api("503 with Retry-After", Status(503, retry_after="2"), expect=Recovered(attempts=2)),
    api("503 with retry-after-ms", Status(503, retry_after_ms="1500"), expect=Recovered(attempts=2)),
    api("429", Status(429), expect=Recovered(attempts=2)),
    api("429 with Retry-After far beyond the cap", Status(429, retry_after="86400"), expect=Recovered(attempts=2)),
    api("408", Status(408), expect=Recovered(attempts=2)),
    api("500", Status(500), expect=Recovered(attempts=2)),
    api("502", Status(502), expect=Recovered(attempts=2)),
    api("504", Status(504), expect=Recovered(attempts=2)),
    api("503 setting a cookie", Status(503, headers={"Set-Cookie": COOKIE}), expect=Recovered(attempts=2)),
    api("persistent 503", Status(503), always=True, expect=Raises(ServiceUnavailableError, attempts=3)),
    api("persistent 500", Status(500), always=True, expect=Raises(InternalServerError, attempts=3)),
    api("persistent 429", Status(429), always=True, expect=Raises(RateLimitError, attempts=3)),
    # under its limit a rate-limited API answers normally (the limit itself: tests/download/test_rate_limit.py)
    api("under a rate limit", RateLimit(0.01, burst=1), always=True, expect=Recovered(attempts=1)),
    api("400", Status(400), expect=Raises(BadRequestError, attempts=1)),
    api("401", Status(401), expect=Raises(AuthenticationError, attempts=1)),
    api("403", Status(403), expect=Raises(PermissionDeniedError, attempts=1)),
    api("404", Status(404), expect=Raises(NotFoundError, attempts=1)),
    api("422", Status(422), expect=Raises(UnprocessableEntityError, attempts=1)),
    api("409 (another 4xx)", Status(409), expect=Raises(APIStatusError, attempts=1)),
    api("501 (a 5xx not retried)", Status(501), expect=Raises(InternalServerError, attempts=1)),
    api("latency below the timeout", Latency(0.05), expect=Recovered(attempts=1)),
    api("latency beyond the timeout, once", Latency(1.0), timeout=SHORT, expect=Recovered(attempts=2)),
    api("stall before headers, once", StallBeforeHeaders(1.0), timeout=SHORT, expect=Recovered(attempts=2)),
    api(
        "stall before headers, always",
        StallBeforeHeaders(1.0),
        always=True,
        timeout=SHORT,
        expect=Raises(APITimeoutError, attempts=3),
    ),
    api("stall then close, patient client", StallBeforeHeaders(0.05), expect=Recovered(attempts=2)),
    api("trickle within the deadline", Trickle(chunk_size=32, interval=0.001), expect=Recovered(attempts=1)),
    api(
        "trickle past a short deadline",
        Trickle(chunk_size=1, interval=0.05),
        deadline=0.25,
        expect=Raises(APITimeoutError, attempts=1),
    ),
    api("chunked body", Chunked(), expect=Recovered(attempts=1)),
    api("reset before the answer, once", Reset(), expect=Recovered(attempts=2)),
    api("reset mid-body, once", Reset(after_bytes=10), expect=Recovered(attempts=2)),
    api("reset, always", Reset(), always=True, expect=Raises(APIConnectionError, attempts=3)),
    api("short body (Content-Length promises more)", ShortBody(), expect=Recovered(attempts=2)),
    api(
        "cut body, no Content-Length: truncated JSON",
        CutBody(after_bytes=20),
        expect=Raises(UnexpectedResponseError, attempts=1),
    ),
    api("malformed JSON", MalformedJson(), expect=Raises(UnexpectedResponseError, attempts=1)),
    api(
        "garbage bytes with 200",
        Garbage(b"\x89PNG\r\n\x1a\n\x00\xff"),
        expect=Raises(UnexpectedResponseError, attempts=1),
    ),
    api("204 without a body", Garbage(b"", status=204), expect=Raises(UnexpectedResponseError, attempts=1)),
    api("garbage with 500, once", Garbage(b"\x00oops", status=500), expect=Recovered(attempts=2)),
    api("HTML proxy 502, once", HtmlProxyError(502), expect=Recovered(attempts=2)),
    api("HTML proxy 502, always", HtmlProxyError(502), always=True, expect=Raises(InternalServerError, attempts=3)),
    api("HTML proxy 503, always", HtmlProxyError(503), always=True, expect=Raises(ServiceUnavailableError, attempts=3)),
    api("Siro data.error", SiroError(), vendors=("siro",), expect=Raises(RecordingUnavailableError, attempts=1)),
    api("302 to elsewhere", RedirectTo("elsewhere"), expect=Raises(UnexpectedResponseError, attempts=1)),
    api("307 to elsewhere", RedirectTo("elsewhere", 307), expect=Raises(UnexpectedResponseError, attempts=1)),
    api("308 to storage", RedirectTo("storage", 308), expect=Raises(UnexpectedResponseError, attempts=1)),
    # ---- storage route: download ---------------------------------------------------------------------
    storage("plain download", expect=Recovered(attempts=1)),
    storage("503, 503 then 200", Status(503), Status(503), expect=Recovered(attempts=3)),
    storage("503 with Retry-After", Status(503, retry_after="1"), expect=Recovered(attempts=2)),
    storage("429", Status(429), expect=Recovered(attempts=2)),
    storage("under a rate limit", RateLimit(0.01, burst=1, status=503), always=True, expect=Recovered(attempts=1)),
    storage("500", Status(500), expect=Recovered(attempts=2)),
    storage("502", Status(502), expect=Recovered(attempts=2)),
    storage("504", Status(504), expect=Recovered(attempts=2)),
    storage("503 setting a cookie", Status(503, headers={"Set-Cookie": COOKIE}), expect=Recovered(attempts=2)),
    storage("persistent 503", Status(503), always=True, expect=Raises(DownloadError, attempts=3)),
    storage("400", Status(400), expect=Raises(DownloadError, attempts=1)),
    storage("403 AccessDenied (not expiry)", Status(403), expect=Raises(DownloadError, attempts=1)),
    storage("403 SignatureDoesNotMatch: no refresh", SIGNATURE_MISMATCH, expect=Raises(DownloadError, attempts=1)),
    storage("404", Status(404), expect=Raises(DownloadError, attempts=1)),
    storage("latency below the timeout", Latency(0.05), expect=Recovered(attempts=1)),
    storage("latency beyond the timeout, once", Latency(1.0), timeout=SHORT, expect=Recovered(attempts=2)),
    storage("stall before headers, once", StallBeforeHeaders(1.0), timeout=SHORT, expect=Recovered(attempts=2)),
    storage(
        "stall before headers, always",
        StallBeforeHeaders(1.0),
        always=True,
        timeout=SHORT,
        expect=Raises(DownloadError, attempts=3),
    ),
    storage("trickle within the deadline", Trickle(chunk_size=65536, interval=0.001), expect=Recovered(attempts=1)),
    storage(
        "trickle past the download deadline",
        Trickle(chunk_size=1024, interval=0.05),
        deadline=0.25,
        expect=Raises(DownloadError, attempts=1),
    ),
    storage("chunked, no Content-Length", Chunked(), expect=Raises(DownloadError, attempts=1)),
    storage("cut body, no Content-Length", CutBody(after_bytes=1000), expect=Raises(DownloadError, attempts=1)),
    storage("short body: resumed with Range", ShortBody(missing=1000), expect=Recovered(attempts=2)),
    storage("reset before any byte", Reset(), expect=Recovered(attempts=2)),
    storage("reset mid-body: resumed with Range", Reset(after_bytes=100_000), expect=Recovered(attempts=2)),
    storage("reset, always", Reset(), always=True, expect=Raises(DownloadError, attempts=3)),
    storage("Range ignored", IgnoreRange(), expect=Recovered(attempts=1)),
    storage(
        "short body, then Range ignored on resume", ShortBody(missing=1000), IgnoreRange(), expect=Recovered(attempts=2)
    ),
    storage(
        "expired mid-download", ExpireMidDownload(after_bytes=100_000), expect=Recovered(attempts=3, url_refreshes=1)
    ),
    storage(
        "expired mid-download, then Range ignored",
        ExpireMidDownload(after_bytes=100_000),
        (),
        IgnoreRange(),
        expect=Recovered(attempts=3, url_refreshes=1),
    ),
    storage("S3 expired URL, once", ExpiredUrl(), expect=Recovered(attempts=2, url_refreshes=1)),
    storage(
        "S3 expired URL, always", ExpiredUrl(), always=True, expect=Raises(DownloadError, attempts=4, url_refreshes=3)
    ),
    storage("GCS ExpiredToken, once", GcsExpiredToken(), expect=Recovered(attempts=2, url_refreshes=1)),
    storage("XML page with an audio content type", NonAudio(), expect=Raises(DownloadError, attempts=1)),
    storage(
        "garbage bytes with 200", Garbage(b"<html>not audio</html>" * 10), expect=Raises(DownloadError, attempts=1)
    ),
    storage("HTML proxy 502, once", HtmlProxyError(502), expect=Recovered(attempts=2)),
    storage("HTML proxy 502, always", HtmlProxyError(502), always=True, expect=Raises(DownloadError, attempts=3)),
    storage("302 to elsewhere", RedirectTo("elsewhere"), expect=Raises(DownloadError, attempts=1)),
    storage("307 to elsewhere", RedirectTo("elsewhere", 307), expect=Raises(DownloadError, attempts=1)),
]

ROWS_BY_VENDOR: list[tuple[Row, VendorName]] = [(row, vendor) for row in MATRIX for vendor in row.vendors]
CASES = [pytest.param(row, vendor, id=f"{row.id} [{vendor}]") for row, vendor in ROWS_BY_VENDOR]
MODES: tuple[Mode, ...] = ("sync", "async")

IDS: dict[VendorName, str] = {"feather": "call_1", "siro": "rec_1"}
#: ~300 kB of "WAV": big enough for several reads and mid-body cuts.
AUDIO = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 1200

# -- running one row ------------------------------------------------------------------------------------


@dataclass
class Evidence:
    """Everything the matrix produced, for the credential checks at the end."""

    requests: list[RecordedRequest] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where it came from, text)
    signatures: set[str] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with FakeServer(validate_requests=False) as server:
        for vendor, rid in IDS.items():
            server.add_recording(vendor, rid, data=AUDIO)
        yield server


@pytest.fixture(scope="module")
def evidence() -> Evidence:
    return Evidence()


def _exception_texts(exc: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        todo.extend((current.__cause__, current.__context__))


@dataclass
class Clients:
    """One client per vendor and mode for the whole module; rows take ``with_options`` copies."""

    runner: asyncio.Runner
    sync: dict[VendorName, SyncClient]
    asynchronous: dict[VendorName, AsyncClient]


def _clients(fake: FakeServer, *, proxy: ForwardProxy | None = None) -> Iterator[Clients]:
    """One client per vendor and mode, closed at the end; with ``proxy``, storage requests go through it."""
    runner = asyncio.Runner()  # one loop for every async row: the async clients' pools live on it
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
            patch.delenv(name, raising=False)
        if proxy is not None:  # storage (127.0.0.2) through the proxy; the APIs (127.0.0.1) direct
            patch.setenv("HTTP_PROXY", proxy.url)
            patch.setenv("NO_PROXY", "127.0.0.1")

        async def make() -> dict[VendorName, AsyncClient]:
            made = {vendor: async_client(fake, vendor) for vendor in IDS}
            for client in made.values():
                client._storage.get()
            return made

        made = Clients(runner, {vendor: sync_client(fake, vendor) for vendor in IDS}, runner.run(make()))
        for client in made.sync.values():
            client._storage.get()
        yield made

    async def close() -> None:
        for client in made.asynchronous.values():
            await client.aclose()

    for client in made.sync.values():
        client.close()
    runner.run(close())
    runner.close()


@pytest.fixture(scope="module")
def clients(fake: FakeServer) -> Iterator[Clients]:
    yield from _clients(fake)


def _call(clients: Clients, row: Row, vendor: VendorName, mode: Mode, dest: Path) -> object:
    kw: dict[str, Any] = {}
    if row.timeout is not None:
        kw["timeout"] = row.timeout
    if row.route == "api" and row.deadline is not None:
        kw["deadline"] = row.deadline
    rid = IDS[vendor]
    if mode == "async":
        aclient = clients.asynchronous[vendor].with_options(**kw)
        if row.route == "api":
            return clients.runner.run(aclient.recording_url(rid))
        return clients.runner.run(aclient.download(rid, dest, deadline=row.deadline))
    client = clients.sync[vendor].with_options(**kw)
    if row.route == "api":
        return client.recording_url(rid)
    return client.download(rid, dest, deadline=row.deadline)


def run_row(
    fake: FakeServer,
    clients: Clients,
    evidence: Evidence,
    caplog: pytest.LogCaptureFixture,
    row: Row,
    vendor: VendorName,
    mode: Mode,
    dest: Path,
) -> None:
    """Inject the row's faults, make the call, check the outcome and keep the evidence."""
    fake.reset()
    caplog.clear()
    for name in ("", "callrec", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    origin = getattr(fake, vendor if row.route == "api" else "storage")
    if row.always:
        origin.always(*row.inject)  # an always row lists single faults
    else:
        origin.queue(*row.inject)
    result: object = None
    error: BaseException | None = None
    try:
        result = _call(clients, row, vendor, mode, dest)
    except Exception as exc:  # kept for the checks below; the test fails on anything unexpected
        error = exc
    requests = fake.requests
    evidence.ran.add(f"{row.id} [{vendor}] {mode}")
    evidence.requests.extend(requests)
    evidence.texts.extend((f"log {r.name} ({row.id})", r.getMessage()) for r in caplog.records)
    evidence.texts.append((f"caplog text ({row.id})", caplog.text))
    for r in requests:
        evidence.signatures.update(re.findall(r"X-Amz-Signature=([0-9a-f]+)", r.query))
    if error is not None:
        evidence.texts.extend((f"exception ({row.id})", text) for text in _exception_texts(error))
    if result is not None:
        evidence.texts.extend([(f"result ({row.id})", repr(result)), (f"result ({row.id})", str(result))])
        if isinstance(result, callrec.SignedUrl):
            evidence.signatures.update(re.findall(r"X-Amz-Signature=([0-9a-f]+)", result.url))

    to_api = [r for r in requests if r.origin == vendor]
    to_storage = [r for r in requests if r.origin == "storage"]
    faulty = to_api if row.route == "api" else to_storage
    expect = row.expect
    if isinstance(expect, Raises):
        assert type(error) is expect.error, f"expected {expect.error.__name__}, got {error!r} / {result!r}"
    else:
        assert error is None, f"expected recovery, got {error!r}"
    assert len(faulty) == expect.attempts, f"{row.route} got {len(faulty)} requests, expected {expect.attempts}"
    assert fake.requests_to("elsewhere") == []
    if row.route == "api":
        assert to_storage == []
        if isinstance(expect, Recovered):
            assert isinstance(result, callrec.SignedUrl)
            assert (result.provider, result.recording_id) == (vendor, IDS[vendor])
            assert result.leg == ("main" if vendor == "feather" else None)
            assert result.url.startswith(f"{fake.storage_origin}/{vendor}/{IDS[vendor]}/")
        return
    assert len(to_api) == 1 + expect.url_refreshes  # a fresh URL only when the old one expired
    if isinstance(expect, Recovered):
        assert isinstance(result, callrec.DownloadResult)
        assert result.path.read_bytes() == AUDIO
        assert (result.bytes, result.url_refreshes) == (len(AUDIO), expect.url_refreshes)
        assert [p.name for p in dest.iterdir()] == [result.path.name]
    else:
        assert list(dest.iterdir()) == []  # nothing written, no temp file left behind
    for resumed in to_storage[1:]:
        if resumed.header("range") is not None:
            assert resumed.header("if-range")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("row", "vendor"), CASES)
def test_fault_matrix(
    fake: FakeServer,
    clients: Clients,
    evidence: Evidence,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    row: Row,
    vendor: VendorName,
    mode: Mode,
) -> None:
    run_row(fake, clients, evidence, caplog, row, vendor, mode, tmp_path)


STORAGE_CASES = [case for case in CASES if case.values[0].route == "storage"]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def storage_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def proxied_clients(fake: FakeServer, storage_proxy: ForwardProxy) -> Iterator[Clients]:
    """Clients whose storage requests go through a real forward proxy on loopback (HTTP_PROXY)."""
    yield from _clients(fake, proxy=storage_proxy)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("row", "vendor"), STORAGE_CASES)
def test_storage_faults_behave_the_same_through_a_proxy(
    fake: FakeServer,
    proxied_clients: Clients,
    storage_proxy: ForwardProxy,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    row: Row,
    vendor: VendorName,
    mode: Mode,
) -> None:
    # The README: one storage transport in every environment; under a proxy every download guarantee holds too.
    for client in (proxied_clients.sync[vendor], proxied_clients.asynchronous[vendor]):
        assert type(client._storage.get()._transport).__name__.endswith("StorageTransport")
    seen = len(storage_proxy.lines)
    run_row(fake, proxied_clients, Evidence(), caplog, row, vendor, mode, tmp_path)
    through = storage_proxy.lines[seen:]
    assert through and all(line.startswith(f"GET {fake.storage_origin}/") for line in through), through[:2]


def test_matrix_covers_every_fault_on_its_route() -> None:
    public = {getattr(faults, name) for name in faults.__all__ if name != "Fault"}
    used: dict[str, set[type]] = {"api": set(), "storage": set()}
    for row in MATRIX:
        for entry in row.inject:
            used[row.route].update(type(f) for f in (entry if isinstance(entry, tuple) else (entry,)))
    storage_only = {IgnoreRange, ExpireMidDownload, ExpiredUrl, GcsExpiredToken, NonAudio}
    api_only = {MalformedJson, SiroError}  # JSON-body faults: storage serves audio
    assert public - used["api"] == storage_only
    assert public - used["storage"] == api_only


def test_no_credential_cookie_or_signature_leaks_across_the_matrix(
    fake: FakeServer,
    clients: Clients,
    evidence: Evidence,
    caplog: pytest.LogCaptureFixture,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Rows deselected with -k still have to run: this test is about all of them.
    for row, vendor in ROWS_BY_VENDOR:
        for mode in MODES:
            if f"{row.id} [{vendor}] {mode}" not in evidence.ran:
                run_row(fake, clients, evidence, caplog, row, vendor, mode, tmp_path_factory.mktemp("row"))
    assert len(evidence.ran) == len(CASES) * len(MODES)
    assert evidence.signatures, "the matrix minted signed URLs"

    credential_headers = {"x-api-key", "x-siro-auth-token", "authorization", "cookie"}
    owner = {"feather": ("x-api-key", fake.feather_api_key), "siro": ("x-siro-auth-token", fake.siro_token)}
    secrets = [fake.feather_api_key, fake.siro_token, "cookie-secret-7f3a"]
    for request in evidence.requests:
        names = {name.lower() for name, _ in request.headers}
        everything = " ".join(f"{n}: {v}" for n, v in request.headers) + request.query + request.path
        if request.origin in ("feather", "siro"):
            header, key = owner[request.origin]
            assert request.header(header) == key
            assert names & credential_headers <= {header, "cookie"}, (request.origin, names)
            other = fake.siro_token if request.origin == "feather" else fake.feather_api_key
            assert other not in everything
        else:
            assert request.origin == "storage", "nothing may reach the elsewhere origin"
            assert not names & credential_headers, (request.origin, names)
            assert not any(secret in everything for secret in secrets)

    forbidden = [*secrets[:2], *evidence.signatures, "X-Amz-Signature", "X-Amz-Credential"]
    for where, text in evidence.texts:
        for secret in forbidden:
            assert secret not in text, f"{secret[:12]}... appears in {where}"
