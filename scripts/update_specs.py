#!/usr/bin/env python3
"""Fetch a vendor's docs page, report how its OpenAPI spec changed, and optionally apply it.

Usage: python scripts/update_specs.py VENDOR [--page FILE_OR_URL] [--index-url URL] [--apply]

Without --page the page is found the way specs/sources.json records it: fetch
the vendor's ``docs_index`` (llms.txt, or --index-url), take the entry whose
link text is the recorded ``title``, fetch that page. The YAML is extracted
exactly as scripts/extract_spec.py does, compared with the vendored spec (see
scripts/spec_diff.py for what is breaking; the overlay must still apply), and
the report printed: one ``BREAKING:`` or ``NON-BREAKING:`` line per change, or
``no changes``. Only --apply writes: the spec byte-for-byte as extracted and
the page as fetched (specs/pages/VENDOR.md).

Exit status: 0 nothing breaking, 1 something breaking, 2 the page could not be
fetched or parsed (one line on stderr, nothing written). --apply writes even
when the changes are breaking and still exits 1: `make update-specs` relies on
that to regenerate and test the new specs so the breakage can be reviewed, and
then fails so it cannot pass unnoticed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urljoin

import apply_overlay
import extract_spec
import httpx
import spec_diff
import yaml
from generate import ROOT, sources

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# An llms.txt entry: "- [Title](https://host/page.md): description".
_ENTRY = re.compile(r"\[(?P<title>[^\]]+)\]\((?P<url>[^)\s]+)\)")


class UpdateError(Exception):
    """The page could not be fetched, found or parsed."""


def fetch(url: str) -> bytes:
    """GET url and return the body; any failure is an UpdateError with a one-line reason."""
    try:
        response = httpx.get(url, timeout=TIMEOUT, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise UpdateError(f"{url}: HTTP {exc.response.status_code}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise UpdateError(f"{url}: cannot fetch ({exc.__class__.__name__}{': ' + reason if reason else ''})") from None
    return response.content


def find_page(index: str, index_url: str, title: str) -> str:
    """Return the absolute URL of the llms.txt entry whose link text is ``title``."""
    wanted = " ".join(title.split()).casefold()
    urls = {
        urljoin(index_url, m.group("url"))
        for m in _ENTRY.finditer(index)
        if " ".join(m.group("title").split()).casefold() == wanted
    }
    if not urls:
        raise UpdateError(f"{index_url}: no entry titled {title!r}")
    if len(urls) > 1:
        raise UpdateError(f"{index_url}: {len(urls)} different entries titled {title!r}")
    return str(urls.pop())


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def load_page(src: dict[str, str], page: str | None, index_url: str | None) -> tuple[bytes, str]:
    """Return the page's bytes and a name for it in messages."""
    if page is not None and not _is_url(page):
        try:
            return Path(page).read_bytes(), page
        except OSError as exc:
            raise UpdateError(f"{page}: cannot read page ({exc.__class__.__name__})") from None
    if page is None:
        index_url = index_url or src["docs_index"]
        index = fetch(index_url).decode("utf-8", "replace")
        page = find_page(index, index_url, src["title"])
    return fetch(page), page


def extract(content: bytes, name: str) -> str:
    """The page's OpenAPI YAML, validated, exactly as extract_spec gives it."""
    with tempfile.TemporaryDirectory(prefix="update-specs-") as tmp:
        path = Path(tmp) / "page.md"
        path.write_bytes(content)
        try:
            return extract_spec.extract(path)
        except extract_spec.ExtractError as exc:
            raise UpdateError(str(exc).replace(str(path), name)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    srcs = sources()
    parser.add_argument("vendor", choices=sorted(srcs), help="whose spec to update")
    parser.add_argument("--page", help="docs page to use instead of fetching it: a file or an http(s) URL")
    parser.add_argument("--index-url", help="llms.txt to search instead of the recorded docs_index")
    parser.add_argument("--apply", action="store_true", help="write the new spec and page copy")
    args = parser.parse_args(argv)
    src = srcs[args.vendor]
    spec_path, page_path = ROOT / src["spec"], ROOT / src["page"]
    try:
        content, name = load_page(src, args.page, args.index_url)
        source = extract(content, name)
        old = apply_overlay.load_yaml(spec_path)
        overlay = apply_overlay.load_yaml(ROOT / src["overlay"])
        changes = spec_diff.compare(old, yaml.safe_load(source), overlay)
    except (UpdateError, apply_overlay.OverlayError, spec_diff.DiffError) as exc:
        print(f"update_specs: {args.vendor}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(spec_diff.report(changes))
    if args.apply:
        spec_path.write_text(source, encoding="utf-8", newline="")
        page_path.write_bytes(content)
        print(f"update_specs: wrote {src['spec']} and {src['page']}", file=sys.stderr)
    return 1 if any(c.breaking for c in changes) else 0


if __name__ == "__main__":
    sys.exit(main())
