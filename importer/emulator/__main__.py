"""``python -m importer.emulator``: the same command line as ``certimport emulator``."""

from __future__ import annotations

from .command import PROG, emulator_command

if __name__ == "__main__":
    emulator_command(prog_name=PROG)
