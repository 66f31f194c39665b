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

When the report lists changes, --apply also bumps ``version`` in
pyproject.toml (while 0.x: breaking bumps the minor version, anything else the
patch; from 1.0: the major, else the minor) and writes a CHANGELOG.md entry
(Keep a Changelog) naming the new version, the date (SOURCE_DATE_EPOCH if set),
the vendor and every report line; notes under ``## [Unreleased]`` move into it.
"no changes" bumps nothing. One uncommitted update is one release, however
many vendors it covers: when pyproject.toml's version already differs from the
one committed at git HEAD (an earlier vendor in the same `make update-specs`
run bumped it), the version becomes the larger of the two (HEAD's version
bumped for this report, or the one already there) and the report joins that
version's changelog entry. Outside a git checkout every report bumps.

Exit status: 0 nothing breaking, 1 something breaking, 2 the page could not be
fetched or parsed, or (with --apply) pyproject.toml's version could not be read
or bumped (one line on stderr, nothing written). --apply writes even when the changes are breaking and still
exits 1: `make update-specs` relies on that to regenerate and test the new
specs so the breakage can be reviewed, and then fails so it cannot pass
unnoticed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
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


# -- version and changelog -------------------------------------------------------

PYPROJECT = "pyproject.toml"
CHANGELOG = "CHANGELOG.md"
CHANGELOG_HEAD = """# Changelog

All notable changes to callrec are recorded here. The format is based on
[Keep a Changelog](https://keepachangelog.com/en/1.1.0/), and callrec adheres to
[Semantic Versioning](https://semver.org/spec/v2.0.0.html): while the version is 0.x, a breaking
change bumps the minor version and anything else the patch version.

`make update-specs` (`scripts/update_specs.py --apply`) writes the entries for vendor spec changes:
one line per change from its report, `BREAKING` or `NON-BREAKING` for users of the clients.

"""
UNRELEASED = "Unreleased"
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_ENTRY_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\][^\n]*\n", re.MULTILINE)
_PROJECT_TABLE = re.compile(r"^\[project\][ \t]*\r?$", re.MULTILINE)
_VERSION_LINE = re.compile(r'^(version[ \t]*=[ \t]*)"([^"\n]*)"', re.MULTILINE)


def _semver(version: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise UpdateError(f"{PYPROJECT}: version {version!r} is not MAJOR.MINOR.PATCH; cannot bump it")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def bump(version: str, breaking: bool) -> str:
    """The next version: 0.x bumps the minor for breaking changes, else the patch; 1.0 on, major / minor."""
    major, minor, patch = _semver(version)
    if major == 0:
        return f"0.{minor + 1}.0" if breaking else f"0.{minor}.{patch + 1}"
    return f"{major + 1}.0.0" if breaking else f"{major}.{minor + 1}.0"


def project_version(pyproject: str) -> str:
    """``[project] version`` from pyproject.toml's text."""
    try:
        version = tomllib.loads(pyproject)["project"]["version"]
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise UpdateError(f"{PYPROJECT}: no [project] version ({exc.__class__.__name__})") from None
    if not isinstance(version, str):
        raise UpdateError(f"{PYPROJECT}: [project] version is not a string")
    return version


def set_project_version(pyproject: str, version: str) -> str:
    """pyproject.toml's text with only the ``[project]`` version string changed."""
    table = _PROJECT_TABLE.search(pyproject)
    if table is None:
        raise UpdateError(f"{PYPROJECT}: no [project] table")
    end = re.compile(r"^\[", re.MULTILINE).search(pyproject, table.end())
    stop = end.start() if end else len(pyproject)
    lines = list(_VERSION_LINE.finditer(pyproject, table.end(), stop))
    if len(lines) != 1:
        raise UpdateError(f'{PYPROJECT}: expected one `version = "..."` line in [project], found {len(lines)}')
    line = lines[0]
    new = pyproject[: line.start()] + f'{line.group(1)}"{version}"' + pyproject[line.end() :]
    if project_version(new) != version:  # the line the regex found is not the one TOML reads
        raise UpdateError(f"{PYPROJECT}: could not set the version")
    return new


def committed_version(root: Path) -> str | None:
    """The version pyproject.toml has at git HEAD, or None (not a git checkout, not committed)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "show", "HEAD:./pyproject.toml"], capture_output=True, check=False
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    try:
        return project_version(result.stdout.decode("utf-8"))
    except (UpdateError, UnicodeDecodeError):
        return None


def today() -> datetime.date:
    """The entry's date: SOURCE_DATE_EPOCH (UTC) when set, as reproducible builds do; else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return datetime.date.today()
    try:
        return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date()
    except (ValueError, OverflowError, OSError):
        raise UpdateError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix timestamp") from None


@dataclass(frozen=True)
class Release:
    """What --apply does to pyproject.toml and CHANGELOG.md for one report."""

    old: str
    new: str
    committed: str | None  # the version at git HEAD
    pyproject: str
    changelog: str

    @property
    def joined(self) -> bool:
        """True when an uncommitted update had already bumped the version: this report joins its release."""
        return self.committed is not None and self.committed != self.old

    def summary(self) -> str:
        if not self.joined:
            return f"version {self.old} → {self.new} in {PYPROJECT}; {CHANGELOG} entry [{self.new}]"
        since = f"one bump since {self.committed} at git HEAD for this uncommitted update"
        if self.old == self.new:
            return f"version stays {self.new} ({since}); added to {CHANGELOG} entry [{self.new}]"
        return f"version {self.old} → {self.new} in {PYPROJECT} ({since}); {CHANGELOG} entry [{self.new}]"


def _entries(changelog: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a changelog into its head and (name, text) entries, each text starting with its ``## [`` line."""
    starts = [m.start() for m in _ENTRY_HEADING.finditer(changelog)]
    if not starts:
        return changelog, []
    pieces = [changelog[a:b] for a, b in zip(starts, [*starts[1:], len(changelog)], strict=True)]
    names = [m.group("name") for m in _ENTRY_HEADING.finditer(changelog)]
    return changelog[: starts[0]], list(zip(names, pieces, strict=True))


def _body(entry: str) -> str:
    return entry.split("\n", 1)[1].strip("\n") if "\n" in entry else ""


def _add_changed(body: str, item: str) -> str:
    """Append a bullet to the body's ``### Changed`` section, creating the section if needed."""
    sections = [section for section in re.split(r"(?m)^(?=### )", body) if section]
    for i, section in enumerate(sections):
        if section.splitlines()[0].strip() == "### Changed":
            sections[i] = section.rstrip("\n") + "\n" + item + "\n\n"
            return "".join(sections).strip("\n")
    return (body.strip("\n") + "\n\n" if body.strip() else "") + "### Changed\n\n" + item


def changelog_item(vendor: str, spec: str, source: str | None, changes: list[spec_diff.Change]) -> str:
    """The bullet for one vendor's report: a line naming the vendor, then every report line."""
    where = f"`{spec}`" + (f", from {source}" if source else "")
    breaking = "**Breaking:** " if any(c.breaking for c in changes) else ""
    lines = [f"- {breaking}{vendor}'s API spec changed ({where}):", *(f"  - {c}" for c in changes)]
    return "\n".join(lines)


def release(
    pyproject: str, changelog: str | None, item: str, breaking: bool, committed: str | None, date: datetime.date
) -> Release:
    """The new pyproject.toml and CHANGELOG.md texts for a report with changes.

    ``committed`` is the version at git HEAD: when the working tree's differs, an
    uncommitted update already bumped it, and this report joins that release.
    """
    current = project_version(pyproject)
    head, entries = _entries(changelog if changelog is not None else CHANGELOG_HEAD)
    unreleased = [_body(text) for name, text in entries if name == UNRELEASED]
    versions = [(name, text) for name, text in entries if name != UNRELEASED]
    body = ""
    if committed is not None and committed != current:
        new = max(current, bump(committed, breaking), key=_semver)
        if versions and versions[0][0] == current:
            body, versions = _body(versions[0][1]), versions[1:]
    else:
        new = bump(current, breaking)
    # Notes kept under Unreleased ship in this version, so they move into its entry.
    body = "\n\n".join(part for part in [*unreleased, body] if part)
    entry = f"## [{new}] - {date.isoformat()}\n\n{_add_changed(body, item)}\n\n"
    text = head + f"## [{UNRELEASED}]\n\n" + entry + "".join(text for _, text in versions)
    return Release(current, new, committed, set_project_version(pyproject, new), text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    srcs = sources()
    parser.add_argument("vendor", choices=sorted(srcs), help="whose spec to update")
    parser.add_argument("--page", help="docs page to use instead of fetching it: a file or an http(s) URL")
    parser.add_argument("--index-url", help="llms.txt to search instead of the recorded docs_index")
    parser.add_argument(
        "--apply", action="store_true", help="write the new spec and page copy; bump the version, write the changelog"
    )
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
    the_release = None
    if args.apply and changes:
        try:
            the_release = release(
                (ROOT / PYPROJECT).read_bytes().decode("utf-8"),
                (ROOT / CHANGELOG).read_bytes().decode("utf-8") if (ROOT / CHANGELOG).exists() else None,
                changelog_item(args.vendor, src["spec"], name if _is_url(name) else None, changes),
                any(c.breaking for c in changes),
                committed_version(ROOT),
                today(),
            )
        except (UpdateError, OSError, UnicodeDecodeError) as exc:
            print(f"update_specs: {args.vendor}: {exc}", file=sys.stderr)
            return 2
    sys.stdout.write(spec_diff.report(changes))
    if args.apply:
        spec_path.write_text(source, encoding="utf-8", newline="")
        page_path.write_bytes(content)
        print(f"update_specs: wrote {src['spec']} and {src['page']}", file=sys.stderr)
    if the_release is not None:
        (ROOT / PYPROJECT).write_bytes(the_release.pyproject.encode("utf-8"))
        (ROOT / CHANGELOG).write_bytes(the_release.changelog.encode("utf-8"))
        print(f"update_specs: {the_release.summary()}", file=sys.stderr)
    return 1 if any(c.breaking for c in changes) else 0


if __name__ == "__main__":
    sys.exit(main())
