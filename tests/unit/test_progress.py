"""What a person watching sees: the timeline, the monitor and the live display, rendered."""

from __future__ import annotations

import pytest
from rich.console import Console

from importer.cli.progress import render_progress
from importer.outcome import CREATED, FAILED, REJECTED, SKIPPED, UNKNOWN, Outcome
from importer.reports.timeline import Timeline, about, format_duration
from importer.run.monitor import NEVER_SENT, UNSENT_REASONS, RunMonitor
from importer.send.client import ClientStats
from importer.send.pacing import Pacer, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timeline_adds_into_buckets_and_fills_gaps():
    timeline = Timeline()
    timeline.add(0.2, in_graph=3)
    timeline.add(0.9, in_graph=1, throttled=1, requests=5)
    timeline.add(3.5, not_sent=2)
    assert timeline.buckets == [
        [4, 0, 0, 0, 1, 5, 0],
        [0] * 7,
        [0] * 7,
        [0, 0, 0, 2, 0, 0, 0],
    ]
    assert timeline.totals() == {
        "in_graph": 4,
        "refused": 0,
        "no_answer": 0,
        "not_sent": 2,
        "throttled": 1,
        "requests": 5,
        "paused_ms": 0,
    }
    with pytest.raises(TypeError, match="done"):
        timeline.add(1.0, done=1)


def test_timeline_spreads_a_late_sample_over_the_seconds_it_covers():
    """A sampler that wakes late puts no false spike in one bucket and gap in the one before."""
    timeline = Timeline()
    timeline.spread(0.0, 0.98, in_graph=5)
    timeline.spread(0.98, 3.02, in_graph=10, paused_ms=2040)  # woke two seconds late
    timeline.spread(3.02, 3.5, refused=1)
    assert timeline.column("in_graph") == [5, 5, 5, 0]  # 0.02 s of 10 rows rounds to 0
    assert sum(timeline.column("paused_ms")) == 2040
    assert timeline.column("refused") == [0, 0, 0, 1]
    assert timeline.end == 3.5


@pytest.mark.parametrize("seconds", [10, 720, 721, 3_600, 3 * 86_400])
def test_timeline_stays_bounded_and_keeps_every_count(seconds):
    timeline = Timeline(max_buckets=720)
    step = max(1, seconds // 5000)
    for second in range(0, seconds, step):
        timeline.spread(second + 0.5, second + step + 0.5, in_graph=2, throttled=1, requests=3)
    assert len(timeline.buckets) <= 720
    calls = len(range(0, seconds, step))
    totals = timeline.totals()
    assert (totals["in_graph"], totals["throttled"], totals["requests"]) == (
        2 * calls,
        calls,
        3 * calls,
    )
    assert timeline.width * len(timeline.buckets) >= seconds


def test_monitor_samples_rate_time_left_and_timeline():
    clock = Clock()
    stats = ClientStats()
    monitor = RunMonitor(clock=clock)
    monitor.begin(200, pacer=None, stats=stats)
    created = Outcome(CREATED, id="x", http_status=201)
    refused = Outcome(REJECTED, http_status=400, error_code="BadRequest")
    for second in range(1, 26):
        clock.now += 1
        for _ in range(4):
            monitor.finished(created)
        monitor.finished(refused)
        monitor.settled(SKIPPED)  # no request
        stats.requests += 5
        stats.throttled += 1 if second == 3 else 0
        monitor.sample()
    assert monitor.done == 150
    assert monitor.rate == pytest.approx(6.0)  # every row
    assert monitor.steady_rate == pytest.approx(5.0)  # the rows sent
    assert monitor.eta() == pytest.approx(10.0)  # 50 rows left at 5/s
    totals = monitor.timeline.totals()
    assert totals["in_graph"] == 100 and totals["refused"] == 25 and totals["not_sent"] == 25
    assert totals["throttled"] == 1 and totals["requests"] == 125
    assert monitor.timeline.buckets[2] == [4, 1, 0, 1, 1, 5, 0]
    assert dict(monitor.timeline.unsent) == {UNSENT_REASONS[SKIPPED]: 25}


def test_monitor_counts_rows_the_run_never_sent_apart_from_throughput():
    clock = Clock()
    monitor = RunMonitor(clock=clock)
    monitor.begin(10, pacer=None, stats=ClientStats())
    clock.now += 1
    monitor.finished(Outcome(CREATED, id="x", http_status=201))
    monitor.finished(Outcome(UNKNOWN, error_code="Timeout"))
    for _ in range(8):
        monitor.finished(Outcome(FAILED, error_code="NotSent", error_message="interrupted"))
    monitor.sample()
    totals = monitor.timeline.totals()
    assert (totals["in_graph"], totals["no_answer"], totals["not_sent"]) == (1, 1, 8)
    assert monitor.timeline.unsent == {NEVER_SENT: 8}
    assert monitor.counts[FAILED] == 8 and monitor.done == 10


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "?"), (0.42, "0.4 s"), (7, "7.0 s"), (12.4, "12 s"), (61, "1m 01s"), (3_725, "1h 02m")],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "?"),
        (3, "about 5 s"),
        (42, "about 40 s"),
        (58, "about 1 min"),
        (14 * 60 + 20, "about 14 min"),
        (89 * 60, "about 89 min"),
        (2.4 * 3600, "about 2.5 h"),
        (30 * 3600, "about 30 h"),
    ],
)
def test_time_left_is_said_roughly(seconds, shown):
    assert about(seconds) == shown


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
    monitor.rate = monitor.steady_rate = 4.9
    pacer.throttled(6.2)
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(monitor))
    text = console.export_text()
    assert "1,234 / 5,000 rows" in text
    assert "created 1,200 · skipped 20 · rejected 10 · failed 4" in text
    assert "4.9 rows/s" in text and "limit 100/20s" in text and "429s 3" in text
    assert "time left about 13 min" in text  # 3,766 rows left at 4.9/s: 12m 49s
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
