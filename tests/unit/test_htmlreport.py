"""report.html: self-contained and escaped, with the run's counts, and small for a long run."""

from __future__ import annotations

import re

import pytest
from helpers import Page

from importer.outcome import REJECTED, Outcome
from importer.reports.chart import (
    NARROW,
    WIDE,
    bars,
    chart_scale,
    chart_section,
    pause_spans,
    time_ticks,
)
from importer.reports.html import CSP, render_report
from importer.reports.results import ErrorDigest
from importer.reports.timeline import Timeline
from importer.run.monitor import NEVER_SENT, UNSENT_REASONS
from importer.run.pipeline import RunSummary


def _summary(**changes: object) -> RunSummary:
    summary = RunSummary(
        input="/data/inv.csv",
        input_sha256="ab" * 32,
        mode="run",
        out_dir="/data/out/x",
        started="2026-11-27T01:00:00+00:00",
        finished="2026-11-27T01:10:00+00:00",
        duration_seconds=600.0,
        records=10,
        exit_code=1,
    )
    summary.counts.update(created=7, rejected=2, failed=1)
    for key, value in changes.items():
        setattr(summary, key, value)
    return summary


def test_page_escapes_input_text_and_fetches_nothing():
    digest = ErrorDigest()
    hostile = '<script>alert("x")</script><img src=http://evil.example/x.png>'
    for line in range(2, 8):
        digest.add(line, Outcome("rejected", error_code="BadRequest", error_message=hostile))
    digest.add(9, Outcome("failed", error_code="<b>HTTP503</b>", error_message="gave up"))
    digest.add(10, Outcome("created", id="x"))
    timeline = Timeline()
    timeline.add(0.5, in_graph=3, throttled=2, requests=5)
    timeline.add(4.5, not_sent=1, requests=1)
    text = render_report(_summary(warnings=[hostile]), timeline, digest)
    page = Page(text)
    assert "<script" not in text and "evil.example/x.png>" not in text
    assert page.fetches == [] and "script" not in page.tags
    assert f'content="{CSP}"' in text
    assert not re.search(r"url\(|@import", text)  # no resource pulled in by the style either
    assert page.counts == {"created": 7, "rejected": 2, "failed": 1, "records": 10}
    assert page.codes == ["BadRequest", "<b>HTTP503</b>"]
    assert text.count("<li>line ") == 3 + 1  # three examples of the first code, one of the next
    assert page.links == ["results.csv", "failed.csv", "summary.json"]
    assert "certimport retry /data/out/x" in text


def test_chart_of_a_long_run_stays_small():
    timeline = Timeline(max_buckets=720)
    for second in range(0, 3 * 86_400, 7):
        throttled = 1 if second % 700 == 0 else 0
        timeline.add(second, in_graph=4, throttled=throttled, paused_ms=500 * throttled)
    text = render_report(_summary(), timeline, ErrorDigest())
    assert text.count("<rect") <= 4 * (WIDE.max_bars + NARROW.max_bars)
    assert len(text) < 400_000


def _interrupted_run() -> Timeline:
    """A throttled run of 3,000 rows stopped by Ctrl-C after a minute: 100 rows answered at
    the start of each 20 s window (5 rows/s), 21 rows rejected by validation, and the 2,679
    rows never sent all settled in the last second."""
    timeline = Timeline()
    for second in range(64):
        burst = second % 20 < 2
        timeline.spread(
            second,
            second + 1,
            in_graph=48 if burst else 0,
            refused=2 if burst else 0,
            throttled=3 if second % 20 == 2 else 0,
            requests=50 if burst else 0,
            paused_ms=0 if burst else 1000,
        )
    timeline.add(63.9, not_sent=2679 + 21)
    timeline.unsent.update({NEVER_SENT: 2679, UNSENT_REASONS[REJECTED]: 21})
    return timeline


def test_chart_scale_fits_the_rows_graph_answered_not_the_rows_never_sent():
    timeline = _interrupted_run()
    assert chart_scale(timeline) == 50  # the busiest second: 50 rows answered
    text = chart_section(_summary(records=3000), timeline)
    svg = text[text.index("<svg") : text.index("</svg>")]
    assert 'data-top="50"' in svg
    heights = [
        float(h)
        for h in re.findall(
            r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="#2e7d32"', svg
        )
    ]
    assert len(heights) == 8 and max(heights) <= 140  # no bar above the plot
    assert "2,679 never sent (the run stopped first)" in text
    assert "21 rejected before sending" in text
    assert re.search(r'id="throttled-total">12<', text)
    assert 'viewBox="0 0 760 ' in text and 'width="100%"' in text and 'width="860"' not in text


def test_chart_shades_throttle_pauses_as_spans_with_their_429s():
    spans = pause_spans(bars(_interrupted_run(), WIDE.max_bars))
    assert [(start, end) for start, end, _ in spans] == [
        (2.0, 20.0),
        (22.0, 40.0),
        (42.0, 60.0),
        (62.0, 64.0),
    ]
    assert spans[0][2] == "paused from 2.0 s to 20 s (Retry-After): 18 s, 3 × 429"


def test_chart_of_a_run_graph_never_answered_says_so():
    timeline = Timeline()
    timeline.add(0.4, not_sent=5)
    timeline.unsent[NEVER_SENT] = 5
    text = chart_section(_summary(), timeline)
    assert "<svg" not in text and "Graph answered no row in this run" in text
    assert "5 never sent" in text


@pytest.mark.parametrize(
    ("elapsed", "most", "ticks"),
    [
        (0.5, 4, [0.0, 0.5]),
        (8.1, 4, [0.0, 2.0, 4.0, 6.0, 8.0]),
        (8.1, 2, [0.0, 5.0]),
        (64, 4, [0.0, 15.0, 30.0, 45.0, 60.0]),
        (3_725, 4, [0.0, 900.0, 1800.0, 2700.0, 3600.0]),
    ],
)
def test_time_axis_has_round_times(elapsed, most, ticks):
    assert time_ticks(elapsed, most) == ticks
