"""How a command talks to the operator: messages, the run summary, and errors as exit codes.

This is the one place where exceptions become a one-line message and an exit code; everything
below raises :mod:`importer.errors` (third-party errors are translated where they arise).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click
import orjson

from importer import errors
from importer.errors import CertImportError
from importer.logs import LogFormat, configure_logging, json_line

if TYPE_CHECKING:
    from importer.reports.summary import RunSummary

T = TypeVar("T")
log = logging.getLogger("importer.cli")


def explain(exc: BaseException) -> tuple[str, int]:
    """The operator's message and the exit code for an exception that ends a command."""
    if isinstance(exc, errors.NothingToRetry):
        return str(exc), exc.exit_code
    if isinstance(exc, CertImportError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", errors.EXIT_INTERRUPTED
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"error: {where}{exc.strerror or exc}", errors.EXIT_USAGE
    # A bug: one line for the operator, the traceback at -vv.
    logging.getLogger("importer").debug("internal error", exc_info=exc)
    return (
        f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
        errors.EXIT_INTERNAL,
    )


@dataclass
class Console:
    """The output options of one command (-q, --log-format, --log-file, --metrics-file), and
    the name its input goes by in messages (``<stdin>`` for ``-``).

    :meth:`say` reads only these fields, so the pipeline may call it from any thread.
    """

    quiet: bool = False
    log_format: LogFormat = "text"
    log_file: str | None = None
    log_file_format: LogFormat | None = None  # None: as log_format
    metrics_file: str | None = None
    summary_format: LogFormat = "text"  # validate/plan --format: their stdout summary
    rename: Callable[[str], str] = field(default=str, repr=False)

    def say(self, message: str) -> None:
        """Tell the operator (stderr; only errors with -q); the log file keeps it too.

        Written to ``sys.stderr`` as it is now (not through click.echo, which would go around
        it): the progress display redirects it so that messages print above the display.
        """
        message = self.rename(message)
        error = message.startswith(("error:", "internal error:"))
        warning = message.startswith("warning:")
        level = logging.ERROR if error else logging.WARNING if warning else logging.INFO
        if error or not self.quiet:
            if self.log_format == "json":  # stderr carries JSON lines only
                print(json_line(log, level, message, event="message"), file=sys.stderr, flush=True)
            else:
                print(message, file=sys.stderr, flush=True)
        log.log(level, message, extra={"event": "message", "echoed": True})

    def setup_logging(self, verbose: int) -> None:
        """Configure the ``importer`` loggers for this command."""
        try:
            configure_logging(
                verbose=verbose,
                quiet=self.quiet,
                log_format=self.log_format,
                log_file=self.log_file,
                file_format=self.log_file_format,
            )
        except OSError as exc:
            raise click.UsageError(f"--log-file {self.log_file}: {exc.strerror or exc}") from exc

    def guard(self, action: Callable[[], T]) -> T:
        """Run a command body, turning errors into a one-line message and an exit code."""
        try:
            return action()
        except (Exception, KeyboardInterrupt) as exc:
            message, code = explain(exc)
            self.say(message)
            sys.exit(code)

    def fail(self, message: str, code: int = errors.EXIT_USAGE) -> NoReturn:
        """Say ``error: message`` and end the command with ``code``."""
        self.say(f"error: {message}")
        sys.exit(code)

    def write_metrics(self, summary: RunSummary | None, exit_code: int) -> None:
        """Rewrite the --metrics-file, if one was asked for; a failure is only a warning."""
        if not self.metrics_file:
            return
        from importer.reports.metrics import write_metrics

        try:
            write_metrics(self.metrics_file, summary, exit_code=exit_code)
        except OSError as exc:
            self.say(
                f"warning: metrics file {self.metrics_file} not written: {exc.strerror or exc}"
            )

    def print_summary(self, summary: RunSummary) -> None:
        """The short table shown on exit, and one structured log record of the same facts.

        A run's table goes to stderr (what it produced is in Graph and in the reports), and not
        with -q; validate's and plan's go to stdout, since the table is what they were asked for.
        """
        from importer.reports.summary import next_steps

        steps = next_steps(summary)
        _log_summary(summary, steps)
        to_stderr = summary.mode in ("run", "dry-run")
        if not to_stderr and self.summary_format == "json":
            click.echo(orjson.dumps({**summary.as_dict(), "next": steps}).decode())
            return
        if to_stderr and self.quiet:
            return
        if to_stderr and self.log_format == "json":  # the summary is one JSON event
            message, fields = _summary_event(summary, steps)
            click.echo(json_line(log, logging.INFO, message, **fields), err=True)
            return
        click.echo(self.rename("\n".join(summary_lines(summary, steps))), err=to_stderr)


def _log_summary(summary: RunSummary, steps: list[str]) -> None:
    message, fields = _summary_event(summary, steps)
    log.info(message, extra={**fields, "echoed": True})


def _summary_event(summary: RunSummary, steps: list[str]) -> tuple[str, dict[str, object]]:
    """The run summary as one log event: (message, fields)."""
    counts = summary.counts
    done = ", ".join(f"{status} {n}" for status, n in counts.items() if n) or "no rows"
    return (
        f"{summary.mode} finished with exit {summary.exit_code}: {done}; "
        f"reports in {summary.out_dir}",
        {
            "event": "summary",
            "mode": summary.mode,
            "command": summary.command or summary.mode,
            "input": summary.input,
            "out_dir": summary.out_dir,
            "records": summary.records,
            "counts": {k: v for k, v in counts.items() if v},
            "not_sent": summary.not_sent,
            "reconciled": summary.reconciled,
            "top_errors": summary.top_errors,
            "requests": summary.requests,
            "throttled": summary.throttled,
            "retries": summary.retries,
            "pace": summary.pace,
            "duration_seconds": summary.duration_seconds,
            "rows_per_second": summary.rows_per_second,
            "exit_code": summary.exit_code,
            "stopped": summary.stopped,
            "report": str(Path(summary.out_dir) / "report.html"),
            "next": steps,
        },
    )


def summary_lines(summary: RunSummary, steps: list[str]) -> list[str]:
    """The run summary table, one line a fact."""
    from importer.reports.summary import pace_line, shown_counts
    from importer.reports.timeline import format_duration

    width = max(7, len(f"{summary.records:,}"))
    lines = [f"certimport {summary.command or summary.mode}: {summary.input}"]
    lines += [f"  {name:<10} {count:>{width},}" for name, count in shown_counts(summary)]
    lines.append(f"  {'records':<10} {summary.records:>{width},}")
    lines += _error_lines(summary)
    if summary.mode == "run":
        lines.append(
            f"  requests   {summary.requests:,} · 429s {summary.throttled:,} · "
            f"retries {summary.retries:,}"
        )
        if summary.pace:
            lines.append(f"  pace       {pace_line(summary.pace)}")
    lines.append(
        f"  duration   {format_duration(summary.duration_seconds)} · "
        f"{summary.rows_per_second:,} rows/s"
    )
    if summary.reconciled:
        lines.append(f"  reconciled {summary.reconciled} (found in Graph after a lost answer)")
    if summary.journal:
        lines.append(f"  journal    {summary.journal}")
    if summary.stopped:
        lines.append(f"  stopped    {summary.stopped}")
    report = Path(summary.out_dir) / "report.html"
    lines.append(f"  report     {report} (with results.csv, failed.csv, summary.json)")
    lines += [f"  {'next' if i == 0 else '':<10} {step}" for i, step in enumerate(steps)]
    return lines


def _error_lines(summary: RunSummary, limit: int = 5) -> list[str]:
    """The most frequent problems, by column and reason: ``6 × column: reason (lines ...)``."""
    out = []
    for i, group in enumerate(summary.top_errors[:limit]):
        lines = ", ".join(str(example[0]) for example in group["examples"])
        more = ", ..." if group["rows"] > len(group["examples"]) else ""
        code = group["code"] if len(group["code"]) <= 90 else group["code"][:87] + "..."
        head = "errors" if i == 0 else ""
        out.append(f"  {head:<10} {group['rows']:,} × {code} (line {lines}{more})")
    rest = len(summary.top_errors) - limit
    if rest > 0:
        out.append(f"  {'':<10} and {rest} more kind(s): see report.html")
    return out


__all__ = ["Console", "explain", "summary_lines"]
