#!/usr/bin/env python3
"""Record tests/cassettes/ by running the SDK itself, then scrub every secret.

Usage: python scripts/record_cassettes.py [--live] [--out DIR]

Without --live every scenario runs against callrec.testing's fake server,
which answers exactly as the vendored specs describe. With --live, scenarios
that a real API can produce are recorded against it instead; that needs
FEATHER_API_KEY and FEATHER_RECORDING_ID (a call with a recording) and/or
SIRO_AUTH_TOKEN and SIRO_RECORDING_ID; the rest still come from the fake.

Scrubbing: requests are rewritten to the spec's server and credential headers
replaced by placeholders; signed URLs in response bodies keep their path but
lose their query (replaced by a fixed X-Amz-Signature=REDACTED); Set-Cookie is dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import callrec
import vcr
from callrec.testing import FakeServer, faults

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "cassettes"
SERVERS = {"feather": "https://prod.featherhq.com", "siro": "https://api.siro.ai"}
PLACEHOLDERS = {"x-api-key": "<FEATHER_API_KEY>", "x-siro-auth-token": "<SIRO_AUTH_TOKEN>"}
STORAGE = {"feather": "https://feather-recordings.s3.amazonaws.com", "siro": "https://siro-audio.s3.amazonaws.com"}
SCRUBBED_QUERY = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=REDACTED"


@dataclass
class Scenario:
    """One recorded interaction: a setup on the fake, the SDK call, and whether a live API can give it."""

    vendor: str
    name: str
    recording_id: str
    setup: Callable[[FakeServer], object] = lambda fake: None
    leg: str | None = None
    credential: str | None = None  # override (e.g. a wrong key) instead of the valid one
    live: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def _scrub_url(vendor: str, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((*urlsplit(STORAGE[vendor])[:2], parts.path, SCRUBBED_QUERY, ""))


def _scrub_body(vendor: str, body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc, dict):
        target = doc.get("data") if vendor == "siro" else doc
        if isinstance(target, dict) and isinstance(target.get("url"), str):
            target["url"] = _scrub_url(vendor, target["url"])
    return json.dumps(doc).encode()


def _request_hook(vendor: str) -> Callable[[Any], Any]:
    server = urlsplit(SERVERS[vendor])

    def scrub(request: Any) -> Any:
        parts = urlsplit(request.uri)
        request.uri = urlunsplit((server.scheme, server.netloc, parts.path, parts.query, ""))
        for name in list(request.headers):
            lower = name.lower()
            if lower in PLACEHOLDERS:
                request.headers[name] = PLACEHOLDERS[lower]
            elif lower == "host":
                request.headers[name] = server.netloc
            elif lower == "cookie":
                del request.headers[name]
        return request

    return scrub


def _response_hook(vendor: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def scrub(response: dict[str, Any]) -> dict[str, Any]:
        response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() != "set-cookie"}
        body = response.get("body", {}).get("string")
        if isinstance(body, bytes):
            response["body"]["string"] = _scrub_body(vendor, body)
            if "content-length" in response["headers"]:
                response["headers"]["content-length"] = [str(len(response["body"]["string"]))]
        return response

    return scrub


ZOD_BODY = json.dumps(
    {
        "name": "ZodError",
        "issues": [
            {"code": "invalid_type", "expected": "string", "received": "undefined", "path": ["params", "id"],
             "message": "Required"}
        ],
    }
)  # fmt: skip

SCENARIOS = [
    Scenario("feather", "ok_main", "call_123", lambda f: f.add_recording("feather", "call_123"), leg="main", live=True),
    Scenario(
        "feather",
        "ok_supervisor",
        "call_123",
        lambda f: f.add_recording("feather", "call_123", leg="supervisor"),
        leg="supervisor",
    ),
    Scenario("feather", "400_no_recording", "call_missing", leg="main", live=True),
    Scenario("feather", "401_bad_key", "call_123", leg="main", credential="wrong-key", live=True),
    Scenario("feather", "404_not_found", "call_123", lambda f: f.feather.queue(faults.Status(404)), leg="main"),
    Scenario(
        "feather",
        "429_rate_limited",
        "call_123",
        lambda f: f.feather.queue(faults.Status(429, retry_after=1)),
        leg="main",
    ),
    Scenario("feather", "500_internal", "call_123", lambda f: f.feather.queue(faults.Status(500)), leg="main"),
    Scenario("feather", "503_unavailable", "call_123", lambda f: f.feather.queue(faults.Status(503)), leg="main"),
    Scenario("siro", "ok", "rec_456", lambda f: f.add_recording("siro", "rec_456"), live=True),
    Scenario(
        "siro", "200_error_true", "rec_456", lambda f: f.siro.queue(faults.SiroError("Recording audio not available"))
    ),
    Scenario("siro", "400_bad_request", "rec_456", lambda f: f.siro.queue(faults.Status(400))),
    Scenario("siro", "401_bad_token", "rec_456", credential="wrong-token", live=True),
    Scenario("siro", "403_forbidden", "rec_456", lambda f: f.siro.queue(faults.Status(403))),
    Scenario("siro", "404_not_found", "rec_missing", live=True),
    # The SDK never sends an invalid request, so the vendor's documented ZodError body is served as a fault.
    Scenario("siro", "422_validation", "rec_456", lambda f: f.siro.queue(faults.Status(422, body=ZOD_BODY))),
    Scenario("siro", "500_internal", "rec_456", lambda f: f.siro.queue(faults.Status(500))),
]


def _client(scenario: Scenario, fake: FakeServer | None) -> callrec.FeatherClient | callrec.SiroClient:
    if scenario.vendor == "feather":
        key = scenario.credential or (fake.feather_api_key if fake else None)
        base = fake.feather_base_url if fake else None
        return callrec.FeatherClient(key, base_url=base, max_retries=0)
    token = scenario.credential or (fake.siro_token if fake else None)
    return callrec.SiroClient(token, base_url=fake.siro_base_url if fake else None, max_retries=0)


def _live_id(scenario: Scenario) -> str | None:
    """The real id to use live, or None when this scenario cannot be recorded live here."""
    env = {"feather": ("FEATHER_API_KEY", "FEATHER_RECORDING_ID"), "siro": ("SIRO_AUTH_TOKEN", "SIRO_RECORDING_ID")}
    key_var, id_var = env[scenario.vendor]
    if not scenario.live or not os.environ.get(key_var):
        return None
    if scenario.name.startswith("ok"):
        return os.environ.get(id_var)
    return scenario.recording_id


def record(scenario: Scenario, out: Path, *, live: bool) -> str:
    """Run one scenario under vcrpy in record mode and return where it came from."""
    path = out / scenario.vendor / f"{scenario.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    recorder = vcr.VCR(
        record_mode="all",
        before_record_request=_request_hook(scenario.vendor),
        before_record_response=_response_hook(scenario.vendor),
        decode_compressed_response=True,
    )
    live_id = _live_id(scenario) if live else None
    fake = None if live_id else FakeServer()
    try:
        if fake is not None:
            fake.start()
            scenario.setup(fake)
        rid = live_id or scenario.recording_id
        with recorder.use_cassette(str(path)), _client(scenario, fake) as client:
            try:
                if isinstance(client, callrec.FeatherClient):
                    client.recording_url(rid, leg=scenario.leg or "main")  # type: ignore[arg-type]
                else:
                    client.recording_url(rid)
            except callrec.CallrecError:
                pass  # error responses are what several scenarios record
    finally:
        if fake is not None:
            fake.stop()
    return "live" if live_id else "fake"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="record against the real APIs where keys are set")
    parser.add_argument("--out", type=Path, default=OUT, help="cassette folder (default tests/cassettes)")
    args = parser.parse_args(argv)
    for scenario in SCENARIOS:
        source = record(scenario, args.out, live=args.live)
        print(f"recorded {scenario.vendor}/{scenario.name}.yaml ({source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
