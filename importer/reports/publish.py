"""The last step of a run: its reports made visible, in an order a reader can trust."""

from __future__ import annotations

from importer.reports.html import render_report
from importer.reports.results import ReportWriter
from importer.reports.summary import RunSummary
from importer.reports.timeline import Timeline


def publish(writer: ReportWriter, summary: RunSummary, timeline: Timeline | None) -> None:
    """Publish the CSVs, then report.html, then summary.json last (its presence says the run's
    reports are complete); the summary takes the most frequent errors along."""
    summary.top_errors = writer.errors.as_dicts(10)
    writer.publish(summary.as_dict(), html=render_report(summary, timeline, writer.errors))


__all__ = ["publish"]
