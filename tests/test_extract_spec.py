"""scripts/extract_spec.py: one valid OpenAPI YAML block per page, or a one-line refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import extract_spec
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "extract_spec.py"

VALID = """openapi: 3.0.0
info: {title: t, version: '1'}
paths: {}
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_real_page_extracts_to_the_vendored_spec_byte_for_byte(vendor: str) -> None:
    page = ROOT / "specs" / "pages" / f"{vendor}.md"
    vendored = (ROOT / "specs" / f"{vendor}.openapi.yaml").read_bytes()
    assert extract_spec.extract(page).encode() == vendored
    proc = subprocess.run([sys.executable, SCRIPT, page], capture_output=True, check=False)
    assert proc.returncode == 0
    assert proc.stdout == vendored


@pytest.mark.parametrize("vendor", ["feather", "siro"])
def test_vendored_page_is_the_seed_page(vendor: str) -> None:
    seeds = {"feather": "000_61826fc425276eaf.txt", "siro": "003_47b8be4d5431e99c.txt"}
    seed = ROOT.parent / "shared" / "seeds" / seeds[vendor]
    if not seed.exists():
        pytest.skip("the shared seeds are only present in the original workspace")
    assert (ROOT / "specs" / "pages" / f"{vendor}.md").read_bytes() == seed.read_bytes()


@pytest.mark.parametrize(
    ("page_text", "reason"),
    [
        ("# A page\n\nno code here\n", "no YAML block found"),
        ("```json\n{}\n```\n", "no YAML block found"),
        (f"```yaml\n{VALID}```\n\n````yaml get /x\n{VALID}````\n", "2 YAML blocks found"),
        ("```yaml\nopenapi: 3.0.0\ninfo: {title: t}\npaths: {}\n```\n", "invalid OpenAPI 3.x"),
        ("```yaml\nswagger: '2.0'\n```\n", "not an OpenAPI 3.x document"),
        ("```yaml\nopenapi: [unclosed\n```\n", "YAML does not parse"),
    ],
    ids=["no-block", "json-only", "two-blocks", "invalid-openapi", "swagger-2", "bad-yaml"],
)
def test_bad_page_is_refused_with_one_line_naming_page_and_reason(tmp_path: Path, page_text: str, reason: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(page_text)
    out = tmp_path / "out.yaml"
    proc = run(page, "-o", out)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(page) in lines[0]
    assert reason in lines[0]
    assert not out.exists()


def test_yaml_fence_with_info_string_and_longer_fence_is_found(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    # A 4-backtick fence may contain a 3-backtick line; the block ends at the matching fence.
    body = VALID + "x-note: |\n  ```\n  inner\n  ```\n"
    page.write_text(f"intro\n\n````yaml get /api/x\n{body}````\ntrailer\n")
    assert extract_spec.extract(page) == body
