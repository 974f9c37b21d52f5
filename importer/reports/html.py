"""``report.html``: one self-contained page per run, for people who will not open a CSV.

Counts by status, the run's facts, a chart of throughput and 429s over time (inline SVG), the
most frequent error codes with example lines, what to run next, and links to ``results.csv``,
``failed.csv`` and ``summary.json`` beside it. No script, no font, no image or style from
anywhere: a Content-Security-Policy forbids every fetch, and every text from the input or from
Graph is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from importer.reports.summary import exit_meaning, next_steps, pace_line, shown_statuses
from importer.reports.timeline import Timeline, format_duration

if TYPE_CHECKING:
    from importer.reports.results import ErrorDigest
    from importer.reports.summary import RunSummary

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CHART_WIDTH = 860
CHART_HEIGHT = 240
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 56, 56, 30, 40
_COLOURS = {
    "created": "#2e7d32",
    "updated": "#558b2f",
    "skipped": "#78909c",
    "valid": "#2e7d32",
    "changed": "#f9a825",
    "rejected": "#c62828",
    "failed": "#d84315",
    "unknown": "#6a1b9a",
}
_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:960px;padding:0 1rem;color:#1c1c1c}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.verdict{display:inline-block;padding:.2rem .6rem;border-radius:4px;color:#fff;font-weight:600}
.ok{background:#2e7d32}.warn{background:#ef6c00}.bad{background:#c62828}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #e0e0e0;vertical-align:top}td.n{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{height:.8rem;border-radius:2px;min-width:1px}.muted{color:#666}code{font-size:.9em}
.facts td:first-child{width:12rem;color:#555}svg text{font:12px system-ui,sans-serif;fill:#444}
ul.examples{margin:0;padding-left:1.1rem}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(iso: str) -> str:
    """``2026-11-27T19:37:25.887750+00:00`` as ``2026-11-27 19:37:25 UTC``."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def _verdict(code: int) -> tuple[str, str]:
    css = "ok" if code == 0 else "warn" if code == 1 else "bad"
    return css, f"exit {code}: {exit_meaning(code)}"


def _counts_table(summary: RunSummary) -> str:
    counts = summary.counts
    total = max(summary.records, 1)
    rows = []
    for status in shown_statuses(summary.mode, counts):
        count = counts.get(status, 0)
        share = 100.0 * count / total
        colour = _COLOURS.get(status, "#607d8b")
        rows.append(
            f'<tr><th scope="row">{_e(status)}</th>'
            f'<td class="n" id="count-{_e(status)}" data-status="{_e(status)}" '
            f'data-count="{count}">{count:,}</td>'
            f'<td class="n muted">{share:.1f}%</td>'
            f'<td style="width:50%"><div class="bar" style="width:{share:.2f}%;'
            f'background:{colour}"></div></td></tr>'
        )
    rows.append(
        f'<tr><th scope="row">records</th><td class="n" id="count-records" '
        f'data-count="{summary.records}">{summary.records:,}</td><td></td><td></td></tr>'
    )
    return (
        '<table class="counts"><thead><tr><th>status</th><th class="n">rows</th>'
        "<th></th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _facts(summary: RunSummary) -> str:
    facts: list[tuple[str, str]] = [
        ("input", f"<code>{_e(summary.input)}</code>"),
        ("input SHA-256", f"<code>{_e(summary.input_sha256)}</code>"),
        ("mode", _e(summary.mode)),
    ]
    if summary.target:
        facts.append(("target", f"<code>{_e(summary.target)}</code>"))
    facts += [
        ("started", _e(_when(summary.started))),
        ("finished", _e(_when(summary.finished))),
        ("duration", _e(format_duration(summary.duration_seconds))),
        ("rate", f"{summary.rows_per_second:,} rows/s"),
    ]
    if summary.mode == "run":
        facts.append(
            (
                "requests",
                f"{summary.requests:,} (429: {summary.throttled:,}, retries: {summary.retries:,})",
            )
        )
        if summary.pace:
            facts.append(("pace", _e(pace_line(summary.pace))))
    if summary.reconciled:
        facts.append(("reconciled", f"{summary.reconciled:,} found in Graph after a lost answer"))
    if summary.stopped:
        facts.append(("stopped", _e(summary.stopped)))
    for warning in summary.warnings:
        facts.append(("warning", _e(warning)))
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in facts)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^n that is at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def render_chart(timeline: Timeline) -> str:
    """An inline SVG: rows finished per second (bars), 429 answers per bucket (red dots)."""
    buckets = timeline.buckets
    width = timeline.width
    plot_w = CHART_WIDTH - _PAD_LEFT - _PAD_RIGHT
    plot_h = CHART_HEIGHT - _PAD_TOP - _PAD_BOTTOM
    bottom = _PAD_TOP + plot_h
    top = _nice_ceiling(max(((b[0] + b[1]) / width for b in buckets), default=0.0))
    throttle_top = _nice_ceiling(max((b[2] for b in buckets), default=0))
    step = plot_w / max(len(buckets), 1)
    bar = max(step, 0.5)
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="throughput-chart" role="img" '
        f'width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} '
        f'{CHART_HEIGHT}" aria-label="rows per second and 429 answers over time">'
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP - 14}" text-anchor="end">rows/s</text>'
        f'<text x="{_PAD_LEFT + plot_w + 6}" y="{_PAD_TOP - 14}" fill="#c62828">429s</text>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * plot_h
        right = f"{throttle_top * fraction:g}" if fraction != 0.5 or throttle_top >= 2 else ""
        parts.append(
            f'<line x1="{_PAD_LEFT}" x2="{_PAD_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e0e0e0"/>'
            f'<text x="{_PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{top * fraction:g}</text>"
            f'<text x="{_PAD_LEFT + plot_w + 6}" y="{y + 4:.1f}" fill="#c62828">{right}</text>'
        )
    dots: list[str] = []
    for i, (done, not_done, throttled, requests) in enumerate(buckets):
        x = _PAD_LEFT + i * step
        tip = _e(
            f"{format_duration(i * width)}: {done + not_done:,} rows ({done:,} done, "
            f"{not_done:,} not), {throttled:,} × 429, {requests:,} requests"
        )
        if done or not_done:
            ok_h = plot_h * done / width / top
            bad_h = plot_h * not_done / width / top
            parts.append(
                f"<g><title>{tip}</title>"
                f'<rect x="{x:.2f}" y="{bottom - ok_h:.2f}" width="{bar:.2f}" '
                f'height="{ok_h:.2f}" fill="#2e7d32"/>'
                f'<rect x="{x:.2f}" y="{bottom - ok_h - bad_h:.2f}" width="{bar:.2f}" '
                f'height="{bad_h:.2f}" fill="#d84315"/></g>'
            )
        if throttled:
            y = bottom - plot_h * throttled / throttle_top
            dots.append(
                f'<circle cx="{x + step / 2:.2f}" cy="{y:.2f}" r="3" fill="#c62828">'
                f"<title>{tip}</title></circle>"
            )
    parts += dots  # drawn last, over the bars
    elapsed = len(buckets) * width
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _PAD_LEFT + fraction * plot_w
        anchor = "start" if fraction == 0 else "end" if fraction == 1 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="{anchor}">'
            f"{_e(format_duration(fraction * elapsed))}</text>"
        )
    parts.append(
        f'<text x="{_PAD_LEFT}" y="{CHART_HEIGHT - 4}">bars: rows/s (green done, orange not '
        f"done) · red dots: 429 answers per {_e(format_duration(width))} · x: time since the "
        "first row</text></svg>"
    )
    return "".join(parts)


def _chart_section(summary: RunSummary, timeline: Timeline | None) -> str:
    if summary.mode != "run" or timeline is None or not timeline.buckets:
        return '<p class="muted">No requests were sent in this run.</p>'
    totals = timeline.totals()
    return (
        render_chart(timeline) + f'<p class="muted">{totals["requests"]:,} requests, '
        f'<span id="throttled-total">{totals["throttled"]:,}</span> answered 429; '
        f"one bar per {_e(format_duration(timeline.width))}.</p>"
    )


def _errors_section(digest: ErrorDigest | None) -> str:
    top = digest.top(10) if digest is not None else []
    if not top:
        return '<p class="muted">No row needs attention.</p>'
    rows = []
    for status, code, count, examples in top:
        items = "".join(f"<li>line {line}: {_e(message)}</li>" for line, message in examples)
        rows.append(
            f'<tr class="error" data-code="{_e(code)}"><td>{_e(code)}</td><td>{_e(status)}</td>'
            f'<td class="n">{count:,}</td><td><ul class="examples">{items}</ul></td></tr>'
        )
    return (
        "<table><thead><tr><th>error code</th><th>status</th><th class='n'>rows</th>"
        "<th>examples</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _steps_section(steps: Sequence[str]) -> str:
    if not steps:
        return '<p class="muted">Nothing left to do.</p>'
    items = "".join(f"<li><code>{_e(step)}</code></li>" for step in steps)
    return f"<ul>{items}</ul>"


def render_report(
    summary: RunSummary, timeline: Timeline | None = None, digest: ErrorDigest | None = None
) -> str:
    """The whole page for one run."""
    css, verdict = _verdict(summary.exit_code)
    title = f"certimport {summary.mode}: {Path(summary.input).name}"
    links = " · ".join(
        f'<a href="{name}" id="link-{name.split(".")[0]}">{name}</a>'
        for name in ("results.csv", "failed.csv", "summary.json")
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p><span class="verdict {css}" id="verdict">{_e(verdict)}</span> '
        f'<span class="muted">{_e(_when(summary.finished))}</span></p>'
        f"<h2>Rows by status</h2>{_counts_table(summary)}"
        f"<h2>Throughput and throttling</h2>{_chart_section(summary, timeline)}"
        f"<h2>Top errors</h2>{_errors_section(digest)}"
        f"<h2>Next</h2>{_steps_section(next_steps(summary))}"
        f"<h2>Run</h2>{_facts(summary)}"
        f"<h2>Files</h2><p>{links}</p>"
        "</body></html>\n"
    )


__all__ = ["CSP", "render_chart", "render_report"]
