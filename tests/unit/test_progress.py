"""What a person watching sees: the timeline, the monitor and the live display, rendered."""

from __future__ import annotations

import pytest
from rich.console import Console

from importer.cli.progress import render_progress
from importer.reports.timeline import Timeline, format_duration
from importer.run.monitor import RunMonitor
from importer.send.client import ClientStats
from importer.send.pacing import Pacer, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timeline_adds_into_buckets_and_fills_gaps():
    timeline = Timeline()
    timeline.add(0.2, done=3)
    timeline.add(0.9, done=1, throttled=1, requests=5)
    timeline.add(3.5, not_done=2)
    assert timeline.buckets == [[4, 0, 1, 5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]]
    assert timeline.totals() == {"done": 4, "not_done": 2, "throttled": 1, "requests": 5}


@pytest.mark.parametrize("seconds", [10, 720, 721, 3_600, 3 * 86_400])
def test_timeline_stays_bounded_and_keeps_every_count(seconds):
    timeline = Timeline(max_buckets=720)
    for second in range(0, seconds, max(1, seconds // 5000)):
        timeline.add(second + 0.5, done=2, throttled=1, requests=3)
    assert len(timeline.buckets) <= 720
    calls = len(range(0, seconds, max(1, seconds // 5000)))
    assert timeline.totals() == {
        "done": 2 * calls,
        "not_done": 0,
        "throttled": calls,
        "requests": 3 * calls,
    }
    assert timeline.width * len(timeline.buckets) >= seconds


def test_monitor_samples_rate_time_left_and_timeline():
    clock = Clock()
    stats = ClientStats()
    monitor = RunMonitor(clock=clock)
    monitor.begin(100, pacer=None, stats=stats)
    for second in range(1, 6):
        clock.now += 1
        monitor.settled("created", 4)
        monitor.settled("rejected", 1)
        stats.requests += 4
        stats.throttled += 1 if second == 3 else 0
        monitor.sample()
    assert monitor.done == 25
    assert monitor.rate == pytest.approx(5.0)
    assert monitor.eta() == pytest.approx(15.0)
    assert monitor.timeline.totals() == {
        "done": 20,
        "not_done": 5,
        "throttled": 1,
        "requests": 20,
    }
    assert monitor.timeline.buckets[3] == [4, 1, 1, 4]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "?"), (0.42, "0.4 s"), (7, "7.0 s"), (12.4, "12 s"), (61, "1m 01s"), (3_725, "1h 02m")],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


def test_display_shows_counts_rate_limit_time_left_and_the_throttled_state():
    clock = Clock()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock)
    stats = ClientStats(requests=1300, throttled=3)
    monitor = RunMonitor(clock=clock)
    monitor.begin(5000, pacer=pacer, stats=stats)
    monitor.settled("created", 1200)
    monitor.settled("skipped", 20)
    monitor.settled("rejected", 10)
    monitor.settled("failed", 4)
    monitor.rate = 4.9
    pacer.throttled(6.2)
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(monitor))
    text = console.export_text()
    assert "1,234 / 5,000 rows" in text
    assert "created 1,200 · skipped 20 · rejected 10 · failed 4" in text
    assert "4.9 rows/s" in text and "limit 100/20s" in text and "429s 3" in text
    assert "time left 12m 49s" in text  # 3,766 rows left at 4.9/s
    assert "throttled, resuming in 7 s" in text
    clock.now += 7
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(monitor))
    assert "throttled" not in console.export_text()


def test_display_before_sending_shows_the_validation_pass():
    monitor = RunMonitor()
    console = Console(record=True, width=80, force_terminal=True)
    console.print(render_progress(monitor))
    monitor.phase, monitor.scanned = "validating", 150_000
    console.print(render_progress(monitor))
    assert console.export_text().splitlines() == ["starting…", "validating: 150,000 rows read"]
