"""A run's timeline for report.html, and how durations are written for people.

:class:`Timeline` keeps rows finished, rows not done, 429s and requests per time bucket, merged
two by two when a long run would need too many buckets, so memory stays bounded.
"""

from __future__ import annotations

import math

MAX_BUCKETS = 720  # a multi-day run still fits: buckets widen (1 s, 2 s, 4 s, ...) instead


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


__all__ = ["MAX_BUCKETS", "Timeline", "format_duration"]
