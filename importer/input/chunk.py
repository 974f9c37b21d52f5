"""What the readers produce: the header of an inventory and its records, a chunk at a time.

Both readers (:mod:`importer.input.blocks` for CSV, :mod:`importer.input.certutil` for
``certutil -view`` text) yield the same :class:`Chunk` objects, so the rest of the pipeline
does not know which form a file had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from importer.input.profiles import Profile


@dataclass(frozen=True)
class Header:
    """The header row of an inventory and how its columns map to Graph properties."""

    names: tuple[str, ...]
    columns: dict[str, str]  # Graph property -> header name as written in the file
    extras: tuple[str, ...]  # unknown columns: warned about, never sent
    ignored: tuple[str, ...]  # columns the profile expects but never sends (id, import_error)
    lines: int  # physical lines up to the end of the header (preamble lines included)
    constants: dict[str, str] = field(default_factory=dict)  # Graph property -> constant
    profile: Profile = field(default_factory=lambda: Profile("graph"))
    chosen: str = ""  # how the profile was chosen, e.g. "profile adcs (auto: ...)"

    def label(self, prop: str) -> str:
        """The column a property comes from, as named in the file (or ``prop (constant)``)."""
        return self.columns.get(prop) or f"{prop} (constant)"


@dataclass(frozen=True)
class LineFault:
    """Why a record could not be read as a row (it is rejected with this reason)."""

    reason: str
    column: str | None = None  # the column as named in the file, when one cell is at fault
    value: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive records: the original cells and their line numbers."""

    raw: pd.DataFrame  # original header names, every cell a str
    lines: np.ndarray  # physical line where each record starts (header = line 1)
    faults: Mapping[int, LineFault] = field(default_factory=dict)  # position -> fault

    def __len__(self) -> int:
        return len(self.raw)


def empty_chunk(names: tuple[str, ...]) -> Chunk:
    """A chunk without records."""
    return Chunk(pd.DataFrame(columns=list(names), dtype=str), np.array([], dtype=np.int64))


def rows_chunk(
    names: tuple[str, ...],
    rows: list[list[str]],
    starts: list[int],
    faults: Mapping[int, LineFault],
) -> Chunk:
    """A chunk of ``rows`` (each as many cells as ``names``) starting on lines ``starts``."""
    if not rows:
        return empty_chunk(names)
    frame = pd.DataFrame(rows, columns=[f"c{i}" for i in range(len(names))], dtype=str)
    frame.columns = pd.Index(names)  # names may repeat ("" for unnamed columns)
    return Chunk(frame, np.array(starts, dtype=np.int64), dict(faults))
