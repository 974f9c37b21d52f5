"""A run's timeline for report.html, and how durations are written for people.

:class:`Timeline` keeps, per time bucket, the rows Graph answered (in Graph, or refused), the
rows that ended without an answer, the rows that were never sent, the 429 answers, the requests
and the seconds the run was paused by throttling; buckets are merged two by two when a long
run would need too many, so memory stays bounded. Why rows were never sent (interrupted,
rejected by validation, already in Graph...) is counted for the whole run in ``unsent``.
"""

from __future__ import annotations

import math
from collections import Counter

MAX_BUCKETS = 720  # a multi-day run still fits: buckets widen (1 s, 2 s, 4 s, ...) instead


class Timeline:
    """Per-bucket totals over a run.

    Bucket ``i`` covers ``[i * width, (i + 1) * width)`` seconds from the start and holds one
    number per name in :attr:`FIELDS`:

    - ``in_graph``: rows Graph answered with success (created or updated);
    - ``refused``: rows Graph answered with an error (a 4xx, or 5xx/429 until retries ran out);
    - ``no_answer``: rows sent that ended without an answer (in doubt, or the run aborted);
    - ``not_sent``: rows that never needed or never got a request (the reasons are counted in
      :attr:`unsent`): not throughput, so the chart does not draw them as such;
    - ``throttled``: 429 answers; ``requests``: HTTP requests;
    - ``paused_ms``: milliseconds the shared throttle pause held every worker back.

    When an offset falls beyond ``max_buckets`` buckets, neighbours are merged two by two and
    the width doubles, so memory stays bounded however long the run lasts.
    """

    FIELDS = ("in_graph", "refused", "no_answer", "not_sent", "throttled", "requests", "paused_ms")

    def __init__(self, *, width: float = 1.0, max_buckets: int = MAX_BUCKETS) -> None:
        if max_buckets < 2 or width <= 0:
            raise ValueError("a timeline needs a positive width and at least two buckets")
        self.width = width
        self.max_buckets = max_buckets
        self.buckets: list[list[int]] = []
        self.unsent: Counter[str] = Counter()  # why rows were never sent: reason -> rows
        self.end = 0.0  # seconds from the start that the timeline covers

    def add(self, offset: float, **counts: int) -> None:
        """Add counts (keywords from :attr:`FIELDS`) to the bucket that holds ``offset``
        seconds from the start."""
        unknown = set(counts) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"not timeline fields: {', '.join(sorted(unknown))}")
        self.end = max(self.end, offset)
        index = int(max(0.0, offset) // self.width)
        while index >= self.max_buckets:
            self._merge()
            index = int(max(0.0, offset) // self.width)
        if index >= len(self.buckets):
            size = len(self.FIELDS)
            self.buckets.extend([0] * size for _ in range(index + 1 - len(self.buckets)))
        bucket = self.buckets[index]
        for i, name in enumerate(self.FIELDS):
            bucket[i] += counts.get(name, 0)

    def spread(self, start: float, end: float, **counts: int) -> None:
        """Add counts (keywords from :attr:`FIELDS`) that happened between ``start`` and
        ``end`` seconds, shared between the buckets that interval covers in proportion to
        the time it spends in each (whole numbers; every count is kept).

        A sampler that wakes a little late now and then would otherwise put two seconds'
        rows into one bucket and none into the one before: a false spike and a false pause.
        """
        start, end = max(0.0, start), max(0.0, end)
        point = max(start, end - 1e-9)  # an interval that ends on a boundary ends before it
        self.add(point)  # merges first, when the run outgrew the buckets
        self.end = max(self.end, end)
        span = end - start
        first, last = int(start // self.width), int(point // self.width)
        if span <= 0 or first == last:
            self.add(point, **counts)
            return
        given = dict.fromkeys(counts, 0)
        for index in range(first, last + 1):
            reach = min(end, (index + 1) * self.width)
            share = (reach - start) / span
            part: dict[str, int] = {}
            for name, count in counts.items():
                upto = count if index == last else round(count * share)
                part[name], given[name] = upto - given[name], upto
            self.add(index * self.width, **part)

    def _merge(self) -> None:
        self.buckets = merged(self.buckets, 2)
        self.width *= 2

    def column(self, name: str) -> list[int]:
        """One field's value in every bucket, in time order."""
        i = self.FIELDS.index(name)
        return [bucket[i] for bucket in self.buckets]

    def totals(self) -> dict[str, int]:
        """Sums over every bucket, by field."""
        return {
            name: sum(bucket[i] for bucket in self.buckets) for i, name in enumerate(self.FIELDS)
        }

    def __repr__(self) -> str:
        return f"Timeline(width={self.width:g}, buckets={len(self.buckets)})"


def merged(buckets: list[list[int]], factor: int) -> list[list[int]]:
    """``buckets`` summed ``factor`` by ``factor`` (the last group may be short)."""
    groups = [buckets[i : i + factor] for i in range(0, len(buckets), factor)]
    return [[sum(column) for column in zip(*group, strict=True)] for group in groups]


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


def about(seconds: float | None) -> str:
    """A time left as people say it: ``about 40 s``, ``about 14 min``, ``about 2.5 h``;
    ``?`` when unknown.

    Rounded so that an estimate that wobbles by a few percent does not flicker: seconds to 5 s
    (10 s from 30 s), minutes to whole minutes, hours to half hours (whole hours from 10 h).
    """
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return "?"
    if seconds < 57.5:
        step = 5 if seconds < 30 else 10
        return f"about {max(step, round(seconds / step) * step)} s"
    minutes = seconds / 60
    if minutes < 89.5:
        return f"about {max(1, round(minutes))} min"
    hours = seconds / 3600
    if hours < 9.75:
        return f"about {round(hours * 2) / 2:g} h"
    return f"about {round(hours):,} h"


__all__ = ["MAX_BUCKETS", "Timeline", "about", "format_duration", "merged"]
