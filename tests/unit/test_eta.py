"""The time left on the progress display: steady over a throttled run, on a fake clock.

Graph lets 100 writes through per 20 s and answers 429 beyond: a run without a pacer gets
its rows in bursts at the start of each window and waits out the rest; a paced run goes at the
pacer's rate, paused now and then by a 429 (another app sharing the tenant's quota). The real
rate of both is steady, so the time left must be too: within 20% of the time the run really
took to finish, once warmed up (two minutes), while several windows are left to send (with
100 rows a window, the last window can end anywhere in its 20 s).
"""

from __future__ import annotations

import random

import pytest

from importer.outcome import CREATED, Outcome
from importer.reports.timeline import about
from importer.run.monitor import RunMonitor
from importer.send.client import ClientStats
from importer.send.pacing import Pacer, RateLimit

WARM_UP = 120.0
WINDOW = 20.0
ROWS = 3_000
CREATED_ROW = Outcome(CREATED, id="x", http_status=201)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _burst_run(clock: Clock, monitor: RunMonitor, stats: ClientStats, pacer: Pacer) -> None:
    """No pacer limit: 100 rows in the first two seconds of each window, then 429s and a
    pause until the window ends; sampled once a second, a little late now and then."""
    jitter = random.Random(7)
    start, left, second = clock.now, ROWS, 0
    while left:
        phase = second % WINDOW
        if phase < 2:
            for _ in range(min(50, left)):
                monitor.finished(CREATED_ROW)
                left -= 1
            stats.requests += 50
        elif phase == 2:
            stats.throttled += 4
            pacer.throttled(WINDOW - 2.5)
        second += 1
        clock.now = start + second + jitter.uniform(0.0, 0.2)
        yield_point(monitor)


def _paced_run(clock: Clock, monitor: RunMonitor, stats: ClientStats, pacer: Pacer) -> None:
    """Paced at 100/20s (4.95 rows/s); every 90 s a 429 pauses everybody for 8 s and lowers
    the pace, which then creeps back."""
    start, left, second, owed = clock.now, ROWS, 0, 0.0
    while left:
        if second % 90 == 45:
            stats.throttled += 1
            pacer.throttled(8.0)
        if pacer.remaining <= 0:
            owed += pacer.rate
            sent = min(int(owed), left)
            owed -= sent
            for _ in range(sent):
                monitor.finished(CREATED_ROW)
            left -= sent
            stats.requests += sent
            pacer.succeeded(sent)
        second += 1
        clock.now = start + second
        yield_point(monitor)


def yield_point(monitor: RunMonitor) -> None:
    monitor.sample()
    samples.append((monitor.elapsed, monitor.total - monitor.done, monitor.eta()))


samples: list[tuple[float, int, float | None]] = []


@pytest.mark.parametrize(("run", "limit"), [(_burst_run, "0"), (_paced_run, "100/20s")])
def test_time_left_is_steady_over_a_throttled_run(run, limit):
    samples.clear()
    clock = Clock()
    stats = ClientStats()
    pacer = Pacer(RateLimit.parse(limit), clock=clock)
    monitor = RunMonitor(clock=clock)
    monitor.begin(ROWS, pacer=pacer, stats=stats)
    run(clock, monitor, stats, pacer)
    end = next(elapsed for elapsed, left, _ in samples if left == 0)
    assert 540 <= end <= 900  # 3.3 to 5.5 rows/s: a steady real rate
    checked = 0
    for elapsed, left, eta in samples:
        truth = end - elapsed
        if elapsed < WARM_UP or truth < 5 * WINDOW:
            continue
        assert eta is not None
        assert abs(eta - truth) <= 0.2 * truth, (elapsed, left, eta, truth)
        checked += 1
    assert checked > 300
    # to the end, never further off than one window more
    for elapsed, left, eta in samples:
        if elapsed >= WARM_UP and left:
            assert eta is not None and abs(eta - (end - elapsed)) <= 0.2 * (end - elapsed) + WINDOW


def test_time_left_during_a_pause_does_not_jump():
    """Within a minute of a throttled run, what the display says stays put, pause or not."""
    samples.clear()
    clock = Clock()
    stats = ClientStats()
    pacer = Pacer(RateLimit.parse("0"), clock=clock)
    monitor = RunMonitor(clock=clock)
    monitor.begin(ROWS, pacer=pacer, stats=stats)
    _burst_run(clock, monitor, stats, pacer)
    shown = [about(eta) for elapsed, _, eta in samples if 300 <= elapsed < 360]
    assert len(set(shown)) <= 2, shown  # e.g. "about 5 min" then "about 4 min"


def test_time_left_before_any_row_is_the_paced_rate_s():
    clock = Clock()
    pacer = Pacer(RateLimit.parse("100/20s"), clock=clock)
    monitor = RunMonitor(clock=clock)
    monitor.begin(990, pacer=pacer, stats=ClientStats())
    clock.now += 1
    monitor.sample()
    assert monitor.eta() == pytest.approx(990 / pacer.rate)  # 200 s at 4.95/s
    unpaced = RunMonitor(clock=clock)
    unpaced.begin(990, pacer=Pacer(RateLimit.parse("0"), clock=clock), stats=ClientStats())
    clock.now += 1
    unpaced.sample()
    assert unpaced.eta() is None  # no pacer, nothing measured yet: unknown, not a guess
