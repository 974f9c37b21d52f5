"""Turn validated, normalised records into Graph request bodies (pure, per chunk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from importer.model import DEVICE, KEY_USAGES, ODATA_TYPE, PROPERTIES, THUMBPRINT


def build_bodies(values: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    """The JSON bodies for the records at positions ``rows``; empty cells are left out."""
    columns = [p for p in PROPERTIES if p in values.columns]
    frame = values.iloc[rows][columns]
    bodies: list[dict[str, Any]] = []
    for record in frame.to_dict("records"):
        body: dict[str, Any] = {"@odata.type": ODATA_TYPE}
        for name, value in record.items():
            if value != "":
                body[str(name)] = value
        if KEY_USAGES in body:
            body[KEY_USAGES] = int(body[KEY_USAGES])
        bodies.append(body)
    return bodies


def row_key(body: dict[str, Any]) -> tuple[str, str]:
    """The row key of a body: (thumbprint, device display name)."""
    return body[THUMBPRINT], body.get(DEVICE, "")
