"""Validate inventory records with pandera: every problem of every row, in one pass.

Cells are first normalised (hex without spaces or colons, upper-case; enum lower-case; dates
parsed and rewritten in UTC with an offset), then checked by a pandera schema built once per
file from the rules of each column.
The row key (thumbprint + device name) must be unique in the whole file, across chunks.

Most cells of most files are already in the form they are sent in. A cheap test on the UTF-8
bytes of a column finds them (a thumbprint of 40 upper-case hex digits, a date such as
``2025-01-05T10:32:00Z``); only the other cells, the suspects, go through normalisation and the
pandera schema. A cell that passes the cheap test is one the full path would keep as it is and
accept, so the results are those of normalising and checking every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from importer.errors import ConfigError
from importer.input import rules
from importer.input.checks import (
    BAD_FORMAT,
    BAD_ISO,
    BAD_LOCAL,
    BAD_ORDER,
    BAD_STATUS,
    CANONICAL_UTC,
    INTEGER,
    ISO,
    OFFSET,
    ORDER_COLUMN,
    ORDER_REASON,
    Check,
    DateOptions,
    build_checks,
    build_schema,
    format_utc,
    strip_hex,
)
from importer.input.dates import DateOrder, OrderFinder, year_last
from importer.input.notes import Note
from importer.input.plain import (
    plain_hex,
    plain_integer,
    plain_oids,
    plain_text,
    replace_cells,
    utc_stamps,
)
from importer.input.profiles import match_header
from importer.input.source import Chunk, Header
from importer.input.typenames import TypeNames
from importer.model import (
    DATE_PROPERTIES,
    DEVICE,
    EXPIRES,
    EXTENDED_KEY_USAGES,
    ISSUED,
    ISSUER,
    KEY_USAGES,
    PROPERTIES,
    REQUIRED_CELLS,
    REVOKE_STATUS,
    REVOKE_STATUSES,
    SERIAL,
    SUBJECT,
    THUMBPRINT,
    UPN,
)


@dataclass(frozen=True)
class Problem:
    """One reason why one record cannot be sent."""

    line: int
    column: str | None  # the column as named in the file, or None for the whole row
    reason: str
    value: str | None = None

    def describe(self, path: str) -> str:
        """``path:line: column X: 'value' reason``: the line an operator reads."""
        where = f"{path}:{self.line}"
        if self.column:
            where += f": column {self.column}"
        return f"{where}: {self.said()}"

    def said(self) -> str:
        """``'value' reason`` (a long value cut to 60 characters), or the reason alone."""
        if self.value is None:
            return self.reason
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f"{shown!r} {self.reason}"


@dataclass(frozen=True)
class ValidatedChunk:
    """A chunk after validation: normalised values, which rows are valid, and why not."""

    chunk: Chunk
    values: pd.DataFrame  # canonical property columns, normalised text ("" = empty)
    valid: np.ndarray  # bool per record
    problems: dict[int, list[Problem]]  # position in chunk -> problems
    # position in chunk -> why the record is not a certificate (not sent, not a problem)
    excluded: dict[int, str] = field(default_factory=dict)

    @property
    def lines(self) -> np.ndarray:
        """Physical line numbers of the chunk's records."""
        return self.chunk.lines


class ChunkSource(Protocol):
    """A file that can be read again from its start (a CSV source, a certutil dump)."""

    def chunks(self) -> Iterator[Chunk]:
        """The file's records, a chunk at a time."""
        ...


class Validator:
    """Validates the chunks of one file in order; remembers keys to catch duplicates.

    ``date_format`` (strptime codes) or ``dayfirst`` (True day-first, False month-first) say
    how dates that are not ISO 8601 are read; without them the file's own dates decide the
    order when one of them can only be read one way (:mod:`importer.input.dates`), else only
    ISO 8601 dates are accepted. ``source``, the file being read, lets the validator read the
    file's date columns ahead when its first dates do not decide. ``strict`` rejects cells that
    hold a .NET type name instead of treating them as empty. What the operator should hear once
    for the file (the order inferred, type names found) is in :attr:`notes`. ``known_order`` is
    the :attr:`date_order` an earlier pass over the same file settled: it is taken as it is
    (the file is not read ahead again, and its note is not repeated).
    """

    def __init__(
        self,
        header: Header,
        *,
        timezone: str = "UTC",
        date_format: str | None = None,
        dayfirst: bool | None = None,
        source: ChunkSource | None = None,
        strict: bool = False,
        known_order: DateOrder | None = None,
    ) -> None:
        self.header = header
        self.profile = header.profile
        self.timezone = timezone
        self.dates = DateOptions(timezone, date_format or None, dayfirst)
        self._zone = ZoneInfo(timezone)
        self.columns = [p for p in PROPERTIES if p in header.columns or p in header.constants]
        # derived properties read their source column (header.columns) through their rule
        derived = match_header(self.profile, header.names).derived
        self.derived = {p: r for p, r in derived.items() if p in header.columns}
        self.types = TypeNames(self.profile.type_names, strict=strict)
        self._finder = self._order_finder(source)
        if self._finder is not None and known_order is not None and known_order.final:
            self._finder.order = known_order
            self._take_order(known_order)
        self._build_checks()
        self._seen = np.empty(0, dtype=np.uint64)  # sorted key hashes of earlier chunks
        self._seen_lines = np.empty(0, dtype=np.int64)  # their first lines, in the same order
        self._check_constants()

    @property
    def notes(self) -> list[Note]:
        """What to tell the operator once for the file, in the order it was found."""
        found = [*self.types.notes]
        if self._finder is not None:
            found += self._finder.notes
        return sorted(found, key=lambda n: n.line)

    @property
    def date_order(self) -> DateOrder:
        """How day and month are told apart: given, inferred (and from which line), unknown."""
        if self.dates.date_format:
            return DateOrder(None, "format")
        if self._finder is None:
            return DateOrder(self.dates.dayfirst, "given")
        return self._finder.order

    def _order_finder(self, source: ChunkSource | None) -> OrderFinder | None:
        """The finder of the date order, when the settings leave it to the file."""
        if self.dates.date_format or self.dates.dayfirst is not None:
            return None
        columns = [self.header.columns[p] for p in DATE_PROPERTIES if p in self.header.columns]
        if source is None:
            return OrderFinder(columns, None)
        return OrderFinder(columns, lambda: ((c.raw, c.lines) for c in source.chunks()))

    def _build_checks(self) -> None:
        self.checks = build_checks(
            self.columns, self.timezone, dates=self.dates, profile=self.profile
        )
        for col in (DEVICE, UPN, KEY_USAGES, ISSUER, SUBJECT):  # EKUs have their own check
            if (
                col in self.checks
                and self._typed(col)
                and (self.types.strict or col in REQUIRED_CELLS)
            ):
                reason = self.types.reason(self.header.columns[col])
                self.checks[col].insert(0, Check(reason, lambda s: s != rules.DOTNET_TYPE))
        self.schema = build_schema(self.checks)

    def _typed(self, prop: str) -> bool:
        """Whether ``prop``'s cells may be .NET type names: text (an optional one, an issuer or
        a subject), read from a column of the file."""
        return (
            prop in (DEVICE, UPN, KEY_USAGES, EXTENDED_KEY_USAGES, ISSUER, SUBJECT)
            and prop in self.header.columns
            and prop not in self.derived
        )

    def _check_constants(self) -> None:
        """A constant from the settings that Graph would refuse is a usage error, up front."""
        if not self.header.constants:
            return
        raw = pd.DataFrame({name: [""] for name in dict.fromkeys(self.header.names)}, dtype=str)
        # one row of empty cells and the constants (its empty thumbprint registers no key)
        vc = self.validate(Chunk(raw, np.array([1], dtype=np.int64)))
        wrong = [
            f"[columns] {p} = {{ value = {self.header.constants[p]!r} }} {problem.reason}"
            for problem in vc.problems.get(0, [])
            for p in self.header.constants
            if problem.column == self.header.label(p)
        ]
        if wrong:
            raise ConfigError(wrong)

    def _cells(self, chunk: Chunk, prop: str) -> pd.Series:
        """The cells of ``prop`` as the checks see them: the profile's empty markers empty,
        derived cells made, .NET type names in optional columns cleaned."""
        raw = chunk.raw
        if prop in self.header.constants:
            return pd.Series(self.header.constants[prop], index=raw.index, dtype=str)
        column = self.header.columns[prop]
        s = raw[column]
        empty = self.profile.empty
        if empty:
            s = s.mask(s.str.strip().isin(empty), "")
        if prop in self.derived:
            return self.derived[prop].apply(s)
        if self._typed(prop):
            s = self.types.clean(s, column, chunk.lines, required=prop in REQUIRED_CELLS)
        return s

    def _normalise(
        self, chunk: Chunk
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(normalised cells, positions whose cells may fail a check, epoch seconds of dates).

        Each column's cheap test picks the cells that need normalising; the other cells are
        kept as they are, and pass every check of their column. Dates come last: the chunk's
        date cells may first have to decide the order of day and month.
        """
        columns: dict[str, pd.Series] = {}
        suspects: dict[str, np.ndarray] = {}
        parsed: dict[str, np.ndarray] = {}
        for col in self.columns:
            s = self._cells(chunk, col)
            if col == REVOKE_STATUS and self.profile.revoke_status:
                # few distinct values: the table maps each once; check what it did not map
                s = rules.map_distinct(
                    s, lambda c: self.profile.revoke_value(c) if c.strip() else "", BAD_STATUS
                )
                columns[col] = s
                suspects[col] = np.flatnonzero(~s.isin(REVOKE_STATUSES).to_numpy(dtype=bool))
                continue
            if col in DATE_PROPERTIES:
                plain, seconds = utc_stamps(s)
                stamps = np.full(len(s), np.nan)
                stamps[plain] = seconds[plain] * 1_000_000 / 1e6  # as _store computes them
                parsed[col] = stamps
            else:
                plain = self._plain(col, s)
            suspects[col] = np.flatnonzero(~plain)
            columns[col] = s
        dates = {c: (columns[c], suspects[c]) for c in parsed if len(suspects[c])}
        if dates and self._finder is not None and not self._finder.order.final:
            self._decide_order(chunk, dates)
        for col in self.columns:
            where = suspects[col]
            if (col == REVOKE_STATUS and self.profile.revoke_status) or not len(where):
                continue
            s = columns[col]
            cells = s.iloc[where].reset_index(drop=True)
            if col in DATE_PROPERTIES:
                cells, stamps = self._parse_dates(cells.str.strip())
                parsed[col][where] = stamps
            else:
                cells = self._normalise_cells(col, cells)
            columns[col] = replace_cells(s, where, cells)
        frame = pd.DataFrame(columns, index=chunk.raw.index, copy=False)
        return frame, suspects, parsed

    def _decide_order(self, chunk: Chunk, dates: dict[str, tuple[pd.Series, np.ndarray]]) -> None:
        """Let the chunk's date cells that need an order decide it (or the file's, read ahead)."""
        assert self._finder is not None
        needing: dict[str, tuple[pd.Series, np.ndarray]] = {}
        for col, (s, where) in dates.items():
            cells = s.iloc[where]
            shaped = year_last(cells)
            if shaped.any():
                needing[self.header.label(col)] = (cells[shaped], chunk.lines[where[shaped]])
        if not needing:
            return
        if self._take_order(self._finder.observe(needing)):
            self._build_checks()

    def _take_order(self, order: DateOrder) -> bool:
        """Read dates in ``order`` from now on, when it was inferred; whether it was."""
        if order.how != "inferred" or order.evidence is None:
            return False
        self.dates = replace(self.dates, dayfirst=order.dayfirst, inferred_from=order.evidence.line)
        return True

    def _plain(self, col: str, s: pd.Series) -> np.ndarray:
        """Cells of ``col`` that normalising keeps as they are and that pass its checks."""
        if col == THUMBPRINT:
            return plain_hex(s, exact=True)
        if col == SERIAL:
            return plain_hex(s, exact=False)
        if col == REVOKE_STATUS:
            return np.asarray(s.isin(REVOKE_STATUSES).to_numpy(dtype=bool))
        if col == KEY_USAGES:
            return plain_integer(s)
        if col == EXTENDED_KEY_USAGES:
            return plain_oids(s)
        return plain_text(s, required=col in REQUIRED_CELLS)

    def _normalise_cells(self, col: str, s: pd.Series) -> pd.Series:
        """Normalise cells of ``col`` (not a date, not a status with a table)."""
        if col in (THUMBPRINT, SERIAL):
            return strip_hex(s)
        if col == REVOKE_STATUS:
            return s.str.strip().str.lower()
        if col == KEY_USAGES:
            s = s.str.strip()
            return rules.apply_where(s, (s == "") | s.str.fullmatch(INTEGER), rules.key_usage_value)
        if s.str.isspace().any():
            s = s.where(~s.str.isspace(), "")
        if col == EXTENDED_KEY_USAGES:
            s = rules.apply_where(s, (s == "") | s.str.fullmatch(rules.OID_LIST), rules.eku_value)
        return s

    def _parse_dates(self, s: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """Parse date cells: (UTC text with offset or a sentinel, epoch seconds or NaN)."""
        text = s.to_numpy(dtype=object)
        shaped = s.str.fullmatch(ISO).to_numpy(dtype=bool)
        offset = s.str.contains(OFFSET, regex=True).to_numpy(dtype=bool)
        out = np.full(len(s), BAD_FORMAT, dtype=object)
        out[shaped] = BAD_ISO  # replaced below by every shaped cell that parses
        out[text == ""] = ""
        stamps = np.full(len(s), np.nan)
        for aware in (True, False):
            positions = np.flatnonzero(shaped & (offset == aware))
            if not len(positions):
                continue
            cells = s.iloc[positions].str.replace(",", ".", regex=False).str.upper()
            fractions = None
            has_fraction = cells.str.contains(".", regex=False)
            if has_fraction.any():
                # Parse at most microseconds (nanoseconds end in 2262; 9999-12-31 is common)
                # and carry the written digits through as text.
                fractions = np.where(
                    has_fraction.to_numpy(dtype=bool),
                    cells.str.replace(r"^[^.]*\.(\d+).*$", r"\1", regex=True).to_numpy(
                        dtype=object
                    ),
                    "",
                )
                cells = cells.str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
            if aware:
                parsed = pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
            else:
                parsed = pd.to_datetime(cells, format="ISO8601", errors="coerce")
            self._store(positions, parsed, cells, text, out, stamps, fractions)
        local = np.flatnonzero(~shaped & (text != ""))
        if len(local):
            cells = s.iloc[local]
            parsed, unknown = rules.parse_local_dates(
                cells, dayfirst=self.dates.dayfirst, date_format=self.dates.date_format
            )
            out[local[unknown]] = BAD_ORDER
            self._store(local, parsed, None, text, out, stamps)
        # most cells are sent as written: replace only the others (cheaper than a new column)
        changed = out != text
        if not changed.any():
            return s, stamps
        result = s.copy()
        result[changed] = out[changed]
        return result, stamps

    def _store(
        self,
        positions: np.ndarray,
        parsed: pd.Series,
        cells: pd.Series | None,
        text: np.ndarray,
        out: np.ndarray,
        stamps: np.ndarray,
        fractions: np.ndarray | None = None,
    ) -> None:
        """Write parsed dates (aware, or naive in the zone) as UTC text and epoch seconds."""
        if parsed.dt.tz is None:
            naive = parsed
            parsed = naive.dt.tz_localize(self._zone, ambiguous="NaT", nonexistent="NaT")
            out[positions[(parsed.isna() & naive.notna()).to_numpy()]] = BAD_LOCAL
        ok = parsed.notna().to_numpy()
        if not ok.any():
            return
        good = parsed[ok].dt.tz_convert("UTC")
        where = positions[ok]
        if cells is not None:
            # A cell already written as UTC with whole seconds is sent as it is.
            shaped = cells[ok].str.fullmatch(CANONICAL_UTC).to_numpy(dtype=bool)
            unchanged = cells[ok].to_numpy(dtype=object) == text[where]  # written as it is sent
            canonical = np.logical_and(shaped, unchanged)
        else:
            canonical = np.zeros(len(where), dtype=bool)
        out[where[canonical]] = text[where[canonical]]
        if not canonical.all():
            digits = None if fractions is None else fractions[ok][~canonical]
            out[where[~canonical]] = format_utc(good[~canonical], digits)
        seconds = good.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        stamps[where] = seconds.astype(np.int64) / 1e6

    def validate(self, chunk: Chunk) -> ValidatedChunk:
        """Normalise and check one chunk; problems are keyed by position in the chunk."""
        values, suspects, parsed = self._normalise(chunk)
        problems: dict[int, list[Problem]] = {}
        lines = chunk.lines

        def add(positions: np.ndarray, column: str, reason: str, cells: list[str] | None) -> None:
            where = positions.tolist()
            found = lines[positions].tolist()
            shown = cells if cells is not None else [None] * len(where)
            for pos, line, value in zip(where, found, shown, strict=True):
                problems.setdefault(pos, []).append(Problem(int(line), column, reason, value))

        issued, expires = parsed.get(ISSUED), parsed.get(EXPIRES)
        late = np.zeros(len(values), dtype=bool)
        if issued is not None and expires is not None:
            late = issued > expires  # NaN compares False
        # pandera checks the rows that may fail: a suspect cell in any column, or dates out
        # of order. The other rows' cells all passed their column's cheap test.
        rows = np.unique(np.concatenate([np.flatnonzero(late), *suspects.values()]))
        if len(rows):
            frame = values.iloc[rows].copy()
            frame[ORDER_COLUMN] = late[rows]
            try:
                self.schema.validate(frame, lazy=True)
            except SchemaErrors as exc:
                self._collect(exc, chunk, add)
        for pos, fault in chunk.faults.items():
            # a record that is not a row: its cells mean nothing, only the fault is reported
            problems[pos] = [Problem(int(lines[pos]), fault.column, fault.reason, fault.value)]
        excluded = self._excluded(chunk)
        for pos in excluded:
            problems.pop(pos, None)  # a denied request has no hash: that is no problem of it
        self._check_keys(values, lines, problems, {**chunk.faults, **excluded})
        valid = np.ones(len(values), dtype=bool)
        valid[list(excluded)] = False
        if problems:
            valid[list(problems)] = False
            for plist in problems.values():
                plist.sort(key=lambda p: (p.column is None, p.column or ""))
        return ValidatedChunk(chunk, values, valid, problems, excluded)

    def _excluded(self, chunk: Chunk) -> dict[int, str]:
        """The records the profile says are not certificates (a denied request), and why."""
        out: dict[int, str] = {}
        for prop in self.profile.exclude:
            column = self.header.columns.get(prop)
            if column is None:
                continue
            cells = chunk.raw[column]
            reasons = {c: self.profile.excluded(prop, c) for c in cells.unique()}
            why = cells.map(reasons)
            for pos in np.flatnonzero(why.notna().to_numpy()).tolist():
                if pos not in chunk.faults:
                    out.setdefault(pos, str(why.iloc[pos]))
        return out

    def _collect(
        self,
        exc: SchemaErrors,
        chunk: Chunk,
        add: Callable[[np.ndarray, str, str, list[str] | None], None],
    ) -> None:
        """Turn pandera's failure cases (indexed by position in the chunk) into problems."""
        cases = exc.failure_cases
        late: list[int] = []
        failing: dict[tuple[str, str], list[int]] = {}
        for context, column, check, index in zip(
            cases["schema_context"], cases["column"], cases["check"], cases["index"], strict=True
        ):
            if index is None or pd.isna(index):
                continue
            if context == "DataFrameSchema" or column not in self.checks:
                late.append(int(index))  # pandera lists a row-level failure under each column
                continue
            failing.setdefault((str(column), str(check)), []).append(int(index))
        if late:
            add(np.unique(late), self.header.label(ISSUED), ORDER_REASON, None)
        # each column's checks in turn, in the order they were declared
        for col in self.columns:
            for rule in self.checks[col]:
                found = failing.get((col, rule.reason))
                if found:
                    where = np.array(sorted(set(found)), dtype=np.int64)
                    add(
                        where, self.header.label(col), rule.reason, self._written(chunk, col, where)
                    )

    def _written(self, chunk: Chunk, prop: str, positions: np.ndarray) -> list[str]:
        """The cells of ``prop`` at ``positions`` as written in the file (or its constant)."""
        if prop in self.header.constants:
            return [self.header.constants[prop]] * len(positions)
        cells = chunk.raw[self.header.columns[prop]].iloc[positions].tolist()
        return [str(cell) for cell in cells]

    def _check_keys(
        self,
        values: pd.DataFrame,
        lines: np.ndarray,
        problems: dict[int, list[Problem]],
        faults: Mapping[int, Any],
    ) -> None:
        thumb = pa.array(values[THUMBPRINT].array, type=pa.large_string())
        usable = np.asarray(pc.equal(pc.utf8_length(thumb), 40).to_numpy(zero_copy_only=False))
        if faults:
            usable[list(faults)] = False
        positions = np.flatnonzero(usable)
        if not len(positions):
            return
        keys = thumb
        if DEVICE in values:
            # a usable thumbprint has 40 characters: the joined text tells the key apart
            device = pa.array(values[DEVICE].array, type=pa.large_string())
            keys = pc.binary_join_element_wise(keys, device, pa.scalar("", pa.large_string()))
        if len(positions) < len(usable):
            keys = keys.take(positions)
        hashes = pd.util.hash_array(keys.to_numpy(zero_copy_only=False), categorize=False)
        key_lines = lines[positions].astype(np.int64)
        # this chunk, sorted: runs of equal hashes, and the first occurrence of each
        order = np.argsort(hashes)
        ranked = hashes[order]
        starts = np.ones(len(ranked), dtype=bool)
        starts[1:] = ranked[1:] != ranked[:-1]
        first_of = np.arange(len(hashes))  # index of each key's first occurrence
        if not starts.all():
            firsts = np.minimum.reduceat(order, np.flatnonzero(starts))
            first_of[order] = firsts[np.cumsum(starts) - 1]
        # earlier chunks: one sorted array, searched with the sorted hashes of this chunk
        seen, seen_lines = self._seen, self._seen_lines
        at = np.empty(len(hashes), dtype=np.int64)
        at[order] = np.searchsorted(seen, ranked)
        before = np.zeros(len(hashes), dtype=bool)
        inside = at < len(seen)
        before[inside] = seen[at[inside]] == hashes[inside]
        later = first_of != np.arange(len(hashes))
        dupe = before | later
        if dupe.any():
            column = self.header.label(THUMBPRINT)
            first_lines = key_lines[first_of]
            if before.any():
                first_lines[before] = seen_lines[at[before]]
            for pos, first in zip(positions[dupe], first_lines[dupe], strict=True):
                problems.setdefault(int(pos), []).append(
                    Problem(
                        int(lines[pos]),
                        column,
                        f"duplicates line {int(first)}: the same certificate on the same device",
                    )
                )
        new = ~before & ~later
        if new.any():
            fresh = order[new[order]]  # the new keys, in hash order
            slots = np.searchsorted(seen, hashes[fresh])
            self._seen = np.insert(seen, slots, hashes[fresh])
            self._seen_lines = np.insert(seen_lines, slots, key_lines[fresh])
