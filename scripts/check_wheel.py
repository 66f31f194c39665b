"""Check the package users install: build the sdist and the wheel, inspect the wheel, install it and run it.

Builds with the pinned hatchling (`python -m build --no-isolation`: the sdist, then the wheel from the
sdist), checks the wheel's files and metadata, then installs the wheel into two fresh venvs, with
`[cli,testing]` and with `[cli,testing,aiohttp,cloud,otel]` (versions held to requirements-dev.txt), and
from a temporary folder, with the source tree off sys.path, runs scripts/demo.py, `callrec --help`,
`python -m callrec.testing --help`, an async run against callrec.testing's fake server, and
callrec._otel's no-op path (no opentelemetry-api; the API with no SDK).

Run by `make check-wheel` (and CI); by hand: `.venv/bin/python scripts/check_wheel.py [--keep]`.
"""

from __future__ import annotations

import argparse
import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("callrec", "feather_api", "siro_api")
#: Files the wheel must hold: each package's marker and the generated packages' spec and provenance.
REQUIRED = (
    "callrec/__init__.py",
    "callrec/py.typed",
    "callrec/testing/__init__.py",
    "feather_api/__init__.py",
    "feather_api/py.typed",
    "feather_api/PROVENANCE.json",
    "feather_api/openapi.yaml",
    "siro_api/__init__.py",
    "siro_api/py.typed",
    "siro_api/PROVENANCE.json",
    "siro_api/openapi.yaml",
)
#: Folder names that must not appear anywhere in a wheel or sdist path.
NEVER = ("__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")
#: Requirement names that must only come with an extra (name -> the extra).
OPT_IN = {
    "aiohttp": "aiohttp",
    "click": "cli",
    "rich": "cli",
    "openapi-core": "testing",
    "pyyaml": "testing",
    "obstore": "cloud",
    "opentelemetry-api": "otel",
}
#: (extras, whether aiohttp, obstore and opentelemetry must be importable) for each fresh venv.
INSTALLS = (("cli,testing", False), ("cli,testing,aiohttp,cloud,otel", True))

# Runs inside the installed venv with `python -I`: the wheel's modules, not the source tree's, and an
# async client that works whether or not aiohttp is there (and uses it exactly when it is).
SMOKE = """
import asyncio, importlib.util, sys, sysconfig, tempfile
from pathlib import Path

expect_aiohttp = expect_cloud = expect_otel = sys.argv[1] == "1"
assert (importlib.util.find_spec("aiohttp") is not None) == expect_aiohttp, "aiohttp installed != expected"
assert (importlib.util.find_spec("obstore") is not None) == expect_cloud, "obstore installed != expected"
assert (importlib.util.find_spec("opentelemetry") is not None) == expect_otel, "opentelemetry != expected"
assert "aiohttp" not in sys.modules
import callrec, callrec._otel, callrec.testing, feather_api, siro_api

site = Path(sysconfig.get_paths()["purelib"]).resolve()
for module in (callrec, callrec.testing, feather_api, siro_api):
    where = Path(module.__file__).resolve()
    assert where.is_relative_to(site), f"{module.__name__} imported from {where}, not from the installed wheel"
assert "aiohttp" not in sys.modules, "import callrec imported aiohttp"
assert "obstore" not in sys.modules, "import callrec imported obstore"
assert "opentelemetry" not in sys.modules, "import callrec imported opentelemetry"

from callrec import AsyncFeatherClient, AsyncSiroClient
from callrec.testing import FakeServer


async def main() -> int:
    with FakeServer() as fake, tempfile.TemporaryDirectory() as folder:  # validates against the packaged specs
        fake.add_recording("feather", "call_1")
        fake.add_recording("siro", "rec_1")
        env = fake.env()
        async with (
            AsyncFeatherClient(env["FEATHER_API_KEY"], base_url=env["FEATHER_BASE_URL"]) as feather,
            AsyncSiroClient(env["SIRO_AUTH_TOKEN"], base_url=env["SIRO_BASE_URL"]) as siro,
        ):
            calls = [feather.recording_url("call_1") for _ in range(8)] + [siro.recording_url("rec_1")]
            urls = await asyncio.gather(*calls)
            assert all(url.url.startswith("http") for url in urls)
            results = [await feather.download("call_1", folder), await siro.download("rec_1", folder)]
            assert all(result.path.stat().st_size == result.bytes > 0 for result in results)
            await bucket(feather)
    return len(urls)


async def bucket(feather: AsyncFeatherClient) -> None:
    # callrec[cloud] is all a bucket needs (an obstore store here; s3:// URLs take the same path).
    if not expect_cloud:
        try:
            await feather.download("call_1", "s3://bucket/prefix/")
        except ImportError as exc:
            assert "callrec[cloud]" in str(exc), exc
        else:
            raise AssertionError("an s3:// destination without the cloud extra did not say what to install")
        return
    from obstore.store import MemoryStore

    store = MemoryStore()
    items = await feather.download_many(["call_1"], store)
    again = await feather.download_many(["call_1"], store)
    assert [i.status for i in items + again] == ["downloaded", "skipped"], (items, again)
    assert callrec.verify(store).ok


def otel() -> str:
    # callrec[otel] brings the API and no SDK: until the application sets one, as without the extra,
    # every call is a no-op on shared objects. callrec looks for the API only once the application has
    # imported it (before that no provider can be set): first as an application that has not, then as one that has.
    from callrec import _otel

    with _otel.span(_otel.DOWNLOAD, {"callrec.vendor": "feather"}) as span:
        pass
    assert span is _otel.NULL_SPAN and _otel._api is None, "callrec._otel imported opentelemetry itself"
    assert "opentelemetry" not in sys.modules, "callrec._otel imported opentelemetry itself"
    if expect_otel:
        import opentelemetry.trace  # noqa: F401  (as an application that uses OpenTelemetry has)

    with _otel.span(_otel.DOWNLOAD, {"callrec.vendor": "feather", _otel.RECORDING_ID: "call_1"}) as span:
        _otel.event(_otel.RESIGN, {"callrec.url_refreshes": 1})
        _otel.record_item("downloaded", "feather", 1, 0.1)
        _otel.record_throttle("feather")
        _otel.record_api_request("feather")
    assert span is _otel.NULL_SPAN and not _otel.enabled(), span
    assert (_otel._api is not None) == expect_otel, "callrec._otel found opentelemetry != expected"
    return "the OpenTelemetry API and no SDK" if expect_otel else "no opentelemetry"


minted = asyncio.run(main())
telemetry = otel()
used = "aiohttp" in sys.modules
assert used == expect_aiohttp, f"aiohttp transport used: {used}, expected {expect_aiohttp}"
where = "and an export into an obstore store" if expect_cloud else "(s3:// asks for callrec[cloud])"
transport = "aiohttp" if used else "httpx"
print(f"{minted} URLs and 2 downloads through the async clients on the {transport} transport", where, end="; ")
print(f"callrec._otel a no-op with {telemetry}")
"""


class CheckFailed(Exception):
    """A check failed; the message says which and why."""


def _parts(name: str) -> tuple[str, ...]:
    return PurePosixPath(name).parts


def wheel_problems(names: Iterable[str]) -> list[str]:
    """What is missing from, or should not be in, a wheel holding these file names."""
    names = list(names)
    problems = [f"missing {need}" for need in REQUIRED if need not in names]
    for name in names:
        top = _parts(name)[0]
        if top not in PACKAGES and not top.endswith(".dist-info"):
            problems.append(f"unexpected top-level entry {name} (only {', '.join(PACKAGES)} ship)")
        elif any(part in NEVER for part in _parts(name)) or name.endswith((".pyc", ".pyo")):
            problems.append(f"unexpected file {name}")
    return problems


def sdist_problems(names: Iterable[str]) -> list[str]:
    """What should not be in an sdist holding these file names (its wheel is checked separately)."""
    problems = []
    for name in names:
        parts = _parts(name)[1:]  # below the callrec-X.Y.Z/ folder
        if any(part in NEVER or part.startswith(".venv") or part in ("dist", "build") for part in parts):
            problems.append(f"unexpected file {name}")
    return problems


def metadata_problems(metadata: str, entry_points: str) -> list[str]:
    """What is wrong with a wheel's METADATA and entry_points.txt: the extras and the entry points."""
    message = email.parser.Parser().parsestr(metadata)
    problems = []
    extras = set(message.get_all("Provides-Extra") or [])
    for missing in sorted({"aiohttp", "cli", "cloud", "testing"} - extras):
        problems.append(f"no extra {missing!r}")
    for requirement in message.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        name = spec.strip().split("[")[0].split("(")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        extra = OPT_IN.get(name.lower())
        if extra is not None and f"extra == '{extra}'" not in marker.replace('"', "'"):
            problems.append(f"{name} must come only with the {extra!r} extra, not {requirement!r}")
    for needed in ("callrec = callrec._cli:main", "callrec = callrec.testing._plugin"):
        if needed not in entry_points:
            problems.append(f"entry_points.txt lacks {needed!r}")
    return problems


def _run(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run cmd; its output, or CheckFailed with the output when it fails."""
    proc = subprocess.run(
        [str(part) for part in cmd], cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{output}")
    return proc.stdout


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment minus anything that would put the source tree or another venv on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def build(dist: Path) -> tuple[Path, Path]:
    """Build the sdist, then the wheel from it, into dist; their paths."""
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT], cwd=ROOT)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return sdist, wheel


def inspect(sdist: Path, wheel: Path) -> int:
    """Check the files of both and the wheel's metadata; the number of files in the wheel."""
    with tarfile.open(sdist) as tar:
        problems = [f"sdist: {p}" for p in sdist_problems(tar.getnames())]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        problems += [f"wheel: {p}" for p in wheel_problems(names)]
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        problems += [f"wheel: {p}" for p in metadata_problems(zf.read(meta).decode(), zf.read(entry).decode())]
    if problems:
        raise CheckFailed("\n".join(problems))
    return len(names)


def install_and_run(wheel: Path, extras: str, expect_aiohttp: bool, work: Path, constraints: Path | None) -> str:
    """Install wheel[extras] into a fresh venv under work and run the demo, the commands and the async smoke."""
    venv = work / f"venv-{extras.replace(',', '-')}"
    _run([sys.executable, "-m", "venv", venv], cwd=work)
    python = venv / "bin" / "python"
    env = _clean_env(venv)
    pin: list[str | Path] = ["-c", constraints] if constraints else []
    _run([python, "-m", "pip", "install", "--quiet", *pin, f"{wheel}[{extras}]"], cwd=work, env=env)
    run_dir = work / f"run-{extras.replace(',', '-')}"
    run_dir.mkdir()
    shutil.copy2(ROOT / "scripts" / "demo.py", run_dir / "demo.py")
    demo = _run([python, "-I", "demo.py", "--dir", run_dir / "recordings"], cwd=run_dir, env=env)
    saved = sorted(p.name for p in (run_dir / "recordings").iterdir())
    if len(saved) != 2:
        raise CheckFailed(f"demo saved {saved}, not one recording per vendor:\n{demo}")
    if "Usage:" not in _run([venv / "bin" / "callrec", "--help"], cwd=run_dir, env=env):
        raise CheckFailed("callrec --help printed no usage")
    _run([python, "-I", "-m", "callrec.testing", "--help"], cwd=run_dir, env=env)
    smoke = _run([python, "-I", "-c", SMOKE, "1" if expect_aiohttp else "0"], cwd=run_dir, env=env)
    return f"demo saved {', '.join(saved)}; callrec --help ok; {smoke.strip()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (dist/, venvs) and print it")
    parser.add_argument(
        "--constraints",
        type=Path,
        default=ROOT / "requirements-dev.txt",
        help="pin the wheel's dependencies to this file (default: requirements-dev.txt)",
    )
    parser.add_argument(
        "--no-constraints", action="store_true", help="let pip pick the newest dependencies the wheel allows"
    )
    args = parser.parse_args(argv)
    constraints: Path | None = None if args.no_constraints else args.constraints.resolve()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="callrec-check-wheel-")).resolve()
    label = f"check-wheel (Python {sys.version.split()[0]})"
    try:
        sdist, wheel = build(work / "dist")
        count = inspect(sdist, wheel)
        print(f"{label}: built {sdist.name} and {wheel.name} ({count} files); contents and metadata ok", flush=True)
        for extras, expect_aiohttp in INSTALLS:
            report = install_and_run(wheel, extras, expect_aiohttp, work, constraints)
            print(f"{label}: {wheel.name}[{extras}] in a fresh venv: {report}", flush=True)
    except CheckFailed as exc:
        print(f"{label}: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"{label}: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{label}: ok ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
