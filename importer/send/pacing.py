"""One throttle budget shared by every worker: a pace that finds the share of the limit this run
is actually given, and a shared pause.

Intune counts writes in a sliding window: 100 per 20 s per app, but 200 per 20 s per tenant
for all apps together, so on a busy tenant this run's share is less than configured and moves
as other apps start and stop. Graph answers 429 with ``Retry-After`` beyond the share, and keeps
counting requests made while throttled. The pacer therefore:

* spaces requests evenly (no bursts), 1% under the pace (``HEADROOM``): arrival jitter at a
  sliding-window counter would otherwise put an exact-rate sender over the limit now and then;
* pauses every worker until the time a ``Retry-After`` gives (Graph's rule: a request sent
  before then only prolongs the throttle); an event without one (Intune's backend often sends
  none) pauses everyone for 5% of the window, at most 1 s, doubled for each such event in a
  row with nothing let through between (a full window empties only as its oldest requests
  leave it), at most the window (unpaced, ``--rate-limit 0``: no such pause);
* treats the 429s that come back together as one *congestion event*: a 429 for a request sent
  before the last event is an echo of that event (the requests in flight when the window
  filled), not news, so one full window cuts the pace once, not once per worker;
* sets the pace on an event from the goodput it measured: the requests that went through in
  the last configured window. At a sliding-window limit that count *is* the share (the window
  was full when it said no), so the new pace is the share, not a fixed fraction of the
  configured rate. The pace is never raised by an event, nor set above the configured rate or
  under ``floor`` of it, nor cut by more than half at once (a 429 just after the start or a
  pause has little in the window to measure: a stray one must not send the pace to the
  floor; a share far below takes a few events to reach). When nothing went through in the
  window (no measurement), it falls back to a multiplicative cut;
* climbs back after the pause along a cubic curve, ``pace = share * (1 + probe * n**3)``, ``n``
  counting probe periods (the configured window, at least ``MIN_PERIOD``) since the pause
  ended: flat near the share it just measured (+0.05% after one period, +0.4% after two), so a
  steady share is probed about once every three periods and few requests are answered 429.
  Once 5% above the share with no 429 (after 4.6 periods), the measurement is evidently stale
  (other apps have stopped): the pace then grows by a quarter a period, so a share that has
  doubled back is reached in about 7.5 periods.

This learns from the AWS SDKs' ``adaptive`` retry mode (botocore ``retries/adaptive.py``,
``throttling.py``: a measured send rate, a CUBIC climb). Two things Graph gives that it does not
use make the difference: the window in which Intune counts (so the measurement is the share
itself, not the send rate smoothed over half a second, and is taken over the right span), and
``Retry-After`` (everyone pauses exactly as long as needed, and the 429s of one full window are
one event instead of a cut per answer).

Limits: the measurement assumes the real limit is counted over the configured window (Intune:
20 s). Counted over a shorter one (a token bucket, say), an event soon after the start reads
too little in the window; the cut is then at most a half, and the climb finds the rest. The
climb runs on the clock, idle or not: after a long idle spell the pace is back at the
configured rate, and the next 429 measures the share again.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from importer.send.retry import Clock, Sleep

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HEADROOM = 0.99
MIN_PERIOD = 2.0  # seconds: the shortest probe period (a 1-second window would probe too often)
PROBE = 0.0005  # the cubic climb's coefficient, per probe period cubed
STALE = 0.05  # this far above the measured share with no 429, the climb turns exponential
GROWTH = 1.25  # the exponential climb, per probe period
MAX_CUT = 0.5  # the most one congestion event cuts the pace by
DECREASE = 0.7  # the cut when a 429 comes with no measured goodput to set the pace from
# Intune's backend often answers 429 with no Retry-After: a congestion event without one
# pauses everybody for this share of the limit's window (at most a second, the base of the
# client's own backoff), once per event, so that the requests in flight do not keep meeting
# a full window. 1 s for Intune's 20 s window; a probe every three windows costs under 2%.
# Silent events in a row, with nothing let through between them, double it (up to the
# window), as a full window empties only as its oldest requests leave it.
SILENT_PAUSE = 1.0
SILENT_SHARE = 0.05


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
    """Paces requests at the share of the limit it measures, and holds everybody back after a
    429 (see the module's docstring for the reasoning).

    Invariants: ``floor * ceiling <= rate <= ceiling``; ``_done_sum`` is the number of requests
    in ``_done``, which holds the successes of the last ``limit.window`` seconds.
    """

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        floor: float = 0.1,
        decrease: float = DECREASE,
        probe: float = PROBE,
        max_pause: float = 300.0,
    ) -> None:
        self.limit = limit or RateLimit(0, 1.0)
        self.max_pause = max_pause  # a longer Retry-After ends that row's retries instead
        self.ceiling = self.limit.per_second * HEADROOM
        self._floor = self.ceiling * floor
        self._decrease = decrease
        self._probe = probe
        self._stale_after = (STALE / probe) ** (1 / 3)  # periods until the cubic is STALE above
        self._window = self.limit.window
        self._period = max(self.limit.window, MIN_PERIOD)
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0  # no request before this (a 429's Retry-After)
        self._next = 0.0  # earliest start of the next paced request
        self._epoch = 0  # bumped when booked slots are void (a pause, a new pace)
        self._base = self.ceiling  # the pace the climb starts from
        self._climb_from: float | None = None  # when the climb from _base began (None: none)
        self._event_at = -math.inf  # when the last congestion event happened
        self._silent_streak = 0  # events without Retry-After since a request went through
        self._done: deque[tuple[float, int]] = deque()  # (time, requests) that went through
        self._done_sum = 0
        self.estimate: float | None = None  # requests/s the last event measured (the share)
        self.paused_seconds = 0.0  # wall-clock time every worker was held back
        self.throttle_events = 0  # congestion events (429s that came back together count once)
        self.throttled_answers = 0  # 429 answers, every one

    def __repr__(self) -> str:
        return f"Pacer({self.limit}, rate={self.rate:.3g}/s, events={self.throttle_events})"

    @property
    def rate(self) -> float:
        """The pace now, in requests per second (infinite when unlimited)."""
        if self._climb_from is None:
            return self._base
        periods = max(0.0, self._clock() - self._climb_from) / self._period
        beyond = periods - self._stale_after
        if beyond <= 0:
            return min(self.ceiling, self._base * (1.0 + self._probe * periods**3))
        growth: float = GROWTH ** min(beyond, 100.0)
        return min(self.ceiling, self._base * (1.0 + STALE) * growth)

    def findings(self, elapsed: float) -> dict[str, Any]:
        """What the pacer found over ``elapsed`` seconds of sending, for the run's summary:
        the configured limit, the pace it settled on (now), the share the last congestion
        event measured, the congestion events, and the time every worker was paused."""
        limited = bool(self.limit.requests)
        return {
            "limit": str(self.limit),
            "configured_per_second": round(self.limit.per_second, 3) if limited else None,
            "settled_per_second": round(self.rate, 3) if limited else None,
            "measured_share_per_second": None if self.estimate is None else round(self.estimate, 3),
            "throttle_events": self.throttle_events,
            "paused_seconds": round(self.paused_seconds, 3),
            "paused_share": round(min(1.0, self.paused_seconds / elapsed), 4)
            if elapsed > 0
            else 0.0,
        }

    @property
    def silent_pause(self) -> float:
        """The pause of a first congestion event that came without Retry-After."""
        return min(SILENT_PAUSE, SILENT_SHARE * self._silent_window)

    @property
    def _silent_window(self) -> float:
        return self.limit.window

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` from now (extends, never shortens). A wait
        longer than ``max_pause`` is not taken at all: the row that was told so gives up, and
        the others go on (pausing every worker for it would stall the run as surely)."""
        if seconds > self.max_pause:
            return
        now = self._clock()
        until = now + seconds
        if until > self._until:
            self.paused_seconds += until - max(now, self._until)
            self._until = until
            self._epoch += 1

    def throttled(self, retry_after: float | None, sent_at: float | None = None) -> None:
        """Graph said 429 to a request sent at ``sent_at`` (as :meth:`wait` returned; now when
        not given): pause everyone for ``retry_after`` and, unless the request was sent before
        the last congestion event (an echo of it), set the pace from the measured share."""
        self.throttled_answers += 1
        if retry_after:
            self.pause(retry_after)
        now = self._clock()
        if (now if sent_at is None else sent_at) <= self._event_at:
            return
        self._event_at = now
        self.throttle_events += 1
        if not retry_after and self.limit.requests:  # unlimited: no window to size it by
            self._silent_streak += 1
            doubled = self.silent_pause * 2 ** min(self._silent_streak - 1, 10)
            self.pause(min(self._silent_window, doubled))
        if not self.limit.requests:
            return
        current = self.rate
        self._forget(now)
        if self._done_sum:
            self.estimate = self._done_sum / self._window
            # At most halved by one event: a 429 soon after a start or a pause has little
            # in the window to measure (a stray one would otherwise send the pace to the floor)
            pace = max(current * MAX_CUT, min(current, self.estimate * HEADROOM))
        else:
            pace = current * self._decrease
        self._base = max(self._floor, min(self.ceiling, pace))
        self._climb_from = max(now, self._until)
        self._next = self._climb_from
        self._epoch += 1  # slots booked at the old pace are given up and booked again

    def succeeded(self, count: int = 1) -> None:
        """``count`` requests went through unthrottled: they count in the measured goodput."""
        if count > 0:
            self._silent_streak = 0
        if self.limit.requests and count > 0:
            now = self._clock()
            self._done.append((now, count))
            self._done_sum += count
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop the successes older than one window."""
        horizon = now - self._window
        done = self._done
        while done and done[0][0] <= horizon:
            self._done_sum -= done.popleft()[1]

    @property
    def remaining(self) -> float:
        """Seconds until the shared pause ends (0 when not paused)."""
        return max(0.0, self._until - self._clock())

    async def wait(self, count: int = 1) -> float:
        """Return when ``count`` requests may be sent (after any pause, at the pace); returns
        the time they are sent, to be given back to :meth:`throttled` if Graph says 429."""
        while True:
            now = self._clock()
            if self._until > now:
                await self._sleep(self._until - now)
                continue
            if not self.limit.requests:
                return now
            # Slots are spaced from now, never from the past: an idle spell banks no burst.
            epoch = self._epoch
            start = max(now, self._next)
            self._next = start + count / self.rate
            if start > now:
                await self._sleep(start - now)
            if epoch == self._epoch and self._until <= self._clock():
                return start
            # a 429 paused everybody or set a new pace while this slot was waited for: book again


__all__ = ["HEADROOM", "Pacer", "RateLimit"]
