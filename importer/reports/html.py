"""``report.html``: one self-contained page per run, for people who will not open a CSV.

Counts by status, the run's facts, a chart of throughput and 429s over time (inline SVG), the
most frequent error codes with example lines, what to run next, and links to ``results.csv``,
``failed.csv`` and ``summary.json`` beside it. No script, no font, no image or style from
anywhere: a Content-Security-Policy forbids every fetch, and every text from the input or from
Graph is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from importer.reports.chart import chart_section
from importer.reports.summary import exit_meaning, next_steps, pace_line, shown_counts
from importer.reports.timeline import Timeline, format_duration

if TYPE_CHECKING:
    from importer.reports.results import ErrorDigest
    from importer.reports.summary import RunSummary

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_COLOURS = {
    "created": "#2e7d32",
    "updated": "#558b2f",
    "skipped": "#78909c",
    "valid": "#2e7d32",
    "changed": "#f9a825",
    "rejected": "#c62828",
    "failed": "#d84315",
    "unknown": "#6a1b9a",
    "excluded": "#90a4ae",
    "not sent": "#9e9e9e",
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
ul.examples{margin:0;padding-left:1.1rem}td.share{width:35%}td.why{font-size:.85em}
.wide{overflow-x:auto}code{overflow-wrap:anywhere}
@media (max-width:600px){body{margin:1rem auto;font-size:14px}td.why{display:none}
.facts td:first-child{width:auto}table.errors,table.errors tbody{display:block}
table.errors td{display:block;border:0;padding:.1rem .5rem;overflow-wrap:anywhere}
table.errors tr{display:block;border-bottom:1px solid #e0e0e0;padding:.3rem 0}
table.errors thead{display:none}}
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
    total = max(summary.records, 1)
    rows = []
    for status, count in shown_counts(summary):
        share = 100.0 * count / total
        colour = _COLOURS.get(status, "#607d8b")
        ident = status.replace(" ", "-")
        rows.append(
            f'<tr><th scope="row">{_e(status)}</th>'
            f'<td class="n" id="count-{_e(ident)}" data-status="{_e(status)}" '
            f'data-count="{count}">{count:,}</td>'
            f'<td class="n muted">{share:.1f}%</td>'
            f'<td class="share"><div class="bar" style="width:{share:.2f}%;'
            f'background:{colour}"></div></td><td class="why muted">'
            f"{_e(_MEANINGS.get(status, ''))}</td></tr>"
        )
    rows.append(
        f'<tr><th scope="row">records</th><td class="n" id="count-records" '
        f'data-count="{summary.records}">{summary.records:,}</td><td></td><td></td><td></td></tr>'
    )
    return (
        '<table class="counts"><thead><tr><th>status</th><th class="n">rows</th>'
        "<th></th><th></th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


# What each count means for the operator, beside it.
_MEANINGS = {
    "created": "in Graph now",
    "updated": "in Graph, with the new values",
    "skipped": "in Graph already, unchanged",
    "changed": "in Graph with other values: --update applies them",
    "excluded": "not certificates (e.g. denied requests): never sent",
    "rejected": "fix the rows in failed.csv and run it",
    "failed": "retries exhausted: certimport retry sends them again",
    "not sent": "the run stopped first: certimport retry sends them",
    "unknown": "sent, no answer: certimport retry looks them up first",
    "valid": "would be sent",
}


def _facts(summary: RunSummary) -> str:
    facts: list[tuple[str, str]] = [
        ("input", f"<code>{_e(summary.input)}</code>"),
        ("input SHA-256", f"<code>{_e(summary.input_sha256)}</code>"),
        ("mode", _e(summary.mode)),
    ]
    if summary.target:
        tenant = f" (tenant {_e(summary.tenant)})" if summary.tenant else ""
        facts.append(("target", f"<code>{_e(summary.target)}</code>{tenant}"))
    if summary.run_id:
        facts.append(("run id", f'<code id="run-id">{_e(summary.run_id)}</code>'))
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
        '<div class="wide"><table class="errors"><thead><tr><th>column: reason, or error code</th>'
        "<th>status</th><th class='n'>rows</th><th>examples</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
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
        f"<h2>Throughput and throttling</h2>{chart_section(summary, timeline)}"
        f"<h2>Top errors</h2>{_errors_section(digest)}"
        f"<h2>Next</h2>{_steps_section(next_steps(summary))}"
        f"<h2>Run</h2>{_facts(summary)}"
        f"<h2>Files</h2><p>{links}</p>"
        "</body></html>\n"
    )


__all__ = ["CSP", "render_report"]
