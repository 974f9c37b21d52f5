"""Cheap tests on the UTF-8 bytes of a column: which cells are already as they are sent.

Most cells of most files are in the form they are sent in (a thumbprint of 40 upper-case hex
digits, a date such as ``2025-01-05T10:32:00Z``). These tests find them without pandas string
methods or pandera; only the other cells go through normalisation and the schema. A cell that
passes is one the full path would keep as it is and accept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


def plain_hex(s: pd.Series, exact: bool) -> np.ndarray:
    """Cells of 40 (``exact``) or 1 to 40 upper-case hex digits."""
    view = _utf8(s)
    if view is None:
        return np.zeros(len(s), dtype=bool)
    data, starts = view
    lengths = np.diff(starts)
    plain = (lengths == 40) if exact else ((lengths >= 1) & (lengths <= 40))
    return np.asarray(plain & ~_cells_with(_not_upper_hex(data), starts), dtype=bool)


def plain_text(s: pd.Series, required: bool) -> np.ndarray:
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


def plain_integer(s: pd.Series) -> np.ndarray:
    """Empty cells and cells of at most 9 digits (always in Int32 range)."""
    view = _utf8(s)
    if view is None:
        return np.zeros(len(s), dtype=bool)
    data, starts = view
    plain = np.diff(starts) <= 9
    return np.asarray(plain & ~_cells_with(_not_digit(data), starts), dtype=bool)


def plain_oids(s: pd.Series) -> np.ndarray:
    """Empty cells and OIDs joined with ", " (the canonical form of an EKU list)."""
    array = _text(s)
    if array is None:
        return np.zeros(len(s), dtype=bool)
    # few distinct lists: match each once
    encoded = pc.dictionary_encode(array)
    matched = pc.match_substring_regex(encoded.dictionary, _OID_LIST)
    plain = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(plain[encoded.indices.to_numpy(zero_copy_only=False)])


def utc_stamps(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
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
    # 0001-01-01T00:00:00Z is Graph's "no date": it goes to the checks, which reject it
    valid &= ~((year == 1) & (month == 1) & (day == 1) & (clock_of(hour, minute, second) == 0))
    plain[at] = valid
    clock = clock_of(hour, minute, second)
    seconds[at] = np.where(valid, days.astype(np.int64) * 86400 + clock, 0)
    return plain, seconds


def clock_of(hour: np.ndarray, minute: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Seconds since midnight."""
    return np.asarray(hour * 3600 + minute * 60 + second)


def replace_cells(s: pd.Series, positions: np.ndarray, cells: pd.Series) -> pd.Series:
    """``s`` with the cells at ``positions`` replaced by ``cells`` (in the same order)."""
    if len(positions) == len(s):
        return pd.Series(cells.to_numpy(), index=s.index, dtype=s.dtype)
    s = s.copy()
    s.iloc[positions] = cells.to_numpy()
    return s
