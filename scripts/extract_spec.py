#!/usr/bin/env python3
"""Extract the single OpenAPI YAML block from a vendor docs page.

Usage: python scripts/extract_spec.py PAGE [-o FILE]

The block is returned byte-for-byte as it appears on the page. A page with no
YAML block, with more than one, or whose YAML is not a valid OpenAPI 3.x
document is refused with a one-line error and nothing is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

# A fenced block opened by 3+ backticks or tildes whose info string starts with
# "yaml" (Mintlify pages write ````yaml METHOD PATH). The closing fence must use
# the same character and be at least as long (CommonMark).
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")


class ExtractError(Exception):
    """The page cannot give exactly one valid OpenAPI 3.x document."""


def _yaml_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i].rstrip("\r\n"))
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        info = m.group("info").strip().split()
        close = re.compile(r"^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j].rstrip("\r\n")):
            j += 1
        if info and info[0].lower() in ("yaml", "yml"):
            blocks.append("".join(lines[i + 1 : j]))
        i = j + 1
    return blocks


def extract(page: Path) -> str:
    """Return the page's OpenAPI YAML, validated, exactly as written on the page."""
    try:
        text = page.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(f"{page}: cannot read page ({exc.__class__.__name__})") from None
    blocks = _yaml_blocks(text)
    if not blocks:
        raise ExtractError(f"{page}: no YAML block found")
    if len(blocks) > 1:
        raise ExtractError(f"{page}: {len(blocks)} YAML blocks found, expected exactly one")
    source = blocks[0]
    check_openapi(source, str(page))
    return source


def check_openapi(source: str, name: str) -> dict[str, Any]:
    """Parse YAML and validate it as OpenAPI 3.x; raise ExtractError otherwise."""
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ExtractError(f"{name}: YAML does not parse ({first})") from None
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        raise ExtractError(f"{name}: not an OpenAPI 3.x document (no 'openapi: 3.x' field)")
    try:
        validate(doc)
    except OpenAPIValidationError as exc:
        msg = " ".join(str(exc.message).split())
        raise ExtractError(f"{name}: invalid OpenAPI 3.x: {msg}") from None
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="vendor docs page (markdown)")
    parser.add_argument("-o", "--output", type=Path, help="write the YAML here instead of stdout")
    args = parser.parse_args(argv)
    try:
        source = extract(args.page)
    except ExtractError as exc:
        print(f"extract_spec: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(source, encoding="utf-8", newline="")
    else:
        sys.stdout.write(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
