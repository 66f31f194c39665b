"""Requests are recorded before faults apply; the pytest fixtures hand out a started fake."""

from __future__ import annotations

import os

import callrec.testing
import httpx
import pytest
from callrec.testing import FakeServer, RecordedRequest, faults
from fake_helpers import feather_get, siro_post


def test_requests_are_recorded_with_method_path_query_headers_and_body(fake: FakeServer, client: httpx.Client) -> None:
    feather_get(client, fake, "call_1", leg="supervisor")
    siro_post(client, fake, "rec_1", json={})

    feather, siro = fake.requests

    assert (feather.origin, feather.method, feather.path) == (
        "feather",
        "GET",
        "/api/v1/agent-calls/call_1/recording-url",
    )
    assert feather.query == "type=supervisor"
    assert feather.params == {"type": "supervisor"}
    assert feather.header("x-api-key") == fake.feather_api_key
    assert (siro.origin, siro.method, siro.body) == ("siro", "POST", b"{}")


def test_requests_are_recorded_even_when_reset(fake: FakeServer, client: httpx.Client) -> None:
    fake.storage.queue(faults.Reset())

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(f"{fake.storage_origin}/feather/x/main.wav?X-Amz-Signature=abc")

    [recorded] = fake.requests_to("storage")
    assert recorded.query == "X-Amz-Signature=abc"


def test_requests_to_filters_by_origin(fake: FakeServer, client: httpx.Client) -> None:
    feather_get(client, fake, "a")
    siro_post(client, fake, "b")
    feather_get(client, fake, "c")

    assert [r.path.split("/")[4] for r in fake.requests_to("feather")] == ["a", "c"]
    assert fake.siro.requests == fake.requests_to("siro")


def test_reset_forgets_requests_and_faults_but_keeps_recordings(fake: FakeServer, client: httpx.Client) -> None:
    fake.add_recording("feather", "call_1")
    feather_get(client, fake, "call_1")
    fake.feather.always(faults.Status(500))

    fake.reset()

    assert fake.requests == []
    assert feather_get(client, fake, "call_1").status_code == 200


def test_record_requests_can_be_turned_off(client: httpx.Client) -> None:
    with FakeServer(record_requests=False, validate_requests=False) as fake:
        feather_get(client, fake, "call_1")
        assert fake.requests == []


def test_start_and_stop_without_context_manager(client: httpx.Client) -> None:
    fake = FakeServer(validate_requests=False).start()
    try:
        assert feather_get(client, fake, "x").status_code == 400
    finally:
        fake.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.feather_base_url


def test_stop_closes_open_keep_alive_connections(client: httpx.Client) -> None:
    with FakeServer() as fake:
        url = f"{fake.feather_base_url}/api/v1/agent-calls/x/recording-url"
        assert client.get(url).status_code == 401
    with pytest.raises(httpx.TransportError):
        client.get(url)


def test_callrec_fake_fixture_is_a_started_server(callrec_fake: FakeServer, client: httpx.Client) -> None:
    callrec_fake.add_recording("siro", "rec_1")

    assert siro_post(client, callrec_fake, "rec_1").status_code == 200


def test_callrec_env_fixture_exports_the_fake_env(callrec_env: FakeServer) -> None:
    assert os.environ["FEATHER_BASE_URL"] == callrec_env.feather_base_url
    assert os.environ["FEATHER_API_KEY"] == callrec_env.feather_api_key
    assert os.environ["SIRO_BASE_URL"] == callrec_env.siro_base_url
    assert os.environ["SIRO_AUTH_TOKEN"] == callrec_env.siro_token


def test_public_api_is_exactly_dunder_all() -> None:
    # isidentifier(): pytest rewrites plugin packages and adds "@py_builtins"-style names.
    public = {n for n in dir(callrec.testing) if not n.startswith("_") and n.isidentifier()}
    # Submodules import as attributes of their package; `faults` is public, the rest are private.
    public -= {"faults"}

    assert public == set(callrec.testing.__all__) - {"faults"}
    for name in callrec.testing.__all__:
        obj = getattr(callrec.testing, name)
        if name != "faults":
            assert obj.__module__ == "callrec.testing", name
    assert RecordedRequest.__module__ == "callrec.testing"


def test_faults_module_lists_every_fault_in_its_docstring() -> None:
    doc = faults.__doc__ or ""
    for name in faults.__all__:
        if name != "Fault":
            assert f"{name}(" in doc, name
