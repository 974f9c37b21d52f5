"""One pause shared by every worker: when Graph says 429, nobody sends until it allows."""

from __future__ import annotations

import asyncio
import time

from importer.retry import Clock, Sleep


class Pacer:
    """A gate all workers pass before each request; ``pause`` closes it for a while."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0
        self.paused_seconds = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now (extends, never shortens)."""
        until = self._clock() + seconds
        if until > self._until:
            self._until = until

    @property
    def remaining(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        """Return when the gate is open."""
        while (delay := self._until - self._clock()) > 0:
            self.paused_seconds += delay
            await self._sleep(delay)
