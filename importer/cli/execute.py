"""Running one command over one file: the options it was given, the session, the summary.

``-`` reads standard input, spooled to a private file first (a run reads its file twice).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from importer.cli.console import Console
from importer.cli.options import check_inputs
from importer.cli.stdin import LABEL, STDIN, SpooledStdin, refuse_special

if TYPE_CHECKING:
    from importer.reports.summary import Mode, RunSummary


@dataclass(frozen=True)
class Execution:
    """What one command asks for, besides the file: flags, settings and how to send."""

    mode: Mode
    out: str | None = None
    config: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # --profile, --encoding, ...
    overrides: dict[str, Any] = field(default_factory=dict)  # the command's own flags
    defaults: dict[str, Any] = field(default_factory=dict)  # retry: what the run used
    strict: bool = False
    show_errors: int = 100
    use_emulator: bool = False
    allow_shrink: bool = False
    only_statuses: tuple[str, ...] = ()
    command: str = ""
    expect_target: str = ""

    def settings_overrides(self) -> dict[str, Any]:
        """Settings overrides: ``defaults``, then the input flags, then the command's flags."""
        given = {k: v for k, v in self.overrides.items() if v is not None}
        return {**self.defaults, **check_inputs(self.inputs), **given}


def arrow_memory_pool() -> None:
    """Give Arrow the system allocator, before a command reads a file."""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # Arrow's own allocator keeps freed chunk buffers: the system one returns them
        # (measured: a 100k-row rerun peaked at 442 MB with it, 356 MB without, same speed).
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


@contextlib.contextmanager
def readable(console: Console, path: str) -> Any:
    """``path``, or for ``-`` a private copy of standard input, named ``<stdin>`` meanwhile."""
    if path != STDIN:
        console.guard(lambda: refuse_special(path))
        yield path, ""
        return
    spool = console.guard(SpooledStdin().__enter__)
    console.rename = spool.rename
    try:
        yield spool.path, LABEL
    finally:
        spool.__exit__(None, None, None)
        console.rename = str


def execute(console: Console, path: str, job: Execution) -> None:
    """Run ``job`` over ``path``, print its summary, write the metrics, exit with its code."""
    with readable(console, path) as (source, label):
        code = _execute(console, source, label, job)
    sys.exit(code)


def _execute(console: Console, path: str, label: str, job: Execution) -> int:
    from importer import aio
    from importer.cli.progress import ProgressDisplay, wants_progress
    from importer.config import config_file
    from importer.logs import new_run_id, set_run_id
    from importer.reports.metrics import check_metrics_path
    from importer.run.monitor import RunMonitor
    from importer.run.pipeline import RunRequest
    from importer.run.session import Session

    arrow_memory_pool()
    run_id = new_run_id()
    set_run_id(run_id)  # every log record, the journal, summary.json and the metrics share it
    overrides = console.guard(job.settings_overrides)
    if console.metrics_file and (problem := check_metrics_path(console.metrics_file)):
        console.fail(problem)
    monitor = RunMonitor()
    progress = (
        job.mode == "run"
        and console.log_format == "text"  # JSON mode: stderr carries JSON lines only
        and wants_progress(sys.stderr, quiet=console.quiet)
    )
    request = RunRequest(
        path=path,
        out_dir=Path(job.out) if job.out else None,
        mode=job.mode,
        strict=job.strict,
        show_errors=job.show_errors,
        allow_shrink=job.allow_shrink,
        only_statuses=job.only_statuses,
        command=job.command,
        config=config_file(job.config),
        emulator=job.use_emulator,
        expect_target=job.expect_target,
        label=label,
        run_id=run_id,
    )
    session = Session(
        config=job.config,
        overrides=overrides,
        say=console.say,
        monitor=monitor,
        use_emulator=job.use_emulator,
    )

    def body() -> RunSummary:
        display = ProgressDisplay(monitor) if progress else contextlib.nullcontext()
        with display:
            return aio.run(session.run(request))

    try:
        summary = console.guard(body)
    except SystemExit as stop:  # ended without a summary (exit 2, 3, 70): metrics say so too
        console.write_metrics(None, stop.code if isinstance(stop.code, int) else 2)
        raise
    console.print_summary(summary)
    console.write_metrics(summary, summary.exit_code)
    return summary.exit_code


__all__ = ["Execution", "arrow_memory_pool", "execute", "readable"]
