"""The ``certimport`` command: arguments, messages and exit codes (and nothing else).

Exit codes: 0 every row created (validate: every row valid); 1 finished, some rows not created;
2 usage, configuration or input error, nothing posted; 3 run aborted (auth, permission);
130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from importer import __version__, errors
from importer.cli.stdin import LABEL, STDIN, SpooledStdin
from importer.emulator.command import emulator_command
from importer.errors import CertImportError
from importer.logs import LOG_FORMATS, LogFormat, configure_logging, register_secret
from importer.outcome import FAILED, UNKNOWN

# The rest of the package (pandas, pyarrow, pandera, aiohttp, azure-identity) is imported by the
# command that needs it: --version, --help and shell completion stay fast.
if TYPE_CHECKING:
    from importer.config import Settings
    from importer.reports.summary import Mode, RunSummary
    from importer.run.journal import Journal
    from importer.run.monitor import RunMonitor
    from importer.run.pipeline import Runner, RunRequest
    from importer.send.retry import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("importer.cli")


def _say(
    message: str, *, quiet: bool | None = None, rename: Callable[[str], str] | None = None
) -> None:
    """Tell the operator (stderr; only errors with -q); the log file keeps it too.

    ``quiet`` and ``rename`` (the input's name in messages: ``<stdin>`` for ``-``) default to
    the command's, which are only visible from the main thread.
    Written to ``sys.stderr`` as it is now (not through click.echo, which would go around it):
    the progress display redirects it so that messages print above the display.
    """
    message = (rename or _renamer())(message)
    error = message.startswith(("error:", "internal error:"))
    if error or not (_output().quiet if quiet is None else quiet):
        print(message, file=sys.stderr, flush=True)
    warning = message.startswith("warning:")
    level = logging.ERROR if error else logging.WARNING if warning else logging.INFO
    log.log(level, message, extra={"event": "message", "echoed": True})


_RENAME = "certimport.rename"


def _renamer() -> Callable[[str], str]:
    """How the command's input is named in messages (the spool file of ``-`` as ``<stdin>``)."""
    ctx = click.get_current_context(silent=True)
    rename: Callable[[str], str] | None = ctx.meta.get(_RENAME) if ctx else None
    return rename or str


def _default_out_dir() -> Path:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = Path("out") / stamp
    n = 2
    while out.exists():
        out = Path("out") / f"{stamp}-{n}"
        n += 1
    return out


@dataclass(frozen=True)
class _Output:
    """How much to show and where to log (-q, --log-format, --log-file, --metrics-file)."""

    quiet: bool = False
    log_format: LogFormat = "text"
    log_file: str | None = None
    metrics_file: str | None = None


_OUTPUT = "certimport.output"


def _keep_output(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep an output option for :func:`_output` (it shapes logging, not the run)."""
    if param.name:
        ctx.meta.setdefault(_OUTPUT, {})[param.name] = value
    return value


def _output() -> _Output:
    """The output options of the command being run (defaults outside a command)."""
    ctx = click.get_current_context(silent=True)
    values = {k: v for k, v in (ctx.meta.get(_OUTPUT, {}) if ctx else {}).items() if v is not None}
    return _Output(**values)


def _setup_logging(verbose: int) -> None:
    output = _output()
    try:
        configure_logging(
            verbose=verbose,
            quiet=output.quiet,
            log_format=output.log_format,
            log_file=output.log_file,
        )
    except OSError as exc:
        raise click.UsageError(f"--log-file {output.log_file}: {exc.strerror or exc}") from None


def _print_summary(summary: RunSummary) -> None:
    """The short table shown on exit, and one structured log record of the same facts.

    A run's table goes to stderr (what it produced is in Graph and in the reports), and not
    with -q; validate's and plan's go to stdout, since the table is what they were asked for.
    """
    from importer.reports.summary import next_steps, shown_statuses
    from importer.reports.timeline import format_duration

    counts = summary.counts
    steps = next_steps(summary)
    log.info(
        "%s finished with exit %d: %s; reports in %s",
        summary.mode,
        summary.exit_code,
        ", ".join(f"{status} {n}" for status, n in counts.items() if n) or "no rows",
        summary.out_dir,
        extra={
            "event": "summary",
            "echoed": True,
            "mode": summary.mode,
            "command": summary.command or summary.mode,
            "input": summary.input,
            "out_dir": summary.out_dir,
            "records": summary.records,
            "counts": {k: v for k, v in counts.items() if v},
            "requests": summary.requests,
            "throttled": summary.throttled,
            "retries": summary.retries,
            "duration_seconds": summary.duration_seconds,
            "rows_per_second": summary.rows_per_second,
            "exit_code": summary.exit_code,
            "stopped": summary.stopped,
            "next": steps,
        },
    )
    to_stderr = summary.mode in ("run", "dry-run")
    if to_stderr and _output().quiet:
        return
    width = max(7, len(f"{summary.records:,}"))
    lines = [f"certimport {summary.command or summary.mode}: {summary.input}"]
    lines += [
        f"  {name:<10} {counts.get(name, 0):>{width},}"
        for name in shown_statuses(summary.mode, counts)
    ]
    lines.append(f"  {'records':<10} {summary.records:>{width},}")
    if summary.mode == "run":
        lines.append(
            f"  requests   {summary.requests:,} · 429s {summary.throttled:,} · "
            f"retries {summary.retries:,}"
        )
    lines.append(
        f"  duration   {format_duration(summary.duration_seconds)} · "
        f"{summary.rows_per_second:,} rows/s"
    )
    if summary.reconciled:
        lines.append(f"  reconciled {summary.reconciled} (found in Graph after a lost answer)")
    if summary.journal:
        lines.append(f"  journal    {summary.journal}")
    if summary.stopped:
        lines.append(f"  stopped    {summary.stopped}")
    report = Path(summary.out_dir) / "report.html"
    lines.append(f"  report     {report} (with results.csv, failed.csv, summary.json)")
    lines += [f"  {'next' if i == 0 else '':<10} {step}" for i, step in enumerate(steps)]
    click.echo("\n".join(lines), err=to_stderr)


def _guard(action: Callable[[], T]) -> T:
    """Run a command body, turning errors into a one-line message and an exit code."""
    try:
        return action()
    except (Exception, KeyboardInterrupt) as exc:
        message, code = _explain(exc)
        _say(message)
        sys.exit(code)


def _explain(exc: BaseException) -> tuple[str, int]:
    """The operator's message and the exit code for an exception that ends a command."""
    if isinstance(exc, ExceptionGroup):  # raised inside the worker pool's task group
        ours, _ = exc.split(CertImportError)
        inner = (ours or exc).exceptions[0]
        return _explain(inner)
    if isinstance(exc, errors.NothingToRetry):
        return str(exc), exc.exit_code
    if isinstance(exc, CertImportError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", errors.EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"error: {where}{exc.strerror or exc}", errors.EXIT_USAGE
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        return f"error: the journal failed: {exc}", errors.EXIT_USAGE
    # A bug: one line for the operator, the traceback at -vv.
    logging.getLogger("importer").debug("internal error", exc_info=exc)
    return (
        f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
        errors.EXIT_INTERNAL,
    )


async def _with_signals(runner: Runner, work: Awaitable[T]) -> T:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.stop)
    try:
        return await work
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(
    request: RunRequest,
    config: str | None,
    overrides: dict[str, Any],
    use_emulator: bool,
    monitor: RunMonitor | None = None,
) -> RunSummary:
    from importer.config import load_settings

    emulator = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if use_emulator:
        from importer.emulator import EmulatorConfig, GraphEmulator

        emulator = GraphEmulator(EmulatorConfig())
        await emulator.start()
        overrides = {
            **overrides,
            "base_url": emulator.base_url,
            "auth_method": "static",
            "access_token": emulator.issue_token(),
        }
        if not overrides.get("state_dir"):
            # The emulator forgets everything when it stops: so does its journal.
            scratch = tempfile.TemporaryDirectory(prefix="certimport-emulator-")
            overrides["state_dir"] = scratch.name
        _say(f"using the built-in Graph emulator at {emulator.base_url}")
    try:
        settings = load_settings(config, overrides=overrides)
        if request.mode in ("run", "plan"):
            with _journal(settings, lock=request.mode == "run") as journal:
                return await _execute_with(settings, request, journal, monitor)
        return await _execute_with(settings, request, None, monitor)
    finally:
        if emulator is not None:
            await emulator.close()
        if scratch is not None:
            scratch.cleanup()


def _tenant(settings: Settings) -> str:
    """The tenant a journal belongs to: the setting, else AZURE_TENANT_ID (as auth uses it)."""
    return settings.tenant_id or os.environ.get("AZURE_TENANT_ID", "")


def _journal(settings: Settings, *, lock: bool) -> Journal:
    from importer.run.journal import Journal, default_state_dir

    state_dir = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    run_id = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S.%fZ")
    return Journal.for_target(
        state_dir, settings.graph_root, _tenant(settings), run_id=run_id, lock=lock
    )


async def _execute_with(
    settings: Settings,
    request: RunRequest,
    journal: Journal | None,
    monitor: RunMonitor | None = None,
) -> RunSummary:
    from importer.run.pipeline import Runner
    from importer.send.auth import build_token_source
    from importer.send.client import GraphClient
    from importer.send.pacing import Pacer

    if settings.access_token:
        register_secret(settings.access_token.reveal())
    # the runner says things off-thread, where the command's context is not visible
    say = functools.partial(_say, quiet=_output().quiet, rename=_renamer())
    runner = Runner(settings, request, say=say, journal=journal, monitor=monitor)
    if request.mode != "run":
        return await _with_signals(runner, runner.execute())
    tokens = build_token_source(settings)
    try:
        async with GraphClient(
            settings.collection_url,
            tokens,
            policy=_policy(settings),
            pacer=Pacer(settings.rate_limit),
            read_pacer=Pacer(settings.read_rate_limit),
            concurrency=settings.concurrency,
            request_timeout=settings.request_timeout,
        ) as client:
            return await _with_signals(runner, runner.execute(client))
    finally:
        await tokens.close()


def _policy(settings: Settings) -> RetryPolicy:
    from importer.send.retry import RetryPolicy

    return RetryPolicy(max_attempts=settings.max_attempts, deadline=settings.retry_deadline)


def _execute(
    path: str,
    mode: Mode,
    *,
    out: str | None,
    config: str | None,
    overrides: dict[str, Any],
    strict: bool = False,
    show_errors: int = 100,
    use_emulator: bool = False,
    allow_shrink: bool = False,
    only_statuses: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
    command: str = "",
    expect_target: str = "",
    label: str = "",
) -> None:
    """Run one command over ``path``: settings from ``defaults`` (what a retried run used),
    then the input flags, then ``overrides`` (the command's own flags).

    ``-`` reads standard input, spooled to a private file first (the file is read twice).
    """
    if path == STDIN:
        with _spooled_stdin() as spool:
            _execute(
                spool.path, mode, out=out, config=config, overrides=overrides, strict=strict,
                show_errors=show_errors, use_emulator=use_emulator, allow_shrink=allow_shrink,
                only_statuses=only_statuses, defaults=defaults, command=command,
                expect_target=expect_target, label=LABEL,
            )  # fmt: skip
        return
    from importer import aio
    from importer.cli.progress import ProgressDisplay, wants_progress
    from importer.config import config_file, load_settings
    from importer.reports.metrics import check_metrics_path
    from importer.run.monitor import RunMonitor
    from importer.run.pipeline import RunRequest

    _arrow_memory_pool()
    flags = {k: v for k, v in _guard(_input_overrides).items() if v is not None}
    given = {k: v for k, v in overrides.items() if v is not None}
    overrides = {**(defaults or {}), **flags, **given}
    output = _output()
    if output.metrics_file:
        problem = check_metrics_path(output.metrics_file)
        if problem:
            _say(f"error: {problem}")
            sys.exit(errors.EXIT_USAGE)
    monitor = RunMonitor()
    progress = mode == "run" and wants_progress(sys.stderr, quiet=output.quiet)

    def body() -> RunSummary:
        out_dir = Path(out) if out else None
        if out_dir is None:
            # Settings may name an out_dir; load them once here only to find it.
            settings = load_settings(config, overrides=overrides) if not use_emulator else None
            out_dir = Path(settings.out_dir) if settings and settings.out_dir else None
        request = RunRequest(
            path=path,
            out_dir=out_dir or _default_out_dir(),
            mode=mode,
            strict=strict,
            show_errors=show_errors,
            allow_shrink=allow_shrink,
            only_statuses=only_statuses,
            command=command,
            config=config_file(config),
            emulator=use_emulator,
            expect_target=expect_target,
            label=label,
        )
        display = ProgressDisplay(monitor) if progress else contextlib.nullcontext()
        with display:
            return aio.run(_run(request, config, overrides, use_emulator, monitor))

    try:
        summary = _guard(body)
    except SystemExit as stop:  # ended without a summary (exit 2, 3, 70): metrics say so too
        code = stop.code if isinstance(stop.code, int) else errors.EXIT_USAGE
        _write_metrics(output.metrics_file, None, code)
        raise
    _print_summary(summary)
    _write_metrics(output.metrics_file, summary, summary.exit_code)
    sys.exit(summary.exit_code)


@contextlib.contextmanager
def _spooled_stdin() -> Iterator[SpooledStdin]:
    """Standard input in a private file, named ``<stdin>`` in every message meanwhile."""
    spool = _guard(SpooledStdin().__enter__)
    ctx = click.get_current_context()
    ctx.meta[_RENAME] = spool.rename
    try:
        yield spool
    finally:
        spool.__exit__(None, None, None)


def _write_metrics(path: str | None, summary: RunSummary | None, exit_code: int) -> None:
    """Rewrite the --metrics-file, if one was asked for; a failure is only a warning."""
    if not path:
        return
    from importer.reports.metrics import write_metrics

    try:
        write_metrics(path, summary, exit_code=exit_code)
    except OSError as exc:
        _say(f"warning: metrics file {path} not written: {exc.strerror or exc}")


_INPUT = "certimport.input"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep an input option (--profile, --encoding, ...) for the settings overrides."""
    if param.name:
        ctx.meta.setdefault(_INPUT, {})[param.name] = value
    return value


def _input_overrides() -> dict[str, Any]:
    """The input options given on the command line, as settings overrides."""
    ctx = click.get_current_context(silent=True)
    values: dict[str, Any] = dict(ctx.meta.get(_INPUT, {})) if ctx else {}
    if values.get("date_format") and values.get("dayfirst") is not None:
        raise errors.UsageError(
            "--date-format cannot be combined with --dayfirst/--monthfirst: "
            "a date format already says where the day is"
        )
    return values


_input_options = [
    click.option(
        "--profile",
        metavar="NAME",
        expose_value=False,
        callback=_remember,
        help="auto, graph, adcs, powershell, or a profile .toml [auto: chosen from the header].",
    ),
    click.option(
        "--encoding",
        metavar="CODEC",
        expose_value=False,
        callback=_remember,
        help="auto, or a codec such as cp1252, utf-16 [auto: BOM, UTF-8, else detected].",
    ),
    click.option(
        "--delimiter",
        metavar="CHAR",
        expose_value=False,
        callback=_remember,
        help="',' ';' tab or '|' [detected from the header, or a sep= line].",
    ),
    click.option(
        "--date-format",
        metavar="FORMAT",
        expose_value=False,
        callback=_remember,
        help="strptime format of dates that are not ISO 8601, e.g. '%d.%m.%Y %H:%M'.",
    ),
    click.option(
        "--dayfirst/--monthfirst",
        default=None,
        expose_value=False,
        callback=_remember,
        help="Read dates that are not ISO 8601 day first (05.01.2025) or month first (1/5/2025).",
    ),
]


_output_options = [
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_keep_output,
        help="No progress display, messages or run summary on stderr: errors only.",
    ),
    click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default=None,
        expose_value=False,
        callback=_keep_output,
        help="text, or json: one JSON object per line [text].",
    ),
    click.option(
        "--log-file",
        metavar="FILE",
        expose_value=False,
        callback=_keep_output,
        help="Append the log to FILE: INFO (retries, throttling, messages), DEBUG with -vv.",
    ),
]
_metrics_option = click.option(
    "--metrics-file",
    metavar="PATH",
    expose_value=False,
    callback=_keep_output,
    help="Write Prometheus metrics of the run to PATH at the end (node_exporter textfile).",
)


def _with_output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(_output_options):
        func = decorator(func)
    return func


_common = [
    click.argument("path", type=click.Path(dir_okay=False)),
    click.option("--out", "out", metavar="DIR", help="Report directory [out/<UTC timestamp>]."),
    click.option("--config", "config", metavar="FILE", help="TOML settings file."),
    click.option("--timezone", metavar="ZONE", help="Zone of dates given without offset [UTC]."),
    click.option(
        "--show-errors",
        default=100,
        show_default=True,
        metavar="N",
        help="Problems echoed to stderr (0 = all); every one is in results.csv.",
    ),
    click.option("-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug."),
    *_input_options,
    *_output_options,
]


def _with_input_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(_input_options):
        func = decorator(func)
    return func


def _with_common(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(_common):
        func = decorator(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="certimport")
def cli() -> None:
    """Import certificate inventories (CSV) into Intune through Microsoft Graph."""


def _arrow_memory_pool() -> None:
    """Give Arrow the system allocator, before a command reads a file."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # Arrow's own allocator keeps freed chunk buffers: the system one returns them
        # (measured: a 100k-row rerun peaked at 442 MB with it, 356 MB without, same speed).
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


@cli.command()
@_with_common
def validate(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
) -> None:
    """Check PATH without sending anything; write results.csv and failed.csv.

    Exit 0 when every row is valid, 1 when some are rejected, 2 when the file is unreadable.

    \b
    Example:
      certimport validate inventory.csv --out out/check
    """
    _setup_logging(verbose)
    _execute(
        path,
        "validate",
        out=out,
        config=config,
        overrides={"timezone": timezone},
        show_errors=show_errors,
    )


@cli.command()
@_with_common
@_metrics_option
@click.option("--concurrency", type=int, metavar="N", help="Parallel requests [4].")
@click.option(
    "--rate-limit",
    metavar="N/WINDOW",
    help="Write budget shared by all workers, e.g. 100/20s (Intune's per-app limit) [100/20s].",
)
@click.option("--read-rate-limit", metavar="N/WINDOW", help="Read budget (lookups) [1000/20s].")
@click.option("--batch", type=int, metavar="N", help="Rows per $batch call, 1-20 [1: no batching].")
@click.option("--dry-run", is_flag=True, help="Validate and build the bodies; send nothing.")
@click.option("--strict", is_flag=True, help="Post nothing when any row is invalid (exit 2).")
@click.option("--update", is_flag=True, help="PATCH rows whose values changed since created.")
@click.option("--allow-shrink", is_flag=True, help="Accept an input far smaller than last run's.")
@click.option("--state-dir", metavar="DIR", help="Journal directory [~/.local/state/certimport].")
@click.option(
    "--emulator",
    "use_emulator",
    is_flag=True,
    help="Start the built-in Graph emulator and import into it (a rehearsal).",
)
def run(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    concurrency: int | None,
    rate_limit: str | None,
    read_rate_limit: str | None,
    batch: int | None,
    dry_run: bool,
    strict: bool,
    update: bool,
    allow_shrink: bool,
    state_dir: str | None,
    use_emulator: bool,
) -> None:
    """Validate PATH, then create every valid row in Graph; write the reports.

    \b
    Examples:
      certimport run inventory.csv --config config/certimport.toml
      certimport run inventory.csv --emulator          # rehearse against the emulator
      certimport run out/2026-11-27T010000Z/failed.csv  # re-feed fixed rows
    """
    _setup_logging(verbose)
    _execute(
        path,
        "dry-run" if dry_run else "run",
        out=out,
        config=config,
        overrides={
            "timezone": timezone,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "read_rate_limit": read_rate_limit,
            "batch": batch,
            "update": True if update else None,
            "state_dir": state_dir,
        },
        strict=strict,
        show_errors=show_errors,
        use_emulator=use_emulator,
        allow_shrink=allow_shrink,
    )


@cli.command()
@_with_common
@click.option("--state-dir", metavar="DIR", help="Journal directory [~/.local/state/certimport].")
@click.option("--update", is_flag=True, help="Plan PATCHes for rows whose values changed.")
def plan(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    state_dir: str | None,
    update: bool,
) -> None:
    """Say what a run of PATH would create, skip, reject or flag as changed; send nothing.

    Reads the journal of the configured target: rows already created with the same values are
    `skipped`, rows created with other values `changed`, the rest `valid` (would be created).

    \b
    Example:
      certimport plan inventory.csv --config /etc/certimport.toml
    """
    _setup_logging(verbose)
    _execute(
        path,
        "plan",
        out=out,
        config=config,
        overrides={
            "timezone": timezone,
            "state_dir": state_dir,
            "update": True if update else None,
        },
        show_errors=show_errors,
    )


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out", metavar="DIR", help="Report directory [out/<UTC timestamp>].")
@click.option("--config", "config", metavar="FILE", help="TOML settings file [the run's].")
@click.option("--timezone", metavar="ZONE", help="Zone of dates given without offset [the run's].")
@click.option(
    "--show-errors",
    default=100,
    show_default=True,
    metavar="N",
    help="Problems echoed to stderr (0 = all); every one is in results.csv.",
)
@click.option("-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug.")
@_with_input_options
@_with_output_options
@_metrics_option
@click.option("--concurrency", type=int, metavar="N", help="Parallel requests [4].")
@click.option("--rate-limit", metavar="N/WINDOW", help="Write budget [100/20s].")
@click.option("--read-rate-limit", metavar="N/WINDOW", help="Read budget (lookups) [1000/20s].")
@click.option("--batch", type=int, metavar="N", help="Rows per $batch call, 1-20 [1: no batching].")
@click.option("--update", is_flag=True, help="PATCH rows whose values changed since created.")
@click.option("--state-dir", metavar="DIR", help="Journal directory [the run's].")
@click.option(
    "--emulator",
    "use_emulator",
    is_flag=True,
    help="Start the built-in Graph emulator and send into it (a rehearsal).",
)
def retry(
    run_dir: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    concurrency: int | None,
    rate_limit: str | None,
    read_rate_limit: str | None,
    batch: int | None,
    update: bool,
    state_dir: str | None,
    use_emulator: bool,
) -> None:
    """Send again the rows of RUN_DIR that failed or whose outcome is unknown.

    Reads RUN_DIR/failed.csv the way the run read its input (profile, [columns], date order,
    time zone, config file and journal, as recorded in RUN_DIR/summary.json); flags given here
    win. Rows with an `unknown` outcome are looked up in Graph first, so nothing is created
    twice. Rejected rows are left out: fix them in failed.csv and pass the file to
    `certimport run`. Writes a new run directory. Nothing to retry: one line, exit 0.

    \b
    Example:
      certimport retry out/2026-11-27T010000Z
    """
    _setup_logging(verbose)
    failed = Path(run_dir) / "failed.csv"
    if not failed.is_file():
        _say(f"error: {run_dir}: no failed.csv here; pass the report directory of a run")
        sys.exit(errors.EXIT_USAGE)
    replay = _guard(lambda: _replayed(Path(run_dir), config))
    _execute(
        str(failed),
        "run",
        out=out,
        config=replay.config,
        defaults=replay.defaults,
        overrides={
            "timezone": timezone,
            "concurrency": concurrency,
            "rate_limit": rate_limit,
            "read_rate_limit": read_rate_limit,
            "batch": batch,
            "update": True if update else None,
            "state_dir": state_dir,
        },
        show_errors=show_errors,
        use_emulator=use_emulator,
        only_statuses=(FAILED, UNKNOWN),
        command="retry",
        expect_target=replay.target,
    )


@dataclass(frozen=True)
class _Replay:
    """What a retry takes over from the run it retries."""

    config: str | None
    defaults: dict[str, Any]  # settings the run used; flags given to retry win
    target: str


def _replayed(run_dir: Path, config: str | None) -> _Replay:
    """How the run in ``run_dir`` read its input, from its summary.json."""
    from importer.reports.reading import Reading

    summary_path = run_dir / "summary.json"
    try:
        data = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        raise errors.UsageError(f"{summary_path}: cannot be read: {exc}") from exc
    if not isinstance(data, dict) or "reading" not in data:
        _say(
            f"warning: {summary_path} does not say how the run read its input; "
            "reading failed.csv with the flags given here"
        )
        return _Replay(config, {}, "")
    reading = Reading.from_dict(data["reading"], str(summary_path))
    flags = _input_overrides()
    given_config = config is not None or bool(os.environ.get("CERTIMPORT_CONFIG"))
    for warning in reading.check_files(profile="profile" not in flags, config=not given_config):
        _say(f"warning: {warning}")
    defaults: dict[str, Any] = {
        "profile": reading.profile_spec(),
        "timezone": reading.timezone,
        # an emulator run's journal went with its emulator
        "state_dir": None if reading.emulator else reading.state_dir or None,
    }
    if not given_config:  # the [columns] belong to the run's config file
        defaults["columns"] = reading.column_settings(str(summary_path))
    if flags.get("date_format") is None and flags.get("dayfirst") is None:
        defaults["date_format"] = reading.date_format or None
        defaults["dayfirst"] = reading.dayfirst
    return _Replay(
        config if given_config else (reading.config_file or None),
        defaults,
        "" if reading.emulator else reading.target,
    )


@cli.group()
def journal() -> None:
    """Inspect the journal: what has been sent to the configured target."""


def _open_journal(config: str | None, state_dir: str | None) -> Journal:
    from importer.config import load_settings

    settings = load_settings(config, overrides={"state_dir": state_dir})
    handle = _journal(settings, lock=False)
    if not handle.path.exists():
        raise errors.UsageError(
            f"no journal for {settings.graph_root} (tenant {_tenant(settings) or 'default'}) "
            f"at {handle.path}: nothing has been run against this target yet"
        )
    return handle


@journal.command("show")
@click.option("--config", "config", metavar="FILE", help="TOML settings file.")
@click.option("--state-dir", metavar="DIR", help="Journal directory [~/.local/state/certimport].")
def journal_show(config: str | None, state_dir: str | None) -> None:
    """Print the journal's file, counts per status and the latest runs.

    \b
    Example:
      certimport journal show --config /etc/certimport.toml
    """

    def body() -> None:
        with _open_journal(config, state_dir) as handle:
            counts = handle.counts()
            click.echo(f"journal {handle.path}")
            for status, count in sorted(counts.items()):
                click.echo(f"  {status:<10} {count:>9}")
            click.echo("latest runs:")
            for run_id, mode, _, finished, records, code, source in handle.recent_runs():
                click.echo(
                    f"  {run_id}  {mode:<4} records {records if records is not None else '-':>8}"
                    f"  exit {code if code is not None else '-'}  {source}"
                    + ("" if finished else "  (did not finish)")
                )

    _guard(body)


@journal.command("export")
@click.option("--config", "config", metavar="FILE", help="TOML settings file.")
@click.option("--state-dir", metavar="DIR", help="Journal directory [~/.local/state/certimport].")
def journal_export(config: str | None, state_dir: str | None) -> None:
    """Write every key the journal knows as CSV on stdout.

    \b
    Example:
      certimport journal export > journal.csv
    """

    from importer.reports.results import neutralise

    def body() -> None:
        with _open_journal(config, state_dir) as handle:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(
                (
                    "certificateThumbprint",
                    "managedDeviceDisplayName",
                    "status",
                    "id",
                    "attempts",
                    "last_error",
                    "run_id",
                    "in_doubt",
                    "created_at",
                    "updated_at",
                )
            )
            for row in handle.iter_rows():
                thumb, device, status, graph_id, attempts, error, run_id, intent, made, changed = (
                    row
                )
                writer.writerow(
                    (
                        thumb,
                        device,
                        status,
                        graph_id,
                        attempts,
                        neutralise(error),
                        run_id,
                        "yes" if intent else "",
                        made,
                        changed,
                    )
                )

    _guard(body)


@cli.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--config", "config", metavar="FILE", help="TOML settings file.")
@click.option("--timezone", metavar="ZONE", help="Zone of dates given without offset [UTC].")
@click.option("--rows", default=5, show_default=True, metavar="N", help="Records shown as sent.")
@_with_input_options
def inspect_command(path: str, config: str | None, timezone: str | None, rows: int) -> None:
    """Show how PATH would be read: encoding, delimiter, profile, column mapping, row count,
    and the first records as the bodies that would be sent. Sends nothing, writes nothing.

    Exit 0 when the file can be imported as it is, 2 (with what is missing) when it cannot.

    \b
    Examples:
      certimport inspect export.csv
      certimport inspect certutil-export.csv --config adcs.toml --monthfirst
    """
    from importer.config import load_settings
    from importer.run.inspect import inspect_file

    _arrow_memory_pool()

    def body(source: str) -> int:
        overrides = {**_input_overrides(), "timezone": timezone}
        settings = load_settings(config, overrides=overrides)
        inspection = inspect_file(source, settings, rows=rows)
        click.echo(_renamer()("\n".join(inspection.lines())))
        return errors.EXIT_USAGE if inspection.error is not None else errors.EXIT_OK

    if path == STDIN:
        with _spooled_stdin() as spool:
            sys.exit(_guard(lambda: body(spool.path)))
    sys.exit(_guard(lambda: body(path)))


cli.add_command(emulator_command)


def main() -> None:
    """Entry point of the ``certimport`` console script."""
    cli(prog_name="certimport")


__all__ = ["cli", "main"]
