"""What a careless caller passes gets a clear error before any request is sent."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import callrec
import httpx
import pytest
from callrec import MissingCredentialsError
from callrec.testing import FakeServer

from .conftest import sync_client


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.add_recording("feather", "call_1")
        server.add_recording("siro", "rec_1")
        yield server


@pytest.fixture
def quiet(fake: FakeServer) -> Iterator[FakeServer]:
    """The module's server, asserted to have received nothing during the test."""
    fake.reset()
    yield fake
    assert fake.requests == []


BAD_IDS: list[tuple[object, type[Exception], str]] = [
    (None, TypeError, "must be a str"),
    (123, TypeError, "must be a str"),
    (b"call_1", TypeError, "must be a str"),
    ("", ValueError, "empty"),
    (" ", ValueError, "empty"),
    ("\t\n", ValueError, "empty"),
    (".", ValueError, r"'\.' or '\.\.'"),
    ("..", ValueError, r"'\.' or '\.\.'"),
    ("call_1\r\nX-Injected: 1", ValueError, "control characters"),
    ("call\x00", ValueError, "control characters"),
    ("x" * 1025, ValueError, "longer than 1024"),
]


@pytest.mark.parametrize(("vendor"), ["feather", "siro"])
@pytest.mark.parametrize(("recording_id", "error", "message"), BAD_IDS, ids=[repr(i[0])[:20] for i in BAD_IDS])
def test_bad_recording_id_is_refused_before_any_request(
    quiet: FakeServer, tmp_path: Path, vendor: Any, recording_id: Any, error: type[Exception], message: str
) -> None:
    with sync_client(quiet, vendor) as client:
        with pytest.raises(error, match=message):
            client.recording_url(recording_id)
        with pytest.raises(error, match=message):
            client.download(recording_id, tmp_path)
        with pytest.raises(error, match=message):
            client.link(recording_id)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("leg", ["main ", " main", "MAIN", "", None, "both", 0, b"main"])
def test_unknown_leg_is_refused_naming_the_valid_ones(quiet: FakeServer, tmp_path: Path, leg: Any) -> None:
    with callrec.FeatherClient(quiet.feather_api_key, base_url=quiet.feather_base_url) as client:
        with pytest.raises(ValueError, match="leg must be one of 'main', 'supervisor'"):
            client.recording_url("call_1", leg=leg)
        with pytest.raises(ValueError, match="leg must be one of"):
            client.download("call_1", tmp_path, leg=leg)


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        ("", MissingCredentialsError, "FEATHER_API_KEY"),
        ("   ", MissingCredentialsError, "FEATHER_API_KEY"),
        ("fk_live_secret\n", ValueError, "CR/LF"),
        ("fk_live_secret\r\nX-Evil: 1", ValueError, "CR/LF"),
        ("fk_live_sécret", ValueError, "non-ASCII"),
        ("fk_live\x00secret", ValueError, "CR/LF"),
        (12345, TypeError, "api_key must be a str"),
        (b"fk_live_secret", TypeError, "api_key must be a str"),
    ],
)
def test_unusable_key_is_refused_at_construction_without_echoing_it(
    quiet: FakeServer, monkeypatch: pytest.MonkeyPatch, key: Any, error: type[Exception], message: str
) -> None:
    monkeypatch.setenv("FEATHER_API_KEY", quiet.feather_api_key)  # an explicit bad key still loses to the env
    with pytest.raises(error, match=message) as caught:
        callrec.FeatherClient(key, base_url=quiet.feather_base_url)
    assert "secret" not in str(caught.value)


def test_missing_key_names_the_environment_variable(quiet: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIRO_AUTH_TOKEN", raising=False)
    with pytest.raises(MissingCredentialsError, match="SIRO_AUTH_TOKEN"):
        callrec.SiroClient(base_url=quiet.siro_base_url)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://api.example.com", "must use https"),
        ("https://user@api.example.com", "userinfo"),
        ("https://user:hunter2@api.example.com", "userinfo"),
        ("", "absolute http"),
        ("api.example.com", "absolute http"),
        ("ftp://api.example.com", "absolute http"),
        ("https://api.example.com/?token=hunter2", "query or fragment"),
        ("https://api.example.com/#x", "query or fragment"),
        ("https://[::1", "not a valid URL"),
    ],
)
def test_unsafe_base_url_is_refused_without_echoing_secrets(quiet: FakeServer, base_url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        callrec.FeatherClient(quiet.feather_api_key, base_url=base_url)
    assert "hunter2" not in str(caught.value)


def test_plain_http_base_url_is_accepted_on_loopback_only(quiet: FakeServer) -> None:
    for base in ("http://localhost:1", "http://127.0.0.1:1", "http://[::1]:1"):
        callrec.FeatherClient("k", base_url=base).close()
    with pytest.raises(ValueError, match="must use https"):
        callrec.FeatherClient("k", base_url="http://10.0.0.1")


BAD_NUMBERS: list[object] = [0, -1, None, "5", True, math.nan, -math.inf]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("option", ["timeout", "deadline"])
def test_non_positive_or_non_numeric_timeouts_are_refused(quiet: FakeServer, option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{option} must be"):
        sync_client(quiet, "feather", **{option: value})


@pytest.mark.parametrize("value", [-1, 1.5, None, "2", True], ids=repr)
def test_bad_max_retries_is_refused(quiet: FakeServer, value: object) -> None:
    with pytest.raises(ValueError, match="max_retries must be"):
        sync_client(quiet, "siro", max_retries=value)


def test_timeout_with_an_unbounded_phase_is_refused(quiet: FakeServer) -> None:
    with pytest.raises(ValueError, match="every phase"):
        sync_client(quiet, "feather", timeout=httpx.Timeout(5.0, read=None))


def test_dest_file_in_a_missing_folder_is_refused(quiet: FakeServer, tmp_path: Path) -> None:
    # A file path's folder must exist; a folder path (trailing separator) is created: tests/download/test_bulk_export.py
    with sync_client(quiet, "feather") as client, pytest.raises(FileNotFoundError, match="does not exist"):
        client.download("call_1", tmp_path / "missing" / "out.wav")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_unless_overwrite(quiet: FakeServer, tmp_path: Path) -> None:
    mine = tmp_path / "mine.wav"
    mine.write_bytes(b"precious")
    (tmp_path / "siro-rec_1.wav").write_bytes(b"also precious")
    with sync_client(quiet, "siro") as client:
        with pytest.raises(FileExistsError, match="overwrite=True"):
            client.download("rec_1", mine)
        with pytest.raises(FileExistsError, match="overwrite=True"):
            client.download("rec_1", tmp_path)
    assert mine.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.wav", "siro-rec_1.wav"]


@pytest.mark.parametrize(
    ("dest", "error"),
    [("", ValueError), (None, TypeError), (42, TypeError)],
    ids=["empty", "None", "int"],
)
def test_unusable_dest_is_refused(quiet: FakeServer, dest: Any, error: type[Exception]) -> None:
    with sync_client(quiet, "feather") as client, pytest.raises(error):
        client.download("call_1", dest)


@pytest.mark.parametrize(
    "call",
    [
        lambda c, d: c.download_many(["call_1"], d, concurrency=0),
        lambda c, d: c.download_many([None], d),
    ],
    ids=["concurrency 0", "None id"],
)
def test_bad_bulk_arguments_are_refused_before_any_request(
    quiet: FakeServer, tmp_path: Path, call: Callable[[Any, Path], Any]
) -> None:
    with sync_client(quiet, "feather") as client, pytest.raises((ValueError, TypeError, FileNotFoundError)) as caught:
        call(client, tmp_path)
    assert re.search(r"folder|concurrency|str", str(caught.value))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        *(("timeout", v) for v in BAD_NUMBERS),
        *(("deadline", v) for v in BAD_NUMBERS),
        *(("max_retries", v) for v in (-1, 1.5, None, "2", True)),
    ],
    ids=repr,
)
def test_with_options_refuses_what_the_constructor_refuses(quiet: FakeServer, option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{option} must be"):
        sync_client(quiet, "feather", **{option: value})
    with sync_client(quiet, "feather") as client, pytest.raises(ValueError, match=f"{option} must be"):
        client.with_options(**{option: value})
