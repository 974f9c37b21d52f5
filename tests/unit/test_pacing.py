"""The pacer against simulated throttles, in virtual time: a steady share, a share that halves,
one that doubles back, and other apps sending in bursts.

The simulation: ``workers`` rows in flight, each taking a slot from the pacer, reaching a
sliding-window limit (Intune's shape: requests answered 429 still count) after ``latency``,
and on a 429 telling the pacer (with the time the request was sent) and waiting its
Retry-After before going again, as the client does. Other apps' requests are stamps in the
same window. Time only moves when every task waits, so a run of minutes takes milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from importer.send.pacing import HEADROOM, SILENT_PAUSE, Pacer, RateLimit


class VirtualTime:
    """A clock and a sleep for many tasks: time jumps to the next wake-up once all wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    async def run_until(self, end: float) -> None:
        """Run every task until virtual time ``end``."""
        while True:
            for _ in range(8):  # let every task that can run reach its next sleep
                await asyncio.sleep(0)
            if not self._timers or self._timers[0][0] > end:
                self.now = end
                return
            when, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not future.cancelled():
                future.set_result(None)


@dataclass
class SlidingWindow:
    """A limit counted in a sliding window; ``limit(t)`` may change over time."""

    limit: Callable[[float], int]
    window: float
    stamps: deque[float] = field(default_factory=deque)

    def admit(self, now: float) -> float | None:
        """None when admitted, else the Retry-After (rejected requests count too)."""
        stamps = self.stamps
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        limit = self.limit(now)
        if len(stamps) < limit:
            stamps.append(now)
            return None
        stamps.append(now)
        return max(0.001, stamps[len(stamps) - limit] + self.window - now)


@dataclass
class Run:
    """What a simulated run did: the times of its successes and of its 429s."""

    done: list[float] = field(default_factory=list)
    throttled: list[float] = field(default_factory=list)

    def rate(self, start: float, end: float) -> float:
        """Successes per second between ``start`` and ``end``."""
        return sum(start <= t < end for t in self.done) / (end - start)

    @property
    def share_429(self) -> float:
        return len(self.throttled) / max(1, len(self.done) + len(self.throttled))


def simulate(
    configured: RateLimit,
    server: SlidingWindow,
    seconds: float,
    *,
    workers: int = 32,
    latency: float = 0.02,
    others: Callable[[float], int] | None = None,
) -> tuple[Run, Pacer]:
    """Run ``workers`` against ``server`` for ``seconds``; ``others(t)`` other apps' requests
    land in the same window each 0.1 s."""
    clock = VirtualTime()
    pacer = Pacer(configured, clock=clock, sleep=clock.sleep)
    run = Run()

    async def worker() -> None:
        while True:
            sent = await pacer.wait()
            await clock.sleep(latency / 2)
            retry_after = server.admit(clock.now)
            await clock.sleep(latency / 2)
            if retry_after is None:
                run.done.append(clock.now)
                pacer.succeeded(1)
            else:
                run.throttled.append(clock.now)
                pacer.throttled(retry_after or None, sent)
                await clock.sleep(retry_after or 0.5)  # 0: no Retry-After, the own backoff

    async def other_apps() -> None:
        while others is not None:
            await clock.sleep(0.1)
            for _ in range(others(clock.now)):
                server.admit(clock.now)

    async def main() -> None:
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        tasks.append(asyncio.create_task(other_apps()))
        await clock.run_until(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return run, pacer


def test_a_steady_share_under_the_configured_rate_is_found_and_held():
    # configured 100/s, the share 60/s (another app takes the rest)
    run, pacer = simulate(RateLimit(100, 1.0), SlidingWindow(lambda t: 60, 1.0), 120.0)
    assert run.rate(0, 120) >= 0.95 * 60
    assert run.share_429 < 0.01
    assert pacer.estimate == pytest.approx(60, rel=0.02)
    assert pacer.throttle_events < len(run.throttled)  # the 429s in flight together: once


def test_intune_shape_50_per_20s_under_a_configured_100_per_20s():
    run, pacer = simulate(RateLimit(100, 20.0), SlidingWindow(lambda t: 50, 20.0), 400.0)
    assert run.rate(0, 400) >= 0.95 * 2.5
    assert run.share_429 < 0.01
    assert pacer.estimate == pytest.approx(2.5, rel=0.02)
    # the pause is the first window's: 50 went in 10 s, then Retry-After kept everyone back
    assert 8.0 < pacer.paused_seconds < 60.0


def test_at_the_configured_limit_with_no_other_app_nothing_is_throttled():
    run, pacer = simulate(RateLimit(100, 20.0), SlidingWindow(lambda t: 100, 20.0), 200.0)
    assert run.throttled == []
    assert run.rate(0, 200) >= 0.98 * 5.0
    assert pacer.paused_seconds == 0.0 and pacer.estimate is None
    assert pacer.rate == pytest.approx(5 * HEADROOM)


def share_that_halves_and_doubles_back(t: float) -> int:
    return 50 if 40.0 <= t < 80.0 else 100


def test_a_share_that_halves_is_followed_within_seconds_and_one_that_doubles_back_too():
    run, _ = simulate(
        RateLimit(100, 1.0), SlidingWindow(share_that_halves_and_doubles_back, 1.0), 120.0
    )
    assert run.rate(5, 40) >= 0.97 * 100
    assert run.rate(43, 80) >= 0.95 * 50  # settled within 3 s of the drop
    assert run.rate(80, 120) >= 0.8 * 100  # found again (the climb is cubic: slow, then fast)
    assert run.rate(100, 120) >= 0.95 * 100
    assert run.share_429 < 0.01


def test_many_429s_of_one_full_window_are_one_congestion_event():
    # 320 workers at 100/s: when the share halves, dozens of requests are in flight
    run, pacer = simulate(
        RateLimit(100, 1.0),
        SlidingWindow(share_that_halves_and_doubles_back, 1.0),
        60.0,
        workers=320,
        latency=0.5,
    )
    assert len(run.throttled) > 2 * pacer.throttle_events
    assert run.rate(45, 60) >= 0.9 * 50  # not cut to the floor by the echoes


def test_other_apps_sending_in_bursts_share_the_tenant_window():
    # a tenant limit of 200/20 s; another app sends 60 requests in a burst every 40 s
    def bursts(t: float) -> int:
        return 30 if t % 40.0 < 0.2 else 0

    run, pacer = simulate(
        RateLimit(100, 20.0), SlidingWindow(lambda t: 200, 20.0), 400.0, others=bursts
    )
    # its average share is 200/20 s - 60/40 s = 8.5/s, but this run may send only 5/s
    assert run.rate(0, 400) >= 0.9 * 5.0
    assert run.share_429 < 0.02

    def busy(t: float) -> int:  # 150 of the 200 per 20 s, in bursts of 15 every 2 s
        return 15 if t % 2.0 < 0.1 else 0

    run, pacer = simulate(
        RateLimit(100, 20.0), SlidingWindow(lambda t: 200, 20.0), 400.0, others=busy
    )
    assert run.rate(0, 400) >= 0.8 * 2.5  # the 50 the others leave, in 20 s
    assert run.share_429 < 0.05
    assert pacer.estimate is not None and pacer.estimate < 3.5


def test_throttled_with_nothing_measured_cuts_the_pace_once_per_event():
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    for _ in range(50):
        pacer.throttled(None)  # together: one event
    assert pacer.throttle_events == 1 and pacer.throttled_answers == 50
    assert pacer.rate == pytest.approx(5.0 * HEADROOM * 0.7)
    clock.now += 1.0
    for _ in range(50):
        pacer.throttled(None)  # a second event each time nothing went through
    assert pacer.rate >= 0.5 * HEADROOM  # never under the floor (10% of configured)
    assert pacer.rate == pytest.approx(5.0 * HEADROOM * 0.49, rel=0.01)


def test_the_pace_is_set_from_the_goodput_of_the_last_window_and_climbs_back():
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    for _ in range(60):
        clock.now += 0.25
        pacer.succeeded()
    pacer.throttled(4.0, sent_at=clock.now)  # 60 in the last 15 s: the window holds 60/20s
    assert pacer.estimate == pytest.approx(3.0)
    assert pacer.rate == pytest.approx(3.0 * HEADROOM)
    assert pacer.remaining == pytest.approx(4.0)
    pacer.throttled(4.0, sent_at=clock.now - 0.1)  # sent before the event: an echo
    assert pacer.throttle_events == 1
    clock.now += 4.0 + 20.0  # the pause, then one probe period
    assert pacer.rate == pytest.approx(3.0 * HEADROOM * 1.0005)
    clock.now += 20.0 * 3
    assert pacer.rate == pytest.approx(3.0 * HEADROOM * (1 + 0.0005 * 4**3))
    # 5% above the share (after 100 ** (1/3) = 4.64 periods) the climb turns exponential
    clock.now += 20.0 * (100 ** (1 / 3) - 4 + 2)
    assert pacer.rate == pytest.approx(3.0 * HEADROOM * 1.05 * 1.25**2)
    clock.now += 20.0 * 10
    assert pacer.rate == pacer.ceiling  # never above the configured rate


def test_the_pause_is_counted_once_in_wall_clock_time():
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    pacer.pause(3.0)
    pacer.pause(2.0)  # within the first
    clock.now += 1.0
    pacer.pause(4.0)  # extends it by 2 s
    assert pacer.paused_seconds == pytest.approx(5.0)


def test_one_event_at_most_halves_the_pace():
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    pacer.succeeded(2)  # a 429 with only 2 through in the window: a thin measurement
    pacer.throttled(None)
    assert pacer.estimate == pytest.approx(0.1)
    assert pacer.rate == pytest.approx(5.0 * HEADROOM * 0.5)


def test_a_429_without_retry_after_pauses_everybody_once_per_event():
    """Intune's backend often sends no Retry-After: the event pauses all workers briefly
    (the 429s that echo it do not pause them again), so that those in flight stop meeting the
    full window."""
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    clock.now = 10.0
    pacer.throttled(None, 9.9)
    assert pacer.silent_pause == SILENT_PAUSE == 1.0  # 5% of 20 s, at most a second
    assert pacer.remaining == pytest.approx(SILENT_PAUSE)
    clock.now = 10.5
    pacer.throttled(None, 9.95)  # sent before the event: its echo
    assert pacer.remaining == pytest.approx(SILENT_PAUSE - 0.5)
    assert Pacer(RateLimit(100, 1.0)).silent_pause == pytest.approx(0.05)
    assert pacer.throttle_events == 1 and pacer.throttled_answers == 2


def test_a_share_is_found_and_held_when_graph_gives_no_retry_after():
    """The same 60/s share as above, but every 429 comes without Retry-After: the throttled
    request backs off on its own (half a second here), and the pace is still found."""

    class Silent(SlidingWindow):
        def admit(self, now: float) -> float | None:
            return None if super().admit(now) is None else 0.0  # 0: no word from Graph

    run, pacer = simulate(RateLimit(100, 1.0), Silent(lambda t: 60, 1.0), 120.0)
    assert run.rate(0, 120) >= 0.9 * 60
    assert run.share_429 < 0.02
    assert pacer.estimate == pytest.approx(60, rel=0.05)


def test_silent_events_in_a_row_double_the_pause_until_a_request_goes_through():
    clock = VirtualTime()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    pauses = []
    for _ in range(7):
        sent = clock.now
        clock.now += 0.02
        pacer.throttled(None, sent)
        pauses.append(round(pacer.remaining, 6))
        clock.now += pacer.remaining
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]  # at most the window
    pacer.succeeded(1)
    pacer.throttled(None, clock.now)
    assert pacer.remaining == pytest.approx(1.0)
