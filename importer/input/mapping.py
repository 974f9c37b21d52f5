"""Turn validated, normalised records into Graph request bodies (pure, per chunk)."""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from importer.model import DEVICE, KEY_USAGES, ODATA_TYPE, PROPERTIES, THUMBPRINT

_SEPARATOR = pa.scalar("\x1f", pa.large_string())
_EMPTY = pa.scalar("", pa.large_string())
_MISSING_HASH = np.uint64(np.iinfo(np.uint64).max)  # what hash_array gives a missing value


def build_bodies(values: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    """The JSON bodies for the records at positions ``rows``; empty cells are left out."""
    names = tuple(p for p in PROPERTIES if p in values.columns)
    if not names:
        return []
    frame = values.iloc[rows]
    cells: list[list[Any]] = []
    empties: list[tuple[str, list[int]]] = []
    for name in names:
        column, empty = _cells(frame[name])
        if empty:
            empties.append((name, empty))
        if name == KEY_USAGES:
            # Few distinct values (a bit mask): convert each once.
            number = {v: int(v) if v else "" for v in set(column)}
            column = list(map(number.__getitem__, column))
        cells.append(column)
    keys = ("@odata.type", *names)
    bodies: list[dict[str, Any]] = [
        dict(zip(keys, record, strict=True)) for record in zip(repeat(ODATA_TYPE), *cells)
    ]
    # Every body was built with all keys; dropping the empty ones keeps the others in order.
    for name, positions in empties:
        for pos in positions:
            del bodies[pos][name]
    return bodies


def _cells(column: pd.Series) -> tuple[list[Any], list[int]]:
    """``column.tolist()`` and the positions of its empty ("") cells."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        array = pa.array(column.array)
        if array.null_count == 0:  # to_pylist would give None where tolist gives NaN / NA
            is_empty = pc.equal(array, _EMPTY)
            positions = (
                np.flatnonzero(is_empty.to_numpy(zero_copy_only=False)).tolist()
                if is_empty.true_count
                else []
            )
            return array.to_pylist(), positions
    cells = column.tolist()
    if "" not in cells:
        return cells, []
    return cells, [i for i, v in enumerate(cells) if v == ""]


def row_key(body: dict[str, Any]) -> tuple[str, str]:
    """The row key of a body: (thumbprint, device display name)."""
    return body[THUMBPRINT], body.get(DEVICE, "")


def body_hashes(values: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each body at ``rows`` (journal change detection), per chunk.

    Each row's PROPERTIES cells are joined with "\\x1f" and the joined text is hashed with
    ``pd.util.hash_array``, viewed as int64; a row with a missing value (NA) hashes as -1.
    Absent columns hash like empty cells, so adding an empty optional column changes nothing.
    """
    frame = values.iloc[rows]
    parts = [
        pa.array(frame[p], type=pa.large_string(), from_pandas=True)
        if p in frame.columns
        else pa.repeat(_EMPTY, len(frame))
        for p in PROPERTIES
    ]
    joined = pc.binary_join_element_wise(*parts, _SEPARATOR)  # null if any cell is null
    text = joined.to_numpy(zero_copy_only=False)
    missing = joined.is_null().to_numpy(zero_copy_only=False) if joined.null_count else None
    if missing is not None:
        text[missing] = ""
    # categorize=False gives the same values as the default (which hashes the distinct values
    # with categorize=False and maps them back) without factorizing nearly unique texts first.
    hashes = pd.util.hash_array(text, categorize=False)
    if missing is not None:
        hashes[missing] = _MISSING_HASH
    return hashes.view(np.int64)
