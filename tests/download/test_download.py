"""client.download: atomic, resumable across URL expiry, integrity-checked, credential-free storage."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import callrec
import pytest
from callrec._sink import MAX_PENDING
from callrec.testing import FakeServer, faults

from .conftest import BIG, afeather, asiro, feather, leftovers, siro


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_to_a_folder_names_the_file_from_the_sanitized_id(fake: FakeServer, tmp_path: Path) -> None:
    data = fake.add_recording(
        "feather", "call/../1", content_type="audio/mp4", data=b"\x00\x00\x00\x18ftypM4A " + b"x" * 5000
    )
    progress: list[tuple[int, int | None]] = []
    with feather(fake) as client:
        result = client.download("call/../1", tmp_path, progress=lambda d, t: progress.append((d, t)))
    assert result.path.parent == tmp_path
    assert result.path.name.startswith("feather-call_.._1_") and result.path.name.endswith("-main.m4a")
    assert result.path.read_bytes() == data
    assert (result.bytes, result.sha256, result.content_type, result.url_refreshes) == (
        len(data),
        sha(data),
        "audio/mp4",
        0,
    )
    assert progress[-1] == (len(data), len(data))
    assert leftovers(tmp_path) == []


def test_download_to_a_file_path_and_siro_naming(fake: FakeServer, tmp_path: Path) -> None:
    data = fake.add_recording("siro", "rec_1")
    with siro(fake) as client:
        by_path = client.download("rec_1", tmp_path / "mine.wav")
        in_folder = client.download("rec_1", tmp_path)
    assert by_path.path == tmp_path / "mine.wav"
    assert in_folder.path == tmp_path / "siro-rec_1.wav"
    assert by_path.path.read_bytes() == in_folder.path.read_bytes() == data


@pytest.mark.parametrize(
    "fault", [faults.ExpireMidDownload(after_bytes=300_000), faults.ExpireMidDownload(after_bytes=5)]
)
def test_expired_url_mid_download_resumes_with_range_and_if_range(
    fake: FakeServer, tmp_path: Path, fault: faults.Fault
) -> None:
    fake.add_recording("feather", "c1", data=BIG)
    fake.storage.queue(fault)
    with feather(fake) as client:
        result = client.download("c1", tmp_path / "c1.wav")
    assert result.path.read_bytes() == BIG
    assert result.sha256 == sha(BIG)
    assert result.url_refreshes == 1
    storage = fake.requests_to("storage")
    resumed = storage[-1]
    assert resumed.header("range") == f"bytes={fault.after_bytes}-"  # type: ignore[attr-defined]
    assert resumed.header("if-range")
    assert len(fake.requests_to("feather")) == 2


def test_range_ignored_on_resume_restarts_cleanly(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("siro", "r1", data=BIG)
    fake.storage.queue(faults.ExpireMidDownload(after_bytes=100_000), faults.IgnoreRange())
    with siro(fake) as client:
        result = client.download("r1", tmp_path / "r1.wav")
    assert result.path.read_bytes() == BIG
    assert result.bytes == len(BIG)


@pytest.mark.parametrize(
    "fault", [faults.ShortBody(missing=1000), faults.Reset(after_bytes=70_000)], ids=["short-body", "reset"]
)
def test_broken_transfer_resumes_from_written_bytes(fake: FakeServer, tmp_path: Path, fault: faults.Fault) -> None:
    fake.add_recording("feather", "c1", data=BIG)
    fake.storage.queue(fault)
    with feather(fake) as client:
        result = client.download("c1", tmp_path / "out.wav")
    assert result.path.read_bytes() == BIG
    assert result.url_refreshes == 0


def test_body_cut_without_content_length_is_refused_and_nothing_written(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1", data=BIG)
    fake.storage.always(faults.CutBody(after_bytes=1000))
    with feather(fake) as client, pytest.raises(callrec.DownloadError, match="Content-Length"):
        client.download("c1", tmp_path / "out.wav")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fault",
    [faults.NonAudio(), faults.Garbage(b"<html><body>Access denied</body></html>", content_type="audio/mp4")],
    ids=["xml-error-page", "html-page"],
)
def test_non_audio_body_is_refused_and_nothing_written(fake: FakeServer, tmp_path: Path, fault: faults.Fault) -> None:
    fake.add_recording("siro", "r1")
    fake.storage.queue(fault)
    with siro(fake) as client, pytest.raises(callrec.DownloadError, match="did not send audio"):
        client.download("r1", tmp_path / "r1.m4a")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_raises_before_any_request(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1")
    (tmp_path / "feather-c1-main.wav").write_bytes(b"keep me")
    (tmp_path / "fixed.wav").write_bytes(b"keep me too")
    with feather(fake) as client:
        with pytest.raises(FileExistsError):
            client.download("c1", tmp_path)
        with pytest.raises(FileExistsError):
            client.download("c1", tmp_path / "fixed.wav")
    assert fake.requests == []
    assert (tmp_path / "feather-c1-main.wav").read_bytes() == b"keep me"


def test_overwrite_replaces_and_failure_leaves_destination_untouched(fake: FakeServer, tmp_path: Path) -> None:
    data = fake.add_recording("feather", "c1")
    target = tmp_path / "c1.wav"
    target.write_bytes(b"old")
    fake.storage.queue(faults.NonAudio())
    with feather(fake) as client:
        with pytest.raises(callrec.DownloadError):
            client.download("c1", target, overwrite=True)
        assert target.read_bytes() == b"old"
        client.download("c1", target, overwrite=True)
    assert target.read_bytes() == data
    assert leftovers(tmp_path) == []


def test_bad_signature_is_an_error_not_a_refresh_loop(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1")
    fake.storage.always(
        faults.Status(403, body="<Error><Code>SignatureDoesNotMatch</Code></Error>", content_type="application/xml")
    )
    with feather(fake) as client, pytest.raises(callrec.DownloadError, match="SignatureDoesNotMatch"):
        client.download("c1", tmp_path / "x.wav")
    assert len(fake.requests_to("feather")) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", [faults.ExpiredUrl(), faults.GcsExpiredToken()], ids=["s3-403", "gcs-400"])
def test_expiry_answers_mint_a_fresh_url_and_refreshes_are_bounded(
    fake: FakeServer, tmp_path: Path, fault: faults.Fault
) -> None:
    data = fake.add_recording("siro", "r1")
    fake.storage.queue(fault)
    with siro(fake) as client:
        assert client.download("r1", tmp_path / "a.wav").url_refreshes == 1
        assert (tmp_path / "a.wav").read_bytes() == data
        fake.storage.always(fault)
        with pytest.raises(callrec.DownloadError, match="kept expiring"):
            client.download("r1", tmp_path / "b.wav")
    assert not (tmp_path / "b.wav").exists()
    assert leftovers(tmp_path) == []


def test_url_already_expired_by_the_api_clock_is_reminted_before_use(tmp_path: Path) -> None:
    with FakeServer(url_ttl=2) as fake:
        fake.add_recording("feather", "c1")
        with feather(fake) as client:
            result = client.download("c1", tmp_path / "c1.wav")
    # expiresAt is 2 s after the API's Date: within the 5 s safety margin, so it is re-minted
    # (bounded), and the download still succeeds with the last URL.
    assert result.url_refreshes >= 1
    assert result.path.exists()


def test_trickling_download_is_bounded_by_its_deadline(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1", data=BIG)
    fake.storage.always(faults.Trickle(chunk_size=1024, interval=0.05))
    with feather(fake) as client, pytest.raises(callrec.DownloadError, match="deadline"):
        client.download("c1", tmp_path / "c1.wav", deadline=0.5)
    assert list(tmp_path.iterdir()) == []


def test_no_credential_or_cookie_reaches_storage(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1")
    fake.add_recording("siro", "r1")
    with feather(fake, default_headers={"X-Team": "t"}) as f, siro(fake) as s:
        f.download("c1", tmp_path)
        s.download("r1", tmp_path)
    storage = fake.requests_to("storage")
    assert len(storage) == 2
    for request in storage:
        names = {name.lower() for name, _ in request.headers}
        assert not names & {"x-api-key", "x-siro-auth-token", "authorization", "cookie", "x-team"}
        blob = repr(request.headers)
        assert fake.feather_api_key not in blob and fake.siro_token not in blob


def test_bad_input_fails_before_any_request(fake: FakeServer, tmp_path: Path) -> None:
    with feather(fake) as client:
        with pytest.raises(ValueError, match="recording_id"):
            client.download("  ", tmp_path)
        with pytest.raises(ValueError, match="leg"):
            client.download("c1", tmp_path, leg="both")  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError):
            client.download("c1", tmp_path / "missing-dir" / "x.wav")
    assert fake.requests == []


def test_api_errors_propagate_typed_and_nothing_is_written(fake: FakeServer, tmp_path: Path) -> None:
    with feather(fake) as client, pytest.raises(callrec.BadRequestError):
        client.download("no-such-call", tmp_path)
    with siro(fake) as client, pytest.raises(callrec.NotFoundError):
        client.download("no-such-rec", tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_async_download_resumes_after_expiry(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1", leg="supervisor", data=BIG)
    fake.add_recording("siro", "r1", data=BIG)
    fake.storage.queue(faults.ExpireMidDownload(after_bytes=123_456))
    async with afeather(fake) as f, asiro(fake) as s:
        a = await f.download("c1", tmp_path, leg="supervisor")
        b = await s.download("r1", tmp_path)
    assert a.path.name == "feather-c1-supervisor.wav"
    assert a.url_refreshes == 1
    assert a.path.read_bytes() == b.path.read_bytes() == BIG


async def test_async_non_audio_and_existing_file(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("siro", "r1")
    fake.storage.queue(faults.NonAudio())
    async with asiro(fake) as s:
        with pytest.raises(callrec.DownloadError):
            await s.download("r1", tmp_path)
        assert list(tmp_path.iterdir()) == []
        await s.download("r1", tmp_path)
        with pytest.raises(FileExistsError):
            await s.download("r1", tmp_path)


_HEAP_PROBE = """
import json, sys, tracemalloc
import callrec
base, key, dest = sys.argv[1:4]
with callrec.FeatherClient(key, base_url=base) as client:
    client.recording_url("big")  # warm imports and pools outside the measurement
    client._storage.get()  # the storage transport, and urllib3 with it (~1.5 MB of imported code)
    tracemalloc.start()
    result = client.download("big", dest)
    _, peak = tracemalloc.get_traced_memory()
print(json.dumps({"bytes": result.bytes, "peak": peak}))
"""


def test_large_download_keeps_python_heap_small(fake: FakeServer, tmp_path: Path) -> None:
    # The client runs in its own interpreter so the fake server's buffers are not counted.
    size = 200 * 1024 * 1024
    fake.add_recording("feather", "big", data=b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * (size - 12))
    proc = subprocess.run(
        [sys.executable, "-c", _HEAP_PROBE, fake.feather_base_url, fake.feather_api_key, str(tmp_path / "big.wav")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["bytes"] == size == (tmp_path / "big.wav").stat().st_size
    # The sink's queue (MAX_PENDING) plus a buffer in hand and the bytes of one urllib3 read (256 KiB).
    assert report["peak"] < MAX_PENDING + 2 * 1024 * 1024, f"peak Python heap {report['peak'] / 1e6:.1f} MB"


def test_concurrent_downloads_from_threads_share_one_client(fake: FakeServer, tmp_path: Path) -> None:
    for i in range(8):
        fake.add_recording("siro", f"r{i}")
    errors: list[BaseException] = []
    with siro(fake) as client:

        def run(i: int) -> None:
            try:
                client.download(f"r{i}", tmp_path)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"siro-r{i}.wav" for i in range(8)]


async def test_async_stalled_storage_is_bounded_by_the_download_deadline(fake: FakeServer, tmp_path: Path) -> None:
    fake.add_recording("feather", "c1")
    fake.storage.always(faults.StallBeforeHeaders(5))
    async with afeather(fake) as client:
        with pytest.raises(callrec.DownloadError, match="deadline"):
            await client.download("c1", tmp_path / "c1.wav", deadline=0.5)
    assert list(tmp_path.iterdir()) == []
