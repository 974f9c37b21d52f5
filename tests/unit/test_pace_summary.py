"""What the run tells about its pacing: Pacer.findings, the summary line, report.html and the
metrics (the numbers come from the pacer; the end-to-end run is in tests/e2e/test_summary.py)."""

from __future__ import annotations

import pytest
from helpers import FakeClock

from importer.reports.html import render_report
from importer.reports.metrics import render_metrics
from importer.reports.results import ErrorDigest
from importer.reports.summary import pace_line
from importer.reports.timeline import Timeline
from importer.run.pipeline import RunSummary
from importer.send.pacing import HEADROOM, Pacer, RateLimit

FOUND = {
    "limit": "100/20s",
    "configured_per_second": 5.0,
    "settled_per_second": 2.475,
    "measured_share_per_second": 2.5,
    "throttle_events": 3,
    "paused_seconds": 11.2,
    "paused_share": 0.0934,
}


def test_findings_of_a_throttled_pacer():
    clock = FakeClock()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    pacer.succeeded(50)
    pacer.throttled(10.0)
    pacer.throttled(10.0, sent_at=clock.now - 0.1)  # an echo: not a second event
    assert pacer.findings(100.0) == {
        "limit": "100/20s",
        "configured_per_second": 5.0,
        "settled_per_second": round(2.5 * HEADROOM, 3),
        "measured_share_per_second": 2.5,
        "throttle_events": 1,
        "paused_seconds": 10.0,
        "paused_share": 0.1,
    }


def test_findings_of_an_unthrottled_and_of_an_unlimited_pacer():
    clock = FakeClock()
    found = Pacer(RateLimit(100, 20.0), clock=clock).findings(10.0)
    assert found["settled_per_second"] == round(5 * HEADROOM, 3)
    assert found["measured_share_per_second"] is None and found["paused_share"] == 0.0
    found = Pacer(None, clock=clock).findings(0.0)
    assert found["limit"] == "unlimited"
    assert found["configured_per_second"] is None and found["settled_per_second"] is None


@pytest.mark.parametrize(
    ("pace", "line"),
    [
        (
            FOUND,
            "settled at 2.48/s of 5/s configured (100/20s) · share measured 2.5/s · "
            "3 congestion events · paused 11.2 s (9.3%)",
        ),
        (
            {
                **FOUND,
                "measured_share_per_second": None,
                "throttle_events": 0,
                "paused_seconds": 0,
                "paused_share": 0.0,
                "settled_per_second": 4.95,
            },
            "settled at 4.95/s of 5/s configured (100/20s) · no congestion event · "
            "paused 0 s (0.0%)",
        ),
        (
            {
                **FOUND,
                "limit": "unlimited",
                "configured_per_second": None,
                "settled_per_second": None,
                "measured_share_per_second": None,
                "throttle_events": 1,
                "paused_seconds": 1.5,
                "paused_share": 0.01,
            },
            "unlimited (not paced) · 1 congestion event · paused 1.5 s (1.0%)",
        ),
        ({}, ""),
    ],
)
def test_pace_line(pace, line):
    assert pace_line(pace) == line


def _summary() -> RunSummary:
    summary = RunSummary(input="i.csv", input_sha256="", mode="run", out_dir="o", pace=FOUND)
    summary.duration_seconds = 120.0
    return summary


def test_report_html_tells_the_pace():
    text = render_report(_summary(), Timeline(), ErrorDigest())
    assert "<td>pace</td><td>settled at 2.48/s of 5/s configured (100/20s)" in text


def test_metrics_tell_the_pace_and_leave_out_what_the_pacer_does_not_have():
    text = render_metrics(_summary(), exit_code=0, finished=1000.0, last_success=None)
    assert 'certimport_last_run_pace_per_second{target=""} 2.475\n' in text
    assert 'certimport_last_run_measured_share_per_second{target=""} 2.5\n' in text
    assert 'certimport_last_run_throttle_events{target=""} 3\n' in text
    assert 'certimport_last_run_paused_seconds{target=""} 11.2\n' in text
    assert 'certimport_last_run_paused_ratio{target=""} 0.0934\n' in text
    summary = _summary()
    summary.pace = {**FOUND, "settled_per_second": None, "measured_share_per_second": None}
    text = render_metrics(summary, exit_code=0, finished=1000.0, last_success=None)
    assert "pace_per_second" not in text and "measured_share" not in text
    assert "certimport_last_run_paused_ratio" in text
    summary.pace = {}
    assert "paused" not in render_metrics(summary, exit_code=0, finished=1000.0, last_success=None)
