"""The day and month order of local dates, when the file's own cells decide it.

``05.01.2025`` and ``1/5/2025`` read two ways; ``13.01.2025`` and ``1/13/2025`` only one (there
is no 13th month). When neither ``--dayfirst``/``--monthfirst`` nor ``--date-format`` is given,
the first chunk of the file that holds such a decisive cell decides the order for every date of
the file: a first field above 12 means day-first, a second above 12 month-first. A chunk that
holds both kinds decides nothing (the file mixes orders, or is not what it seems): the operator
is asked. A later cell that contradicts the decision cannot be read in the inferred order and is
rejected on its line, naming the line the order was inferred from.

Most files decide in their first chunk. When the first chunk with local dates does not, and the
validator was given its source, the date columns of the file are scanned once, a chunk at a
time (memory stays flat), until a chunk decides; a file that never decides is then known to
be ambiguous, and the operator is asked once for the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from importer.input.notes import Note
from importer.input.plain import utc_stamps

# day.month.year or month/day/year, 4-digit year last, optionally followed by a time
_YEAR_LAST = r"^\s*(\d{1,2})[./-](\d{1,2})[./-]\d{4}(?:$|[ T,])"
How = Literal["given", "format", "inferred", "conflict", "unknown", "pending"]
ChunkCells = Callable[[], Iterable[tuple[pd.DataFrame, np.ndarray]]]  # (raw cells, lines)


@dataclass(frozen=True)
class Evidence:
    """A cell that reads in one order only."""

    dayfirst: bool
    line: int
    column: str  # as named in the file
    cell: str

    def says(self) -> str:
        """``line 7 (NotBefore '13.01.2025 10:32') reads day-first only``."""
        order = "day-first" if self.dayfirst else "month-first"
        return f"line {self.line} ({self.column} {self.cell!r}) reads {order} only"


@dataclass(frozen=True)
class DateOrder:
    """How the day and month of local dates are told apart in one file, and why."""

    dayfirst: bool | None
    how: How
    evidence: Evidence | None = None  # inferred: the cell that decided; conflict: the first
    other: Evidence | None = None  # conflict: the first cell of the other order
    line: int = 0  # unknown: the first line with a date that reads both ways

    @property
    def final(self) -> bool:
        """Whether later chunks can no longer change it."""
        return self.how != "pending"

    def describe(self) -> str:
        """For ``inspect``: ``day-first, inferred from line 7 (NotBefore '13.01.2025')``."""
        order = {True: "day-first", False: "month-first", None: ""}[self.dayfirst]
        if self.how == "given":
            return f"{order} (given)"
        if self.how == "format":
            return "the given --date-format"
        if self.how == "inferred" and self.evidence is not None:
            ev = self.evidence
            return f"{order}, inferred from line {ev.line} ({ev.column} {ev.cell!r})"
        if self.how == "conflict" and self.evidence and self.other:
            return f"unknown: {self.evidence.says()}, {self.other.says()}"
        if self.how == "unknown" or self.line:
            return f"unknown: no date tells the day from the month (the first: line {self.line})"
        return "ISO 8601 (no other date seen)"

    def note(self) -> Note | None:
        """What to tell the operator about it, once for the file (None: nothing to say)."""
        ask = "pass --dayfirst or --monthfirst, or --date-format"
        if self.how == "inferred" and self.evidence is not None:
            ev = self.evidence
            order = "day-first" if self.dayfirst else "month-first"
            return Note(
                ev.line,
                f"dates are read {order}: column {ev.column} holds {ev.cell!r}, which reads "
                f"{order} only (pass --dayfirst or --monthfirst to say it)",
                warning=False,
            )
        if self.how == "conflict" and self.evidence and self.other:
            return Note(
                self.evidence.line,
                f"the date order cannot be inferred: {self.evidence.says()}, "
                f"{self.other.says()}; rows with such dates are rejected: {ask}",
            )
        if self.how == "unknown":
            return Note(
                self.line,
                "dates are not ISO 8601 and none of them tells the day from the month (no "
                f"field above 12): rows with such dates are rejected: {ask}",
            )
        return None


PENDING = DateOrder(None, "pending")


def evidence(cells: pd.Series, lines: np.ndarray, column: str) -> list[Evidence]:
    """The first cell of ``cells`` that reads day-first only and the first month-first only."""
    parts = cells.str.extract(_YEAR_LAST)
    first = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=float)
    second = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=float)
    found = []
    for dayfirst, high, low in ((True, first, second), (False, second, first)):
        decisive = (high > 12) & (high <= 31) & (low >= 1) & (low <= 12)  # NaN: False
        at = np.flatnonzero(decisive)
        if len(at):
            pos = int(at[0])
            found.append(Evidence(dayfirst, int(lines[pos]), column, str(cells.iloc[pos])))
    return found


def year_last(cells: pd.Series) -> np.ndarray:
    """Cells shaped like a date with the year last (those that need an order)."""
    return np.asarray(cells.str.match(_YEAR_LAST).to_numpy(dtype=bool))


def decide(found: Sequence[Evidence]) -> DateOrder | None:
    """The order the evidence of one chunk gives, or None when it has none."""
    days = [e for e in found if e.dayfirst]
    months = [e for e in found if not e.dayfirst]
    if days and months:
        first, other = sorted([min(days, key=_line), min(months, key=_line)], key=_line)
        return DateOrder(None, "conflict", first, other)
    if found:
        chosen = min(found, key=_line)
        return DateOrder(chosen.dayfirst, "inferred", chosen)
    return None


def _line(ev: Evidence) -> int:
    return ev.line


class OrderFinder:
    """Decides the date order of one file as its chunks are validated.

    ``columns`` are the file's date columns (as named in its header); ``rescan`` yields the
    file's chunks again from the start (the pre-scan), or is None when the validator has no
    source: then an undecided chunk is only undecided so far, and a later one may decide.
    """

    def __init__(self, columns: Sequence[str], rescan: ChunkCells | None) -> None:
        self.columns = list(columns)
        self.rescan = rescan
        self.order = PENDING
        self.notes: list[Note] = []

    def observe(self, cells: Mapping[str, tuple[pd.Series, np.ndarray]]) -> DateOrder:
        """The order for a chunk whose year-last date cells (and their lines) are ``cells``.

        Only called while the order is not final, and only for chunks with such cells.
        """
        found = [e for col, (s, lines) in cells.items() for e in evidence(s, lines, col)]
        order = decide(found)
        if order is None:
            first = min(int(lines[0]) for _, lines in cells.values() if len(lines))
            if self.rescan is not None:
                order = self._prescan(first)
            else:  # no source to read on: undecided so far (said once)
                order = DateOrder(None, "pending", line=first)
        note = (order if order.final else DateOrder(None, "unknown", line=order.line)).note()
        if note is not None and (order.final or not self.notes):
            self.notes.append(note)
        self.order = order
        return order

    def _prescan(self, first: int) -> DateOrder:
        """Read the file's date columns a chunk at a time until one chunk decides; a file that
        never does is ``unknown`` from ``first`` on."""
        assert self.rescan is not None
        for raw, lines in self.rescan():
            found: list[Evidence] = []
            for col in self.columns:
                s = raw[col]
                plain, _ = utc_stamps(s)
                where = np.flatnonzero(~plain)
                if len(where):
                    cells = s.iloc[where]
                    found += evidence(cells, lines[where], col)
            order = decide(found)
            if order is not None:
                return order
        return DateOrder(None, "unknown", line=first)
