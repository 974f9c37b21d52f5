"""Prometheus metrics of the last run, for node_exporter's textfile collector.

``--metrics-file PATH`` (e.g. ``/var/lib/node_exporter/textfile_collector/certimport.prom``)
is rewritten atomically at the end of every run, whatever its exit code: written under a
temporary name that the collector ignores, then renamed. Every value describes the last run,
except ``certimport_last_success_timestamp_seconds``, which is carried over from the previous
file when this run did not finish (a run finishes with exit 0 or 1: every row has an outcome
and the reports are written), so an alert can say "no successful run in 26 h".
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from importer import errors
from importer.outcome import STATUSES, VALID

if TYPE_CHECKING:
    from importer.reports.summary import RunSummary

PREFIX = "certimport"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
FINISHED_CODES = frozenset({errors.EXIT_OK, errors.EXIT_INCOMPLETE})
_SAMPLE = re.compile(rf"^{LAST_SUCCESS}(?:\{{[^}}]*\}})?\s+(\S+)")


def read_last_success(path: str | os.PathLike[str]) -> float | None:
    """The last-success timestamp recorded in an existing metrics file, if any."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                value = float(match.group(1))
            except ValueError:
                return None
            return value if value > 0 else None
    return None


def _value(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _label(value: str) -> str:
    """A label value, escaped as the text format wants (backslash, quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def target_label(summary: RunSummary | None) -> str:
    """The run's target as one label value: the Graph root, and the tenant after a space."""
    if summary is None or not summary.target:
        return ""
    root = summary.target.split("/beta/", 1)[0].split("/v1.0/", 1)[0]
    return f"{root} {summary.tenant}".strip()


_PACE_GAUGES = (
    (
        "settled_per_second",
        "last_run_pace_per_second",
        "Write pace (requests/s) the last run settled on.",
    ),
    (
        "measured_share_per_second",
        "last_run_measured_share_per_second",
        "Writes/s the last run measured as its share at its last congestion event.",
    ),
    (
        "throttle_events",
        "last_run_throttle_events",
        "Congestion events of the last run (429s that came back together count once).",
    ),
    (
        "paused_seconds",
        "last_run_paused_seconds",
        "Seconds every worker of the last run was held back by a Retry-After.",
    ),
    (
        "paused_share",
        "last_run_paused_ratio",
        "Share of the last run's sending time spent paused by a Retry-After.",
    ),
)


def _pace_gauges(pace: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(name, help, value) of what the write pacer found; a value it does not have is left out
    (no pace when unlimited, no measured share when never throttled)."""
    return [
        (name, help_text, pace[key])
        for key, name, help_text in _PACE_GAUGES
        if pace.get(key) is not None
    ]


def render_metrics(
    summary: RunSummary | None,
    *,
    exit_code: int,
    finished: float,
    last_success: float | None,
) -> str:
    """The metrics file's text (Prometheus text format 0.0.4).

    ``summary`` is None when the run ended before it had one (exit 2: bad arguments or input);
    the per-row metrics are left out then.
    """
    lines: list[str] = []
    target = f'target="{_label(target_label(summary))}"'

    def gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {PREFIX}_{name} {help_text}")
        lines.append(f"# TYPE {PREFIX}_{name} gauge")
        for labels, value in samples:
            every = f"{{{labels + ',' if labels else ''}{target}}}"
            lines.append(f"{PREFIX}_{name}{every} {_value(value)}")

    if summary is not None:
        statuses = [s for s in STATUSES if s != VALID or summary.mode != "run"]
        gauge(
            "last_run_rows",
            "Rows of the last run, by outcome (failed includes not_sent).",
            [(f'status="{s}"', summary.counts.get(s, 0)) for s in statuses],
        )
        gauge(
            "last_run_not_sent_rows",
            "Failed rows of the last run that were never sent (the run stopped first).",
            [("", summary.not_sent)],
        )
        gauge(
            "last_run_reconciled_rows",
            "Rows in doubt that the last run found in Graph (no second copy made).",
            [("", summary.reconciled)],
        )
        gauge(
            "last_run_info",
            "The last run's id (as in its journal, summary.json and log lines) and mode.",
            [(f'run_id="{_label(summary.run_id)}",mode="{summary.mode}"', 1)],
        )
        gauge("last_run_records", "Records in the last run's input.", [("", summary.records)])
        gauge(
            "last_run_duration_seconds",
            "Wall-clock duration of the last run.",
            [("", summary.duration_seconds)],
        )
        gauge("last_run_requests", "HTTP requests the last run sent.", [("", summary.requests)])
        gauge(
            "last_run_throttled_requests",
            "Operations Graph answered with 429 in the last run.",
            [("", summary.throttled)],
        )
        gauge("last_run_retries", "Operations the last run sent again.", [("", summary.retries)])
        for name, help_text, value in _pace_gauges(summary.pace):
            gauge(name, help_text, [("", value)])
    gauge("last_run_exit_code", "Exit code of the last run.", [("", exit_code)])
    gauge(
        "last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        [("", round(finished, 3))],
    )
    if last_success is not None:
        gauge(
            "last_success_timestamp_seconds",
            "When a run last finished with exit 0 or 1 (Unix time).",
            [("", round(last_success, 3))],
        )
    return "\n".join(lines) + "\n"


def write_metrics(
    path: str | os.PathLike[str],
    summary: RunSummary | None,
    *,
    exit_code: int,
    now: float | None = None,
) -> None:
    """Write the metrics file atomically (mode 0644, for the collector); raises OSError."""
    target = Path(path)
    finished = time.time() if now is None else now
    succeeded = summary is not None and summary.mode == "run" and exit_code in FINISHED_CODES
    last_success = finished if succeeded else read_last_success(target)
    text = render_metrics(
        summary, exit_code=exit_code, finished=finished, last_success=last_success
    )
    # The collector reads only *.prom files: the temporary name ends otherwise.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def check_metrics_path(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot take the metrics file, or None when it can (checked up front)."""
    parent = Path(path).parent
    if not parent.is_dir():
        return f"--metrics-file {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--metrics-file {path}: directory {parent} is not writable"
    if Path(path).is_dir():
        return f"--metrics-file {path}: is a directory"
    return None


__all__ = ["check_metrics_path", "read_last_success", "render_metrics", "write_metrics"]
