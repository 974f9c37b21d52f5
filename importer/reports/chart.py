"""The chart of report.html: a run's throughput and throttling over time, as inline SVG.

What is drawn is what Graph answered: the rows answered per second (in Graph, or refused),
on a scale that fits them. Rows that no request was sent for (the run stopped first, invalid
rows, rows already in Graph) are no throughput: they are counted in a note under the chart,
never drawn as a bar. 429 answers have a lane of their own under the bars, with their own
scale, and the pauses (every worker waiting out a Retry-After) are shaded. The SVG scales to
the page's width (``viewBox``, ``width: 100%``); a narrower drawing, with fewer and wider bars,
replaces it on a phone (the media queries are in the SVG's own ``<style>``, so the chart needs
nothing from the page).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from importer.reports.timeline import Timeline, format_duration, merged

if TYPE_CHECKING:
    from importer.reports.summary import RunSummary

IN_GRAPH, REFUSED, THROTTLED, PAUSED = "#2e7d32", "#ef6c00", "#c62828", "#ffe0b2"
NARROW_BELOW = 720  # px: under this page width the narrow drawing is shown (wide text >= 11 px)
CHART_HEIGHT = 236
_TOP, _PLOT_H, _GAP, _LANE_H = 24, 140, 14, 30
_LEFT, _RIGHT = 44, 10
_STYLE = (
    ".chart svg{display:block;width:100%;height:auto;margin:.25rem 0}"
    ".chart text{font:12px system-ui,-apple-system,sans-serif;fill:#444}"
    ".chart .lane text{fill:#c62828}.chart .narrow text{font-size:13px}"
    ".chart .narrow{display:none;max-width:460px}"
    f"@media (max-width:{NARROW_BELOW - 0.02}px){{.chart .wide{{display:none}}"
    ".chart .narrow{display:block}}"
)


@dataclass(frozen=True)
class Frame:
    """One drawing of the chart: its width in SVG units, bars at most, time labels."""

    name: str
    width: int
    max_bars: int
    time_ticks: int


WIDE = Frame("wide", 760, 300, 4)
NARROW = Frame("narrow", 380, 90, 2)
FRAMES = (WIDE, NARROW)


@dataclass(frozen=True)
class Bar:
    """One bar: ``seconds`` from ``start``, and the timeline's fields summed over them."""

    start: float
    seconds: float
    values: dict[str, int]

    @property
    def answered(self) -> int:
        """Rows Graph answered in this bar's time (in Graph or refused)."""
        return self.values["in_graph"] + self.values["refused"]

    def per_second(self, count: int) -> float:
        """``count`` over this bar's time."""
        return count / self.seconds if self.seconds > 0 else 0.0


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^n that is at least ``value``
    (1 for nothing): the busiest bar fills most of the height, with a round half-way line."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    steps = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
    return next(step * magnitude for step in steps if step * magnitude >= value - 1e-9)


def _number(value: float) -> str:
    return f"{value:,.1f}" if value < 10 and value != int(value) else f"{value:,.0f}"


# Buckets per bar: round multiples, so that bars of a bursty run alias as little as they can
_BAR_FACTORS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600)


def bars(timeline: Timeline, max_bars: int) -> list[Bar]:
    """The timeline's buckets summed into at most ``max_bars`` bars (a round number of
    buckets each: 1, 2, 5, 10, 15, 20, 30...); the last one ends where
    the run ended (a last bar shorter than half the others joins the one before it)."""
    buckets = timeline.buckets
    if not buckets:
        return []
    factor = next(
        (f for f in _BAR_FACTORS if math.ceil(len(buckets) / f) <= max_bars),
        math.ceil(len(buckets) / max_bars),
    )
    step = timeline.width * factor
    result = [
        Bar(i * step, step, dict(zip(Timeline.FIELDS, values, strict=True)))
        for i, values in enumerate(merged(buckets, factor))
    ]
    last = result[-1]
    end = max(timeline.end, last.start + 1e-3)
    result[-1] = Bar(last.start, min(step, end - last.start), last.values)
    if len(result) > 1 and result[-1].seconds < step / 2:
        tail, before = result.pop(), result.pop()
        values = {k: before.values[k] + tail.values[k] for k in Timeline.FIELDS}
        result.append(Bar(before.start, before.seconds + tail.seconds, values))
    return result


def chart_scale(timeline: Timeline, frame: Frame = WIDE) -> float:
    """The top of the rows/s axis: fits the busiest bar of answered rows, nothing else."""
    return _nice_ceiling(
        max((b.per_second(b.answered) for b in bars(timeline, frame.max_bars)), default=0.0)
    )


def _tip(bar: Bar) -> str:
    v = bar.values
    end = bar.start + bar.seconds
    text = (
        f"{format_duration(bar.start)} to {format_duration(end)}: "
        f"{_number(bar.per_second(bar.answered))} rows/s answered ({v['in_graph']:,} in Graph, "
        f"{v['refused']:,} refused); {v['throttled']:,} × 429; {v['requests']:,} requests"
    )
    if v["paused_ms"]:
        text += f"; paused {format_duration(v['paused_ms'] / 1000)}"
    if v["no_answer"]:
        text += f"; {v['no_answer']:,} sent without an answer"
    if v["not_sent"]:
        text += f"; {v['not_sent']:,} with no request (not drawn)"
    return _e(text)


def pause_spans(shown: list[Bar]) -> list[tuple[float, float, str]]:
    """Runs of bars with a pause (every worker held back for a Retry-After: a 429, or a 503
    that gave one), as (start, end, what happened): one shaded span each, with the time paused
    and the 429s counted in it."""
    spans: list[tuple[float, float, str]] = []
    run: list[Bar] = []
    for bar in [*shown, None]:
        if bar is not None and bar.values["paused_ms"]:
            run.append(bar)
            continue
        if run:
            start, end = run[0].start, run[-1].start + run[-1].seconds
            paused = sum(b.values["paused_ms"] for b in run) / 1000
            throttled = sum(b.values["throttled"] for b in run)
            spans.append(
                (
                    start,
                    end,
                    f"paused from {format_duration(start)} to {format_duration(end)} "
                    f"(Retry-After): {format_duration(paused)}, {throttled:,} × 429",
                )
            )
            run = []
    return spans


_TICK_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800)


def time_ticks(elapsed: float, most: int) -> list[float]:
    """Round times from 0 for the x axis, one step apart, at most ``most`` + 1 of them."""
    if elapsed <= 0:
        return [0.0]
    step = next((s for s in _TICK_STEPS if elapsed // s <= most), None)
    if step is None:  # days: whole multiples of 6 h
        step = 21600 * math.ceil(elapsed / most / 21600)
    ticks = [k * float(step) for k in range(int(elapsed // step) + 1)]
    return ticks if len(ticks) > 1 else [0.0, elapsed]  # a run shorter than a step: its end


def _axes(frame: Frame, top: float, elapsed: float) -> list[str]:
    right = frame.width - _RIGHT
    bottom = _TOP + _PLOT_H
    lane_top = bottom + _GAP
    parts = [f'<text x="2" y="{_TOP - 10}">rows/s</text>']
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * _PLOT_H
        parts.append(
            f'<line x1="{_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(top * fraction)}</text>"
        )
    parts.append(
        f'<rect x="{_LEFT}" y="{lane_top}" width="{right - _LEFT}" height="{_LANE_H}" '
        'fill="none" stroke="#e0e0e0"/>'
        f'<g class="lane"><text x="{_LEFT - 6}" y="{lane_top + _LANE_H / 2 + 4:.1f}" '
        'text-anchor="end">429s</text></g>'
    )
    axis_y = lane_top + _LANE_H + 16
    scale_x = (right - _LEFT) / elapsed if elapsed > 0 else 0.0
    for seconds in time_ticks(elapsed, frame.time_ticks):
        x = _LEFT + seconds * scale_x
        anchor = "start" if seconds == 0 else "end" if x > right - 24 else "middle"
        label = _e(format_duration(seconds)) if seconds else "0"
        parts.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="{anchor}">{label}</text>')
    return parts


def render_chart(timeline: Timeline, frame: Frame = WIDE) -> str:
    """One drawing of the chart (inline SVG): answered rows per second as stacked bars,
    throttle pauses shaded behind them, 429 answers in a lane of their own underneath."""
    shown = bars(timeline, frame.max_bars)
    elapsed = shown[-1].start + shown[-1].seconds if shown else 0.0
    top = chart_scale(timeline, frame)
    most_429 = max((b.values["throttled"] for b in shown), default=0)
    plot_w = frame.width - _LEFT - _RIGHT
    scale_x = plot_w / elapsed if elapsed > 0 else 0.0
    bottom, lane_top = _TOP + _PLOT_H, _TOP + _PLOT_H + _GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{frame.name}" role="img" '
        f'id="throughput-chart{"" if frame is WIDE else "-" + frame.name}" width="100%" '
        f'viewBox="0 0 {frame.width} {CHART_HEIGHT}" preserveAspectRatio="xMinYMin meet" '
        f'data-top="{top:g}" data-bars="{len(shown)}" '
        'aria-label="rows answered per second, throttle pauses and 429 answers over time">',
    ]
    if frame is WIDE:  # the chart's own style, once per page: it needs nothing from the page
        parts.append(f"<style>{_STYLE}</style>")
    columns, lane = [], []
    for bar in shown:
        x, w = _LEFT + bar.start * scale_x, max(bar.seconds * scale_x, 0.6)
        gap = 0.15 * w if w >= 4 else 0.0
        tip = _tip(bar)
        v = bar.values
        if bar.answered:
            ok_h = _PLOT_H * bar.per_second(v["in_graph"]) / top
            bad_h = _PLOT_H * bar.per_second(v["refused"]) / top
            rects = [
                f'<rect x="{x + gap / 2:.2f}" y="{y:.2f}" width="{w - gap:.2f}" '
                f'height="{h:.2f}" fill="{colour}"/>'
                for y, h, colour in (
                    (bottom - ok_h, ok_h, IN_GRAPH),
                    (bottom - ok_h - bad_h, bad_h, REFUSED),
                )
                if h > 0
            ]
            columns.append(f"<g><title>{tip}</title>{''.join(rects)}</g>")
        if v["throttled"]:
            h = max(2.0, (_LANE_H - 4) * v["throttled"] / most_429)
            lane.append(
                f'<rect x="{x + gap / 2:.2f}" y="{lane_top + _LANE_H - h:.2f}" '
                f'width="{max(w - gap, 1.5):.2f}" height="{h:.2f}" fill="{THROTTLED}">'
                f"<title>{tip}</title></rect>"
            )
    shades = [
        f'<rect x="{_LEFT + start * scale_x:.2f}" y="{_TOP}" '
        f'width="{max((end - start) * scale_x, 1.0):.2f}" height="{_PLOT_H + _GAP + _LANE_H}" '
        f'fill-opacity="0"><title>{_e(title)}</title></rect>'
        for start, end, title in pause_spans(shown)
    ]
    paused = [  # as wide as the time paused in each bar: the shaded area is the pause
        f'<rect x="{_LEFT + bar.start * scale_x:.2f}" y="{_TOP}" '
        f'width="{min(bar.values["paused_ms"] / 1000, bar.seconds) * scale_x:.2f}" '
        f'height="{_PLOT_H + _GAP + _LANE_H}"/>'
        for bar in shown
        if bar.values["paused_ms"]
    ]
    if paused:
        shades.insert(0, f'<g fill="{PAUSED}" shape-rendering="crispEdges">{"".join(paused)}</g>')
    parts += [*shades, *_axes(frame, top, elapsed), *columns, *lane]
    answered = sum(b.answered for b in shown)
    if answered and elapsed > 0:
        average = answered / elapsed
        y = bottom - _PLOT_H * average / top
        parts.append(
            f'<line x1="{_LEFT}" x2="{frame.width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#1565c0" stroke-dasharray="5 4"><title>average: {_number(average)} '
            "rows/s</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _swatch(colour: str, label: str) -> str:
    """A colour and its label, kept together when the line wraps."""
    return (
        '<span style="white-space:nowrap"><span style="display:inline-block;width:.75em;'
        f'height:.75em;background:{colour};border-radius:2px;margin-right:.2em"></span>'
        f"{label}</span>"
    )


def _legend(timeline: Timeline) -> str:
    totals = timeline.totals()
    end = timeline.end or len(timeline.buckets) * timeline.width
    answered = totals["in_graph"] + totals["refused"]
    average = answered / end if end > 0 else 0.0
    peak = max(timeline.column("throttled"), default=0)
    most_429 = f", at most {peak:,} per {_e(format_duration(timeline.width))}" if peak else ""
    items = [
        _swatch(IN_GRAPH, f"in Graph ({totals['in_graph']:,})"),
        _swatch(REFUSED, f"refused by Graph ({totals['refused']:,})"),
        '<span style="white-space:nowrap"><span style="color:#1565c0">- - -</span> average '
        f"{_number(average)} rows/s</span>",
        _swatch(
            PAUSED,
            "paused for Retry-After "
            f'(<span id="paused-total">{format_duration(totals["paused_ms"] / 1000)}</span>)',
        ),
        _swatch(
            THROTTLED,
            f'429 answers (<span id="throttled-total">{totals["throttled"]:,}</span>{most_429})',
        ),
    ]
    return (
        '<p class="muted legend">Rows answered by Graph per second: '
        + " · ".join(items)
        + f". {totals['requests']:,} requests in {_e(format_duration(end))}.</p>"
    )


def _not_drawn(timeline: Timeline) -> str:
    totals = timeline.totals()
    notes = [f"{count:,} {_e(reason)}" for reason, count in timeline.unsent.most_common() if count]
    if totals["no_answer"]:
        notes.append(f"{totals['no_answer']:,} sent without an answer (in doubt, or aborted)")
    if not notes:
        return ""
    return (
        '<p class="muted" id="not-drawn">Not in the chart, as Graph answered none of them: '
        + "; ".join(notes)
        + ".</p>"
    )


def chart_section(summary: RunSummary, timeline: Timeline | None) -> str:
    """The chart, its legend and what it does not draw; a sentence when nothing was sent."""
    if summary.mode != "run" or timeline is None or not timeline.buckets:
        return '<p class="muted">No requests were sent in this run.</p>'
    totals = timeline.totals()
    if not totals["in_graph"] + totals["refused"] + totals["throttled"]:
        chart = '<p class="muted" id="no-answers">Graph answered no row in this run.</p>'
    else:
        chart = "".join(render_chart(timeline, frame) for frame in FRAMES) + _legend(timeline)
    return f'<div class="chart">{chart}{_not_drawn(timeline)}</div>'


__all__ = [
    "CHART_HEIGHT",
    "FRAMES",
    "NARROW",
    "WIDE",
    "Bar",
    "Frame",
    "bars",
    "chart_scale",
    "chart_section",
    "render_chart",
]
