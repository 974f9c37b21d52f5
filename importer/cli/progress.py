"""What an operator watching a run sees on a terminal.

:class:`ProgressDisplay` draws a :class:`~importer.run.monitor.RunMonitor` with rich, four
times a second from rich's refresh thread, reading only plain numbers; the CLI starts it only
when stderr is a terminal, so cron and pipes get nothing but the final summary.
"""

from __future__ import annotations

import math
import os
import sys
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from importer.outcome import (
    CHANGED,
    CREATED,
    EXCLUDED,
    FAILED,
    REJECTED,
    SKIPPED,
    UNKNOWN,
    UPDATED,
)
from importer.reports.timeline import about

if TYPE_CHECKING:
    from rich.console import RenderableType

    from importer.run.monitor import RunMonitor

REFRESH_PER_SECOND = 4
# Counts always shown on the display; the other statuses appear once they are not zero.
SHOWN_ALWAYS = (CREATED, SKIPPED, REJECTED, FAILED)
SHOWN_WHEN_SEEN = (UPDATED, CHANGED, EXCLUDED, UNKNOWN)


def _number(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def render_progress(monitor: RunMonitor) -> RenderableType:
    """The display's content for the monitor's current state (rich renderables)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    if monitor.phase == "validating":
        return Text(f"validating: {monitor.scanned:,} rows read", style="cyan")
    if monitor.phase != "sending":
        return Text(f"{monitor.phase}…", style="cyan")
    done, total = monitor.done, monitor.total
    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text("sending", style="bold cyan"),
        ProgressBar(total=max(total, 1), completed=done, width=40),
        Text(f"{done:,} / {total:,} rows  {done / max(total, 1):.1%}"),
    )
    counts = monitor.counts
    shown = [*SHOWN_ALWAYS, *(s for s in SHOWN_WHEN_SEEN if counts[s])]
    styles = {CREATED: "green", UPDATED: "green", REJECTED: "red", FAILED: "red"}
    line = Text("  ")
    for i, status in enumerate(shown):
        if i:
            line.append(" · ", style="dim")
        line.append(f"{status} {counts[status]:,}", style=styles.get(status, ""))
    pacer, stats = monitor.pacer, monitor.stats
    speed = f"  {_number(monitor.rate)} rows/s"
    if pacer is not None and pacer.limit.requests:
        limit = f"{pacer.limit} ({_number(pacer.ceiling)}/s)"
        speed += f" · pace {_number(pacer.rate)}/s, limit {limit}"
    elif pacer is not None:
        speed += " · no rate limit"
    if stats is not None:
        speed += f" · 429s {stats.throttled:,}"
    speed += f" · time left {about(monitor.eta())}"
    lines: list[RenderableType] = [head, line, Text(speed)]
    remaining = pacer.remaining if pacer is not None else 0.0
    if remaining > 0:
        lines.append(
            Text(f"  throttled, resuming in {math.ceil(remaining)} s", style="bold yellow")
        )
    return Group(*lines)


class ProgressDisplay:
    """A live display of a :class:`RunMonitor` on a terminal; a context manager.

    Other output (messages, log lines) written to ``sys.stderr`` meanwhile is printed above
    the display; stdout is left alone. The display is erased when it stops, so the summary
    that follows stands alone.
    """

    def __init__(self, monitor: RunMonitor, stream: IO[str] | None = None) -> None:
        self.monitor = monitor
        self.stream = stream
        self._live: Any = None

    def __rich__(self) -> RenderableType:
        return render_progress(self.monitor)

    def __enter__(self) -> ProgressDisplay:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream or sys.stderr)
        self._live = Live(
            self,
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def wants_progress(stream: IO[str], *, quiet: bool) -> bool:
    """True when ``stream`` is a terminal that can show a live display (and not ``-q``)."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return interactive and not quiet and os.environ.get("TERM", "") != "dumb"


__all__ = ["ProgressDisplay", "render_progress", "wants_progress"]
