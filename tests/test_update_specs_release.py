"""update_specs.py --apply: the version in pyproject.toml and CHANGELOG.md follow the report."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import spec_diff
import update_specs
import yaml

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "1798000000"  # SOURCE_DATE_EPOCH: 2026-12-23 (UTC)
DAY = "2026-12-23"
FEATHER = ("GET", "/api/v1/agent-calls/{id}/recording-url")
SIRO = ("POST", "/v1/core/recordings/{id}/signedUrl")


@pytest.mark.parametrize(
    ("version", "breaking", "expected"),
    [
        ("0.1.0", False, "0.1.1"),
        ("0.1.0", True, "0.2.0"),
        ("0.1.9", False, "0.1.10"),
        ("0.9.3", True, "0.10.0"),
        ("1.0.0", False, "1.1.0"),
        ("1.0.0", True, "2.0.0"),
        ("1.2.3", False, "1.3.0"),
        ("1.2.3", True, "2.0.0"),
    ],
)
def test_bump_rule(version: str, breaking: bool, expected: str) -> None:
    # While 0.x: breaking bumps the minor, anything else the patch; from 1.0: major / minor.
    assert update_specs.bump(version, breaking) == expected


@pytest.mark.parametrize("version", ["1.0", "1.0.0rc1", "v1.0.0", "1.0.0.1", ""])
def test_a_version_that_is_not_major_minor_patch_is_not_bumped(version: str) -> None:
    with pytest.raises(update_specs.UpdateError, match=r"is not MAJOR\.MINOR\.PATCH; cannot bump it"):
        update_specs.bump(version, False)


def test_only_the_project_version_line_changes() -> None:
    text = (
        '[build-system]\r\nrequires = ["x"]\r\n\r\n[project]\r\nname = "callrec"\r\nversion = "0.1.0"  # ours\r\n'
        'dependencies = [\r\n    "y",\r\n]\r\n\r\n[tool.other]\r\nversion = "9.9.9"\r\n'
    )
    new = update_specs.set_project_version(text, "0.2.0")
    assert new == text.replace('version = "0.1.0"', 'version = "0.2.0"')
    assert tomllib.loads(new)["tool"]["other"]["version"] == "9.9.9"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tool.x]\nversion = "1.0.0"\n', "no [project] version"),
        ('[project]\nname = "x"\n', "no [project] version"),
        ("[project]\nversion = 1\n", "[project] version is not a string"),
        ("[project\n", "no [project] version (TOMLDecodeError)"),
    ],
)
def test_unreadable_pyproject_version_is_an_update_error(text: str, message: str) -> None:
    with pytest.raises(update_specs.UpdateError, match=re.escape(message)):
        update_specs.release(text, None, "- item", False, None, datetime.date(2026, 1, 2))


CHANGELOG = """# Changelog

Some words.

## [Unreleased]

### Fixed

- A hand-written note.

## [0.1.0] - 2026-11-25

### Added

- First version.
"""


def test_release_writes_a_keep_a_changelog_entry_and_moves_unreleased_notes_into_it() -> None:
    done = update_specs.release(
        '[project]\nversion = "0.1.0"\n',
        CHANGELOG,
        "- item\n  - NON-BREAKING: x",
        False,
        None,
        datetime.date(2026, 1, 2),
    )
    assert (done.old, done.new, done.pyproject) == ("0.1.0", "0.1.1", '[project]\nversion = "0.1.1"\n')
    assert done.changelog == (
        "# Changelog\n\nSome words.\n\n## [Unreleased]\n\n"
        "## [0.1.1] - 2026-01-02\n\n### Fixed\n\n- A hand-written note.\n\n### Changed\n\n- item\n  - NON-BREAKING: x\n\n"
        "## [0.1.0] - 2026-11-25\n\n### Added\n\n- First version.\n"
    )
    assert done.summary() == "version 0.1.0 → 0.1.1 in pyproject.toml; CHANGELOG.md entry [0.1.1]"


def test_release_creates_the_changelog_when_there_is_none() -> None:
    done = update_specs.release('[project]\nversion = "1.4.0"\n', None, "- item", True, None, datetime.date(2026, 1, 2))
    assert done.new == "2.0.0"
    assert done.changelog.startswith("# Changelog\n\nAll notable changes to callrec are recorded here.")
    assert done.changelog.endswith("\n\n## [Unreleased]\n\n## [2.0.0] - 2026-01-02\n\n### Changed\n\n- item\n")


def test_release_joins_the_entry_an_uncommitted_update_opened() -> None:
    date = datetime.date(2026, 1, 2)
    first = update_specs.release('[project]\nversion = "0.1.0"\n', CHANGELOG, "- one", False, "0.1.0", date)
    assert first.new == "0.1.1"
    # HEAD still says 0.1.0: a breaking report raises the same release to 0.2.0, not to 0.2.0 + 0.1.
    second = update_specs.release(first.pyproject, first.changelog, "- two", True, "0.1.0", date)
    assert (second.old, second.new, second.joined) == ("0.1.1", "0.2.0", True)
    assert "## [0.1.1]" not in second.changelog
    assert "## [0.2.0] - 2026-01-02\n\n### Fixed\n\n- A hand-written note.\n\n### Changed\n\n- one\n- two\n\n" in (
        second.changelog
    )
    assert second.summary() == (
        "version 0.1.1 → 0.2.0 in pyproject.toml (one bump since 0.1.0 at git HEAD for this uncommitted update); "
        "CHANGELOG.md entry [0.2.0]"
    )
    # A further non-breaking report needs no more than 0.2.0: the version stays, the entry grows.
    third = update_specs.release(second.pyproject, second.changelog, "- three", False, "0.1.0", date)
    assert (third.new, third.pyproject) == ("0.2.0", second.pyproject)
    assert "- one\n- two\n- three\n\n## [0.1.0]" in third.changelog
    assert third.summary().startswith("version stays 0.2.0 (one bump since 0.1.0 at git HEAD")


# -- the script on a copy of the project -------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """specs/, scripts/, pyproject.toml (version 0.1.0) and CHANGELOG.md copied, in a git repository."""
    root = tmp_path / "project"
    for folder in ("specs", "scripts"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = update_specs.set_project_version((ROOT / "pyproject.toml").read_text(), "0.1.0")
    (root / "pyproject.toml").write_text(pyproject)
    (root / "CHANGELOG.md").write_text(CHANGELOG)
    git(root, "init", "-q")
    commit(root)
    return root


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout


def commit(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "update")


def apply(root: Path, vendor: str, page: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    script = root / "scripts" / "update_specs.py"
    return subprocess.run(
        [sys.executable, script, vendor, "--page", str(page), "--apply"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def page_for(root: Path, vendor: str, tmp_path: Path, change: Any) -> Path:
    """A docs page whose spec is the project's current one for vendor, changed by ``change``."""
    doc = yaml.safe_load((root / "specs" / f"{vendor}.openapi.yaml").read_text())
    change(doc)
    page = tmp_path / f"{vendor}-{len(list(tmp_path.glob('*.md')))}.md"
    page.write_text(f"# A vendor page\n\n````yaml\n{yaml.safe_dump(doc, sort_keys=False)}````\n")
    return page


def unused_status(vendor: str, method: str, path: str) -> str:
    """An error status the vendored spec lacks today (429, until a vendor adds one as make update-specs may)."""
    doc = yaml.safe_load((ROOT / "specs" / f"{vendor}.openapi.yaml").read_text())
    responses = doc["paths"][path][method.lower()]["responses"]
    return next(code for code in ("429", "409", "410", "418", "451") if code not in responses)


def add_error_status(method: str, path: str) -> Any:
    """Add a new error status (429 unless the spec has one already; see ``unused_status``)."""
    vendor = "siro" if (method, path) == SIRO else "feather"
    status = unused_status(vendor, method, path)

    def change(doc: dict[str, Any]) -> None:
        doc["paths"][path][method.lower()]["responses"][status] = {"description": "Too many requests"}

    return change


def remove_path(path: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        doc["paths"][f"/v9{path}"] = doc["paths"].pop(path)

    return change


def version(root: Path) -> str:
    value: str = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return value


def test_a_non_breaking_report_bumps_the_patch_and_writes_the_entry(project: Path, tmp_path: Path) -> None:
    done = apply(project, "siro", page_for(project, "siro", tmp_path, add_error_status(*SIRO)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"NON-BREAKING: {SIRO[0]} {SIRO[1]}: error response {unused_status('siro', *SIRO)} added\n"
    assert (
        done.stderr.splitlines()[-1]
        == "update_specs: version 0.1.0 → 0.1.1 in pyproject.toml; CHANGELOG.md entry [0.1.1]"
    )
    assert version(project) == "0.1.1"
    assert git(project, "diff", "--numstat", "pyproject.toml") == "1\t1\tpyproject.toml\n"
    assert (project / "CHANGELOG.md").read_text() == CHANGELOG.replace(
        "## [Unreleased]\n\n### Fixed\n\n- A hand-written note.\n\n",
        f"## [Unreleased]\n\n## [0.1.1] - {DAY}\n\n### Fixed\n\n- A hand-written note.\n\n### Changed\n\n"
        "- siro's API spec changed (`specs/siro.openapi.yaml`):\n"
        f"  - NON-BREAKING: {SIRO[0]} {SIRO[1]}: error response {unused_status('siro', *SIRO)} added\n\n",
    )


def test_a_run_that_changes_nothing_bumps_nothing(project: Path, tmp_path: Path) -> None:
    done = apply(project, "feather", project / "specs" / "pages" / "feather.md")
    assert (done.returncode, done.stdout) == (0, "no changes\n")
    assert git(project, "status", "--porcelain") == ""
    # Reformatting the YAML is no change either: the spec is rewritten, the version and changelog are not.
    reformatted = page_for(project, "feather", tmp_path, lambda doc: None)
    done = apply(project, "feather", reformatted)
    assert (done.returncode, done.stdout) == (0, "no changes\n")
    assert git(project, "status", "--porcelain").split() == [
        "M",
        "specs/feather.openapi.yaml",
        "M",
        "specs/pages/feather.md",
    ]


def test_both_vendors_in_one_update_make_one_release(project: Path, tmp_path: Path) -> None:
    # `make update-specs` runs feather then siro, and nothing is committed in between.
    feather = apply(project, "feather", page_for(project, "feather", tmp_path, add_error_status(*FEATHER)))
    assert (feather.returncode, version(project)) == (0, "0.1.1")
    siro = apply(project, "siro", page_for(project, "siro", tmp_path, remove_path(SIRO[1])))
    assert siro.returncode == 1
    assert siro.stderr.splitlines()[-1] == (
        "update_specs: version 0.1.1 → 0.2.0 in pyproject.toml (one bump since 0.1.0 at git HEAD for this "
        "uncommitted update); CHANGELOG.md entry [0.2.0]"
    )
    assert version(project) == "0.2.0"
    log = (project / "CHANGELOG.md").read_text()
    assert "## [0.1.1]" not in log
    entry = log.split(f"## [0.2.0] - {DAY}\n\n", 1)[1].split("\n## [0.1.0]", 1)[0]
    assert entry.startswith("### Fixed\n\n- A hand-written note.\n\n### Changed\n\n- feather's API spec changed")
    added = unused_status("feather", *FEATHER)
    assert f"\n  - NON-BREAKING: {FEATHER[0]} {FEATHER[1]}: error response {added} added\n" in entry
    assert "\n- **Breaking:** siro's API spec changed (`specs/siro.openapi.yaml`):\n" in entry
    assert f"\n  - BREAKING: {SIRO[1]}: path removed ({SIRO[0]})\n" in entry
    # Once that is committed, the next change is the next release.
    commit(project)
    nxt = apply(project, "feather", page_for(project, "feather", tmp_path, lambda d: d["info"].update(version="2")))
    assert nxt.returncode == 0, nxt.stderr
    assert version(project) == "0.2.1"
    assert (project / "CHANGELOG.md").read_text().count("## [0.2.") == 2


def test_outside_git_every_report_bumps(project: Path, tmp_path: Path) -> None:
    shutil.rmtree(project / ".git")
    apply(project, "feather", page_for(project, "feather", tmp_path, add_error_status(*FEATHER)))
    apply(project, "siro", page_for(project, "siro", tmp_path, add_error_status(*SIRO)))
    assert version(project) == "0.1.2"


def test_a_version_that_cannot_be_bumped_stops_the_run_before_anything_is_written(
    project: Path, tmp_path: Path
) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.0.dev1"'))
    commit(project)
    done = apply(project, "siro", page_for(project, "siro", tmp_path, add_error_status(*SIRO)))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "update_specs: siro: pyproject.toml: version '0.1.0.dev1' is not MAJOR.MINOR.PATCH; cannot bump it\n"
    )
    assert git(project, "status", "--porcelain") == ""


def test_entry_item_names_the_vendor_the_spec_the_page_url_and_every_report_line() -> None:
    changes = [
        spec_diff.Change(True, "GET /a", "operation removed"),
        spec_diff.Change(False, "servers", "default base URL changes for users: https://a → https://b"),
    ]
    item = update_specs.changelog_item("siro", "specs/siro.openapi.yaml", "https://docs.siro.ai/p.md", changes)
    assert item == (
        "- **Breaking:** siro's API spec changed (`specs/siro.openapi.yaml`, from https://docs.siro.ai/p.md):\n"
        "  - BREAKING: GET /a: operation removed\n"
        "  - NON-BREAKING: servers: default base URL changes for users: https://a → https://b"
    )


def test_the_date_comes_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    assert update_specs.today().isoformat() == DAY
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(update_specs.UpdateError, match="SOURCE_DATE_EPOCH='soon' is not a Unix timestamp"):
        update_specs.today()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert update_specs.today() == datetime.date.today()
