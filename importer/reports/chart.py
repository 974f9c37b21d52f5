"""The chart of report.html: a run's throughput and throttling over time, as inline SVG."""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from importer.reports.timeline import Timeline, format_duration

if TYPE_CHECKING:
    from importer.reports.summary import RunSummary

CHART_WIDTH = 860
CHART_HEIGHT = 240
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 56, 56, 30, 40


def _e(value: object) -> str:
    return escape(str(value), quote=True)


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


def chart_section(summary: RunSummary, timeline: Timeline | None) -> str:
    if summary.mode != "run" or timeline is None or not timeline.buckets:
        return '<p class="muted">No requests were sent in this run.</p>'
    totals = timeline.totals()
    return (
        render_chart(timeline) + f'<p class="muted">{totals["requests"]:,} requests, '
        f'<span id="throttled-total">{totals["throttled"]:,}</span> answered 429; '
        f"one bar per {_e(format_duration(timeline.width))}.</p>"
    )


__all__ = ["CHART_HEIGHT", "CHART_WIDTH", "chart_section", "render_chart"]
