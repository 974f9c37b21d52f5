"""The ``certimport`` command: arguments, messages and exit codes (and nothing else).

Exit codes: 0 every row created (validate: every row valid); 1 finished, some rows not created;
2 usage, configuration or input error, nothing posted; 3 run aborted (auth, permission);
130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from importer import __version__, errors
from importer.auth import build_token_source
from importer.client import GraphClient
from importer.config import Settings, load_settings
from importer.errors import CertImportError
from importer.pacing import Pacer
from importer.retry import RetryPolicy
from importer.runner import Mode, Runner, RunRequest, RunSummary

T = TypeVar("T")


def _say(message: str) -> None:
    click.echo(message, err=True)


def _default_out_dir() -> Path:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = Path("out") / stamp
    n = 2
    while out.exists():
        out = Path("out") / f"{stamp}-{n}"
        n += 1
    return out


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("importer")
    logger.handlers[:] = [handler]
    logger.setLevel(level)


def _print_summary(summary: RunSummary) -> None:
    counts = summary.counts
    shown = ["created", "rejected", "failed", "unknown"] if summary.mode == "run" else []
    shown = shown or ["valid", "rejected"]
    lines = [f"certimport {summary.mode}: {summary.input}", f"  records   {summary.records:>9}"]
    lines += [f"  {name:<9} {counts.get(name, 0):>9}" for name in shown]
    if summary.mode == "run":
        lines.append(
            f"  requests {summary.requests}, throttled (429) {summary.throttled}, "
            f"retries {summary.retries}"
        )
    lines.append(
        f"  duration  {summary.duration_seconds:.1f} s ({summary.rows_per_second:g} rows/s)"
    )
    if summary.stopped:
        lines.append(f"  stopped:  {summary.stopped}")
    lines.append(f"  reports   {summary.out_dir}/ (results.csv, failed.csv, summary.json)")
    not_done = sum(counts.get(s, 0) for s in ("rejected", "failed", "unknown"))
    if not_done:
        failed = Path(summary.out_dir) / "failed.csv"
        lines.append(f"  next:     fix the rows in {failed}, then: certimport run {failed}")
    click.echo("\n".join(lines))


def _guard(action: Callable[[], T]) -> T:
    """Run a command body, turning our errors into a message and an exit code."""
    try:
        return action()
    except CertImportError as exc:
        _say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(errors.EXIT_INTERRUPTED)


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
    request: RunRequest, config: str | None, overrides: dict[str, Any], use_emulator: bool
) -> RunSummary:
    emulator = None
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
        _say(f"using the built-in Graph emulator at {emulator.base_url}")
    try:
        settings = load_settings(config, overrides=overrides)
        runner = Runner(settings, request, say=_say)
        if request.mode != "run":
            return await _with_signals(runner, runner.execute())
        tokens = build_token_source(settings)
        try:
            async with GraphClient(
                settings.collection_url,
                tokens,
                policy=_policy(settings),
                pacer=Pacer(settings.rate_limit),
                concurrency=settings.concurrency,
                request_timeout=settings.request_timeout,
            ) as client:
                return await _with_signals(runner, runner.execute(client))
        finally:
            await tokens.close()
    finally:
        if emulator is not None:
            await emulator.close()


def _policy(settings: Settings) -> RetryPolicy:
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
) -> None:
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
        )
        return asyncio.run(_run(request, config, overrides, use_emulator))

    summary = _guard(body)
    _print_summary(summary)
    sys.exit(summary.exit_code)


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
]


def _with_common(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(_common):
        func = decorator(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="certimport")
def cli() -> None:
    """Import certificate inventories (CSV) into Intune through Microsoft Graph."""


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
        },
        strict=strict,
        show_errors=show_errors,
        use_emulator=use_emulator,
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--write-limit",
    default=100,
    show_default=True,
    type=int,
    help="Writes allowed per window (0 = no throttle).",
)
@click.option("--write-window", default=20.0, show_default=True, type=float, help="Seconds.")
@click.option(
    "--latency", default=0.0, show_default=True, type=float, help="Seconds added to every request."
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of POSTs answered with a random fault (503, 504, dropped).",
)
@click.option("--seed", type=int, help="Seed for the faults, for reproducible rehearsals.")
@click.option(
    "--token",
    "tokens",
    multiple=True,
    metavar="TOKEN",
    help="A bearer token always accepted (repeatable).",
)
def emulator(
    host: str,
    port: int,
    write_limit: int,
    write_window: float,
    latency: float,
    fault_rate: float,
    seed: int | None,
    tokens: tuple[str, ...],
) -> None:
    """Serve the built-in Microsoft Graph emulator on a loopback address.

    \b
    Example (two shells):
      certimport emulator --port 8080 --token dev-token
      CERTIMPORT_BASE_URL=http://127.0.0.1:8080/beta CERTIMPORT_AUTH_METHOD=static \\
        CERTIMPORT_ACCESS_TOKEN=dev-token certimport run samples/certificates.csv
    """
    from importer.emulator import EmulatorConfig, serve

    config = EmulatorConfig(
        write_limit=write_limit,
        write_window=write_window,
        latency=latency,
        fault_rate=fault_rate,
        seed=seed,
        static_tokens=frozenset(tokens),
    )

    def body() -> None:
        try:
            asyncio.run(serve(config, host, port))
        except ValueError as exc:
            raise errors.UsageError(str(exc)) from None
        except OSError as exc:
            raise errors.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    _guard(body)


def main() -> None:
    """Entry point of the ``certimport`` console script."""
    cli(prog_name="certimport")


__all__ = ["cli", "main"]
