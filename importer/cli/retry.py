"""``certimport retry RUN_DIR``: send again what a run left failed or unknown, read as it was."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from importer import errors
from importer.cli.commands import (
    BATCH_OPTION,
    CONCURRENCY_OPTION,
    NO_ADOPT_OPTION,
    READ_RATE_OPTION,
    UPDATE_OPTION,
    emulator_option,
    sending_overrides,
)
from importer.cli.console import Console
from importer.cli.execute import Execution, execute
from importer.cli.options import SHOW_ERRORS_OPTION, with_console, with_inputs
from importer.outcome import RETRY_STATUSES


@dataclass(frozen=True)
class Replay:
    """What a retry takes over from the run it retries."""

    config: str | None
    defaults: dict[str, Any]  # settings the run used; flags given to retry win
    target: str


def replayed(console: Console, run_dir: Path, config: str | None, flags: dict[str, Any]) -> Replay:
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
        console.say(
            f"warning: {summary_path} does not say how the run read its input; "
            "reading failed.csv with the flags given here"
        )
        return Replay(config, {}, "")
    reading = Reading.from_dict(data["reading"], str(summary_path))
    flags = {k: v for k, v in flags.items() if v is not None}
    given_config = config is not None or bool(os.environ.get("CERTIMPORT_CONFIG"))
    for warning in reading.check_files(profile="profile" not in flags, config=not given_config):
        console.say(f"warning: {warning}")
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
    return Replay(
        config if given_config else (reading.config_file or None),
        defaults,
        "" if reading.emulator else reading.target,
    )


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out", metavar="DIR", help="Report directory [out/<UTC timestamp>].")
@click.option("--config", "config", metavar="FILE", help="TOML settings file [the run's].")
@click.option("--timezone", metavar="ZONE", help="Zone of dates given without offset [the run's].")
@SHOW_ERRORS_OPTION
@click.option("-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug.")
@with_inputs
@with_console(metrics=True)
@CONCURRENCY_OPTION
@click.option("--rate-limit", metavar="N/WINDOW", help="Write budget [100/20s].")
@READ_RATE_OPTION
@BATCH_OPTION
@UPDATE_OPTION
@NO_ADOPT_OPTION
@click.option("--state-dir", metavar="DIR", help="Journal directory [the run's].")
@emulator_option("Start the built-in Graph emulator and send into it (a rehearsal).")
def retry(
    run_dir: str,
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
    update: bool,
    no_adopt: bool,
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
    console.setup_logging(verbose)
    failed = Path(run_dir) / "failed.csv"
    if not failed.is_file():
        console.fail(f"{run_dir}: no failed.csv here; pass the report directory of a run")
    replay = console.guard(lambda: replayed(console, Path(run_dir), config, inputs))
    job = Execution(
        "run",
        out=out,
        config=replay.config,
        inputs=inputs,
        defaults=replay.defaults,
        overrides=sending_overrides(
            timezone=timezone,
            concurrency=concurrency,
            rate_limit=rate_limit,
            read_rate_limit=read_rate_limit,
            batch=batch,
            update=update,
            state_dir=state_dir,
            no_adopt=no_adopt,
        ),
        show_errors=show_errors,
        use_emulator=use_emulator,
        only_statuses=RETRY_STATUSES,
        command="retry",
        expect_target=replay.target,
    )
    execute(console, str(failed), job)


__all__ = ["Replay", "replayed", "retry"]
