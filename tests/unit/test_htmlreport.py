"""report.html: self-contained and escaped, with the run's counts, and small for a long run."""

from __future__ import annotations

import re

from helpers import Page

from importer.outcome import Outcome
from importer.reports.html import CSP, render_report
from importer.reports.results import ErrorDigest
from importer.reports.timeline import Timeline
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
    timeline.add(0.5, done=3, throttled=2, requests=5)
    timeline.add(4.5, not_done=1, requests=1)
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
        timeline.add(second, done=4, throttled=1 if second % 700 == 0 else 0, requests=4)
    text = render_report(_summary(), timeline, ErrorDigest())
    assert text.count("<rect") <= 2 * 720
    assert len(text) < 400_000
