"""Validate inventory records with pandera: every problem of every row, in one pass.

Cells are first normalised (hex without spaces or colons, upper-case; enum lower-case; dates
parsed and rewritten in UTC with an offset), then checked by a pandera schema built once. The
row key (thumbprint + device name) must be unique in the whole file, across chunks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from importer import rules
from importer.errors import ConfigError
from importer.model import (
    DATE_PROPERTIES,
    DEVICE,
    EXPIRES,
    EXTENDED_KEY_USAGES,
    INT32_MAX,
    INT32_MIN,
    ISSUED,
    KEY_PROPERTIES,
    KEY_USAGES,
    PROPERTIES,
    REQUIRED_CELLS,
    REVOKE_STATUS,
    REVOKE_STATUSES,
    SERIAL,
    THUMBPRINT,
)
from importer.profiles import Profile
from importer.source import Chunk, Header

# Invisible marks that Windows' certificate dialog copies along with a thumbprint.
_HEX_NOISE = r"[\s:\u200e\u200f\ufeff]"
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?"
    r"(?:Z|z|[+-]\d{2}:?\d{2})?$"
)
_CANONICAL_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
_OFFSET = r"(?:Z|z|[+-]\d{2}:?\d{2})$"
_CONTROL = r"[\x00-\x1f\x7f]"
_BAD_FORMAT = "\x00format"  # sentinels for date cells that could not be parsed;
_BAD_LOCAL = "\x00local"  # the reported value is always taken from the original cell
_BAD_ORDER = "\x00order"
_BAD_STATUS = "\x00status"
_SENTINELS = [_BAD_STATUS, rules.BAD_EKU, rules.DOTNET_TYPE]
_ORDER_COLUMN = "_issued_after_expiry"
_INTEGER = r"[+-]?\d{1,12}"


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
        if self.value is not None:
            shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
            return f"{where}: {shown!r} {self.reason}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ValidatedChunk:
    """A chunk after validation: normalised values, which rows are valid, and why not."""

    chunk: Chunk
    values: pd.DataFrame  # canonical property columns, normalised text ("" = empty)
    valid: np.ndarray  # bool per record
    problems: dict[int, list[Problem]]  # position in chunk -> problems

    @property
    def lines(self) -> np.ndarray:
        """Physical line numbers of the chunk's records."""
        return self.chunk.lines


def _not_empty(s: pd.Series) -> pd.Series:
    return s != ""


def _empty_or(pattern: str):  # type: ignore[no-untyped-def]
    def check(s: pd.Series) -> pd.Series:
        return (s == "") | s.str.fullmatch(pattern)

    return check


def _int32(s: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(s.where(s.str.fullmatch(r"[+-]?\d{1,12}"), None), errors="coerce")
    in_range = (numbers >= INT32_MIN) & (numbers <= INT32_MAX)
    return (s == "") | in_range.fillna(False).astype(bool)


def _no_control(s: pd.Series) -> pd.Series:
    return ~s.str.contains(_CONTROL, regex=True)


@dataclass(frozen=True)
class DateOptions:
    """How dates without an ISO 8601 shape are read (see :func:`rules.parse_local_dates`)."""

    timezone: str = "UTC"
    date_format: str | None = None
    dayfirst: bool | None = None

    def unreadable(self) -> str:
        """The reason given for a date cell that cannot be read."""
        if self.date_format:
            return f"is neither an ISO 8601 date-time nor in the format {self.date_format!r}"
        if self.dayfirst is True:
            return "is neither an ISO 8601 date-time nor a day-first date such as 05.01.2025 10:32"
        if self.dayfirst is False:
            return (
                "is neither an ISO 8601 date-time nor a month-first date such as 1/5/2025 10:32 AM"
            )
        return "is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z"


def _status_error(profile: Profile | None) -> str:
    if profile is None or not profile.revoke_status:
        return f"is not a revoke status: use one of {', '.join(REVOKE_STATUSES)}"
    table = ", ".join(f"{k} -> {v}" for k, v in profile.revoke_status.items())
    return f"is not a status known to profile {profile.name} ({table})"


def _no_control_but_sentinels(s: pd.Series) -> pd.Series:
    return _no_control(s) | s.isin(_SENTINELS)


def build_schema(
    columns: list[str],
    timezone: str,
    *,
    dates: DateOptions | None = None,
    profile: Profile | None = None,
) -> pa.DataFrameSchema:
    """The pandera schema for normalised records that have ``columns``."""
    dates = dates or DateOptions(timezone)
    checks: dict[str, list[pa.Check]] = {c: [] for c in columns}

    def add(col: str, check: pa.Check) -> None:
        if col in checks:
            checks[col].append(check)

    for col in REQUIRED_CELLS:
        add(col, pa.Check(_not_empty, error="is required and empty", name="required"))
    add(
        THUMBPRINT,
        pa.Check(
            _empty_or(r"[0-9A-F]{40}"),
            error="is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons",
        ),
    )
    add(
        SERIAL,
        pa.Check(
            _empty_or(r"[0-9A-F]{1,40}"),
            error="is not a serial number: 1 to 40 hex digits after removing spaces and colons",
        ),
    )
    add(
        REVOKE_STATUS,
        pa.Check(lambda s: (s == "") | s.isin(REVOKE_STATUSES), error=_status_error(profile)),
    )
    add(
        KEY_USAGES,
        pa.Check(_int32, error="is not an integer in Int32 range (-2147483648..2147483647)"),
    )
    add(
        EXTENDED_KEY_USAGES,
        pa.Check(
            lambda s: s != rules.BAD_EKU,
            error="is not a list of EKU OIDs or known EKU names such as Client Authentication",
        ),
    )
    add(
        EXTENDED_KEY_USAGES,
        pa.Check(
            lambda s: s != rules.DOTNET_TYPE,
            error="is a .NET type name, not a list of EKUs: in PowerShell export "
            "EnhancedKeyUsageList with -join ', '",
        ),
    )
    for col in DATE_PROPERTIES:
        add(col, pa.Check(lambda s: s != _BAD_FORMAT, error=dates.unreadable()))
        add(
            col,
            pa.Check(
                lambda s: s != _BAD_ORDER,
                error="is not ISO 8601 and its day and month order is unknown: pass --dayfirst "
                "or --monthfirst, or --date-format",
            ),
        )
        add(
            col,
            pa.Check(
                lambda s: s != _BAD_LOCAL,
                error=f"does not exist or is ambiguous as a local time in {timezone} "
                "(clock change); give the offset explicitly",
            ),
        )
    for col in columns:
        if col in (EXTENDED_KEY_USAGES, REVOKE_STATUS):  # their sentinels have their own check
            checks[col].append(
                pa.Check(_no_control_but_sentinels, error="contains a control character")
            )
        elif col not in DATE_PROPERTIES:
            checks[col].append(pa.Check(_no_control, error="contains a control character"))
    return pa.DataFrameSchema(
        {c: pa.Column(str, checks[c], nullable=False) for c in columns},
        checks=[
            pa.Check(
                lambda df: ~df[_ORDER_COLUMN],
                error="issuance date is after the expiration date",
                name="order",
            )
        ],
        strict=False,
        coerce=False,
    )


def _strip_hex(s: pd.Series) -> pd.Series:
    messy = ~s.str.fullmatch(r"[0-9A-Fa-f]*")
    if messy.any():  # most files are clean: strip only the cells that need it
        s = s.copy()
        s[messy] = s[messy].str.replace(_HEX_NOISE, "", regex=True)
    return s.str.upper()


def _format_utc(values: pd.Series, fractions: np.ndarray | None = None) -> np.ndarray:
    """ISO 8601 in UTC with a ``Z``: whole seconds, else up to 7 fractional digits.

    ``fractions`` (the digits after the point, as written) carries precision the parsed values
    may lack: offsets are whole minutes, so the fraction is the same in UTC.
    """
    naive = values.dt.tz_localize(None).to_numpy()
    whole = np.char.add(np.datetime_as_string(naive, unit="s"), "Z").astype(object)
    if fractions is not None:
        digits = [f[:7].rstrip("0") for f in fractions]
        return np.array(
            [f"{w[:-1]}.{d}Z" if d else w for w, d in zip(whole, digits, strict=True)],
            dtype=object,
        )
    unit: Any = np.datetime_data(naive.dtype)[0]
    fractional = naive != naive.astype("datetime64[s]")
    if fractional.any():
        full = np.datetime_as_string(naive[fractional], unit=unit)
        whole[fractional] = [f"{t[:19]}.{t[20:27].rstrip('0')}Z" for t in full]
    return whole


class Validator:
    """Validates the chunks of one file in order; remembers keys to catch duplicates.

    ``date_format`` (strptime codes) or ``dayfirst`` (True day-first, False month-first) say
    how dates that are not ISO 8601 are read; without them only ISO 8601 dates are accepted.
    """

    def __init__(
        self,
        header: Header,
        *,
        timezone: str = "UTC",
        date_format: str | None = None,
        dayfirst: bool | None = None,
    ) -> None:
        self.header = header
        self.profile = header.profile
        self.timezone = timezone
        self.dates = DateOptions(timezone, date_format or None, dayfirst)
        self._zone = ZoneInfo(timezone)
        self.columns = [p for p in PROPERTIES if p in header.columns or p in header.constants]
        self.schema = build_schema(self.columns, timezone, dates=self.dates, profile=self.profile)
        self._seen = np.empty(0, dtype=np.uint64)  # sorted key hashes of earlier chunks
        self._seen_lines = np.empty(0, dtype=np.int64)  # their first lines, in the same order
        self._check_constants()

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

    def _cells(self, raw: pd.DataFrame, prop: str) -> pd.Series:
        if prop in self.header.constants:
            return pd.Series(self.header.constants[prop], index=raw.index, dtype=str)
        s = raw[self.header.columns[prop]]
        empty = self.profile.empty
        if empty:
            s = s.mask(s.str.strip().isin(empty), "")
        return s

    def _normalise(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = pd.DataFrame({p: self._cells(raw, p) for p in self.columns}, index=raw.index)
        parsed: dict[str, np.ndarray] = {}
        for col in self.columns:
            s = frame[col]
            if col in (THUMBPRINT, SERIAL):
                frame[col] = _strip_hex(s)
            elif col == REVOKE_STATUS:
                if self.profile.revoke_status:
                    frame[col] = rules.map_distinct(
                        s, lambda c: self.profile.revoke_value(c) if c.strip() else "", _BAD_STATUS
                    )
                else:
                    frame[col] = s.str.strip().str.lower()
            elif col == KEY_USAGES:
                s = s.str.strip()
                frame[col] = rules.apply_where(
                    s, (s == "") | s.str.fullmatch(_INTEGER), rules.key_usage_value
                )
            elif col in DATE_PROPERTIES:
                frame[col], parsed[col] = self._parse_dates(s.str.strip())
            else:
                if s.str.isspace().any():
                    s = s.where(~s.str.isspace(), "")
                if col == EXTENDED_KEY_USAGES:
                    s = rules.apply_where(
                        s, (s == "") | s.str.fullmatch(rules.OID_LIST), rules.eku_value
                    )
                frame[col] = s
        extra = pd.DataFrame(index=raw.index)
        issued = parsed.get(ISSUED)
        expires = parsed.get(EXPIRES)
        if issued is not None and expires is not None:
            extra[_ORDER_COLUMN] = issued > expires  # NaN compares False
        else:
            extra[_ORDER_COLUMN] = False
        return frame, extra

    def _parse_dates(self, s: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """Parse date cells: (UTC text with offset or a sentinel, epoch seconds or NaN)."""
        text = s.to_numpy(dtype=object)
        shaped = s.str.fullmatch(_ISO).to_numpy(dtype=bool)
        offset = s.str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
        out = np.full(len(s), _BAD_FORMAT, dtype=object)
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
            out[local[unknown]] = _BAD_ORDER
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
            out[positions[(parsed.isna() & naive.notna()).to_numpy()]] = _BAD_LOCAL
        ok = parsed.notna().to_numpy()
        if not ok.any():
            return
        good = parsed[ok].dt.tz_convert("UTC")
        where = positions[ok]
        if cells is not None:
            # A cell already written as UTC with whole seconds is sent as it is.
            shaped = cells[ok].str.fullmatch(_CANONICAL_UTC).to_numpy(dtype=bool)
            unchanged = cells[ok].to_numpy(dtype=object) == text[where]  # written as it is sent
            canonical = np.logical_and(shaped, unchanged)
        else:
            canonical = np.zeros(len(where), dtype=bool)
        out[where[canonical]] = text[where[canonical]]
        if not canonical.all():
            digits = None if fractions is None else fractions[ok][~canonical]
            out[where[~canonical]] = _format_utc(good[~canonical], digits)
        seconds = good.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        stamps[where] = seconds.astype(np.int64) / 1e6

    def validate(self, chunk: Chunk) -> ValidatedChunk:
        """Normalise and check one chunk; problems are keyed by position in the chunk."""
        values, extra = self._normalise(chunk.raw)
        problems: dict[int, list[Problem]] = {}
        lines = chunk.lines
        header = self.header

        def add(pos: int, problem: Problem) -> None:
            problems.setdefault(pos, []).append(problem)

        def cell(prop: str, pos: int) -> str:
            if prop in header.constants:
                return header.constants[prop]
            return str(chunk.raw[header.columns[prop]].iat[pos])

        try:
            self.schema.validate(pd.concat([values, extra], axis=1), lazy=True)
        except SchemaErrors as exc:
            cases = exc.failure_cases
            row_level: set[int] = set()
            for context, column, check, index in zip(
                cases["schema_context"],
                cases["column"],
                cases["check"],
                cases["index"],
                strict=True,
            ):
                if index is None or pd.isna(index):
                    continue
                pos = int(index)
                if context == "DataFrameSchema" or column not in self.columns:
                    # a row-level check: pandera lists it under every column; report it once
                    if pos not in row_level:
                        row_level.add(pos)
                        add(pos, Problem(int(lines[pos]), header.label(ISSUED), str(check)))
                    continue
                add(
                    pos,
                    Problem(int(lines[pos]), header.label(column), str(check), cell(column, pos)),
                )
        for pos, fault in chunk.faults.items():
            # a record that is not a row: its cells mean nothing, only the fault is reported
            problems[pos] = [Problem(int(lines[pos]), fault.column, fault.reason, fault.value)]
        self._check_keys(values, lines, problems, chunk.faults)
        valid = np.ones(len(values), dtype=bool)
        if problems:
            valid[list(problems)] = False
            for plist in problems.values():
                plist.sort(key=lambda p: (p.column is None, p.column or ""))
        return ValidatedChunk(chunk, values, valid, problems)

    def _check_keys(
        self,
        values: pd.DataFrame,
        lines: np.ndarray,
        problems: dict[int, list[Problem]],
        faults: Mapping[int, Any],
    ) -> None:
        thumb = values[THUMBPRINT]
        usable = (thumb.str.len() == 40).to_numpy(dtype=bool, copy=True)
        if faults:
            usable[list(faults)] = False
        key_frame = values[list(KEY_PROPERTIES)] if DEVICE in values else values[[THUMBPRINT]]
        hashes = pd.util.hash_pandas_object(key_frame, index=False).to_numpy()
        hashes = hashes[usable]
        key_lines = lines[usable].astype(np.int64)
        positions = np.flatnonzero(usable)
        if not len(hashes):
            return
        # this chunk, sorted: runs of equal hashes; the first of each run comes first (stable)
        order = np.argsort(hashes, kind="stable")
        ranked = hashes[order]
        starts = np.ones(len(ranked), dtype=bool)
        starts[1:] = ranked[1:] != ranked[:-1]
        first_of = np.empty(len(hashes), dtype=np.int64)  # index of each key's first occurrence
        first_of[order] = order[np.maximum.accumulate(np.where(starts, np.arange(len(ranked)), 0))]
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
