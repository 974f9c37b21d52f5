"""Retry policy: how long to wait before trying a request again, and when to give up."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: seconds (fractional too) or an HTTP date.

    Returns None when the header is missing or unreadable; never a negative number.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts, deadline and backoff of one request; ``sleep`` and ``clock`` swap in tests."""

    max_attempts: int = 8
    deadline: float = 600.0  # seconds from the first attempt of a request
    max_retry_after: float = 300.0  # a longer Retry-After ends the request's retries
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    sleep: Sleep = field(default=asyncio.sleep, repr=False)
    clock: Clock = field(default=time.monotonic, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for retry ``attempt`` (1 = first retry).

        Never zero: a missing or zero ``Retry-After`` must not turn into a tight retry loop.
        """
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        floor = min(self.backoff_base / 4, ceiling)
        return float(max(floor, self.rng.uniform(0, ceiling)))

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt``: the server's word, else backoff."""
        if retry_after is not None and retry_after > 0:
            return retry_after
        return self.backoff(attempt)
