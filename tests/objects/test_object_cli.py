"""The command line with an object-store destination: -o / -d s3://..., --shard K/N, verify, and exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from callrec._cli import main
from callrec.testing import FakeServer
from click.testing import CliRunner

from .conftest import S3


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    with CliRunner().isolation(input=stdin) as (out, err, _):
        code = main(list(args))
    return code, out.getvalue().decode(), err.getvalue().decode()


def test_download_to_a_bucket_prints_the_object_url_and_refuses_to_overwrite_with_exit_2(
    callrec_env: FakeServer, s3: S3
) -> None:
    data = callrec_env.add_recording("feather", "call_1")
    code, out, err = run("download", "feather", "call_1", "-o", s3.url("x/"))
    assert code == 0, err
    assert out.startswith(f"s3://{s3.bucket}/x/feather-call_1-main.wav\t")
    assert s3.get("x/feather-call_1-main.wav") == data
    code, out, err = run("download", "feather", "call_1", "-o", s3.url("x/"), "--json")
    assert code == 2 and "exists (pass --overwrite to replace it)" in err
    code, out, _ = run("download", "feather", "call_1", "-o", s3.url("x/"), "--overwrite", "--json")
    assert code == 0 and json.loads(out)["location"] == f"s3://{s3.bucket}/x/feather-call_1-main.wav"
    assert json.loads(out)["path"] is None


def test_download_many_shards_into_a_bucket_then_verify_exits_1_on_a_deleted_object(
    callrec_env: FakeServer, s3: S3
) -> None:
    ids = [f"r{i}" for i in range(9)]
    for rid in ids:
        callrec_env.add_recording("siro", rid)
    lines = "\n".join(ids) + "\n"
    summaries = []
    for k in (1, 2, 3):
        code, out, err = run("download-many", "siro", "-", "-d", s3.url("e"), "--shard", f"{k}/3", stdin=lines)
        assert code == 0, err
        summaries.append(out)
    downloaded = [int(line.split(",")[0].split()[1]) for line in summaries]
    assert sum(downloaded) == len(ids)
    code, out, _ = run("download-many", "siro", "-", "-d", s3.url("e"), stdin=lines)
    assert code == 0 and out.startswith(f"downloaded 0, skipped {len(ids)}, failed 0")

    code, out, err = run("verify", s3.url("e"))
    assert (code, out.strip()) == (0, f"checked {len(ids)}, missing 0, size 0, e_tag 0, sha256 0, orphans 0")
    s3.client.delete_object(Bucket=s3.bucket, Key="e/siro-r4.wav")
    code, out, err = run("verify", s3.url("e"), "--json")
    *entries, summary = [json.loads(line) for line in out.splitlines()]  # JSON lines: every entry, a summary
    assert code == 1 and summary["type"] == "summary" and summary["missing"] == 1 and summary["checked"] == len(ids)
    assert len(entries) == len(ids) and {e["type"] for e in entries} == {"entry"}
    [missing] = [e for e in entries if e["status"] != "ok"]
    assert missing["status"] == "missing" and missing["location"] == f"s3://{s3.bucket}/e/siro-r4.wav"
    assert missing["recording_id"] == "r4"


def test_a_bad_shard_is_a_usage_error(callrec_env: FakeServer, s3: S3) -> None:
    code, _, err = run("download-many", "siro", "-", "-d", s3.url("e"), "--shard", "4/3", stdin="r1\n")
    assert code == 2 and "1 <= k <= n" in err
    assert callrec_env.requests == [] and s3.objects() == {}


def test_a_held_lease_exits_1_with_one_line_and_sends_nothing(callrec_env: FakeServer, s3: S3) -> None:
    callrec_env.add_recording("siro", "r1")
    held = {"owner": "worker-7:42", "expires": time.time() + 300}
    s3.client.put_object(Bucket=s3.bucket, Key="e/.callrec/all/lease.json", Body=json.dumps(held).encode())
    code, out, err = run("download-many", "siro", "-", "-d", s3.url("e/"), stdin="r1\n")
    assert code == 1 and out == ""
    assert err.startswith("callrec: error: ExportLockedError: another download_many run (worker-7:42) holds the lease")
    assert "Traceback" not in err and callrec_env.requests == []


def test_verify_of_a_folder_that_is_not_there_is_exit_2(tmp_path: Path) -> None:
    code, _, err = run("verify", str(tmp_path / "nope"))
    assert code == 2 and "not a folder" in err


def test_lease_seconds_below_one_is_a_usage_error_and_verify_quick_json_lists_orphans(
    callrec_env: FakeServer, s3: S3
) -> None:
    code, _, err = run("download-many", "siro", "-", "-d", s3.url("e/"), "--lease-seconds", "0.5", stdin="r1\n")
    assert code == 2 and "lease-seconds" in err and callrec_env.requests == []
    callrec_env.add_recording("siro", "r1")
    code, _, err = run("download-many", "siro", "-", "-d", s3.url("e/"), "--lease-seconds", "30", stdin="r1\n")
    assert code == 0, err
    s3.client.put_object(Bucket=s3.bucket, Key="e/mine.txt", Body=b"not a recording of this export")
    code, out, _ = run("verify", s3.url("e/"), "--quick", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines[-1]["quick"] is True and lines[-1]["checked"] == 1 and lines[-1]["orphans"] == 1
    assert [x["location"] for x in lines if x["type"] == "orphan"] == [f"s3://{s3.bucket}/e/mine.txt"]
