"""The ``certimport`` command: arguments, messages and exit codes (and nothing else).

Exit codes: 0 every row created (validate: every row valid); 1 finished, some rows not created;
2 usage, configuration or input error, nothing posted; 3 run aborted (auth, permission);
130 interrupted.

Only click and a few small modules are imported here: the data stack (pandas, pyarrow,
pandera) and the network stack (aiohttp, azure-identity) are imported by the command that
needs them, so --version, --help and shell completion stay fast.
"""

from __future__ import annotations

import click

from importer import __version__
from importer.cli.commands import inspect_command, plan, run, validate
from importer.cli.graphside import journal_adopt, verify
from importer.cli.journal import journal
from importer.cli.recipes import recipes
from importer.cli.retry import retry
from importer.emulator.command import emulator_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="certimport")
def cli() -> None:
    """Import certificate inventories (CSV) into Intune through Microsoft Graph."""


for _command in (
    validate,
    run,
    plan,
    retry,
    verify,
    journal,
    emulator_command,
    inspect_command,
    recipes,
):
    cli.add_command(_command)
journal.add_command(journal_adopt)


def main() -> None:
    """Entry point of the ``certimport`` console script."""
    cli(prog_name="certimport")


__all__ = ["cli", "main"]
