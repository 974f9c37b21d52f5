"""``certimport journal show | export``: what the journal of the configured target knows."""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING

import click

from importer import errors
from importer.cli.console import Console
from importer.cli.options import CONFIG_OPTION, STATE_DIR_OPTION

if TYPE_CHECKING:
    from importer.run.journal import Journal

EXPORT_COLUMNS = (
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


@click.group()
def journal() -> None:
    """Inspect the journal: what has been sent to the configured target."""


def open_existing(config: str | None, state_dir: str | None) -> Journal:
    """The journal of the configured target, for reading; refused when there is none."""
    from importer.config import load_settings
    from importer.run.session import journal_for, tenant_of

    settings = load_settings(config, overrides={"state_dir": state_dir})
    handle = journal_for(settings, lock=False)
    if not handle.path.exists():
        raise errors.UsageError(
            f"no journal for {settings.graph_root} (tenant {tenant_of(settings) or 'default'}) "
            f"at {handle.path}: nothing has been run against this target yet"
        )
    return handle


@journal.command("show")
@CONFIG_OPTION
@STATE_DIR_OPTION
def journal_show(config: str | None, state_dir: str | None) -> None:
    """Print the journal's file, counts per status and the latest runs.

    \b
    Example:
      certimport journal show --config /etc/certimport.toml
    """

    def body() -> None:
        with open_existing(config, state_dir) as handle:
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

    Console().guard(body)


@journal.command("export")
@CONFIG_OPTION
@STATE_DIR_OPTION
def journal_export(config: str | None, state_dir: str | None) -> None:
    """Write every key the journal knows as CSV on stdout.

    \b
    Example:
      certimport journal export > journal.csv
    """
    from importer.reports.results import neutralise

    def body() -> None:
        with open_existing(config, state_dir) as handle:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
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

    Console().guard(body)


__all__ = ["journal", "open_existing"]
