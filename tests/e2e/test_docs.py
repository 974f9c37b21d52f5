"""The documentation stays true: README's first lines, every setting and command documented."""

from __future__ import annotations

import click
import pytest
from helpers import ROOT, invoke

from importer.cli import cli
from importer.config import _KEYS, env_name, load_settings

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCUMENTED = README
EXAMPLE = ROOT / "importer" / "data" / "recipes" / "certimport.example.toml"


def test_readme_starts_with_the_two_make_commands():
    first = [line.split("#")[0].strip() for line in README.splitlines()[:2]]
    assert first == ["make demo", "make test"]


def test_example_config_loads_with_no_problem():
    load_settings(EXAMPLE, environ={})


@pytest.mark.parametrize("key", sorted(_KEYS))
def test_every_setting_is_documented(key):
    assert env_name(key) in DOCUMENTED, f"{env_name(key)} missing from README"
    if key != "access_token":  # a secret: never in a file
        assert env_name(key) in EXAMPLE.read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += _commands(command, path)
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_every_command_has_help_with_an_example_and_is_in_the_readme(path):
    result = invoke(*path, "--help", catch_exceptions=True)
    assert result.exit_code == 0
    assert "Example" in result.stdout + result.stderr
    assert f"certimport {' '.join(path)}" in README


def test_the_event_loop_variable_is_documented():
    from importer.aio import EVENT_LOOP_ENV, LOOPS

    line = next(line for line in README.splitlines() if EVENT_LOOP_ENV in line and "|" in line)
    assert all(f"`{choice}`" in line for choice in LOOPS)
