"""Validate inventory records with pandera: every problem of every row, in one pass.

Cells are first normalised (hex without spaces or colons, upper-case; enum lower-case; dates
parsed and rewritten in UTC with an offset), then checked by a pandera schema built once. The
row key (thumbprint + device name) must be unique in the whole file, across chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from importer.model import (
    DATE_PROPERTIES,
    DEVICE,
    EXPIRES,
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
_ORDER_COLUMN = "_issued_after_expiry"


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


def build_schema(columns: list[str], timezone: str) -> pa.DataFrameSchema:
    """The pandera schema for normalised records that have ``columns``."""
    checks: dict[str, list[pa.Check]] = {c: [] for c in columns}
    for col in REQUIRED_CELLS:
        checks[col].append(pa.Check(_not_empty, error="is required and empty", name="required"))
    checks[THUMBPRINT].append(
        pa.Check(
            _empty_or(r"[0-9A-F]{40}"),
            error="is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons",
        )
    )
    checks[SERIAL].append(
        pa.Check(
            _empty_or(r"[0-9A-F]{1,40}"),
            error="is not a serial number: 1 to 40 hex digits after removing spaces and colons",
        )
    )
    checks[REVOKE_STATUS].append(
        pa.Check(
            lambda s: (s == "") | s.isin(REVOKE_STATUSES),
            error=f"is not a revoke status: use one of {', '.join(REVOKE_STATUSES)}",
        )
    )
    checks[KEY_USAGES].append(
        pa.Check(_int32, error="is not an integer in Int32 range (-2147483648..2147483647)")
    )
    for col in DATE_PROPERTIES:
        if col in checks:
            checks[col].append(
                pa.Check(
                    lambda s: s != _BAD_FORMAT,
                    error="is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z",
                )
            )
            checks[col].append(
                pa.Check(
                    lambda s: s != _BAD_LOCAL,
                    error=f"does not exist or is ambiguous as a local time in {timezone} "
                    "(clock change); give the offset explicitly",
                )
            )
    for col in columns:
        if col not in DATE_PROPERTIES:
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


def _format_utc(values: pd.Series) -> np.ndarray:
    """ISO 8601 in UTC with a ``Z``: whole seconds, else up to 7 fractional digits."""
    naive = values.dt.tz_localize(None).to_numpy()
    whole = np.char.add(np.datetime_as_string(naive, unit="s"), "Z").astype(object)
    unit: Any = np.datetime_data(naive.dtype)[0]
    fractional = naive != naive.astype("datetime64[s]")
    if fractional.any():
        full = np.datetime_as_string(naive[fractional], unit=unit)
        whole[fractional] = [f"{t[:19]}.{t[20:27].rstrip('0')}Z" for t in full]
    return whole


class Validator:
    """Validates the chunks of one file in order; remembers keys to catch duplicates."""

    def __init__(self, header: Header, *, timezone: str = "UTC") -> None:
        self.header = header
        self.timezone = timezone
        self._zone = ZoneInfo(timezone)
        self.columns = [p for p in PROPERTIES if p in header.columns]
        self.schema = build_schema(self.columns, timezone)
        self._seen_hashes = pd.Series([], dtype="int64", index=pd.Index([], dtype="uint64"))

    def _normalise(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = pd.DataFrame(
            {p: raw[self.header.columns[p]] for p in self.columns}, index=raw.index
        )
        parsed: dict[str, np.ndarray] = {}
        for col in self.columns:
            s = frame[col]
            if col in (THUMBPRINT, SERIAL):
                frame[col] = _strip_hex(s)
            elif col == REVOKE_STATUS:
                frame[col] = s.str.strip().str.lower()
            elif col == KEY_USAGES:
                frame[col] = s.str.strip()
            elif col in DATE_PROPERTIES:
                frame[col], parsed[col] = self._parse_dates(s.str.strip())
            elif s.str.isspace().any():
                frame[col] = s.where(~s.str.isspace(), "")
        extra = pd.DataFrame(index=raw.index)
        issued = parsed.get(ISSUED)
        expires = parsed.get(EXPIRES)
        if issued is not None and expires is not None:
            extra[_ORDER_COLUMN] = issued > expires  # NaN compares False
        else:
            extra[_ORDER_COLUMN] = False
        return frame, extra

    def _parse_dates(self, s: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """Parse ISO 8601 cells: (UTC text with offset or a sentinel, epoch seconds or NaN)."""
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
            cells = s.iloc[positions].str.replace(",", ".", regex=False)
            if aware:
                parsed = pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
            else:
                local = pd.to_datetime(cells, format="ISO8601", errors="coerce")
                parsed = local.dt.tz_localize(self._zone, ambiguous="NaT", nonexistent="NaT")
                out[positions[(parsed.isna() & local.notna()).to_numpy()]] = _BAD_LOCAL
            ok = parsed.notna().to_numpy()
            if not ok.any():
                continue
            good = parsed[ok].dt.tz_convert("UTC")
            where = positions[ok]
            # A cell already written as UTC with whole seconds is sent as it is.
            canonical = cells[ok].str.fullmatch(_CANONICAL_UTC).to_numpy(dtype=bool)
            out[where[canonical]] = text[where[canonical]]
            if not canonical.all():
                out[where[~canonical]] = _format_utc(good[~canonical])
            seconds = good.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
            stamps[where] = seconds.astype(np.int64) / 1e6
        return pd.Series(out, index=s.index, dtype=str), stamps

    def validate(self, chunk: Chunk) -> ValidatedChunk:
        """Normalise and check one chunk; problems are keyed by position in the chunk."""
        values, extra = self._normalise(chunk.raw)
        problems: dict[int, list[Problem]] = {}
        lines = chunk.lines

        def add(pos: int, problem: Problem) -> None:
            problems.setdefault(pos, []).append(problem)

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
                if context == "DataFrameSchema" or column not in self.header.columns:
                    # a row-level check: pandera lists it under every column; report it once
                    if pos not in row_level:
                        row_level.add(pos)
                        add(pos, Problem(int(lines[pos]), self.header.columns[ISSUED], str(check)))
                    continue
                header_name = self.header.columns[column]
                cell = chunk.raw[header_name].iat[pos]
                add(pos, Problem(int(lines[pos]), header_name, str(check), str(cell)))
        self._check_keys(values, lines, problems)
        valid = np.ones(len(values), dtype=bool)
        if problems:
            valid[list(problems)] = False
            for plist in problems.values():
                plist.sort(key=lambda p: (p.column is None, p.column or ""))
        return ValidatedChunk(chunk, values, valid, problems)

    def _check_keys(
        self, values: pd.DataFrame, lines: np.ndarray, problems: dict[int, list[Problem]]
    ) -> None:
        thumb = values[THUMBPRINT]
        usable = (thumb.str.len() == 40).to_numpy()
        key_frame = values[list(KEY_PROPERTIES)] if DEVICE in values else values[[THUMBPRINT]]
        hashes = pd.util.hash_pandas_object(key_frame, index=False).to_numpy()
        hashes = hashes[usable]
        key_lines = lines[usable]
        positions = np.flatnonzero(usable)
        if not len(hashes):
            return
        earlier = self._seen_hashes
        in_chunk_first = ~pd.Index(hashes).duplicated(keep="first")
        first_line = pd.Series(key_lines[in_chunk_first], index=pd.Index(hashes[in_chunk_first]))
        seen_before = pd.Index(hashes).isin(earlier.index)
        dupe = seen_before | ~in_chunk_first
        if dupe.any():
            lookup = pd.concat([earlier, first_line[~first_line.index.isin(earlier.index)]])
            column = self.header.columns[THUMBPRINT]
            for pos, h in zip(positions[dupe], hashes[dupe], strict=True):
                first = int(lookup.loc[h])
                problems.setdefault(int(pos), []).append(
                    Problem(
                        int(lines[pos]),
                        column,
                        f"duplicates line {first}: the same certificate on the same device",
                    )
                )
        new = first_line[~first_line.index.isin(earlier.index)]
        if len(new):
            self._seen_hashes = pd.concat([earlier, new])
