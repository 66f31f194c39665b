"""The ``callrec`` command line: signed URLs and downloads from a terminal.

Usage: ``callrec download feather call_123 -o call.wav`` (credentials come only from the environment).

Needs the ``cli`` extra (click; rich, imported only when a progress bar is shown).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, TextIO, TypeVar

import click

from ._budget import check_rate_limit
from ._bulk import in_shard
from ._errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    CallrecError,
    DownloadError,
    InternalServerError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RecordingUnavailableError,
)
from ._lease import LEASE_SECONDS
from ._progress import ExportProgress
from ._validate import LEGS, check_recording_id, check_shard, resolve_credential
from ._vendors import FEATHER, SIRO, Vendor

log = logging.getLogger("callrec")
T = TypeVar("T")

if TYPE_CHECKING:
    from ._download import DownloadResult, ProgressCallback
    from ._results import BulkItem, ExportSummary
    from ._signed_url import SignedUrl

__all__ = ["main"]

VendorName = Literal["feather", "siro"]
_VENDORS: dict[str, Vendor] = {"feather": FEATHER, "siro": SIRO}


class CredentialRejectedError(ValueError):
    """The credential in the environment is unusable (CR/LF, non-ASCII); exits 3, not 2."""


#: Exception -> exit code; first match wins. A vendor narrows a row to that API (None: both).
EXIT_CODES: tuple[tuple[type[BaseException], VendorName | None, int], ...] = (
    (MissingCredentialsError, None, 3),
    (CredentialRejectedError, None, 3),
    (AuthenticationError, None, 3),
    (PermissionDeniedError, None, 3),
    (NotFoundError, None, 4),
    (RecordingUnavailableError, None, 4),
    (BadRequestError, "feather", 4),  # Feather's 400 means "not found or has no recording"
    (APIConnectionError, None, 5),  # timeouts included
    (InternalServerError, None, 5),
    (RateLimitError, None, 5),
    (DownloadError, None, 5),
    (ValueError, None, 2),  # bad id, leg, timeout, base URL: refused before any request
    (TypeError, None, 2),
    (FileExistsError, None, 2),
    (FileNotFoundError, None, 2),
    (NotADirectoryError, None, 2),
    (ImportError, None, 2),  # an s3:// destination without the cloud extra
)
EXIT_OTHER = 1

_EPILOG = """\b
Credentials are read only from the environment, never from a flag (so they stay
out of shell history): FEATHER_API_KEY and SIRO_AUTH_TOKEN. FEATHER_BASE_URL and
SIRO_BASE_URL set the API origins (or --base-url).

\b
Exit codes:
  0  success
  1  some items failed (download-many), another run holds the destination (its
     lock or lease), verify found a missing or changed recording, or another API error
  2  usage error or bad input (bad id, existing file without --overwrite), or
     verify of a destination that holds no callrec export
  3  missing or rejected credentials
  4  recording not found, or it has no recording
  5  network or server failure after retries (timeouts, 5xx, 429, broken download)
"""


def exit_code(exc: BaseException, vendor: str | None) -> int:
    """The process exit status for an error raised while talking to ``vendor``."""
    for cls, only, code in EXIT_CODES:
        if isinstance(exc, cls) and (only is None or only == vendor):
            return code
    return EXIT_OTHER


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MissingCredentialsError):
        return f"no credential: set the {exc.env_var} environment variable"
    if isinstance(exc, CallrecError):
        return f"{type(exc).__name__}: {exc}"  # SDK messages are already redacted
    if isinstance(exc, FileExistsError):
        return str(exc).replace("overwrite=True", "--overwrite")
    return str(exc) or type(exc).__name__


def _error(message: str, *, kind: str = "error", fields: dict[str, Any] | None = None) -> None:
    """One line on stderr: ``callrec: error: ...`` (``failed``: an item), or a JSON object (``--log-format json``)."""
    if _log_format() == "json":
        record = {"time": _now_iso(), "level": "ERROR", "kind": kind, "message": message, **(fields or {})}
        click.echo(json.dumps(record, ensure_ascii=False), err=True)
    else:
        click.echo(f"callrec: {kind}: {message}", err=True)


def _log_format() -> str:
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_object(_Settings) if ctx is not None else None
    return settings.log_format if settings is not None else "text"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _JsonFormatter(logging.Formatter):
    """``--log-format json``: one object a line, ``time``, ``level``, ``message`` and a status line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "kind": "status" if hasattr(record, "callrec_fields") else "log",
            "message": record.getMessage(),
        }
        data.update(getattr(record, "callrec_fields", {}))
        return json.dumps(data, ensure_ascii=False)


def _configure_logging(log_format: str, level: int = logging.WARNING) -> None:
    """The ``callrec`` logger on stderr, from ``level`` (long runs: INFO, for status lines, leases, adoptions)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("callrec: %(message)s"))
    handler.set_name("callrec-cli")
    for old in [h for h in log.handlers if h.get_name() == "callrec-cli"]:
        log.removeHandler(old)
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


class _Failed(Exception):
    """A command failed; its error line is printed and ``code`` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def _reporting(vendor: str | None) -> Iterator[None]:
    """Turn the expected failures into one stderr line and an exit code (never a traceback)."""
    try:
        yield
    except (CallrecError, ValueError, TypeError, OSError, ImportError) as exc:
        _error(_describe(exc))
        raise _Failed(exit_code(exc, vendor)) from None


# -- settings and clients ---------------------------------------------------


class _Settings:
    def __init__(
        self,
        base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        rate_limit: float | None = None,
        log_format: str = "text",
    ) -> None:
        self.log_format = log_format
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.rate_limit = rate_limit

    def client_kwargs(self, vendor: str) -> dict[str, Any]:
        spec = _VENDORS[vendor]
        try:
            resolve_credential(None, env_var=spec.credential_env, keyword=spec.credential_keyword)
        except MissingCredentialsError:
            raise
        except ValueError as exc:
            raise CredentialRejectedError(str(exc)) from None
        kwargs: dict[str, Any] = {}
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        if self.max_retries is not None:
            kwargs["max_retries"] = self.max_retries
        if self.rate_limit is not None:
            kwargs["rate_limit"] = self.rate_limit
        return kwargs

    def client(self, vendor: str) -> Any:
        from ._client import FeatherClient, SiroClient

        cls = FeatherClient if vendor == "feather" else SiroClient
        return cls(**self.client_kwargs(vendor))

    def async_client(self, vendor: str) -> Any:
        from ._client import AsyncFeatherClient, AsyncSiroClient

        cls = AsyncFeatherClient if vendor == "feather" else AsyncSiroClient
        return cls(**self.client_kwargs(vendor))


def _leg_kwargs(vendor: str, leg: str | None) -> dict[str, Any]:
    return {"leg": leg} if vendor == "feather" else {}


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


def _show_progress() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# -- commands ------------------------------------------------------------------


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from . import __version__

    click.echo(f"callrec {__version__}")
    ctx.exit(0)


def _rate_limit(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    try:
        return check_rate_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version, help="Show the version and exit."
)
@click.option("--base-url", metavar="URL", help="API origin of the chosen vendor (else *_BASE_URL).")
@click.option("--timeout", type=float, metavar="SECONDS", help="Per-request timeout (default 30).")
@click.option("--max-retries", type=int, metavar="N", help="Retries of transient API failures (default 2).")
@click.option(
    "--rate-limit",
    type=float,
    metavar="N",
    callback=_rate_limit,
    help="API requests per second never to exceed (default: found from the API's 429s).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="stderr's status lines, log lines and errors: text, or one JSON object a line.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    base_url: str | None,
    timeout: float | None,
    max_retries: int | None,
    rate_limit: float | None,
    log_format: str,
) -> None:
    """Get call recordings (signed URLs and audio) from Feather AI and Siro.

    Credentials come only from the environment: FEATHER_API_KEY, SIRO_AUTH_TOKEN.
    """
    ctx.obj = _Settings(base_url, timeout, max_retries, rate_limit, log_format)
    _configure_logging(log_format)


_leg_option = click.option(
    "--leg", type=click.Choice(LEGS), default="main", show_default=True, help="Which leg of the call."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
_json_lines_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line: each finished item, then a summary."
)
_overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing file.")


@cli.group(short_help="Print a fresh signed URL.")
def url() -> None:
    """Print a fresh signed URL (the full URL: it is a bearer secret, handle it like one)."""


def _url(settings: _Settings, vendor: str, recording_id: str, leg: str | None, as_json: bool) -> int:
    with _reporting(vendor), settings.client(vendor) as client:
        signed: SignedUrl = client.recording_url(recording_id, **_leg_kwargs(vendor, leg))
    if as_json:
        _print_json(
            {
                "url": signed.url,
                "expires_at": signed.expires_at.isoformat() if signed.expires_at else None,
                "provider": signed.provider,
                "recording_id": signed.recording_id,
                "leg": signed.leg,
            }
        )
    else:
        click.echo(signed.url)
    return 0


@url.command("feather")
@click.argument("recording_id")
@_leg_option
@_json_option
@click.pass_obj
def url_feather(settings: _Settings, recording_id: str, leg: str, as_json: bool) -> int:
    """Signed URL of a Feather call's recording."""
    return _url(settings, "feather", recording_id, leg, as_json)


@url.command("siro")
@click.argument("recording_id")
@_json_option
@click.pass_obj
def url_siro(settings: _Settings, recording_id: str, as_json: bool) -> int:
    """Signed URL of a Siro recording."""
    return _url(settings, "siro", recording_id, None, as_json)


@contextmanager
def _byte_progress(label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not _show_progress():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@cli.group(short_help="Download one recording.")
def download() -> None:
    """Download one recording (a progress bar on a terminal)."""


def _download(
    settings: _Settings, vendor: str, recording_id: str, path: str, leg: str | None, overwrite: bool, as_json: bool
) -> int:
    with _reporting(vendor), settings.client(vendor) as client, _byte_progress(recording_id) as progress:
        result: DownloadResult = client.download(
            recording_id, path, overwrite=overwrite, progress=progress, **_leg_kwargs(vendor, leg)
        )
    if as_json:
        _print_json(_result_json(result))
    else:
        click.echo(f"{result.location}\t{_human_bytes(result.bytes)}\tsha256 {result.sha256}")
    return 0


def _result_json(result: DownloadResult) -> dict[str, Any]:
    return {
        "path": None if result.path is None else str(result.path),
        "location": result.location,
        "bytes": result.bytes,
        "content_type": result.content_type,
        "sha256": result.sha256,
        "url_refreshes": result.url_refreshes,
    }


_output_option = click.option(
    "-o",
    "--output",
    "path",
    default=".",
    show_default=True,
    metavar="PATH",
    help="A file, a folder (the file is then named by callrec), or an object-store URL: s3://bucket/prefix/ "
    "(named by callrec) or s3://bucket/key.wav; gs:// and az:// too (pip install 'callrec[cloud]').",
)


@download.command("feather")
@click.argument("recording_id")
@_output_option
@_leg_option
@_overwrite_option
@_json_option
@click.pass_obj
def download_feather(
    settings: _Settings, recording_id: str, path: str, leg: str, overwrite: bool, as_json: bool
) -> int:
    """Download a Feather call's recording."""
    return _download(settings, "feather", recording_id, path, leg, overwrite, as_json)


@download.command("siro")
@click.argument("recording_id")
@_output_option
@_overwrite_option
@_json_option
@click.pass_obj
def download_siro(settings: _Settings, recording_id: str, path: str, overwrite: bool, as_json: bool) -> int:
    """Download a Siro recording."""
    return _download(settings, "siro", recording_id, path, None, overwrite, as_json)


@cli.group("download-many", short_help="Download many recordings into a folder or a bucket.")
def download_many() -> None:
    """Download many recordings into a folder or an object-store prefix (resumable; keeps a manifest there).

    IDS_FILE has one id per line ('-' reads stdin); blank lines and '#' comments are ignored.
    """


def read_ids(stream: IO[str]) -> list[str]:
    """The ids in a file: one per line, stripped; blank lines and ``#`` comments skipped."""
    ids = (line.strip() for line in stream)
    return [rid for rid in ids if rid and not rid.startswith("#")]


async def _bulk(
    settings: _Settings,
    vendor: str,
    ids: list[str],
    dest: str,
    leg: str | None,
    kwargs: dict[str, Any],
    progress: ExportProgress,
    on_item: Callable[[BulkItem], None],
    stats_every: float | None,
) -> ExportSummary:
    """The run (``export``: no item kept), with the bar on a terminal or a status line every ``stats_every`` s."""
    async with settings.async_client(vendor) as client:
        run = client.export(ids, dest, **kwargs, progress=progress, on_item=on_item, **_leg_kwargs(vendor, leg))
        if stats_every is None:
            return await _with_bar(run, progress)
        if stats_every <= 0:
            return await run  # type: ignore[no-any-return]
        ticker = asyncio.ensure_future(_tick(progress, stats_every))
        try:
            summary: ExportSummary = await run
        finally:
            ticker.cancel()
        _status_line(progress)  # the last line: equal to the summary
        return summary


async def _tick(progress: ExportProgress, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        _status_line(progress)


def _status_line(progress: ExportProgress) -> None:
    snapshot = progress.snapshot()
    log.info("%s", snapshot.line(), extra={"callrec_fields": snapshot.as_dict()})


async def _with_bar(run: Any, progress: ExportProgress) -> ExportSummary:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("recordings", total=progress.total, rate="")
        work = asyncio.ensure_future(run)
        while not work.done():
            snapshot = progress.snapshot()
            bar.update(
                task, completed=snapshot.done, rate=f"{snapshot.api_rate:.1f} req/s, throttled {snapshot.throttled}"
            )
            await asyncio.wait({work}, timeout=0.2)
        return work.result()  # type: ignore[no-any-return]


def _download_many(
    settings: _Settings,
    vendor: str,
    ids_file: IO[str],
    dest_dir: str,
    leg: str | None,
    concurrency: int,
    overwrite: bool,
    as_json: bool,
    shard: tuple[int, int] | None,
    lease_seconds: float,
    stats: float | None,
) -> int:
    kwargs: dict[str, Any] = {
        "concurrency": concurrency,
        "overwrite": overwrite,
        "shard": shard,
        "lease_seconds": lease_seconds,
    }
    failures: list[BulkItem] = []

    def on_item(item: BulkItem) -> None:
        if item.status == "failed":
            failures.append(item)
        if as_json:  # one line per finished item, as it finishes
            _print_json({"type": "item", **_item_json(item)})

    progress = ExportProgress()
    _configure_logging(settings.log_format, logging.INFO)
    with _reporting(vendor):
        ids = [check_recording_id(rid) for rid in read_ids(ids_file)]  # all checked before anything is sent
        progress.total = sum(1 for _ in in_shard(dict.fromkeys(ids), check_shard(shard)))
        if stats is None and not _show_progress():
            stats = DEFAULT_STATS_SECONDS
        run = _bulk(settings, vendor, ids, dest_dir, leg, kwargs, progress, on_item, stats)
        summary = asyncio.run(run)
    snapshot = progress.snapshot()
    counts = {
        "downloaded": summary.downloaded,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "throttled": snapshot.throttled,
    }
    if as_json:
        _print_json({"type": "summary", **counts, "bytes": summary.bytes, "elapsed": round(snapshot.elapsed, 3)})
    else:
        click.echo(", ".join(f"{status} {n}" for status, n in counts.items()))
    for item in failures:
        where = f"{item.recording_id} ({item.leg})" if item.leg else item.recording_id
        reason = _describe(item.error) if item.error is not None else "failed"
        _error(f"{where}: {reason}", kind="failed", fields={"recording_id": item.recording_id, "leg": item.leg})
    return 1 if failures else 0


def _item_json(item: BulkItem) -> dict[str, Any]:
    data: dict[str, Any] = {"recording_id": item.recording_id, "leg": item.leg, "status": item.status}
    if item.result is not None:
        data.update(_result_json(item.result))
    if item.error is not None:
        data.update(error=type(item.error).__name__, message=str(item.error))
    return data


_ids_argument = click.argument("ids_file", type=click.File("r", encoding="utf-8"))
_dir_option = click.option(
    "-d",
    "--dir",
    "dest_dir",
    required=True,
    metavar="DEST",
    help="Folder to download into (created if missing), or an object-store prefix: s3://bucket/prefix, gs://, az://.",
)


def _shard(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return check_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: A status line this often (seconds) when stderr is not a terminal and --stats is not given (rclone's default).
DEFAULT_STATS_SECONDS = 60.0

_stats_option = click.option(
    "--stats",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="A status line on stderr every SECONDS (default: 60 without a terminal; a terminal shows a bar); 0: none.",
)
_lease_option = click.option(
    "--lease-seconds",
    type=click.FloatRange(min=1.0),
    default=LEASE_SECONDS,
    show_default=True,
    help="A bucket run's lease: renewed as it goes; the longest a crashed run keeps its prefix and shard locked.",
)
_shard_option = click.option(
    "--shard",
    metavar="K/N",
    callback=_shard,
    help="Take only shard K of N of the ids (1 <= K <= N; a stable hash of the id): one worker of N.",
)
_concurrency_option = click.option(
    "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Downloads at a time."
)


@download_many.command("feather")
@_ids_argument
@_dir_option
@_concurrency_option
@_shard_option
@_lease_option
@_stats_option
@_leg_option
@_overwrite_option
@_json_lines_option
@click.pass_obj
def download_many_feather(
    settings: _Settings,
    ids_file: TextIO,
    dest_dir: str,
    concurrency: int,
    shard: tuple[int, int] | None,
    lease_seconds: float,
    stats: float | None,
    leg: str,
    overwrite: bool,
    as_json: bool,
) -> int:
    """Download many Feather calls' recordings."""
    return _download_many(
        settings, "feather", ids_file, dest_dir, leg, concurrency, overwrite, as_json, shard, lease_seconds, stats
    )


@download_many.command("siro")
@_ids_argument
@_dir_option
@_concurrency_option
@_shard_option
@_lease_option
@_stats_option
@_overwrite_option
@_json_lines_option
@click.pass_obj
def download_many_siro(
    settings: _Settings,
    ids_file: TextIO,
    dest_dir: str,
    concurrency: int,
    shard: tuple[int, int] | None,
    lease_seconds: float,
    stats: float | None,
    overwrite: bool,
    as_json: bool,
) -> int:
    """Download many Siro recordings."""
    return _download_many(
        settings, "siro", ids_file, dest_dir, None, concurrency, overwrite, as_json, shard, lease_seconds, stats
    )


@cli.command(short_help="Check a folder or bucket against its manifest.")
@click.argument("dest")
@click.option("--quick", is_flag=True, help="Presence, size and ETag from the listing only; no recording is read.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=16, show_default=True, help="Recordings read at a time."
)
@_stats_option
@_json_lines_option
@click.pass_obj
def verify(settings: _Settings, dest: str, quick: bool, concurrency: int, stats: float | None, as_json: bool) -> int:
    """Check every recording DEST's manifest names (every shard's): present, at its size, with its sha256.

    DEST is a folder or an object-store prefix (s3://bucket/prefix). Exits 1 if anything is missing or different,
    2 if DEST holds no callrec export. Recordings no entry knows (orphans) are listed, and do not fail it.
    """
    from ._destinations import verify as verify_destination

    _configure_logging(settings.log_format, logging.INFO)
    progress = ExportProgress()

    def on_checked(rid: str, leg: str | None, location: str, problem: Any) -> None:
        if as_json:
            line: dict[str, Any] = {"type": "entry", "recording_id": rid, "leg": leg, "location": location}
            if problem is None:
                line["status"] = "ok"
            else:
                line.update(status=problem.problem, expected=problem.expected, found=problem.found)
            _print_json(line)

    if stats is None and not _show_progress():
        stats = DEFAULT_STATS_SECONDS
    with _reporting(None):
        report = _watched(
            lambda: verify_destination(
                dest, quick=quick, concurrency=concurrency, progress=progress, on_checked=on_checked
            ),
            progress,
            stats or 0.0,
        )
    kinds = ("missing", "size", "e_tag", "sha256")
    counts = {kind: sum(p.problem == kind for p in report.problems) for kind in kinds}
    if as_json:
        for orphan in report.orphans:
            _print_json({"type": "orphan", "location": orphan})
        _print_json(
            {
                "type": "summary",
                "destination": report.destination,
                "checked": report.checked,
                "quick": report.quick,
                **counts,
                "orphans": len(report.orphans),
            }
        )
    else:
        summary = ", ".join(f"{kind} {n}" for kind, n in counts.items())
        click.echo(f"checked {report.checked}, {summary}, orphans {len(report.orphans)}")
        for problem in report.problems:
            found = "" if problem.found is None else f" (expected {problem.expected}, found {problem.found})"
            _error(f"{problem.location}{found}", kind=problem.problem)
        for orphan in report.orphans:
            _error(orphan, kind="orphan (no manifest entry)")
    return 0 if report.ok else 1


def _watched(work: Callable[[], T], progress: ExportProgress, every: float) -> T:
    """``work()`` with a status line every ``every`` seconds from another thread (0: none), and a last one."""
    if every <= 0:
        return work()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            _status_line(progress)

    ticker = threading.Thread(target=tick, name="callrec-stats", daemon=True)
    ticker.start()
    try:
        result = work()
    finally:
        stop.set()
        ticker.join()
    _status_line(progress)
    return result


@cli.command(short_help="How far an export has got, per shard.")
@click.argument("dest")
@_json_option
def status(dest: str, as_json: bool) -> int:
    """Print DEST's export per shard and in total: done, failed (last error), last entry, lease holder, orphans.

    DEST is a folder or an object-store prefix. Only reads: never takes a lease. Exits 2 if DEST holds no export.
    """
    from ._destinations import status as export_status

    with _reporting(None):
        found = export_status(dest)
    if as_json:
        _print_json(found.as_dict())
        return 0
    click.echo(
        f"{found.destination}: {found.done} done, {_failed_text(found.failed, found.last_error)}, "
        f"last entry {_when(found.last_written)}, orphans {found.orphans}"
    )
    for shard in found.shards:
        if shard.lease is None:
            lease = "free"
        elif shard.lease.expires_at is None:
            lease = f"held by {shard.lease.owner}"
        else:
            lease = f"held by {shard.lease.owner} until {_when(shard.lease.expires_at)} (store clock)"
        click.echo(
            f"  {shard.shard:<9} {shard.done} done, {_failed_text(shard.failed, shard.last_error)}, "
            f"last entry {_when(shard.last_written)}, {lease}"
        )
    return 0


def _failed_text(count: int, last_error: str | None) -> str:
    return f"{count} failed" + (f" (last: {last_error})" if last_error else "")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cli.command(
    "fake-server",
    short_help="Run the local fake server.",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def fake_server(args: tuple[str, ...]) -> int:
    """Run the local fake Feather/Siro server (python -m callrec.testing; --help for its options)."""
    from .testing import main as fake_main

    return fake_main(list(args))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Usage: ``raise SystemExit(main())``
    """
    try:
        result = cli.main(args=argv, prog_name="callrec", standalone_mode=False)
    except _Failed as failed:
        return failed.code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("callrec: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0
