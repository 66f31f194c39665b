"""No repr or str of anything a user can reach shows a credential or a signed URL's query string.

From the four clients, after a successful and after a failed call, the test walks the object graph
a user can navigate: the client, ``client.generated`` and the httpx client it shares, results
(SignedUrl, DownloadResult, BulkItem), links, exceptions with their ``response``, ``request``,
``response.request``, headers, ``__cause__`` and ``__context__``, and the traceback text a log
would print. Every public attribute is followed (methods are not called); plain strings, bytes
and numbers reached that way are data (``SignedUrl.url`` is the secret by design), but the
repr and str of every object and container are checked against the credential, the storage
signatures the fake server minted and any ``X-Amz-`` query parameter.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeAlias

import callrec
import httpx
import pytest
from callrec import CallrecError
from callrec.testing import FakeServer, faults

from .conftest import Mode, VendorName, async_client, sync_client

Roots: TypeAlias = list[tuple[str, object]]

#: Objects from these packages (and containers and exceptions) are followed attribute by attribute.
FOLLOWED = ("callrec", "feather_api", "siro_api", "httpx", "builtins", "pathlib", "datetime")
DATA = (str, bytes, bytearray, int, float, bool, type(None))
#: Checked as a whole, not attribute by attribute: Headers.raw is the data itself, like headers["x-api-key"].
LEAVES = (httpx.Headers,)
MISSING = object()
MAX_DEPTH = 6
PLANTED = "planted-signature-4b1d"


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def walk(roots: Roots) -> dict[int, tuple[str, object]]:
    """Every object reachable from the roots, by id, with the first path that reached it."""
    reached: dict[int, tuple[str, object]] = {}
    todo: list[tuple[str, object, int]] = [(name, obj, 0) for name, obj in reversed(roots)]
    while todo:
        path, obj, depth = todo.pop()
        if isinstance(obj, DATA) or id(obj) in reached:
            continue
        reached[id(obj)] = (path, obj)
        if depth < MAX_DEPTH:
            todo.extend((f"{path}{suffix}", child, depth + 1) for suffix, child in reversed(list(children(obj))))
    return reached


def texts(reached: dict[int, tuple[str, object]]) -> Iterator[tuple[str, str]]:
    """(where, text) for the repr and str of each object, and the traceback text of each exception."""
    for path, obj in reached.values():
        yield f"repr({path})", repr(obj)
        yield f"str({path})", str(obj)
        if isinstance(obj, BaseException):
            yield f"traceback({path})", "".join(traceback.format_exception(obj))


def children(obj: object) -> Iterator[tuple[str, object]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield f"[{key!r}]", value
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for index, value in enumerate(obj):
            yield f"[{index}]", value
        return
    if isinstance(obj, BaseException):
        yield ".__cause__", obj.__cause__
        yield ".__context__", obj.__context__
    if type(obj).__module__.split(".")[0] not in FOLLOWED or isinstance(obj, LEAVES):
        return
    for name in dir(obj):
        value = attribute(obj, name)
        if value is not MISSING and (not callable(value) or isinstance(value, (type, BaseException))):
            yield f".{name}", value


def attribute(obj: object, name: str) -> object:
    if name.startswith("_"):
        return MISSING
    try:
        return getattr(obj, name)
    except Exception:  # a property that needs a read body, a closed client...
        return MISSING


def user_roots(client: Any, flavour: Mode) -> Roots:
    """The client, its generated twin and the httpx client they share (callrec adds the credential per request)."""
    generated = client.generated
    shared = generated.get_httpx_client() if flavour == "sync" else generated.get_async_httpx_client()
    return [("client", client), ("client.generated", generated), ("client.generated.<httpx client>", shared)]


def secrets(fake: FakeServer) -> list[str]:
    signatures = [r.params["X-Amz-Signature"] for r in fake.requests_to("storage") if "X-Amz-Signature" in r.params]
    return [fake.feather_api_key, fake.siro_token, "X-Amz-", "FAKEACCESSKEY", PLANTED, *signatures]


def assert_nothing_secret(roots: Roots, fake: FakeServer, *, must_reach: tuple[object, ...] = ()) -> None:
    """No secret in any text; and the walk did reach ``must_reach`` (else it proves nothing about them)."""
    reached = walk(roots)
    assert [obj for obj in must_reach if id(obj) not in reached] == []
    hidden = secrets(fake)
    leaks = [(where, s) for where, text in texts(reached) for s in hidden if s in text]
    assert not leaks, "\n".join(f"{where} shows {secret!r}" for where, secret in leaks[:10])


def run(flavour: Mode, fake: FakeServer, vendor: VendorName, calls: Callable[[Any], Any], **kw: Any) -> Roots:
    """Build the client and make the calls (each returns its error, if any); the walk comes after, on closed objects."""
    if flavour == "sync":
        with sync_client(fake, vendor, **kw) as client:
            roots: Roots = calls(client)
            return user_roots(client, flavour) + roots

    async def go() -> Roots:
        async with async_client(fake, vendor, **kw) as client:
            found: Roots = await calls(client)
            return user_roots(client, flavour) + found

    return asyncio.run(go())


def outcome(flavour: Mode, call: Callable[[], Any]) -> Any:
    """The call's result or the CallrecError it raised (sync), or an awaitable of that (async)."""
    if flavour == "sync":
        try:
            return call()
        except CallrecError as exc:
            return exc

    async def go() -> Any:
        try:
            return await call()
        except CallrecError as exc:
            return exc

    return go()


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_after_successful_calls_nothing_shows_a_secret(
    fake: FakeServer, flavour: Mode, vendor: VendorName, tmp_path: Path
) -> None:
    fake.add_recording(vendor, "rec_1")
    fake.add_recording(vendor, "rec_2")

    def sync_calls(client: Any) -> Roots:
        link = client.link("rec_1")
        link.get()
        return [
            ("url", client.recording_url("rec_1")),
            ("download", client.download("rec_1", tmp_path / "one")),
            ("link", link),
            ("link.get()", link.get()),
            ("items", client.download_many(["rec_1", "rec_2", "missing"], tmp_path / "many")),
        ]

    async def async_calls(client: Any) -> Roots:
        link = client.link("rec_1")
        await link.get()
        return [
            ("url", await client.recording_url("rec_1")),
            ("download", await client.download("rec_1", tmp_path / "one")),
            ("link", link),
            ("link.get()", await link.get()),
            ("items", await client.download_many(["rec_1", "rec_2", "missing"], tmp_path / "many")),
        ]

    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    roots = run(flavour, fake, vendor, sync_calls if flavour == "sync" else async_calls)
    items: Any = dict(roots)["items"]
    assert [item.status for item in items] == ["downloaded", "downloaded", "failed"]
    failed = items[2].error
    assert isinstance(failed, callrec.APIStatusError)  # the missing id: Feather's 400, Siro's 404
    reach = (items[0].result, failed.response.request.headers, failed.response.headers)
    assert_nothing_secret(roots, fake, must_reach=reach)


Route: TypeAlias = Literal["api", "storage"]
SIGNATURE_MISMATCH = faults.Status(
    403, body=b"<Error><Code>SignatureDoesNotMatch</Code></Error>", content_type="application/xml"
)
SLOW = {"timeout": 0.25, "max_retries": 0}  # a timeout the stalls below outlast; the API answers well within it


def failure(
    what: str, route: Route, fault: faults.Fault | None, error: type[CallrecError], **kw: Any
) -> Any:  # a pytest ParameterSet; fault None: the API answers a signed URL callrec must refuse
    return pytest.param(route, fault, error, kw.pop("client", {"max_retries": 1}), id=what, **kw)


FAILURES = [
    failure("401", "api", faults.Status(401), callrec.AuthenticationError),
    failure("404", "api", faults.Status(404), callrec.NotFoundError),
    failure("503 every time", "api", faults.Status(503), callrec.ServiceUnavailableError),
    failure("html 502 every time", "api", faults.HtmlProxyError(502), callrec.InternalServerError),
    failure("reset every time", "api", faults.Reset(), callrec.APIConnectionError),
    failure("body cut short every time", "api", faults.ShortBody(5), callrec.APIConnectionError),
    failure("slower than the timeout", "api", faults.StallBeforeHeaders(1.0), callrec.APITimeoutError, client=SLOW),
    failure("not JSON", "api", faults.MalformedJson(), callrec.UnexpectedResponseError),
    failure("redirect", "api", faults.RedirectTo("elsewhere"), callrec.UnexpectedResponseError),
    failure("unusable signed URL", "api", None, callrec.UnexpectedResponseError),
    failure("storage: signature mismatch", "storage", SIGNATURE_MISMATCH, callrec.DownloadError),
    failure("storage: 503 every time", "storage", faults.Status(503), callrec.DownloadError),
    failure("storage: reset mid-body every time", "storage", faults.Reset(after_bytes=100), callrec.DownloadError),
    failure("storage: not audio", "storage", faults.NonAudio(), callrec.DownloadError),
    failure("storage: redirect", "storage", faults.RedirectTo("elsewhere"), callrec.DownloadError),
    failure("storage: expired every time", "storage", faults.ExpiredUrl(), callrec.DownloadError),
    failure(
        "storage: slower than the timeout",
        "storage",
        faults.StallBeforeHeaders(1.0),
        callrec.DownloadError,
        client=SLOW,
    ),
]


def unusable_url_body(vendor: VendorName) -> bytes:
    """A 200 whose URL callrec must refuse (plain http off loopback), carrying a signature."""
    url = f"http://storage.example/rec.wav?X-Amz-Signature={PLANTED}"
    if vendor == "feather":
        return json.dumps({"url": url, "expiresAt": "2030-01-01T00:00:00Z"}).encode()
    return json.dumps({"data": {"error": False, "url": url, "expiration": 1893456000000}}).encode()


@pytest.mark.parametrize("vendor", ["feather", "siro"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(("route", "fault", "error", "client_kw"), FAILURES)
def test_after_failed_calls_nothing_shows_a_secret(
    fake: FakeServer,
    flavour: Mode,
    vendor: VendorName,
    route: Route,
    fault: faults.Fault | None,
    error: type[CallrecError],
    client_kw: dict[str, Any],
    tmp_path: Path,
) -> None:
    fake.add_recording(vendor, "rec_1")
    origin = fake.storage if route == "storage" else getattr(fake, vendor)
    origin.always(fault or faults.Garbage(unusable_url_body(vendor), content_type="application/json"))

    def calls(client: Any) -> Any:
        if route == "api":
            return outcome(flavour, lambda: client.recording_url("rec_1"))
        return outcome(flavour, lambda: client.download("rec_1", tmp_path))

    def sync_calls(client: Any) -> Roots:
        return [("err", calls(client))]

    async def async_calls(client: Any) -> Roots:
        return [("err", await calls(client))]

    roots = run(flavour, fake, vendor, sync_calls if flavour == "sync" else async_calls, **client_kw)
    err: Any = dict(roots)["err"]
    assert type(err) is error
    reach: tuple[object, ...] = ()
    if isinstance(err, (callrec.APIStatusError, callrec.UnexpectedResponseError)) and err.response is not None:
        reach = (err.response, err.response.headers, err.response.request, err.response.request.headers)
    if isinstance(err, callrec.APIConnectionError):  # the transport's exception and request, kept for the user
        reach = (err.__cause__, err.request, getattr(err.request, "headers", None))
    if isinstance(err, callrec.DownloadError) and err.__cause__ is not None:
        reach = (err.__cause__,)
    assert_nothing_secret(roots, fake, must_reach=reach)
