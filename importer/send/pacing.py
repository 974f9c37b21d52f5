"""One throttle budget shared by every worker: a paced rate that adapts, and a shared pause.

Intune counts writes per app and tenant in a sliding window (100 per 20 s); Graph answers 429
with ``Retry-After`` beyond that and keeps counting requests made while throttled. So requests
are spaced evenly at the configured rate (no bursts), a 429 pauses everybody until the time
Graph gave, and the rate adapts: multiplied down after throttling (another app may share the
tenant's quota), then raised back by small steps (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from importer.send.retry import Clock, Sleep

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HEADROOM = 0.99


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``window`` seconds, written like ``100/20s``; 0 requests = unlimited."""

    requests: int
    window: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``100/20s``, ``5/s``, ``300/1m``, ``0`` (unlimited); raises ValueError."""
        if text.strip() in ("0", "none", "off"):
            return cls(0, 1.0)
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"rate limit must look like 100/20s, got {text!r}")
        count, amount, unit = match.groups()
        window = float(amount or 1) * _UNITS[unit or "s"]
        if window <= 0:
            raise ValueError(f"rate limit window must be positive, got {text!r}")
        return cls(int(count), window)

    @property
    def per_second(self) -> float:
        """The rate in requests per second (infinite when unlimited)."""
        return self.requests / self.window if self.requests else float("inf")

    def __str__(self) -> str:
        return f"{self.requests}/{self.window:g}s" if self.requests else "unlimited"


class Pacer:
    """Paces requests at an adaptive rate and holds everybody back after a 429."""

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        floor: float = 0.1,
        decrease: float = 0.7,
        max_pause: float = 300.0,
    ) -> None:
        self.limit = limit or RateLimit(0, 1.0)
        self.max_pause = max_pause  # a longer Retry-After ends that row's retries instead
        # Aim 1% under the budget: arrival jitter at a sliding-window counter would otherwise
        # turn an exact-rate sender into one that is over the limit now and then.
        self.ceiling = self.limit.per_second * HEADROOM
        self.rate = self.ceiling
        self._floor = self.ceiling * floor
        self._decrease = decrease
        # Raise the rate back to the ceiling over about one window's worth of requests.
        self._step = self.ceiling / self.limit.requests if self.limit.requests else 0.0
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0  # no request before this (a 429's Retry-After)
        self._next = 0.0  # earliest start of the next paced request
        self.paused_seconds = 0.0
        self.throttle_events = 0

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now (extends, never shortens). A wait
        longer than ``max_pause`` is not taken at all: the row that was told so gives up, and
        the others go on (pausing every worker for it would stall the run as surely)."""
        if seconds > self.max_pause:
            return
        until = self._clock() + seconds
        if until > self._until:
            self._until = until

    def throttled(self, retry_after: float | None) -> None:
        """Graph said 429: pause everyone for ``retry_after`` and lower the rate."""
        self.throttle_events += 1
        if retry_after:
            self.pause(retry_after)
        if self.limit.requests:
            self.rate = max(self._floor, self.rate * self._decrease)

    def succeeded(self, count: int = 1) -> None:
        """Requests went through unthrottled: creep back towards the configured rate."""
        if self.limit.requests and self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate + self._step * count)

    @property
    def remaining(self) -> float:
        """Seconds until the shared pause ends (0 when not paused)."""
        return max(0.0, self._until - self._clock())

    async def wait(self, count: int = 1) -> None:
        """Return when ``count`` requests may be sent (after any pause, at the paced rate)."""
        while True:
            now = self._clock()
            if self._until > now:
                self.paused_seconds += self._until - now
                await self._sleep(self._until - now)
                continue
            if not self.limit.requests:
                return
            # Slots are spaced from now, never from the past: an idle spell banks no burst.
            start = max(now, self._next)
            self._next = start + count / self.rate
            if start > now:
                await self._sleep(start - now)
            if self._until <= self._clock():
                return
            # a 429 paused everybody while this slot was waited for: wait for a new one
