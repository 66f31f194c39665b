#!/usr/bin/env python3
"""Vendor callrec, feather_api and siro_api into a monorepo under a package prefix.

Usage: python scripts/vendor.py DEST --package acme.third_party [--source ROOT] [--force]

Copies overlay/callrec, generated/feather_api and generated/siro_api to
DEST/acme/third_party/{callrec,feather_api,siro_api}, so that
``from acme.third_party.callrec import FeatherClient`` works with none of the
three installed. Absolute imports between the three (found with the AST) and
string references to their modules (``"feather_api"``, ``"callrec.testing._plugin"``,
``python -m callrec.testing``, ``from callrec import ...`` in docstrings, found
with tokenize) get the prefix inserted; every other byte is kept. Relative
imports stay relative. Non-Python files are copied verbatim, ``__pycache__`` never.

The vendored callrec reports its own version: ``callrec/__init__.py``'s
``_VENDORED_VERSION = None`` line gets pyproject.toml's version (importlib.metadata
would name whichever "callrec" distribution is installed, if any).
DEST/acme/third_party/VENDORED.md records the version, the changelog entries
since the version vendored there before, source commit, generator provenance,
command, runtime dependencies and a sha256 manifest. Running again
updates in place: files dropped upstream are removed if the manifest lists them,
and a listed file modified locally stops the run (nothing written) unless --force.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import keyword
import re
import shlex
import subprocess
import sys
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import name -> folder under the project root.
PACKAGES = {"callrec": "overlay/callrec", "feather_api": "generated/feather_api", "siro_api": "generated/siro_api"}
MANIFEST_NAME = "VENDORED.md"
MANIFEST_FENCE = "```sha256"
HEADER = "# Vendored by callrec scripts/vendor.py: imports and module-name strings rewritten under {prefix}.\n"
_NAMES = "|".join(PACKAGES)
# A string literal that is nothing but one of our module paths ("callrec", "callrec.testing._plugin",
# or a prefix for startswith() such as "callrec._").
_MODULE_STRING = re.compile(rf"(?:{_NAMES})(?:\.[A-Za-z_]\w*)*\.?")
# Module paths inside longer strings: `python -m callrec.testing` and import lines in docstring examples.
_IN_TEXT = re.compile(rf"(?:-m\s+|^[ \t]*(?:from|import)[ \t]+)(?P<name>{_NAMES})(?![\w])", re.MULTILINE)
# The line in callrec/__init__.py that vendored copies get their version in.
_VERSION_SLOT = re.compile(r"^_VENDORED_VERSION: str \| None = None$", re.MULTILINE)
_VENDORED_AT = re.compile(r"^- callrec version: (?P<version>\S+)", re.MULTILINE)
_CHANGELOG_ENTRY = re.compile(r"^## \[(?P<name>[^\]]+)\]", re.MULTILINE)


class VendorError(Exception):
    """Bad input or a conflict; reported as one line."""


@dataclass(frozen=True)
class Plan:
    target: Path
    files: dict[str, bytes]  # path relative to target -> content
    rewritten: frozenset[str]
    stale: list[str]  # listed by the previous manifest, gone upstream


def check_package(name: str) -> list[str]:
    parts = name.split(".")
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            raise VendorError(f"--package {name!r}: {part!r} is not a valid identifier")
    return parts


def _line_offsets(text: str) -> list[int]:
    """Start offset of each line, numbered as ast/tokenize do (\\n, \\r\\n and \\r end lines)."""
    offsets = [0, 0]
    for line in io.StringIO(text, newline="").readlines():
        offsets.append(offsets[-1] + len(line))
    return offsets


def rewrite_source(text: str, prefix: str) -> str:
    """Insert ``prefix.`` before every reference to our packages; all other characters are kept."""
    tree = ast.parse(text)
    lines = io.StringIO(text, newline="").readlines()
    starts = _line_offsets(text)

    def offset(lineno: int, byte_col: int) -> int:
        # ast columns count UTF-8 bytes.
        return starts[lineno] + len(lines[lineno - 1].encode()[:byte_col].decode())

    inserts: list[tuple[int, str]] = []
    tokens = list(tokenize.generate_tokens(io.StringIO(text, newline="").readline))
    by_start = {(tok.start[0], tok.start[1]): i for i, tok in enumerate(tokens)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            line = lines[node.lineno - 1]
            col = len(line.encode()[: node.col_offset].decode())
            i = by_start[(node.lineno, col)] + 1  # the token after `from`
            while tokens[i].type != tokenize.NAME:
                i += 1
            inserts.append((starts[tokens[i].start[0]] + tokens[i].start[1], prefix + "."))
        elif isinstance(node, ast.Import):
            bind_tops: set[str] = set()
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top not in PACKAGES:
                    continue
                inserts.append((offset(alias.lineno, alias.col_offset), prefix + "."))
                if alias.asname is None and "." not in alias.name:
                    # `import callrec` must still bind `callrec`, not `acme`.
                    inserts.append((offset(alias.end_lineno or alias.lineno, alias.end_col_offset or 0), f" as {top}"))
                elif alias.asname is None:
                    bind_tops.add(top)
            # `import callrec.testing` binds `callrec` with `.testing` loaded; bind it explicitly.
            for top in sorted(bind_tops):
                end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                inserts.append((end, f"; from {prefix} import {top}"))
    for tok in tokens:
        if tok.type != tokenize.STRING:
            continue
        quote_at = min(i for i in (tok.string.find("'"), tok.string.find('"')) if i >= 0)
        if set(tok.string[:quote_at].lower()) & {"b", "f"}:
            continue
        quote = tok.string[quote_at : quote_at + 3] if tok.string[quote_at : quote_at + 3] in ('"""', "'''") else ""
        quote = quote or tok.string[quote_at]
        body_at = quote_at + len(quote)
        body = tok.string[body_at : len(tok.string) - len(quote)]
        base = starts[tok.start[0]] + tok.start[1] + body_at
        if _MODULE_STRING.fullmatch(body):
            inserts.append((base, prefix + "."))
            continue
        for match in _IN_TEXT.finditer(body):
            inserts.append((base + match.start("name"), prefix + "."))
    out = text
    for at, insert in sorted(inserts, reverse=True):
        out = out[:at] + insert + out[at:]
    return out


def _with_header(data: bytes, prefix: str) -> bytes:
    """Add the vendored header after any shebang, encoding cookie or generated-file header."""
    lines = data.splitlines(keepends=True)
    keep = 0
    while keep < min(2, len(lines)) and re.match(rb"#!|#.*coding[:=]|# Generated", lines[keep]):
        keep += 1
    return b"".join([*lines[:keep], HEADER.format(prefix=prefix).encode(), *lines[keep:]])


def source_version(source: Path) -> str:
    version = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8")).get("project", {}).get("version")
    return str(version) if version is not None else "?"


def record_version(text: str, version: str) -> str:
    """callrec/__init__.py with the version written into its ``_VENDORED_VERSION`` line (if it has one)."""
    return _VERSION_SLOT.sub(lambda _: f"_VENDORED_VERSION: str | None = {json.dumps(version)}", text, count=1)


def vendored_files(source: Path, prefix: str) -> tuple[dict[str, bytes], frozenset[str]]:
    files: dict[str, bytes] = {}
    rewritten: set[str] = set()
    version = source_version(source)
    for name, folder in PACKAGES.items():
        root = source / folder
        if not (root / "__init__.py").is_file():
            raise VendorError(f"{root}: not a package (is --source a callrec checkout?)")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                continue
            key = (Path(name) / rel).as_posix()
            data = path.read_bytes()
            if path.suffix == ".py":
                encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
                text = data.decode(encoding)
                try:
                    new = rewrite_source(text, prefix)
                except SyntaxError as exc:
                    raise VendorError(f"{path}: cannot parse ({exc.msg}, line {exc.lineno})") from None
                if key == "callrec/__init__.py":
                    new = record_version(new, version)
                if new != text:
                    data = _with_header(new.encode(encoding), prefix)
                    rewritten.add(key)
            files[key] = data
    return files, frozenset(rewritten)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(target: Path) -> dict[str, str]:
    """The previous run's manifest (path -> sha256); empty when there was none."""
    path = target / MANIFEST_NAME
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if MANIFEST_FENCE not in text:
        raise VendorError(f"{path}: no manifest block found; move the file aside to vendor afresh")
    block = text.split(MANIFEST_FENCE, 1)[1].split("```", 1)[0]
    manifest: dict[str, str] = {}
    for line in block.splitlines():
        if line.strip():
            digest, _, rel = line.partition("  ")
            manifest[rel] = digest
    return manifest


def plan(source: Path, dest: Path, parts: list[str], force: bool) -> Plan:
    prefix = ".".join(parts)
    target = dest.joinpath(*parts)
    files, rewritten = vendored_files(source, prefix)
    previous = read_manifest(target)
    conflicts: list[str] = []
    for rel, digest in previous.items():
        path = target / rel
        if path.is_file() and sha256(path.read_bytes()) != digest:
            conflicts.append(rel)
    for rel, data in files.items():
        path = target / rel
        if rel not in previous and path.exists() and (not path.is_file() or path.read_bytes() != data):
            conflicts.append(rel)  # not ours (never vendored here) and would be overwritten
    if conflicts and not force:
        shown = ", ".join(sorted(conflicts)[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise VendorError(f"{len(conflicts)} vendored file(s) changed locally ({shown}); rerun with --force to replace")
    stale = sorted(rel for rel in previous if rel not in files and (target / rel).is_file())
    return Plan(target, files, rewritten, stale)


def _git(source: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def vendored_version(target: Path) -> str | None:
    """The callrec version the previous run recorded in VENDORED.md, if any."""
    path = target / MANIFEST_NAME
    match = _VENDORED_AT.search(path.read_text(encoding="utf-8")) if path.is_file() else None
    return match.group("version") if match else None


def _release(version: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in version.split(".")) if re.fullmatch(r"\d+(\.\d+)*", version) else None


def _is_upgrade(previous: str | None, version: str) -> bool:
    old, new = _release(previous or ""), _release(version)
    return old is not None and new is not None and old < new


def changelog_since(source: Path, version: str, previous: str | None) -> list[str]:
    """CHANGELOG.md's entries after ``previous`` up to ``version`` (``version``'s alone without a newer previous).

    A non-empty ``## [Unreleased]`` comes too: it is in this copy. Headings go one level down to sit
    under VENDORED.md's own ``## Changelog``.
    """
    path = source / "CHANGELOG.md"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    heads = list(_CHANGELOG_ENTRY.finditer(text))
    upgrade = _is_upgrade(previous, version)
    upper, lower = _release(version), _release(previous or "")
    chosen: list[str] = []
    for head, end in zip(heads, [*(h.start() for h in heads[1:]), len(text)], strict=True):
        entry = text[head.start() : end].strip("\n")
        at = _release(head.group("name"))
        if at is None:
            keep = bool(entry.partition("\n")[2].strip())
        elif upgrade and upper is not None and lower is not None:
            keep = lower < at <= upper
        else:
            keep = head.group("name") == version
        if keep:
            chosen.append(re.sub(r"(?m)^(#{2,5}) ", r"#\1 ", entry))
    return chosen


def render_manifest(
    source: Path,
    parts: list[str],
    command: str,
    files: dict[str, bytes],
    rewritten: frozenset[str],
    previous: str | None = None,
) -> str:
    prefix = ".".join(parts)
    pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject.get("project", {})
    version = str(project.get("version", "?"))
    entries = changelog_since(source, version, previous)
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        origin = "not a git checkout"
    else:
        dirty = _git(source, "status", "--porcelain", "--", *PACKAGES.values(), "pyproject.toml", "CHANGELOG.md")
        origin = f"`{commit}` ({'dirty: uncommitted changes were vendored' if dirty else 'clean'})"
    if not (source / "CHANGELOG.md").is_file():
        changelog = "none in the source checkout"
    elif not entries:
        changelog = f"`CHANGELOG.md` in callrec (no entry for {version} in it)"
    elif _is_upgrade(previous, version):
        changelog = f"`CHANGELOG.md` in callrec; the entries since {previous}, vendored here before, are below"
    else:
        changelog = f"`CHANGELOG.md` in callrec; the entry for {version} is below"
    out = [
        f"# Vendored callrec {version}",
        "",
        f"`callrec`, `feather_api` and `siro_api` vendored under `{prefix}` by callrec's `scripts/vendor.py`.",
        "Do not edit these files: rerun the command below from a callrec checkout to update them (files changed",
        "here make it stop unless `--force`).",
        "",
        f"- callrec version: {version} (`{prefix}.callrec.__version__`)",
        f"- changelog: {changelog}",
        f"- source commit: {origin}",
        f"- command: `{command}`",
        "",
        "## Generated packages",
        "",
        "| package | generator | spec sha256 | overlay sha256 |",
        "|---|---|---|---|",
    ]
    for name in PACKAGES:
        provenance_path = f"{name}/PROVENANCE.json"
        if provenance_path in files:
            prov = json.loads(files[provenance_path])
            generator = f"{prov.get('generator', '?')} {prov.get('generator_version', '?')}"
            spec = prov.get("spec", {}).get("sha256", "?")
            overlay = prov.get("overlay", {}).get("sha256", "?")
            out.append(f"| `{name}` | {generator} | `{spec}` | `{overlay}` |")
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    out += [
        "",
        "## Runtime dependencies",
        "",
        "Install these in the monorepo; the vendored copy does not bring them.",
        "",
    ]
    out.append(f"- `{prefix}.callrec` (core): " + ", ".join(f"`{d}`" for d in project.get("dependencies", [])))
    for extra, deps in extras.items():
        what = {"testing": f"`{prefix}.callrec.testing`", "cli": "the command line"}.get(extra, f"extra `{extra}`")
        out.append(f"- {what} (extra `{extra}`): " + ", ".join(f"`{d}`" for d in deps))
    entry_points = [
        (group, name, target)
        for group, entries in [("scripts", project.get("scripts", {})), *project.get("entry-points", {}).items()]
        for name, target in entries.items()
    ]
    if entry_points:
        out += ["", "Entry points are not installed by vendoring; wire them up by hand:", ""]
        for group, name, target in entry_points:
            out.append(f"- {group} `{name}`: `{prefix}.{target}`")
    if entries:
        out += ["", "## Changelog", "", "\n\n".join(entries)]
    out += [
        "",
        "## Files",
        "",
        f"sha256 of each vendored file as written (`sha256sum -c` from this folder); {len(rewritten)} of them had",
        f"imports or module-name strings rewritten under `{prefix}`.",
        "",
        MANIFEST_FENCE,
        *(f"{sha256(data)}  {rel}" for rel, data in sorted(files.items())),
        "```",
        "",
    ]
    return "\n".join(out)


def apply(the_plan: Plan, parts: list[str], dest: Path, manifest: str) -> None:
    folder = dest
    for part in parts:
        folder = folder / part
        folder.mkdir(exist_ok=True)
        init = folder / "__init__.py"
        if not init.exists():
            init.write_bytes(b"")
    for rel in the_plan.stale:
        path = the_plan.target / rel
        path.unlink()
        parent = path.parent
        # Drop folders the removal emptied, never the package roots' parent.
        while parent != the_plan.target and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    for rel, data in the_plan.files.items():
        path = the_plan.target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    (the_plan.target / MANIFEST_NAME).write_text(manifest, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="the monorepo folder the package prefix starts in")
    parser.add_argument("--package", required=True, help="dotted package prefix, e.g. acme.third_party")
    parser.add_argument("--source", type=Path, default=ROOT, help="callrec project root (default: this checkout)")
    parser.add_argument("--force", action="store_true", help="replace vendored files that were changed locally")
    args = parser.parse_args(argv)
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "scripts/vendor.py", *arguments])
    try:
        parts = check_package(args.package)
        if not args.dest.is_dir():
            raise VendorError(f"{args.dest}: not a directory")
        the_plan = plan(args.source, args.dest, parts, args.force)
        previous = vendored_version(the_plan.target)
        manifest = render_manifest(args.source, parts, command, the_plan.files, the_plan.rewritten, previous)
        apply(the_plan, parts, args.dest, manifest)
    except (VendorError, OSError) as exc:
        print(f"vendor: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"vendored {len(the_plan.files)} files into {the_plan.target} "
        f"({len(the_plan.rewritten)} rewritten, {len(the_plan.stale)} removed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
