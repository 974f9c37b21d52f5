"""The options the commands share, and the decorators that gather them into values.

Output options (-q, --log-format, --log-file, --metrics-file) become a
:class:`~importer.cli.console.Console` passed as ``console``; input options (--profile,
--encoding, --delimiter, --date-format, --dayfirst/--monthfirst) become a dict of settings
overrides passed as ``inputs``. Commands take them as arguments, not from click's context.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import click

from importer import errors
from importer.cli.console import Console
from importer.logs import LOG_FORMATS

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

INPUT_OPTIONS = [
    click.option(
        "--profile",
        metavar="NAME",
        help=(
            "auto, graph, adcs, powershell, pspki, pspkiaudit, or a profile .toml "
            "[auto: chosen from the header]."
        ),
    ),
    click.option(
        "--encoding",
        metavar="CODEC",
        help="auto, or a codec such as cp1252, utf-16 [auto: BOM, UTF-8, else detected].",
    ),
    click.option(
        "--delimiter",
        metavar="CHAR",
        help="',' ';' tab or '|' [detected from the header, or a sep= line].",
    ),
    click.option(
        "--date-format",
        metavar="FORMAT",
        help="strptime format of dates that are not ISO 8601, e.g. '%d.%m.%Y %H:%M'.",
    ),
    click.option(
        "--dayfirst/--monthfirst",
        default=None,
        help="Read dates that are not ISO 8601 day first (05.01.2025) or month first (1/5/2025).",
    ),
]
_INPUT_NAMES = ("profile", "encoding", "delimiter", "date_format", "dayfirst")

OUTPUT_OPTIONS = [
    click.option(
        "-q",
        "--quiet",
        is_flag=True,
        default=False,
        help="No progress display, messages or run summary on stderr: errors only.",
    ),
    click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        help="text, or json: one JSON object per line [text].",
    ),
    click.option(
        "--log-file",
        metavar="FILE",
        help="Append the log to FILE: INFO (retries, throttling, messages), DEBUG with -vv.",
    ),
    click.option(
        "--log-file-format",
        type=click.Choice(LOG_FORMATS),
        default=None,
        help="The --log-file's format, when not --log-format's (text console, JSON file).",
    ),
]
METRICS_OPTION = click.option(
    "--metrics-file",
    metavar="PATH",
    help="Write Prometheus metrics of the run to PATH at the end (node_exporter textfile).",
)
_OUTPUT_NAMES = ("quiet", "log_format", "log_file", "log_file_format", "metrics_file")

CONFIG_OPTION = click.option("--config", "config", metavar="FILE", help="TOML settings file.")
OUT_OPTION = click.option(
    "--out", "out", metavar="DIR", help="Report directory [out/<UTC timestamp>]."
)
TIMEZONE_OPTION = click.option(
    "--timezone", metavar="ZONE", help="Zone of dates given without offset [UTC]."
)
SHOW_ERRORS_OPTION = click.option(
    "--show-errors",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    metavar="N",
    help="Problems echoed to stderr (0 = all); every one is in results.csv.",
)
VERBOSE_OPTION = click.option(
    "-v", "--verbose", count=True, help="-v: retries and throttling; -vv: debug."
)
STATE_DIR_OPTION = click.option(
    "--state-dir", metavar="DIR", help="Journal directory [~/.local/state/certimport]."
)


def check_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The input flags given, as settings overrides; refuses flags that contradict each other."""
    given = {k: v for k, v in inputs.items() if v is not None}
    if given.get("date_format") and given.get("dayfirst") is not None:
        raise errors.UsageError(
            "--date-format cannot be combined with --dayfirst/--monthfirst: "
            "a date format already says where the day is"
        )
    return given


def _apply(options: Sequence[Decorator], func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        func = option(func)
    return func


def with_inputs(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the input options; the command gets them as ``inputs`` (settings overrides)."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        kwargs["inputs"] = {name: kwargs.pop(name) for name in _INPUT_NAMES}
        return func(*args, **kwargs)

    return _apply(INPUT_OPTIONS, command)


def with_console(*, metrics: bool = False) -> Decorator:
    """Add the output options (and --metrics-file); the command gets a ``console``."""
    options = [*OUTPUT_OPTIONS, METRICS_OPTION] if metrics else OUTPUT_OPTIONS

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in _OUTPUT_NAMES if name in kwargs}
            kwargs["console"] = Console(**values)
            return func(*args, **kwargs)

        return _apply(options, command)

    return decorate


def common(*, metrics: bool = False) -> Decorator:
    """The arguments and options of the commands that read an inventory."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = with_console(metrics=metrics)(with_inputs(func))
        return _apply(
            [
                click.argument("path", type=click.Path(dir_okay=False, allow_dash=True)),
                OUT_OPTION,
                CONFIG_OPTION,
                TIMEZONE_OPTION,
                SHOW_ERRORS_OPTION,
                VERBOSE_OPTION,
            ],
            func,
        )

    return decorate


__all__ = [
    "CONFIG_OPTION",
    "METRICS_OPTION",
    "STATE_DIR_OPTION",
    "check_inputs",
    "common",
    "with_console",
    "with_inputs",
]
