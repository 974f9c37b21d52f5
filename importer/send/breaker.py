"""A circuit breaker for the target: a dead Graph ends the run, not weeks of row-by-row retries.

Every HTTP exchange reports to it. A failure of the target itself (no connection, no answer, a
5xx) adds to a run of failures; any other answer (2xx, 4xx, 429: the service is there and
deciding) ends the run. When the run reaches ``requests`` exchanges, or has lasted ``seconds``
with nothing but failures, the breaker trips: the client raises :class:`TargetUnreachable`,
which stops the run (exit 3) with the reports written and the unsent rows ``failed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from importer.errors import RunAborted
from importer.send.classify import Classified, Verdict

MIN_FAILURES_FOR_SPAN = 3  # a single failure followed by silence is no evidence of a dead target


class TargetUnreachable(RunAborted):
    """The target answered nothing but failures for the breaker's span."""


class CircuitBreaker:
    """Counts the target's consecutive failures; ``record`` raises when it trips."""

    def __init__(
        self,
        *,
        requests: int = 50,
        seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requests = requests
        self.seconds = seconds
        self._clock = clock
        self.failures = 0
        self._since: float | None = None  # monotonic time of the first failure of the run
        self._since_wall: datetime | None = None

    def __repr__(self) -> str:
        return f"CircuitBreaker(requests={self.requests}, seconds={self.seconds:g})"

    @staticmethod
    def is_target_failure(result: Classified) -> bool:
        """No connection, no answer, or a 5xx: the target itself is failing."""
        if result.status is None:
            return result.verdict in (Verdict.RETRY, Verdict.UNKNOWN)
        return result.status >= 500

    def record(self, result: Classified) -> None:
        """Count one exchange's result; raises :class:`TargetUnreachable` when tripped."""
        if not self.is_target_failure(result):
            self.failures = 0
            self._since = None
            return
        now = self._clock()
        if self._since is None:
            self._since = now
            self._since_wall = datetime.now(UTC)
        self.failures += 1
        span = now - self._since
        if self.failures >= self.requests or (
            self.failures >= MIN_FAILURES_FOR_SPAN and span >= self.seconds
        ):
            since = self._since_wall or datetime.now(UTC) - timedelta(seconds=span)
            raise TargetUnreachable(
                f"target unreachable since {since.isoformat(timespec='seconds')}: "
                f"{self.failures} requests in a row failed over {span:.0f} s "
                f"(last: {result.error_code or result.status}: {result.error_message})"
            )


__all__ = ["CircuitBreaker", "TargetUnreachable"]
