"""Construction: credentials, base URLs, timeouts and inputs are checked before any request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import callrec
import feather_api
import httpx
import pytest
from feather_api.api.calls import get_recording_url

from .conftest import Script, make_async_client, make_client, ok

CLIENTS: list[tuple[type[Any], str, str, str]] = [
    (callrec.FeatherClient, "api_key", "FEATHER_API_KEY", "FEATHER_BASE_URL"),
    (callrec.SiroClient, "token", "SIRO_AUTH_TOKEN", "SIRO_BASE_URL"),
    (callrec.AsyncFeatherClient, "api_key", "FEATHER_API_KEY", "FEATHER_BASE_URL"),
    (callrec.AsyncSiroClient, "token", "SIRO_AUTH_TOKEN", "SIRO_BASE_URL"),
]
ids = [c[0].__name__ for c in CLIENTS]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FEATHER_API_KEY", "FEATHER_BASE_URL", "SIRO_AUTH_TOKEN", "SIRO_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(("cls", "kw", "env", "_base"), CLIENTS, ids=ids)
def test_missing_credential_names_the_env_var(
    cls: type[Any], kw: str, env: str, _base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(callrec.MissingCredentialsError, match=env) as info:
        cls()
    assert info.value.env_var == env
    monkeypatch.setenv(env, "   ")
    with pytest.raises(callrec.MissingCredentialsError, match=env):
        cls()
    with pytest.raises(callrec.MissingCredentialsError):
        cls(**{kw: ""})


@pytest.mark.parametrize(("cls", "kw", "env", "base_env"), CLIENTS, ids=ids)
def test_credential_and_base_url_from_env(
    cls: type[Any], kw: str, env: str, base_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "from-env")
    monkeypatch.setenv(base_env, "https://proxy.example/mount")
    client = cls()
    assert client._config.credential == "from-env"
    assert str(client.base_url) == "https://proxy.example/mount"
    assert cls(**{kw: "explicit"}, base_url="https://other.example")._config.credential == "explicit"


@pytest.mark.parametrize(
    "bad", ["sekrit\r\nX-Evil: 1", "sekrit\n", "sékrit", "sekrit\x00", "sekrit\x7f", "tab\tsekrit"]
)
@pytest.mark.parametrize(("cls", "kw", "env", "_base"), CLIENTS, ids=ids)
def test_bad_credential_is_refused_without_echo(
    cls: type[Any], kw: str, env: str, _base: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="refusing") as info:
        cls(**{kw: bad})
    assert "sekrit" not in str(info.value) and "krit" not in str(info.value)
    if "\x00" in bad:
        return  # the OS cannot hold NUL in an environment variable
    monkeypatch.setenv(env, bad)
    with pytest.raises(ValueError, match=env):
        cls()


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("ftp://api.example", r"absolute http\(s\)"),
        ("api.example", r"absolute http\(s\)"),
        ("http://api.example", "https"),
        ("https://user:secret@api.example", "userinfo"),
        ("https://api.example/?key=1", "query"),
        ("https://api.example/#frag", "fragment"),
        ("https://[::1", "not a valid URL"),
    ],
)
def test_bad_base_url_is_refused(base_url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        callrec.FeatherClient("k", base_url=base_url)
    assert "secret" not in str(info.value)


def test_default_base_urls_are_the_specs_servers() -> None:
    from importlib import resources

    import yaml

    for cls, pkg in ((callrec.FeatherClient, "feather_api"), (callrec.SiroClient, "siro_api")):
        spec = yaml.safe_load((resources.files(pkg) / "openapi.yaml").read_text())
        assert str(cls("k").base_url) == str(httpx.URL(spec["servers"][0]["url"]))


@pytest.mark.parametrize("timeout", [None, 0, -1, "30", httpx.Timeout(None), httpx.Timeout(5, read=None)])
def test_timeout_must_bound_every_phase(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        callrec.FeatherClient("k", timeout=timeout)


def test_default_timeout_is_real_with_short_connect() -> None:
    client = callrec.SiroClient("k")
    assert client.timeout.read == 30.0 and client.timeout.connect == 5.0
    assert callrec.SiroClient("k", timeout=2).timeout.connect == 2.0


@pytest.mark.parametrize("max_retries", [-1, 1.5, True, "2"])
def test_max_retries_must_be_a_non_negative_int(max_retries: Any) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        callrec.FeatherClient("k", max_retries=max_retries)


BAD_IDS = ["", " ", "\t\n", ".", "..", "a\x00b", "a\nb", "x" * 1025]


@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_bad_recording_id_raises_before_any_request(vendor: str, bad_id: str) -> None:
    script = Script(ok(vendor))
    with make_client(vendor, script) as client, pytest.raises(ValueError, match="recording_id"):
        client.recording_url(bad_id)
    assert script.requests == []


@pytest.mark.parametrize("bad_id", [None, 12, b"bytes"])
def test_non_string_id_is_a_type_error(bad_id: Any) -> None:
    script = Script(ok("feather"))
    with make_client("feather", script) as client, pytest.raises(TypeError, match="recording_id"):
        client.recording_url(bad_id)
    assert script.requests == []


@pytest.mark.parametrize("leg", ["", "Main", "both", None, 1])
async def test_bad_leg_lists_allowed_values_before_any_request(leg: Any) -> None:
    script = Script(ok("feather"))
    with make_client("feather", script) as client, pytest.raises(ValueError, match="'main', 'supervisor'"):
        client.recording_url("r1", leg=leg)
    async with make_async_client("feather", script) as aclient:
        with pytest.raises(ValueError, match="'main', 'supervisor'"):
            await aclient.recording_url("r1", leg=leg)
    assert script.requests == []


@pytest.mark.parametrize(
    ("rid", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("../x", "..%2Fx"),
        ("?q=1", "%3Fq%3D1"),
        ("%2F", "%252F"),
        ("#frag", "%23frag"),
        ("call 1", "call%201"),
        ("ünï", "%C3%BCn%C3%AF"),
        ("...", "..."),
    ],
)
@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_id_travels_as_one_percent_encoded_segment(vendor: str, rid: str, segment: str) -> None:
    script = Script(ok(vendor))
    with make_client(vendor, script) as client:
        assert client.recording_url(rid).recording_id == rid
    raw = script.requests[0].url.raw_path.decode()
    prefix = "/api/v1/agent-calls/" if vendor == "feather" else "/v1/core/recordings/"
    suffix = "/recording-url" if vendor == "feather" else "/signedUrl"
    assert raw.split("?")[0] == prefix + segment + suffix


def test_base_url_path_prefix_is_kept() -> None:
    script = Script(ok("siro"))
    http = httpx.Client(transport=httpx.MockTransport(script))
    with callrec.SiroClient("t", base_url="https://gw.example/siro/", http_client=http) as client:
        client.recording_url("r1")
    assert str(script.requests[0].url) == "https://gw.example/siro/v1/core/recordings/r1/signedUrl"


def test_credential_and_default_headers_are_sent_and_credential_wins() -> None:
    script = Script(ok("feather"))
    http = httpx.Client(transport=httpx.MockTransport(script))
    headers = {"X-Trace": "t1", "X-API-Key": "spoofed"}
    with callrec.FeatherClient("real", http_client=http, default_headers=headers) as client:
        client.recording_url("r1")
    sent = script.requests[0].headers
    assert sent["x-api-key"] == "real" and sent["x-trace"] == "t1"
    assert sent["user-agent"].startswith("callrec/")


def test_bring_your_own_client_is_not_closed_or_mutated() -> None:
    script = Script(ok("siro"))
    http = httpx.Client(transport=httpx.MockTransport(script))
    with callrec.SiroClient("tok", http_client=http) as client:
        client.recording_url("r1")
    assert not http.is_closed
    assert "x-siro-auth-token" not in http.headers
    http.close()


@pytest.mark.parametrize("factory", [lambda: httpx.AsyncClient(), lambda: object()])
def test_wrong_http_client_type_is_refused(factory: Callable[[], Any]) -> None:
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        callrec.FeatherClient("k", http_client=factory())


def test_generated_escape_hatch_is_configured() -> None:
    with callrec.FeatherClient("k1", base_url="https://api.example/mount", timeout=7) as client:
        gen = client.generated
        assert gen is client.generated
        assert isinstance(gen, feather_api.AuthenticatedClient)
        assert gen.base_url == "https://api.example/mount"
        assert (gen.auth_header_name, gen.prefix) == ("X-API-Key", "")
        prepared = gen.prepare(get_recording_url.request_args("c1"))
        assert prepared["url"] == "https://api.example/mount/api/v1/agent-calls/c1/recording-url"
        headers = httpx.Headers(prepared["headers"])
        assert headers["X-API-Key"] == "k1"
        assert headers["User-Agent"].startswith("callrec/")
        # callrec's own pool: same timeout, never follows redirects
        httpx_client = gen.get_httpx_client()
        assert httpx_client.timeout.read == 7 and httpx_client.follow_redirects is False
        assert "k1" not in repr(gen)
    assert httpx_client.is_closed


def test_client_repr_shows_no_credential() -> None:
    client = callrec.SiroClient("super-secret-token")
    assert "super-secret-token" not in repr(client)
