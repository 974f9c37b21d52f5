"""Live counters of one run, bumped once per row and sampled once a second.

:class:`RunMonitor` holds the counts that the pipeline bumps (a dict increment, nothing more),
and samples them into the run's :class:`~importer.reports.timeline.Timeline` and the current
rate. The progress display (``importer.cli.progress``) and report.html read it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from importer.outcome import DONE, STATUSES
from importer.reports.timeline import Timeline

if TYPE_CHECKING:
    from importer.send.client import ClientStats
    from importer.send.pacing import Pacer

RATE_WINDOW = 10.0  # seconds over which the current rate is measured


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

    def attach(self, *, pacer: Pacer | None, stats: ClientStats | None) -> None:
        """Watch the write pacer and the client's traffic counters (the session's own)."""
        self.pacer = pacer
        self.stats = stats

    def begin(
        self, total: int, *, pacer: Pacer | None = None, stats: ClientStats | None = None
    ) -> None:
        """The sending phase starts: ``total`` records (``pacer`` and ``stats``, if given,
        as :meth:`attach`)."""
        self.total = total
        if pacer is not None or stats is not None:
            self.attach(pacer=pacer, stats=stats)
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


__all__ = ["RATE_WINDOW", "RunMonitor"]
