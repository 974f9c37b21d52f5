"""A run's summary (``RunSummary``, written to summary.json) and how its outcome is told to
people: which counts matter, and what to run next.

Shared by the summary the CLI prints on exit and by ``report.html``, so both give the same
advice. The pipeline produces a ``RunSummary``; the reports, the metrics and the CLI read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from importer import errors
from importer.outcome import (
    CHANGED,
    CREATED,
    EXCLUDED,
    FAILED,
    REJECTED,
    SKIPPED,
    STATUSES,
    UNKNOWN,
    UPDATED,
    VALID,
)
from importer.reports.reading import Reading

Mode = Literal["validate", "dry-run", "plan", "run"]


@dataclass
class RunSummary:
    """Counts and timings of a run; written to summary.json and shown at the end."""

    input: str
    input_sha256: str
    mode: Mode
    out_dir: str
    run_id: str = ""
    target: str = ""
    tenant: str = ""  # the tenant the target's journal belongs to ("" = the credential's)
    journal: str = ""
    started: str = ""
    finished: str = ""
    duration_seconds: float = 0.0
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    reconciled: int = 0
    not_sent: int = 0  # of the failed rows, those never sent (the run stopped before them)
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    rows_per_second: float = 0.0
    exit_code: int = 0
    stopped: str = ""  # why the run stopped early, if it did
    warnings: list[str] = field(default_factory=list)
    command: str = ""  # "retry" for a retry; else the mode is the command
    reading: dict[str, Any] = field(default_factory=dict)  # how the input was read (Reading)
    # the most frequent problems: {status, code, rows, examples: [[line, message], ...]}
    top_errors: list[dict[str, Any]] = field(default_factory=list)
    # what the write pacer found (Pacer.findings): the pace it settled on, the share it
    # measured, congestion events, time paused; empty when nothing was sent
    pace: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form written to summary.json."""
        return dict(self.__dict__)


def pace_line(pace: dict[str, Any]) -> str:
    """What the write pacer found, in one line (the console summary and report.html):
    ``settled at 2.48/s of 5/s configured (100/20s) · share measured 2.5/s · 3 congestion
    events · paused 11.2 s (9.3%)``; empty when the run sent nothing."""
    if not pace:
        return ""
    parts = []
    if pace.get("settled_per_second") is None:
        parts.append("unlimited (not paced)")
    else:
        parts.append(
            f"settled at {pace['settled_per_second']:.3g}/s of "
            f"{pace['configured_per_second']:.3g}/s configured ({pace['limit']})"
        )
    events = pace.get("throttle_events", 0)
    if pace.get("measured_share_per_second") is not None:
        parts.append(f"share measured {pace['measured_share_per_second']:.3g}/s")
    parts.append(
        f"{events:,} congestion event{'' if events == 1 else 's'}"
        if events
        else "no congestion event"
    )
    paused = pace.get("paused_seconds", 0.0)
    parts.append(f"paused {paused:.3g} s ({pace.get('paused_share', 0.0):.1%})")
    return " · ".join(parts)


# The statuses each mode can produce, in the order they are shown.
MODE_STATUSES: dict[str, tuple[str, ...]] = {
    "run": (CREATED, UPDATED, SKIPPED, CHANGED, EXCLUDED, REJECTED, FAILED, UNKNOWN),
    "plan": (VALID, SKIPPED, CHANGED, EXCLUDED, REJECTED),
    "validate": (VALID, EXCLUDED, REJECTED),
    "dry-run": (VALID, EXCLUDED, REJECTED),
}
EXIT_MEANINGS = {
    errors.EXIT_OK: "every row done",
    errors.EXIT_INCOMPLETE: "finished; some rows need attention",
    errors.EXIT_USAGE: "refused: nothing was posted",
    errors.EXIT_ABORTED: "aborted",
    errors.EXIT_INTERRUPTED: "interrupted",
}


def shown_statuses(mode: str, counts: dict[str, int]) -> list[str]:
    """The statuses worth a line: the mode's main one always, the others when not zero."""
    statuses = MODE_STATUSES.get(mode, STATUSES)
    main = statuses[0]
    return [s for s in statuses if s == main or counts.get(s, 0)]


NOT_SENT_LABEL = "not sent"  # shown apart from failed: rows the run never sent (it stopped first)


def shown_counts(summary: RunSummary) -> list[tuple[str, int]]:
    """(label, rows) for a person to read: the shown statuses, with ``failed`` split into
    the rows that failed and those that were never sent."""
    out: list[tuple[str, int]] = []
    counts = summary.counts
    for status in shown_statuses(summary.mode, counts):
        count = counts.get(status, 0)
        if status == FAILED and summary.not_sent:
            if count > summary.not_sent:
                out.append((FAILED, count - summary.not_sent))
            out.append((NOT_SENT_LABEL, summary.not_sent))
        else:
            out.append((status, count))
    return out


def next_steps(summary: RunSummary) -> list[str]:
    """Commands (with a word of why) that take the operator on from this run."""
    counts = summary.counts
    out_dir = Path(summary.out_dir)
    failed_csv = out_dir / "failed.csv"
    rejected = counts.get(REJECTED, 0)
    # A profiled or date-formatted input is read again only with the same flags.
    flags = Reading.from_dict(summary.reading, "summary").command_tail()
    steps: list[str] = []
    if summary.mode in ("validate", "plan", "dry-run"):
        if rejected:
            steps.append(
                f"fix the rows in {failed_csv}, then: certimport validate {failed_csv}{flags}"
            )
        if summary.mode != "validate" or not rejected:
            steps.append(f"certimport run {summary.input}{flags}")
        return steps
    retryable = counts.get(FAILED, 0) + counts.get(UNKNOWN, 0)
    if summary.exit_code == errors.EXIT_ABORTED:
        steps.append(f"fix what stopped the run, then: certimport retry {out_dir}")
    elif retryable:
        steps.append(f"certimport retry {out_dir}   # {_retry_words(summary)}")
    if rejected:
        steps.append(
            f"fix the rejected rows in {failed_csv}, then: certimport run {failed_csv}{flags}"
        )
    if counts.get(CHANGED, 0):
        steps.append(
            f"certimport run {summary.input}{flags} --update   "
            f"# applies the {counts[CHANGED]:,} changed row(s)"
        )
    return steps


def _retry_words(summary: RunSummary) -> str:
    """What ``retry`` will do with the run's rows: send the unsent, re-send the failed."""
    counts = summary.counts
    failed = counts.get(FAILED, 0) - summary.not_sent
    parts = []
    if summary.not_sent:
        parts.append(f"sends the {summary.not_sent:,} row(s) not sent yet")
    if failed:
        parts.append(f"re-sends the {failed:,} failed row(s)")
    if counts.get(UNKNOWN, 0):
        parts.append(f"looks up, then sends if missing, the {counts[UNKNOWN]:,} unknown row(s)")
    return "; ".join(parts)


def exit_meaning(code: int) -> str:
    """A few words on what an exit code means."""
    return EXIT_MEANINGS.get(code, "internal error")


__all__ = [
    "MODE_STATUSES",
    "NOT_SENT_LABEL",
    "Mode",
    "RunSummary",
    "exit_meaning",
    "next_steps",
    "shown_counts",
    "shown_statuses",
]
