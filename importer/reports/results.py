"""Result reports, streamed in input order and published atomically.

``results.csv`` ties every input record to its outcome; ``failed.csv`` holds the input's own
cells for every record not created, ready to be fixed and fed back; ``summary.json`` has the
counts. Files are written as ``.name.partial`` and renamed when complete, readable by the owner
only (they hold user principal names).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from importer.outcome import INVALID_ROW, NOT_SENT, REJECTED, SETTLED, VALID, Outcome

if TYPE_CHECKING:
    from importer.input.schema import Problem

RESULT_COLUMNS = (
    "line",
    "status",
    "id",
    "certificateThumbprint",
    "managedDeviceDisplayName",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "request_id",
)
ERROR_COLUMN = "import_error"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_DONE = SETTLED | {VALID}  # rows that need nothing more: not written to failed.csv


def neutralise(cell: str) -> str:
    """Defuse a cell a spreadsheet would run as a formula (prefix it with an apostrophe)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _neutralised(cells: Sequence[str]) -> list[str]:
    starts = _FORMULA_STARTS
    return [("'" + c) if c[:1] in starts else c for c in cells]


_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed", eol="\r\n")


def _neutralised_arrow(cells: Sequence[str] | pa.Array) -> pa.Array:
    """:func:`neutralise` for a whole column, vectorised."""
    column = cells if isinstance(cells, pa.Array) else pa.array(cells, pa.string())
    risky = pc.match_substring_regex(column, r"^[=+\-@\t\r]")
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) so that only the owner can enter the last level."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _open_private(path: Path) -> IO[str]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return open(fd, "w", encoding="utf-8", newline="")


def write_private_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (mode 0600)."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


_LINE_NUMBER = re.compile(r"\bline \d+")


class ErrorDigest:
    """Rows not done, counted by (status, error code), with the first few lines of each.

    A row rejected by validation is counted once per problem, by column and reason
    (``certificateThumbprint: is not a SHA-1 thumbprint``), so that six bad dates and five bad
    thumbprints show as two lines rather than one ``InvalidRow``. Bounded: at most
    ``max_groups`` distinct groups are kept apart; later ones are counted under ``other``.
    """

    def __init__(self, *, examples: int = 3, max_groups: int = 200) -> None:
        self.examples = examples
        self.max_groups = max_groups
        self.groups: dict[tuple[str, str], tuple[list[int], list[tuple[int, str]]]] = {}

    def add(self, line: int, outcome: Outcome) -> None:
        """Count one row's outcome (rows done, excluded or never sent are no errors)."""
        if outcome.status in SETTLED or outcome.error_code == NOT_SENT:
            return
        self._count((outcome.status, outcome.error_code or "-"), line, outcome.error_message)

    def add_problems(self, line: int, problems: Sequence[Problem]) -> None:
        """Count one invalid row by each of its problems' column and reason."""
        for problem in problems:
            # "duplicates line 7" and "duplicates line 9" are one kind of problem
            reason = _LINE_NUMBER.sub("an earlier line", problem.reason)
            code = f"{problem.column}: {reason}" if problem.column else reason
            self._count((REJECTED, code), line, problem.said())

    def _count(self, key: tuple[str, str], line: int, message: str) -> None:
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= self.max_groups:
                key = (key[0], "other")
                group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = ([0], [])
        group[0][0] += 1
        if len(group[1]) < self.examples:
            group[1].append((line, message))

    def top(self, limit: int = 10) -> list[tuple[str, str, int, list[tuple[int, str]]]]:
        """The ``limit`` largest groups: (status, code, rows, [(line, message), ...])."""
        ranked = sorted(self.groups.items(), key=lambda item: -item[1][0][0])
        return [(s, c, n[0], list(ex)) for (s, c), (n, ex) in ranked[:limit]]

    def as_dicts(self, limit: int = 10) -> list[dict[str, Any]]:
        """:meth:`top` for summary.json: ``{status, code, rows, examples: [[line, text]]}``."""
        return [
            {"status": s, "code": c, "rows": n, "examples": [list(e) for e in ex]}
            for s, c, n, ex in self.top(limit)
        ]

    def __repr__(self) -> str:
        return f"ErrorDigest(groups={len(self.groups)})"


class AtomicCsv:
    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.handle = _open_private(self.partial)
        self.writer = csv.writer(self.handle, lineterminator="\r\n")
        self.writer.writerow(header)
        self.rows = 0

    def publish(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


class ReportWriter:
    """Writes results.csv and failed.csv chunk by chunk, in input order."""

    def __init__(self, out_dir: Path, input_header: Sequence[str]) -> None:
        self.out_dir = out_dir
        self._made_dir = not out_dir.exists()  # discard() removes it again, if still empty
        make_private_dir(out_dir)
        # A re-fed failed.csv already has an import_error column: replace it, never stack them.
        self._keep = [
            i for i, name in enumerate(input_header) if name.strip().casefold() != ERROR_COLUMN
        ]
        failed_header = [input_header[i] for i in self._keep] + [ERROR_COLUMN]
        self._results = AtomicCsv(out_dir / "results.csv", RESULT_COLUMNS)
        self._failed = AtomicCsv(out_dir / "failed.csv", failed_header)
        self.errors = ErrorDigest()

    def write(
        self,
        lines: Sequence[int],
        outcomes: Sequence[Outcome],
        thumbprints: Sequence[str],
        devices: Sequence[str],
        raw: pd.DataFrame,
        *,
        problems: Mapping[int, Sequence[Problem]] | None = None,
    ) -> None:
        """Append one chunk: its records' lines, outcomes, keys and original cells (and the
        validation problems of its invalid records, by position, for the error digest)."""
        statuses = [o.status for o in outcomes]
        first = outcomes[0] if outcomes else None
        same = first is not None and all(o is first for o in outcomes)  # e.g. all `valid`

        def column(attr: str, kind: pa.DataType) -> pa.Array:
            if same:
                return pa.repeat(pa.scalar(getattr(first, attr), kind), len(outcomes))
            return pa.array([getattr(o, attr) for o in outcomes], kind)

        # Arrow writes CSV in C++: a million result rows in a fraction of a second.
        table = pa.table(
            {
                "line": pa.array(lines, pa.int64()),
                "status": pa.array(statuses, pa.string()),
                "id": column("id", pa.string()),
                "certificateThumbprint": _neutralised_arrow(thumbprints),
                "managedDeviceDisplayName": _neutralised_arrow(devices),
                "http_status": column("http_status", pa.int64()),
                "error_code": _neutralised_arrow(column("error_code", pa.string())),
                "error_message": _neutralised_arrow(column("error_message", pa.string())),
                "attempts": column("attempts", pa.int64()),
                "request_id": column("request_id", pa.string()),
            }
        )
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, _CSV_OPTIONS)
        self._results.handle.write(sink.getvalue().to_pybytes().decode("utf-8"))
        self._results.rows += len(statuses)
        failed_positions = [i for i, s in enumerate(statuses) if s not in _DONE]
        if failed_positions:
            for i in failed_positions:
                if problems and i in problems and outcomes[i].error_code == INVALID_ROW:
                    self.errors.add_problems(lines[i], problems[i])
                else:
                    self.errors.add(lines[i], outcomes[i])
            errors = _neutralised([outcomes[i].import_error() for i in failed_positions])
            cells = raw.iloc[failed_positions, self._keep].itertuples(index=False, name=None)
            self._failed.writer.writerows(
                [*row, error] for row, error in zip(cells, errors, strict=True)
            )
            self._failed.rows += len(failed_positions)

    def publish(self, summary: dict[str, Any], *, html: str | None = None) -> None:
        """Make the reports visible: both CSVs, report.html, then summary.json last."""
        self._results.publish()
        self._failed.publish()
        if html is not None:
            write_private_atomic(self.out_dir / "report.html", html.encode("utf-8"))
        write_private_atomic(
            self.out_dir / "summary.json",
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n",
        )

    def discard(self) -> None:
        """Drop the partial files (the run failed before any outcome was known), and the
        report directory when this writer made it and nothing else is in it."""
        self._results.discard()
        self._failed.discard()
        if self._made_dir:
            with contextlib.suppress(OSError):  # not empty: something else is kept there
                self.out_dir.rmdir()
