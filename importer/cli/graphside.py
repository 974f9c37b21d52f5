"""The commands that compare the journal with Graph without a file: ``journal adopt`` and
``verify``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from importer import aio
from importer.cli.commands import emulator_option
from importer.cli.console import Console
from importer.cli.options import CONFIG_OPTION, OUT_OPTION, STATE_DIR_OPTION, with_console

if TYPE_CHECKING:
    from importer.config import Settings
    from importer.run.journal import Journal
    from importer.send.client import GraphClient


def _session(console: Console, config: str | None, state_dir: str | None, emulator: bool) -> Any:
    from importer.run.monitor import RunMonitor
    from importer.run.session import Session

    return Session(
        config=config,
        overrides={"state_dir": state_dir},
        say=console.say,
        monitor=RunMonitor(),
        use_emulator=emulator,
    )


@click.command("adopt")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.option("-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug.")
@with_console()
def journal_adopt(
    config: str | None, state_dir: str | None, verbose: int, console: Console
) -> None:
    """Read every object Graph holds into the journal, so that runs post only what is missing.

    A run does this by itself when its journal has never seen the target; run it by hand after
    objects were created by another host or tool, or to resume an adoption that was stopped.
    Keys Graph holds more than once are reported, never guessed between.

    \b
    Example:
      certimport journal adopt --config /etc/certimport.toml
    """
    from importer.run.adopt import adopt

    console.setup_logging(verbose)
    session = _session(console, config, state_dir, False)

    async def work(settings: Settings, journal: Journal, client: GraphClient) -> None:
        await adopt(client, journal, say=console.say, always_say=True)

    console.guard(lambda: aio.run(session.against_target(work)))


@click.command("verify")
@OUT_OPTION
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.option(
    "--delete-duplicates",
    is_flag=True,
    help="Delete extra copies of a key whose values are what certimport sent (its re-posts), "
    "keeping the journal's id. Nothing else is ever deleted.",
)
@click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Delete nothing when the plan holds more deletions than this.",
)
@click.option("-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug.")
@with_console()
@emulator_option("Verify against the built-in Graph emulator (an empty one: for trying).")
def verify(
    out: str | None,
    config: str | None,
    state_dir: str | None,
    delete_duplicates: bool,
    max_deletes: int,
    verbose: int,
    console: Console,
    use_emulator: bool,
) -> None:
    """Compare the journal with what Graph holds; exit 0 consistent, 1 differences.

    Reports objects the journal created that Graph no longer holds, keys Graph holds more than
    once (with every id), and objects whose values differ from what was last sent, in
    OUT/verify.csv and OUT/verify.json. Read-only unless --delete-duplicates is given; the
    deletion plan is printed first.

    \b
    Examples:
      certimport verify --config /etc/certimport.toml
      certimport verify --delete-duplicates --max-deletes 50
    """
    from importer.run.session import default_out_dir
    from importer.run.verify import Verification, VerifyOptions, describe

    console.setup_logging(verbose)
    out_dir = Path(out) if out else default_out_dir()
    options = VerifyOptions(out_dir, delete_duplicates, max_deletes)
    session = _session(console, config, state_dir, use_emulator)

    async def work(settings: Settings, journal: Journal, client: GraphClient) -> int:
        result = await Verification(client, journal, options, say=console.say).run()
        for line in describe(result, out_dir):
            console.say(line)
        return result.exit_code

    sys.exit(console.guard(lambda: aio.run(session.against_target(work))))


__all__ = ["journal_adopt", "verify"]
