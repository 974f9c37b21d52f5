"""The commands that read an inventory: validate, inspect, run and plan."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

import click

from importer import errors
from importer.cli.console import Console
from importer.cli.execute import Execution, arrow_memory_pool, execute, readable
from importer.cli.options import (
    CONFIG_OPTION,
    STATE_DIR_OPTION,
    TIMEZONE_OPTION,
    check_inputs,
    common,
    with_inputs,
)

# Options of the commands that send (run, and retry with its own help texts).
CONCURRENCY_OPTION = click.option(
    "--concurrency", type=int, metavar="N", help="Parallel requests [4]."
)
READ_RATE_OPTION = click.option(
    "--read-rate-limit", metavar="N/WINDOW", help="Read budget (lookups) [1000/20s]."
)
BATCH_OPTION = click.option(
    "--batch", type=int, metavar="N", help="Rows per $batch call, 1-20 [1: no batching]."
)
UPDATE_OPTION = click.option(
    "--update", is_flag=True, help="PATCH rows whose values changed since created."
)
NO_ADOPT_OPTION = click.option(
    "--no-adopt",
    is_flag=True,
    help="Do not read what Graph holds when the journal is new to the target (whatever "
    "Graph already holds is then created a second time).",
)


def sending_overrides(
    *,
    timezone: str | None,
    concurrency: int | None,
    rate_limit: str | None,
    read_rate_limit: str | None,
    batch: int | None,
    update: bool,
    state_dir: str | None,
    resend_rejected: bool = False,
    no_adopt: bool = False,
) -> dict[str, Any]:
    """The settings overrides of the flags that ``run`` and ``retry`` share (a flag not given
    is None, so the config file or the environment decides)."""
    return {
        "timezone": timezone,
        "concurrency": concurrency,
        "rate_limit": rate_limit,
        "read_rate_limit": read_rate_limit,
        "batch": batch,
        "update": True if update else None,
        "resend_rejected": True if resend_rejected else None,
        "adopt": False if no_adopt else None,
        "state_dir": state_dir,
    }


def emulator_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--emulator``: start the built-in Graph emulator and send into it."""
    return click.option("--emulator", "use_emulator", is_flag=True, help=help_text)


SUMMARY_FORMAT_OPTION = click.option(
    "--format",
    "summary_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="The summary on stdout: a table, or one JSON object (summary.json's) [text].",
)


@click.command()
@common()
@SUMMARY_FORMAT_OPTION
def validate(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    inputs: dict[str, Any],
    console: Console,
    summary_format: Literal["text", "json"],
) -> None:
    """Check PATH without sending anything; write results.csv and failed.csv.

    Exit 0 when every row is valid, 1 when some are rejected, 2 when the file is unreadable.

    \b
    Example:
      certimport validate inventory.csv --out out/check
    """
    console.setup_logging(verbose)
    console.summary_format = summary_format
    job = Execution(
        "validate",
        out=out,
        config=config,
        inputs=inputs,
        overrides={"timezone": timezone},
        show_errors=show_errors,
    )
    execute(console, path, job)


@click.command()
@common(metrics=True)
@CONCURRENCY_OPTION
@click.option(
    "--rate-limit",
    metavar="N/WINDOW",
    help="Write budget shared by all workers, e.g. 100/20s (Intune's per-app limit) [100/20s].",
)
@READ_RATE_OPTION
@BATCH_OPTION
@click.option("--dry-run", is_flag=True, help="Validate and build the bodies; send nothing.")
@click.option("--strict", is_flag=True, help="Post nothing when any row is invalid (exit 2).")
@UPDATE_OPTION
@click.option(
    "--resend-rejected",
    is_flag=True,
    help="Send rows Graph refused before even when unchanged (when Graph's side changed).",
)
@click.option("--allow-shrink", is_flag=True, help="Accept an input far smaller than last run's.")
@NO_ADOPT_OPTION
@STATE_DIR_OPTION
@emulator_option("Start the built-in Graph emulator and import into it (a rehearsal).")
def run(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    inputs: dict[str, Any],
    console: Console,
    concurrency: int | None,
    rate_limit: str | None,
    read_rate_limit: str | None,
    batch: int | None,
    dry_run: bool,
    strict: bool,
    update: bool,
    resend_rejected: bool,
    allow_shrink: bool,
    no_adopt: bool,
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
    console.setup_logging(verbose)
    job = Execution(
        "dry-run" if dry_run else "run",
        out=out,
        config=config,
        inputs=inputs,
        overrides=sending_overrides(
            timezone=timezone,
            concurrency=concurrency,
            rate_limit=rate_limit,
            read_rate_limit=read_rate_limit,
            batch=batch,
            update=update,
            state_dir=state_dir,
            resend_rejected=resend_rejected,
            no_adopt=no_adopt,
        ),
        strict=strict,
        show_errors=show_errors,
        use_emulator=use_emulator,
        allow_shrink=allow_shrink,
    )
    execute(console, path, job)


@click.command()
@common()
@STATE_DIR_OPTION
@click.option("--update", is_flag=True, help="Plan PATCHes for rows whose values changed.")
@SUMMARY_FORMAT_OPTION
def plan(
    path: str,
    out: str | None,
    config: str | None,
    timezone: str | None,
    show_errors: int,
    verbose: int,
    inputs: dict[str, Any],
    console: Console,
    state_dir: str | None,
    update: bool,
    summary_format: Literal["text", "json"],
) -> None:
    """Say what a run of PATH would create, skip, reject or flag as changed; send nothing.

    Reads the journal of the configured target: rows already created with the same values are
    `skipped`, rows created with other values `changed`, the rest `valid` (would be created).

    \b
    Example:
      certimport plan inventory.csv --config /etc/certimport.toml
    """
    console.setup_logging(verbose)
    console.summary_format = summary_format
    job = Execution(
        "plan",
        out=out,
        config=config,
        inputs=inputs,
        overrides={
            "timezone": timezone,
            "state_dir": state_dir,
            "update": True if update else None,
        },
        show_errors=show_errors,
    )
    execute(console, path, job)


@click.command("inspect")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@CONFIG_OPTION
@TIMEZONE_OPTION
@click.option("--rows", default=5, show_default=True, metavar="N", help="Records shown as sent.")
@with_inputs
def inspect_command(
    path: str, config: str | None, timezone: str | None, rows: int, inputs: dict[str, Any]
) -> None:
    """Show how PATH would be read: encoding, delimiter, profile, column mapping, row count,
    and the first records as the bodies that would be sent. Sends nothing, writes nothing.

    Exit 0 when the file can be imported as it is, 2 (with what is missing) when it cannot,
    or when no record of it would be sent.

    \b
    Examples:
      certimport inspect export.csv
      certimport inspect certutil-export.csv --config adcs.toml --monthfirst
    """
    from importer.config import load_settings
    from importer.run.inspect import inspect_file

    console = Console()
    arrow_memory_pool()

    def body(source: str) -> int:
        overrides = {**check_inputs(inputs), "timezone": timezone}
        settings = load_settings(config, overrides=overrides)
        inspection = inspect_file(source, settings, rows=rows)
        click.echo(console.rename("\n".join(inspection.lines())))
        return errors.EXIT_USAGE if inspection.error is not None else errors.EXIT_OK

    with readable(console, path) as (source, _):
        code = console.guard(lambda: body(source))
    sys.exit(code)


__all__ = ["inspect_command", "plan", "run", "validate"]
