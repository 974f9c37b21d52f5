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
