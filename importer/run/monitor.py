"""Live counters of one run, bumped once per row and sampled once a second.

:class:`RunMonitor` holds the counts that the pipeline bumps (a dict increment, nothing more),
and samples them into the run's :class:`~importer.reports.timeline.Timeline`, the current rate
and the time left. The progress display (``importer.cli.progress``) and report.html read it.

The time left is the rows left over a *steady* rate: the rows Graph took over the last few
minutes (the long-run average), blended during the first minute with the pacer's rate, so the
pauses and bursts of a throttled run do not make it jump.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from importer.outcome import CHANGED, CREATED, EXCLUDED, REJECTED, SKIPPED, STATUSES, UPDATED
from importer.reports.timeline import Timeline

if TYPE_CHECKING:
    from importer.outcome import Outcome
    from importer.send.client import ClientStats
    from importer.send.pacing import Pacer

RATE_WINDOW = 10.0  # seconds over which the current rate is measured
AVERAGE_WINDOW = 300.0  # seconds over which the steady rate (for the time left) is measured
WARM_UP = 60.0  # seconds over which the pacer's rate gives way to the measured average
MIN_SPAN = 20.0  # no measured rate before this many seconds of sending (a Graph window)

# Why a row was never sent, by the status it got without a request (the report's words).
UNSENT_REASONS = {
    REJECTED: "rejected before sending (invalid, or a duplicate)",
    SKIPPED: "skipped (already in Graph)",
    CHANGED: "changed (in Graph with another body; not updated)",
    EXCLUDED: "excluded (not a certificate)",
}
NEVER_SENT = "never sent (the run stopped first)"


def flow_of(outcome: Outcome) -> str:
    """The timeline field a row's outcome counts in, for a row the send pool settled."""
    if outcome.status in (CREATED, UPDATED):
        return "in_graph"
    if outcome.http_status is not None:
        return "refused"
    if outcome.error_code == "NotSent":
        return "not_sent"
    return "no_answer"


class RunMonitor:
    """Live counters of one run, for the progress display, the timeline and the time left."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: float = RATE_WINDOW,
        average_window: float = AVERAGE_WINDOW,
    ) -> None:
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.flows: dict[str, int] = dict.fromkeys(("in_graph", "refused", "no_answer"), 0)
        self.total = 0  # records to process (known after the validation pass)
        self.scanned = 0  # records read by the validation pass so far
        self.phase = "starting"
        self.pacer: Pacer | None = None
        self.stats: ClientStats | None = None
        self.timeline = Timeline()
        self.rate = 0.0  # rows finished per second over the last ``window`` seconds
        self.steady_rate: float | None = None  # rows sent per second, for the time left
        self._clock = clock
        self._window = window
        self._average_window = average_window
        self._started = clock()
        self._history: deque[tuple[float, int]] = deque()  # (time, rows finished)
        self._sent_history: deque[tuple[float, int]] = deque()  # (time, rows sent)
        self._last: dict[str, int] = {}  # the cumulative counts at the previous sample
        self._last_time = self._started
        self._pause_until = 0.0  # when the last pause seen at a sample ends

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
        self._started = self._last_time = self._clock()
        self._pause_until = 0.0
        self._history.clear()
        self._history.append((self._started, self.done))
        self._sent_history.clear()
        self._sent_history.append((self._started, self.sent))

    def settled(self, status: str, count: int = 1) -> None:
        """``count`` rows reached ``status`` without a request (invalid, already in Graph...):
        the per-row hot path, two dict increments."""
        self.counts[status] += count
        self.timeline.unsent[UNSENT_REASONS.get(status, NEVER_SENT)] += count

    def finished(self, outcome: Outcome) -> None:
        """The send pool settled a row: answered by Graph, without an answer, or not sent
        because the run stopped first."""
        self.counts[outcome.status] += 1
        flow = flow_of(outcome)
        if flow == "not_sent":
            self.timeline.unsent[NEVER_SENT] += 1
        else:
            self.flows[flow] += 1

    @property
    def done(self) -> int:
        """Rows with an outcome so far."""
        return sum(self.counts.values())

    @property
    def sent(self) -> int:
        """Rows sent that have an outcome so far (answered by Graph, or not at all)."""
        return sum(self.flows.values())

    @property
    def elapsed(self) -> float:
        """Seconds since the sending phase began (or since the monitor was made)."""
        return self._clock() - self._started

    def eta(self) -> float | None:
        """Seconds left at the steady rate (:attr:`steady_rate`); None when unknown."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        rate = self.steady_rate
        return left / rate if rate else None

    def sample(self) -> None:
        """Fold what happened since the last sample into the timeline and the rates."""
        now = self._clock()
        start, offset = self._last_time - self._started, now - self._started
        current = self._cumulative()
        last = self._last
        changes = {k: v - last.get(k, 0) for k, v in current.items()}
        self.timeline.spread(start, offset, **changes, paused_ms=self._paused_ms(now))
        self._last, self._last_time = current, now
        self.rate = _windowed(self._history, now, self.done, self._window)
        average = _windowed(self._sent_history, now, self.sent, self._average_window)
        self.steady_rate = self._blend(average, offset)

    def _cumulative(self) -> dict[str, int]:
        stats = self.stats
        return {
            **self.flows,
            "not_sent": sum(self.timeline.unsent.values()),
            "throttled": stats.throttled if stats else 0,
            "requests": stats.requests if stats else 0,
        }

    def _paused_ms(self, now: float) -> int:
        """Milliseconds since the last sample that a shared throttle pause seen at a sample
        held every worker back (a pause is seen from the first sample it is running at)."""
        paused = max(0.0, min(now, self._pause_until) - self._last_time)
        remaining = self.pacer.remaining if self.pacer is not None else 0.0
        if remaining > 0:
            self._pause_until = now + remaining
        return round(1000 * paused)

    def _blend(self, average: float, offset: float) -> float | None:
        """The measured average, with the pacer's rate standing in during the warm-up."""
        pacer = self.pacer
        paced = pacer.rate if pacer is not None and pacer.limit.requests else None
        measured = average if offset >= MIN_SPAN and average > 0 else None
        if paced is None or measured is None:
            return measured if measured is not None else paced
        weight = min(1.0, offset / WARM_UP)
        return weight * measured + (1 - weight) * paced

    async def sample_every(self, seconds: float = 1.0) -> None:
        """Sample forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(seconds)
            self.sample()


def _windowed(history: deque[tuple[float, int]], now: float, value: int, window: float) -> float:
    """Per second over about the last ``window`` seconds of ``history`` (appends ``value``)."""
    history.append((now, value))
    while len(history) > 2 and now - history[1][0] >= window:
        history.popleft()
    first_time, first_value = history[0]
    span = now - first_time
    return (value - first_value) / span if span > 0 else 0.0


__all__ = ["AVERAGE_WINDOW", "NEVER_SENT", "RATE_WINDOW", "RunMonitor", "flow_of"]
