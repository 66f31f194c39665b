"""scripts/vendor.py: a prefixed copy that works with none of the three packages installed, and safe updates."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import vendor
from callrec.testing import FakeServer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "vendor.py"
PREFIX = "acme.third_party"
OURS = ("callrec", "feather_api", "siro_api")
MARKER = "# acme's own package marker: must survive vendoring\n"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
VERSION_LINE = "_VENDORED_VERSION: str | None = {}"
OTHER = "VALUE = 'unrelated module'\n"


def run_vendor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, check=False)


def make_monorepo(root: Path) -> Path:
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "__init__.py").write_text(MARKER)
    (root / "acme" / "other.py").write_text(OTHER)
    return root


def copy_source(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("overlay", "generated"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dependency_closure(extras: tuple[str, ...] = ()) -> list[metadata.Distribution]:
    """The installed distributions pyproject's runtime dependencies (and `extras`) pull in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = list(project["dependencies"]) + [d for extra in extras for d in project["optional-dependencies"][extra]]
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(req.name) in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[canonicalize_name(req.name)] = dist
        todo += dist.requires or []
    return [seen[name] for name in sorted(seen)]


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the runtime dependency closure (core + testing extra), symlinked from the venv."""
    folder = tmp_path_factory.mktemp("deps")
    for dist in dependency_closure(("testing",)):
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or (folder / top).exists():
                continue
            (folder / top).symlink_to(Path(str(dist.locate_file(top))))
    return folder


@pytest.fixture(scope="module")
def mono(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_monorepo(tmp_path_factory.mktemp("mono"))
    result = run_vendor(root, "--package", PREFIX)
    assert result.returncode == 0, result.stderr
    return root


def fresh_python(code: str, pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` with no site-packages (so no editable-install .pth) and only `pythonpath` importable."""
    env = {"PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-S", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=pythonpath[0],
        check=False,
        timeout=60,
    )


def test_vendored_copy_downloads_with_none_of_the_three_installed(mono: Path, deps: Path, tmp_path: Path) -> None:
    code = """
        import importlib.util, sys
        for name in ("callrec", "feather_api", "siro_api"):
            assert importlib.util.find_spec(name) is None, f"{name} is importable"
        from acme.third_party.callrec import FeatherClient, SiroClient
        from acme.third_party.callrec.testing import FakeServer

        key, feather_url, token, siro_url, out = sys.argv[1:]
        assert FeatherClient.__module__ == "acme.third_party.callrec"
        with FeatherClient(key, base_url=feather_url) as feather:
            print("feather", feather.recording_url("call_1").url)
        with SiroClient(token, base_url=siro_url) as siro:
            print("siro", siro.download("rec_1", out).sha256)
        # The vendored fake validates requests against the spec it finds via importlib.resources.
        with FakeServer() as fake, FeatherClient(fake.feather_api_key, base_url=fake.feather_base_url) as feather:
            fake.add_recording("feather", "call_2")
            print("fake", feather.recording_url("call_2").url.startswith(fake.storage_origin))
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("callrec", "feather_api", "siro_api"))
        assert not leaked, leaked
    """
    with FakeServer() as fake:
        fake.add_recording("feather", "call_1")
        audio = fake.add_recording("siro", "rec_1")
        out = tmp_path / "rec_1.wav"
        result = fresh_python(
            code,
            [mono, deps],
            fake.feather_api_key,
            fake.feather_base_url,
            fake.siro_token,
            fake.siro_base_url,
            str(out),
        )
        assert result.returncode == 0, result.stderr
        assert [r.path for r in fake.feather.requests] == ["/api/v1/agent-calls/call_1/recording-url"]
        storage = fake.storage_origin
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["feather"].startswith(storage)
    assert lines["siro"] == hashlib.sha256(audio).hexdigest()
    assert lines["fake"] == "True"
    assert out.read_bytes() == audio


def test_every_reference_to_the_three_carries_the_prefix(mono: Path) -> None:
    tree = mono / "acme" / "third_party"
    import_line = re.compile(r"^\s*(from|import)\s+(callrec|feather_api|siro_api)\b", re.MULTILINE)
    bare_string = re.compile(r"""["'](callrec|feather_api|siro_api)(\.[\w.]*)?["']""")
    module_flag = re.compile(r"-m\s+(callrec|feather_api|siro_api)\b")
    texts = {p: p.read_text() for p in tree.rglob("*.py")}
    assert len(texts) > 40
    for path, text in texts.items():
        for pattern in (import_line, bare_string, module_flag):
            assert not pattern.search(text), f"{path}: {pattern.search(text)}"
    assert 'SpecValidator("acme.third_party.feather_api")' in texts[tree / "callrec" / "testing" / "_server.py"]
    assert '.startswith("acme.third_party.callrec._")' in texts[tree / "callrec" / "__init__.py"]


def test_files_are_byte_identical_apart_from_the_inserted_prefix(mono: Path) -> None:
    tree = mono / "acme" / "third_party"
    sources = {"callrec": ROOT / "overlay" / "callrec"} | {p: ROOT / "generated" / p for p in OURS[1:]}
    header = vendor.HEADER.format(prefix=PREFIX).encode()
    rewritten = 0
    for name, source in sources.items():
        for src in source.rglob("*"):
            if not src.is_file() or "__pycache__" in src.parts:
                continue
            vendored = (tree / name / src.relative_to(source)).read_bytes()
            if vendored != src.read_bytes():
                rewritten += 1
                assert src.suffix == ".py", src
                assert vendored.count(header) == 1, src
                # callrec/__init__.py also carries the version (test_vendored_copy_reports_its_own_version).
                vendored = vendored.replace(
                    VERSION_LINE.format(f'"{VERSION}"').encode(), VERSION_LINE.format("None").encode()
                )
                assert vendored.replace(header, b"").replace(PREFIX.encode() + b".", b"") == src.read_bytes(), src
    assert rewritten >= 5
    assert not list(tree.rglob("__pycache__"))
    # Generated files keep their own header first.
    assert (tree / "feather_api" / "client.py").read_bytes() == (ROOT / "generated/feather_api/client.py").read_bytes()


def test_monorepo_package_files_are_kept_and_only_missing_inits_created(mono: Path) -> None:
    assert (mono / "acme" / "__init__.py").read_text() == MARKER
    assert (mono / "acme" / "other.py").read_text() == OTHER
    assert (mono / "acme" / "third_party" / "__init__.py").read_bytes() == b""
    assert sorted(p.name for p in (mono / "acme").iterdir()) == ["__init__.py", "other.py", "third_party"]
    assert sorted(p.name for p in (mono / "acme" / "third_party").iterdir()) == [
        "VENDORED.md",
        "__init__.py",
        *OURS,
    ]


def test_vendored_md_records_version_provenance_command_deps_and_manifest(mono: Path) -> None:
    text = (mono / "acme" / "third_party" / "VENDORED.md").read_text()
    assert f"- callrec version: {VERSION} (`acme.third_party.callrec.__version__`)" in text
    assert "- changelog: `CHANGELOG.md` in callrec; the entry for" in text
    # The version's entry heads the section, after a non-empty [Unreleased] when CHANGELOG.md has one.
    assert re.search(
        rf"\n## Changelog\n\n(### \[Unreleased\]\n[^#]*(#### [^\n]*\n[^#]*)*)?### \[{re.escape(VERSION)}\] - ", text
    )
    assert re.search(r"source commit: `[0-9a-f]{40}` \((clean|dirty)", text)
    assert f"command: `python scripts/vendor.py {mono} --package acme.third_party`" in text
    for dep in ("httpx>=0.28,<0.29", "attrs>=23.1", "openapi-core", "PyYAML", "click", "rich"):
        assert f"`{dep}" in text, dep
    assert "pytest11 `callrec`: `acme.third_party.callrec.testing._plugin`" in text
    for pkg in ("feather_api", "siro_api"):
        prov = (ROOT / "generated" / pkg / "PROVENANCE.json").read_text()
        for digest in re.findall(r'"sha256": "([0-9a-f]{64})"', prov)[:2]:  # spec, overlay
            assert digest in text
    assert "openapi-python-client 0.29.1" in text
    manifest = vendor.read_manifest(mono / "acme" / "third_party")
    assert "feather_api/openapi.yaml" in manifest
    for rel, digest in manifest.items():
        assert hashlib.sha256((mono / "acme" / "third_party" / rel).read_bytes()).hexdigest() == digest


IMPORT_FORMS = [
    ("import callrec\n", "import acme.third_party.callrec as callrec\n"),
    ("import callrec.testing as t\n", "import acme.third_party.callrec.testing as t\n"),
    ("import callrec.testing\n", "import acme.third_party.callrec.testing; from acme.third_party import callrec\n"),
    ("import os, feather_api  # why\n", "import os, acme.third_party.feather_api as feather_api  # why\n"),
    ("from callrec import X\n", "from acme.third_party.callrec import X\n"),
    ("from callrec._client import (\n    Y,\n)\n", "from acme.third_party.callrec._client import (\n    Y,\n)\n"),
    ("from feather_api.models import Z\n", "from acme.third_party.feather_api.models import Z\n"),
    ("if x:\n    from siro_api import C\n", "if x:\n    from acme.third_party.siro_api import C\n"),
    ("from . import x\nfrom ..client import C\n", "from . import x\nfrom ..client import C\n"),
    ("import callrecx\nfrom callrec_extra import a\n", "import callrecx\nfrom callrec_extra import a\n"),
    ('files("feather_api")\n', 'files("acme.third_party.feather_api")\n'),
    ("import_module('callrec.testing._plugin')\n", "import_module('acme.third_party.callrec.testing._plugin')\n"),
    ('s.startswith("callrec._")\n', 's.startswith("acme.third_party.callrec._")\n'),
    ('p = "python -m callrec.testing"\n', 'p = "python -m acme.third_party.callrec.testing"\n'),
    (
        '"""Usage::\n\n    from callrec import A\n"""\n',
        '"""Usage::\n\n    from acme.third_party.callrec import A\n"""\n',
    ),
    (
        'ua = f"callrec/{v}"; b = b"callrec"; n = "callrec fake"\n',
        'ua = f"callrec/{v}"; b = b"callrec"; n = "callrec fake"\n',
    ),
    ("é = 1; from callrec import é2\n", "é = 1; from acme.third_party.callrec import é2\n"),
    (
        "import callrec\r\nx = 'siro_api'\r\n",
        "import acme.third_party.callrec as callrec\r\nx = 'acme.third_party.siro_api'\r\n",
    ),
]


@pytest.mark.parametrize(("source", "expected"), IMPORT_FORMS)
def test_rewrite_table(source: str, expected: str) -> None:
    assert vendor.rewrite_source(source, PREFIX) == expected


def test_revendor_follows_upstream_and_refuses_local_edits_unless_forced(tmp_path: Path, deps: Path) -> None:
    src = copy_source(tmp_path / "src")
    (src / "overlay" / "callrec" / "_old.py").write_text("OLD = 1\n")
    mono = make_monorepo(tmp_path / "mono")
    target = mono / "acme" / "third_party"
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    (target / "callrec" / "NOTES.txt").write_text("ours, not vendored\n")
    first = snapshot(mono)
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    assert snapshot(mono) == first  # the same source twice changes nothing

    # Upstream drops _old.py and adds a module using every absolute import form.
    (src / "overlay" / "callrec" / "_old.py").unlink()
    (src / "overlay" / "callrec" / "sub").mkdir()
    (src / "overlay" / "callrec" / "sub" / "__init__.py").write_text(
        "import callrec\nimport callrec.testing as t\nimport feather_api.models\nfrom siro_api import types\n"
    )
    result = run_vendor(mono, "--package", PREFIX, "--source", src)
    assert result.returncode == 0, result.stderr
    assert not (target / "callrec" / "_old.py").exists()
    assert (target / "callrec" / "NOTES.txt").read_text() == "ours, not vendored\n"
    assert (mono / "acme" / "__init__.py").read_text() == MARKER
    assert (mono / "acme" / "other.py").read_text() == OTHER
    assert "callrec/sub/__init__.py" in vendor.read_manifest(target)
    assert "_old.py" not in (target / "VENDORED.md").read_text()
    check = """
        import acme.third_party.callrec.sub as sub, acme.third_party as tp
        assert sub.callrec is tp.callrec and sub.t is tp.callrec.testing
        assert sub.feather_api is tp.feather_api and sub.types is tp.siro_api.types
    """
    checked = fresh_python(check, [mono, deps])
    assert checked.returncode == 0, checked.stderr

    # A vendored file edited in the monorepo stops the next update, which then changes nothing.
    (target / "callrec" / "_bulk.py").write_text("# local hack\n")
    (src / "overlay" / "callrec" / "sub" / "__init__.py").unlink()
    (src / "overlay" / "callrec" / "sub" / "new.py").write_text("NEW = 1\n")
    before = snapshot(mono)
    refused = run_vendor(mono, "--package", PREFIX, "--source", src)
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "callrec/_bulk.py" in refused.stderr and "--force" in refused.stderr
    assert snapshot(mono) == before

    forced = run_vendor(mono, "--package", PREFIX, "--source", src, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (target / "callrec" / "_bulk.py").read_bytes() == (src / "overlay/callrec/_bulk.py").read_bytes()
    assert (target / "callrec" / "sub" / "new.py").read_text() == "NEW = 1\n"
    assert not (target / "callrec" / "sub" / "__init__.py").exists()
    assert (target / "callrec" / "NOTES.txt").exists()


def test_unlisted_file_in_the_way_is_not_overwritten(tmp_path: Path) -> None:
    mono = make_monorepo(tmp_path)
    (mono / "acme" / "third_party" / "callrec").mkdir(parents=True)
    (mono / "acme" / "third_party" / "callrec" / "_client.py").write_text("# someone else's file\n")
    result = run_vendor(mono, "--package", PREFIX)
    assert result.returncode != 0
    assert "callrec/_client.py" in result.stderr
    assert (mono / "acme" / "third_party" / "callrec" / "_client.py").read_text() == "# someone else's file\n"


@pytest.mark.parametrize("package", ["acme..x", "acme.class", "1acme", "acme-corp", "", "acme."])
def test_bad_package_name_is_a_one_line_error(tmp_path: Path, package: str) -> None:
    result = run_vendor(tmp_path, "--package", package)
    assert result.returncode == 2
    assert result.stderr.startswith("vendor: error: --package") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_dest_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for dest in (tmp_path / "file", tmp_path / "missing"):
        result = run_vendor(dest, "--package", PREFIX)
        assert result.returncode == 2
        assert result.stderr == f"vendor: error: {dest}: not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_help() -> None:
    result = run_vendor("--help")
    assert result.returncode == 0
    assert "--package" in result.stdout and "--source" in result.stdout and "--force" in result.stdout


def test_vendored_copy_reports_its_own_version_not_the_installed_callrec(tmp_path: Path) -> None:
    # This venv has callrec installed (editable, at pyproject's version); the vendored copy must not
    # take its version from that distribution's metadata.
    src = copy_source(tmp_path / "src")
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'version = "{VERSION}"', 'version = "7.8.9"', 1))
    mono = make_monorepo(tmp_path / "mono")
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    init = (mono / "acme" / "third_party" / "callrec" / "__init__.py").read_text()
    assert VERSION_LINE.format('"7.8.9"') in init
    code = "import acme.third_party.callrec as v, callrec, sys; print(v.__version__, callrec.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=mono, check=False)
    assert (result.returncode, result.stdout) == (0, f"7.8.9 {VERSION}\n"), result.stderr


CHANGELOG = """# Changelog

## [Unreleased]

## [0.2.1] - 2026-12-03

### Changed

- siro's API spec changed (`specs/siro.openapi.yaml`):
  - NON-BREAKING: POST /v1/core/recordings/{id}/signedUrl: error response 429 added

## [0.2.0] - 2026-12-02

### Changed

- **Breaking:** feather's API spec changed (`specs/feather.openapi.yaml`):
  - BREAKING: GET /api/v1/agent-calls/{id}/recording-url: response 200 property 'url' removed

## [0.1.1] - 2026-12-01

### Changed

- feather's API spec changed (`specs/feather.openapi.yaml`):
  - NON-BREAKING: servers: default base URL changes for users: https://a.example → https://b.example

## [0.1.0] - 2026-11-25

### Added

- First version.
"""


def _set_version(src: Path, version: str) -> None:
    pyproject = src / "pyproject.toml"
    text = pyproject.read_text()
    current = tomllib.loads(text)["project"]["version"]
    pyproject.write_text(text.replace(f'version = "{current}"', f'version = "{version}"', 1))


def test_vendored_md_carries_the_changelog_entries_since_the_version_vendored_before(tmp_path: Path) -> None:
    src = copy_source(tmp_path / "src")
    (src / "CHANGELOG.md").write_text(CHANGELOG)
    mono = make_monorepo(tmp_path / "mono")
    vendored_md = mono / "acme" / "third_party" / "VENDORED.md"

    _set_version(src, "0.1.0")
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    first = vendored_md.read_text()
    assert "- changelog: `CHANGELOG.md` in callrec; the entry for 0.1.0 is below" in first
    assert "\n## Changelog\n\n### [0.1.0] - 2026-11-25\n\n#### Added\n\n- First version.\n\n## Files\n" in first

    # The monorepo reviews the update from the VENDORED.md diff: every entry after 0.1.0, up to 0.2.1.
    _set_version(src, "0.2.1")
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    second = vendored_md.read_text()
    assert "- callrec version: 0.2.1 (" in second
    assert "- changelog: `CHANGELOG.md` in callrec; the entries since 0.1.0, vendored here before, are below" in second
    log = second.split("\n## Changelog\n\n", 1)[1].split("\n## Files\n", 1)[0]
    assert [line for line in log.splitlines() if line.startswith("### [")] == [
        "### [0.2.1] - 2026-12-03",
        "### [0.2.0] - 2026-12-02",
        "### [0.1.1] - 2026-12-01",
    ]
    assert "#### Changed" in log and "- **Breaking:** feather's API spec changed" in log
    assert "  - BREAKING: GET /api/v1/agent-calls/{id}/recording-url: response 200 property 'url' removed" in log

    # Vendoring the same version again shows its own entry; notes under Unreleased ship too.
    (src / "CHANGELOG.md").write_text(CHANGELOG.replace("## [Unreleased]\n", "## [Unreleased]\n\n- A local fix.\n"))
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    third = vendored_md.read_text().split("\n## Changelog\n\n", 1)[1]
    assert third.startswith("### [Unreleased]\n\n- A local fix.\n\n### [0.2.1] - 2026-12-03\n")
    assert "### [0.2.0]" not in third

    (src / "CHANGELOG.md").unlink()
    assert run_vendor(mono, "--package", PREFIX, "--source", src).returncode == 0
    assert "- changelog: none in the source checkout" in vendored_md.read_text()
    assert "## Changelog" not in vendored_md.read_text()
