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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from importer.errors import ConfigError
from importer.input import rules
from importer.input.profiles import Profile
from importer.input.source import Chunk, Header
from importer.model import (
    DATE_PROPERTIES,
    DEVICE,
    EXPIRES,
    EXTENDED_KEY_USAGES,
    INT32_MAX,
    INT32_MIN,
    ISSUED,
    KEY_USAGES,
    PROPERTIES,
    REQUIRED_CELLS,
    REVOKE_STATUS,
    REVOKE_STATUSES,
    SERIAL,
    THUMBPRINT,
)

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


@dataclass(frozen=True)
class Check:
    """One rule for the normalised cells of one column: ``passes`` is True where they keep it."""

    reason: str
    passes: Callable[[pd.Series], pd.Series]


def build_checks(
    columns: list[str],
    timezone: str,
    *,
    dates: DateOptions | None = None,
    profile: Profile | None = None,
) -> dict[str, list[Check]]:
    """The checks of each of ``columns`` (normalised records), in the order they are reported."""
    dates = dates or DateOptions(timezone)
    checks: dict[str, list[Check]] = {c: [] for c in columns}

    def add(col: str, check: Check) -> None:
        if col in checks:
            checks[col].append(check)

    for col in REQUIRED_CELLS:
        add(col, Check("is required and empty", _not_empty))
    add(
        THUMBPRINT,
        Check(
            "is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons",
            _empty_or(r"[0-9A-F]{40}"),
        ),
    )
    add(
        SERIAL,
        Check(
            "is not a serial number: 1 to 40 hex digits after removing spaces and colons",
            _empty_or(r"[0-9A-F]{1,40}"),
        ),
    )
    add(REVOKE_STATUS, Check(_status_error(profile), lambda s: (s == "") | s.isin(REVOKE_STATUSES)))
    add(
        KEY_USAGES,
        Check("is not an integer in Int32 range (-2147483648..2147483647)", _int32),
    )
    add(
        EXTENDED_KEY_USAGES,
        Check(
            "is not a list of EKU OIDs or known EKU names such as Client Authentication",
            lambda s: s != rules.BAD_EKU,
        ),
    )
    add(
        EXTENDED_KEY_USAGES,
        Check(
            "is a .NET type name, not a list of EKUs: in PowerShell export "
            "EnhancedKeyUsageList with -join ', '",
            lambda s: s != rules.DOTNET_TYPE,
        ),
    )
    for col in DATE_PROPERTIES:
        add(col, Check(dates.unreadable(), lambda s: s != _BAD_FORMAT))
        add(
            col,
            Check(
                "is not ISO 8601 and its day and month order is unknown: pass --dayfirst "
                "or --monthfirst, or --date-format",
                lambda s: s != _BAD_ORDER,
            ),
        )
        add(
            col,
            Check(
                f"does not exist or is ambiguous as a local time in {timezone} "
                "(clock change); give the offset explicitly",
                lambda s: s != _BAD_LOCAL,
            ),
        )
    for col in columns:
        if col in (EXTENDED_KEY_USAGES, REVOKE_STATUS):  # their sentinels have their own check
            checks[col].append(Check("contains a control character", _no_control_but_sentinels))
        elif col not in DATE_PROPERTIES:
            checks[col].append(Check("contains a control character", _no_control))
    return checks


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


_ORDER_COLUMN = "_issued_after_expiry"
_ORDER_REASON = "issuance date is after the expiration date"


def build_schema(checks: Mapping[str, list[Check]]) -> pandera.DataFrameSchema:
    """The pandera schema of normalised records: each column's checks, and the date order."""
    return pandera.DataFrameSchema(
        {
            col: pandera.Column(
                str,
                [pandera.Check(check.passes, error=check.reason) for check in rules_],
                nullable=False,
            )
            for col, rules_ in checks.items()
        },
        checks=[pandera.Check(lambda df: ~df[_ORDER_COLUMN], error=_ORDER_REASON, name="order")],
        strict=False,
        coerce=False,
    )


# ---- cheap tests on the UTF-8 bytes of a column: which cells are already as they are sent ----


# YYYY-MM-DDTHH:MM:SSZ: where its digits are, and its other characters
_STAMP_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_STAMP_MARKS = [4, 7, 10, 13, 16, 19]
_STAMP_MARK_BYTES = np.frombuffer(b"--T::Z", dtype=np.uint8)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_OID_LIST = r"^(?:[0-9]+(?:\.[0-9]+)+(?:, [0-9]+(?:\.[0-9]+)+)*)?$"  # OID_LIST or empty, in RE2


def _text(s: pd.Series) -> pa.Array | None:
    """A text column as one Arrow string array, or None if it is not text or has a null."""
    try:
        array = pa.array(s.array)  # no copy for an Arrow-backed str column
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    text = pa.types.is_large_string(array.type) or pa.types.is_string(array.type)
    return array if text and not array.null_count else None


def _utf8(s: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The UTF-8 bytes of a text column and the offset of each cell in them (n + 1, from 0).

    None when :func:`_text` is None: the column's cells are then all suspects.
    """
    array = _text(s)
    if array is None:
        return None
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width)
    offsets = offsets[array.offset : array.offset + len(array) + 1].astype(np.int64)
    if data_buffer is None:
        return np.empty(0, dtype=np.uint8), offsets - offsets[0]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def _cells_with(marked: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per cell: does it hold a marked byte? (``marked``: per byte; ``starts``: from _utf8)."""
    found = np.zeros(len(starts) - 1, dtype=bool)
    at = np.flatnonzero(marked)
    if len(at):
        found[np.searchsorted(starts, at, side="right") - 1] = True
    return found


def _control(data: np.ndarray) -> np.ndarray:
    return np.asarray((data < 0x20) | (data == 0x7F))


def _not_digit(data: np.ndarray) -> np.ndarray:
    return np.asarray(data - np.uint8(48) > 9)  # bytes below "0" wrap around


def _not_upper_hex(data: np.ndarray) -> np.ndarray:
    return np.asarray((data - np.uint8(48) > 9) & (data - np.uint8(65) > 5))


def _plain_hex(s: pd.Series, exact: bool) -> np.ndarray:
    """Cells of 40 (``exact``) or 1 to 40 upper-case hex digits."""
    view = _utf8(s)
    if view is None:
        return np.zeros(len(s), dtype=bool)
    data, starts = view
    lengths = np.diff(starts)
    plain = (lengths == 40) if exact else ((lengths >= 1) & (lengths <= 40))
    return np.asarray(plain & ~_cells_with(_not_upper_hex(data), starts), dtype=bool)


def _plain_text(s: pd.Series, required: bool) -> np.ndarray:
    """Cells without control characters that start with a visible ASCII character (so they are
    not blank), or are empty when ``required`` is False."""
    view = _utf8(s)
    if view is None:
        return np.zeros(len(s), dtype=bool)
    data, starts = view
    lengths = np.diff(starts)
    first = data[np.minimum(starts[:-1], max(len(data) - 1, 0))] if len(data) else 0
    plain = (lengths > 0) & (first > 0x20) & (first < 0x7F)
    if not required:
        plain |= lengths == 0
    return np.asarray(plain & ~_cells_with(_control(data), starts), dtype=bool)


def _plain_integer(s: pd.Series) -> np.ndarray:
    """Empty cells and cells of at most 9 digits (always in Int32 range)."""
    view = _utf8(s)
    if view is None:
        return np.zeros(len(s), dtype=bool)
    data, starts = view
    plain = np.diff(starts) <= 9
    return np.asarray(plain & ~_cells_with(_not_digit(data), starts), dtype=bool)


def _plain_oids(s: pd.Series) -> np.ndarray:
    """Empty cells and OIDs joined with ", " (the canonical form of an EKU list)."""
    array = _text(s)
    if array is None:
        return np.zeros(len(s), dtype=bool)
    # few distinct lists: match each once
    encoded = pc.dictionary_encode(array)
    matched = pc.match_substring_regex(encoded.dictionary, _OID_LIST)
    plain = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(plain[encoded.indices.to_numpy(zero_copy_only=False)])


def _utc_stamps(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cells written as a valid ``YYYY-MM-DDTHH:MM:SSZ`` (year 1 or later): (which, seconds).

    Seconds are since the epoch, for those cells only (0 for the others).
    """
    count = len(s)
    plain = np.zeros(count, dtype=bool)
    seconds = np.zeros(count, dtype=np.int64)
    view = _utf8(s)
    if view is None:
        return plain, seconds
    data, starts = view
    at = np.flatnonzero(np.diff(starts) == 20)
    if not len(at):
        return plain, seconds
    every = len(at) == count  # then the bytes are a table of 20 columns already
    text = data.reshape(count, 20) if every else data[starts[at, None] + np.arange(20)]
    digits = text[:, _STAMP_DIGITS] - np.uint8(48)  # other bytes wrap around to above 9
    shaped = (digits <= 9).all(axis=1) & (text[:, _STAMP_MARKS] == _STAMP_MARK_BYTES).all(axis=1)
    pairs = digits[:, 0::2].astype(np.int32) * 10 + digits[:, 1::2]  # YY YY MM DD hh mm ss
    year = pairs[:, 0] * 100 + pairs[:, 1]
    month, day, hour, minute, second = (pairs[:, i] for i in range(2, 7))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
    valid = shaped & (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    valid &= (day <= month_days) & (hour <= 23) & (minute <= 59) & (second <= 59)
    # days since 1970-01-01 in the proleptic Gregorian calendar (its years start in March)
    y = year - (month <= 2)
    era = y // 400
    of_era = y - era * 400
    of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468
    plain[at] = valid
    clock = hour * 3600 + minute * 60 + second
    seconds[at] = np.where(valid, days.astype(np.int64) * 86400 + clock, 0)
    return plain, seconds


def _replace(s: pd.Series, positions: np.ndarray, cells: pd.Series) -> pd.Series:
    """``s`` with the cells at ``positions`` replaced by ``cells`` (in the same order)."""
    if len(positions) == len(s):
        return pd.Series(cells.to_numpy(), index=s.index, dtype=s.dtype)
    s = s.copy()
    s.iloc[positions] = cells.to_numpy()
    return s


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
        self.checks = build_checks(self.columns, timezone, dates=self.dates, profile=self.profile)
        self.schema = build_schema(self.checks)
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

    def _normalise(
        self, raw: pd.DataFrame
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(normalised cells, positions whose cells may fail a check, epoch seconds of dates).

        Each column's cheap test picks the cells that need normalising; the other cells are
        kept as they are, and pass every check of their column.
        """
        columns: dict[str, pd.Series] = {}
        suspects: dict[str, np.ndarray] = {}
        parsed: dict[str, np.ndarray] = {}
        for col in self.columns:
            s = self._cells(raw, col)
            if col == REVOKE_STATUS and self.profile.revoke_status:
                # few distinct values: the table maps each once; check what it did not map
                s = rules.map_distinct(
                    s, lambda c: self.profile.revoke_value(c) if c.strip() else "", _BAD_STATUS
                )
                columns[col] = s
                suspects[col] = np.flatnonzero(~s.isin(REVOKE_STATUSES).to_numpy(dtype=bool))
                continue
            if col in DATE_PROPERTIES:
                plain, seconds = _utc_stamps(s)
                stamps = np.full(len(s), np.nan)
                stamps[plain] = seconds[plain] * 1_000_000 / 1e6  # as _store computes them
                parsed[col] = stamps
            else:
                plain = self._plain(col, s)
            where = np.flatnonzero(~plain)
            suspects[col] = where
            if len(where):
                cells = s.iloc[where].reset_index(drop=True)
                if col in DATE_PROPERTIES:
                    cells, stamps = self._parse_dates(cells.str.strip())
                    parsed[col][where] = stamps
                else:
                    cells = self._normalise_cells(col, cells)
                s = _replace(s, where, cells)
            columns[col] = s
        frame = pd.DataFrame(columns, index=raw.index, copy=False)
        return frame, suspects, parsed

    def _plain(self, col: str, s: pd.Series) -> np.ndarray:
        """Cells of ``col`` that normalising keeps as they are and that pass its checks."""
        if col == THUMBPRINT:
            return _plain_hex(s, exact=True)
        if col == SERIAL:
            return _plain_hex(s, exact=False)
        if col == REVOKE_STATUS:
            return np.asarray(s.isin(REVOKE_STATUSES).to_numpy(dtype=bool))
        if col == KEY_USAGES:
            return _plain_integer(s)
        if col == EXTENDED_KEY_USAGES:
            return _plain_oids(s)
        return _plain_text(s, required=col in REQUIRED_CELLS)

    def _normalise_cells(self, col: str, s: pd.Series) -> pd.Series:
        """Normalise cells of ``col`` (not a date, not a status with a table)."""
        if col in (THUMBPRINT, SERIAL):
            return _strip_hex(s)
        if col == REVOKE_STATUS:
            return s.str.strip().str.lower()
        if col == KEY_USAGES:
            s = s.str.strip()
            return rules.apply_where(
                s, (s == "") | s.str.fullmatch(_INTEGER), rules.key_usage_value
            )
        if s.str.isspace().any():
            s = s.where(~s.str.isspace(), "")
        if col == EXTENDED_KEY_USAGES:
            s = rules.apply_where(s, (s == "") | s.str.fullmatch(rules.OID_LIST), rules.eku_value)
        return s

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
        values, suspects, parsed = self._normalise(chunk.raw)
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
            frame[_ORDER_COLUMN] = late[rows]
            try:
                self.schema.validate(frame, lazy=True)
            except SchemaErrors as exc:
                self._collect(exc, chunk, add)
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
            add(np.unique(late), self.header.label(ISSUED), _ORDER_REASON, None)
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
