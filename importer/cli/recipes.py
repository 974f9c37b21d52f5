"""``certimport recipes``: the cron, systemd, alerting and settings recipes shipped in the
package, listed, printed or written out (an installed wheel has no checkout to copy them from)."""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from importer.cli.console import Console

PACKAGE = "importer"
FOLDER = ("data", "recipes")


def recipe_files() -> dict[str, Traversable]:
    """The shipped recipes by file name."""
    folder = resources.files(PACKAGE).joinpath(*FOLDER)
    return {f.name: f for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.is_file()}


def _summary(text: str) -> str:
    """A recipe's first comment line, as its description."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@click.command("recipes")
@click.argument("name", required=False)
@click.option(
    "--write",
    "directory",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write every recipe into DIR (created if missing; existing files are kept).",
)
def recipes(name: str | None, directory: str | None) -> None:
    """List the recipes shipped with certimport, print one (NAME), or write them all (--write).

    \b
    Examples:
      certimport recipes                                   # what there is
      certimport recipes certimport.cron > /etc/cron.d/certimport
      certimport recipes certimport.example.toml > config/certimport.toml
      certimport recipes --write /tmp/certimport-recipes
    """
    console = Console()
    files = recipe_files()
    if name is not None and directory is not None:
        console.fail("give a recipe NAME or --write DIR, not both")
    if directory is not None:
        _write_all(console, files, Path(directory))
        return
    if name is None:
        for file_name, file in files.items():
            click.echo(f"{file_name:<26} {_summary(file.read_text(encoding='utf-8'))}")
        return
    if name not in files:
        console.fail(f"no recipe {name!r}; there are: {', '.join(files)}")
    click.echo(files[name].read_text(encoding="utf-8"), nl=False)


def _write_all(console: Console, files: dict[str, Traversable], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, file in files.items():
        target = directory / file_name
        if target.exists():
            console.say(f"kept {target} (exists already)")
            continue
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "w", encoding="utf-8") as handle:
            handle.write(file.read_text(encoding="utf-8"))
        console.say(f"wrote {target}")


__all__ = ["recipe_files", "recipes"]
