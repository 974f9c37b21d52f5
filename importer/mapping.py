"""Turn validated, normalised records into Graph request bodies (pure, per chunk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from importer.model import DEVICE, KEY_USAGES, ODATA_TYPE, PROPERTIES, THUMBPRINT


def build_bodies(values: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    """The JSON bodies for the records at positions ``rows``; empty cells are left out."""
    columns = [p for p in PROPERTIES if p in values.columns]
    frame = values.iloc[rows]
    cells: list[list[Any]] = []
    for name in columns:
        column = frame[name].tolist()
        if name == KEY_USAGES:
            column = [int(v) if v else "" for v in column]
        cells.append(column)
    return [
        {
            "@odata.type": ODATA_TYPE,
            **{k: v for k, v in zip(columns, record, strict=True) if v != ""},
        }
        for record in zip(*cells, strict=True)
    ]


def row_key(body: dict[str, Any]) -> tuple[str, str]:
    """The row key of a body: (thumbprint, device display name)."""
    return body[THUMBPRINT], body.get(DEVICE, "")


def body_hashes(values: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """A stable 64-bit hash of each body at ``rows`` (journal change detection), per chunk.

    Absent columns hash like empty cells, so adding an empty optional column changes nothing.
    """
    frame = values.iloc[rows]
    empty = pd.Series("", index=frame.index, dtype=object)
    parts = [frame[p].astype(object) if p in frame.columns else empty for p in PROPERTIES]
    joined = parts[0].str.cat(pd.concat(parts[1:], axis=1), sep="\x1f")
    return pd.util.hash_array(joined.to_numpy(dtype=object)).view(np.int64)
