"""What an operator watching a run sees, and the run's timeline for report.html.

:class:`RunMonitor` holds live counters that the runner bumps once per row (a dict increment,
nothing more) and samples them once a second into a :class:`Timeline` (rows finished and 429s
per time bucket, merged two by two when a long run would need too many buckets) and into the
current rate. :class:`ProgressDisplay` draws them on a terminal with rich, four times a second
from rich's refresh thread, reading only plain numbers; the CLI starts it only when stderr is a
terminal, so cron and pipes get nothing but the final summary.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from importer.outcome import (
    CHANGED,
    CREATED,
    DONE,
    FAILED,
    REJECTED,
    SKIPPED,
    STATUSES,
    UNKNOWN,
    UPDATED,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from importer.client import ClientStats
    from importer.pacing import Pacer

MAX_BUCKETS = 720  # a multi-day run still fits: buckets widen (1 s, 2 s, 4 s, ...) instead
RATE_WINDOW = 10.0  # seconds over which the current rate is measured
REFRESH_PER_SECOND = 4
# Counts always shown on the display; the other statuses appear once they are not zero.
SHOWN_ALWAYS = (CREATED, SKIPPED, REJECTED, FAILED)
SHOWN_WHEN_SEEN = (UPDATED, CHANGED, UNKNOWN)


class Timeline:
    """Per-bucket totals over a run: rows done, rows not done, 429s and requests.

    Bucket ``i`` covers ``[i * width, (i + 1) * width)`` seconds from the start. When an
    offset falls beyond ``max_buckets`` buckets, neighbours are merged two by two and the width
    doubles, so memory stays bounded however long the run lasts.
    """

    FIELDS = ("done", "not_done", "throttled", "requests")

    def __init__(self, *, width: float = 1.0, max_buckets: int = MAX_BUCKETS) -> None:
        if max_buckets < 2 or width <= 0:
            raise ValueError("a timeline needs a positive width and at least two buckets")
        self.width = width
        self.max_buckets = max_buckets
        self.buckets: list[list[int]] = []

    def add(
        self,
        offset: float,
        *,
        done: int = 0,
        not_done: int = 0,
        throttled: int = 0,
        requests: int = 0,
    ) -> None:
        """Add counts to the bucket that holds ``offset`` seconds from the start."""
        index = int(max(0.0, offset) // self.width)
        while index >= self.max_buckets:
            self._merge()
            index = int(max(0.0, offset) // self.width)
        if index >= len(self.buckets):
            self.buckets.extend([0, 0, 0, 0] for _ in range(index + 1 - len(self.buckets)))
        bucket = self.buckets[index]
        bucket[0] += done
        bucket[1] += not_done
        bucket[2] += throttled
        bucket[3] += requests

    def _merge(self) -> None:
        pairs = [self.buckets[i : i + 2] for i in range(0, len(self.buckets), 2)]
        self.buckets = [[sum(column) for column in zip(*pair, strict=True)] for pair in pairs]
        self.width *= 2

    def totals(self) -> dict[str, int]:
        """Sums over every bucket, by field."""
        return {
            name: sum(bucket[i] for bucket in self.buckets) for i, name in enumerate(self.FIELDS)
        }

    def __repr__(self) -> str:
        return f"Timeline(width={self.width:g}, buckets={len(self.buckets)})"


class RunMonitor:
    """Live counters of one run, for the progress display, the timeline and the rate."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, window: float = RATE_WINDOW
    ) -> None:
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.total = 0  # records to process (known after the validation pass)
        self.scanned = 0  # records read by the validation pass so far
        self.phase = "starting"
        self.pacer: Pacer | None = None
        self.stats: ClientStats | None = None
        self.timeline = Timeline()
        self.rate = 0.0  # rows finished per second over the last ``window`` seconds
        self._clock = clock
        self._window = window
        self._started = clock()
        self._history: deque[tuple[float, int]] = deque()
        self._last = (0, 0, 0, 0)  # done, not done, 429s, requests at the previous sample

    def __repr__(self) -> str:
        return f"RunMonitor(phase={self.phase!r}, done={self.done}, total={self.total})"

    def begin(self, total: int, *, pacer: Pacer | None, stats: ClientStats | None) -> None:
        """The sending phase starts: ``total`` records, paced by ``pacer``."""
        self.total = total
        self.pacer = pacer
        self.stats = stats
        self.phase = "sending"
        self._started = self._clock()
        self._history.clear()
        self._history.append((self._started, self.done))

    def settled(self, status: str, count: int = 1) -> None:
        """``count`` rows reached ``status`` (the per-row hot path: one dict increment)."""
        self.counts[status] += count

    @property
    def done(self) -> int:
        """Rows with an outcome so far."""
        return sum(self.counts.values())

    @property
    def elapsed(self) -> float:
        """Seconds since the sending phase began (or since the monitor was made)."""
        return self._clock() - self._started

    def eta(self) -> float | None:
        """Seconds left at the current rate; None when unknown."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None

    def sample(self) -> None:
        """Fold what happened since the last sample into the timeline and the rate."""
        now = self._clock()
        counts = self.counts
        done = sum(counts[s] for s in DONE)
        total = sum(counts.values())
        throttled = self.stats.throttled if self.stats else 0
        requests = self.stats.requests if self.stats else 0
        last = self._last
        self.timeline.add(
            now - self._started,
            done=done - last[0],
            not_done=(total - done) - last[1],
            throttled=throttled - last[2],
            requests=requests - last[3],
        )
        self._last = (done, total - done, throttled, requests)
        history = self._history
        history.append((now, total))
        while len(history) > 2 and now - history[1][0] >= self._window:
            history.popleft()
        first_time, first_done = history[0]
        span = now - first_time
        self.rate = (total - first_done) / span if span > 0 else 0.0

    async def sample_every(self, seconds: float = 1.0) -> None:
        """Sample forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(seconds)
            self.sample()


def format_duration(seconds: float | None) -> str:
    """``1h 02m``, ``12m 03s``, ``12 s``, ``0.4 s``; ``?`` when unknown."""
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return "?"
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs} s"


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
    speed += f" · time left {format_duration(monitor.eta())}"
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


__all__ = [
    "ProgressDisplay",
    "RunMonitor",
    "Timeline",
    "format_duration",
    "render_progress",
    "wants_progress",
]
