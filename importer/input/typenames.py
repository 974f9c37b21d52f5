"""Cells that hold a .NET type name instead of a value.

PowerShell's ``Export-Csv`` writes a property it cannot flatten (a list, a collection, an
object) as the name of its type: a plain ``Get-ChildItem Cert:\\... | Export-Csv`` writes
``EnhancedKeyUsageList`` as ``System.Collections.Generic.List`1[...]`` and ``Extensions`` as
``System.Security.Cryptography.X509Certificates.X509ExtensionCollection``. In an optional
column such a cell carries no value: it is treated as empty, and the first one of each column
gets one warning for the file, saying how to export the value (the profile's ``[type_names]``
advice for that header, else a generic one). With ``--strict`` such cells are rejected instead,
and so they always are in a required column (an issuer or subject that is a type name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from importer.input.notes import Note
from importer.input.profiles import fold
from importer.input.rules import DOTNET_TYPE

_PART = r"[A-Za-z_][\w`]*"
_TYPE_NAME = re.compile(rf"^(?:System|Microsoft)(?:\.{_PART})+(?:\[[\w`.,\[\] ]*\])?$")


def is_type_name(cell: str) -> bool:
    """``System.Object[]``, ``System.Security.Cryptography.Oid``, ``...List`1[...]``: a type
    name with brackets or at least three parts (``System.Foo`` might be a device's name)."""
    text = cell.strip()
    return bool(_TYPE_NAME.match(text)) and ("[" in text or text.count(".") >= 2)


def type_name_cells(s: pd.Series) -> np.ndarray:
    """Which cells of ``s`` are .NET type names (each distinct candidate is tested once)."""
    found = np.zeros(len(s), dtype=bool)
    candidates = np.flatnonzero(
        (s.str.startswith("System.") | s.str.startswith("Microsoft.")).to_numpy(dtype=bool)
    )
    if len(candidates):
        codes, uniques = pd.factorize(s.iloc[candidates])
        named = np.array([is_type_name(str(u)) for u in uniques], dtype=bool)
        found[candidates] = named[codes]
    return found


class TypeNames:
    """Finds type names in the optional columns of one file; one note per column.

    ``advice`` is the profile's ``[type_names]`` table (folded header -> how to export it).
    """

    def __init__(self, advice: Mapping[str, str], *, strict: bool = False) -> None:
        self.advice = advice
        self.strict = strict
        self.notes: list[Note] = []
        self._noted: set[str] = set()

    def how(self, column: str) -> str:
        """How to export ``column`` so that it holds its values."""
        given = self.advice.get(fold(column))
        if given:
            return given
        return (
            "a calculated property that turns it into text (for a list: "
            f"@{{n='{column}'; e={{$_.{column} -join ', '}}}})"
        )

    def reason(self, column: str) -> str:
        """Why such a cell is rejected with ``--strict``."""
        return f"is a .NET type name, not a value: export {column} with {self.how(column)}"

    def clean(
        self, s: pd.Series, column: str, lines: np.ndarray, *, required: bool = False
    ) -> pd.Series:
        """``s`` with its type-name cells empty, or :data:`DOTNET_TYPE` (rejected) when strict
        or when the column is required."""
        found = type_name_cells(s)
        if not found.any():
            return s
        reject = self.strict or required
        if column not in self._noted:
            self._noted.add(column)
            first = int(np.argmax(found))
            fate = "rejected" if required else "rejected (--strict)" if reject else "sent as empty"
            self.notes.append(
                Note(
                    int(lines[first]),
                    f"column {column} holds .NET type names such as {str(s.iloc[first])!r} "
                    f"instead of values (Export-Csv writes what it cannot flatten so): such "
                    f"cells are {fate}; to send the values, export {column} with "
                    f"{self.how(column)}",
                )
            )
        return s.mask(found, DOTNET_TYPE if reject else "")
