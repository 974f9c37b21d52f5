"""List cells (EKUs, key-usage names) take line breaks and semicolons as separators; the other
properties keep refusing control characters. Files are written as spreadsheets and certutil
users write them: one usage per line inside a quoted cell, CRLF line ends."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import ALL_COLUMNS, row, validated

from importer.input.schema import Validator
from importer.input.source import CsvSource

CLIENT, EMAIL, SERVER = "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.1"


def read(tmp_path: Path, **cells: str) -> tuple[list[dict[str, object]], list[str]]:
    path = tmp_path / "inventory.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(ALL_COLUMNS)
        writer.writerow([row(1, **cells).get(c, "") for c in ALL_COLUMNS])
        writer.writerow([row(2).get(c, "") for c in ALL_COLUMNS])
    src = CsvSource(path)
    return validated(src, Validator(src.header))


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("Client Authentication\r\nSecure Email", f"{CLIENT}, {EMAIL}"),
        (
            "Client Authentication (1.3.6.1.5.5.7.3.2)\nSecure Email (1.3.6.1.5.5.7.3.4)\n",
            f"{CLIENT}, {EMAIL}",
        ),
        (f"{CLIENT};{SERVER}", f"{CLIENT}, {SERVER}"),
        (f"{CLIENT}; {SERVER};\r\n\r\n{EMAIL}", f"{CLIENT}, {SERVER}, {EMAIL}"),
    ],
)
def test_ekus_one_per_line_or_semicolons(tmp_path: Path, cell: str, sent: str) -> None:
    bodies, problems = read(tmp_path, certificateExtendedKeyUsages=cell)
    assert problems == []
    assert bodies[0]["certificateExtendedKeyUsages"] == sent


@pytest.mark.parametrize(
    "cell",
    [
        "Digital Signature\r\nKey Encipherment",
        "Digital Signature;Key Encipherment",
        "Digital Signature\nKey Encipherment (a0)",
    ],
)
def test_key_usage_names_one_per_line_or_semicolons(tmp_path: Path, cell: str) -> None:
    bodies, problems = read(tmp_path, certificateKeyUsages=cell)
    assert problems == []
    assert bodies[0]["certificateKeyUsages"] == 0xA0


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        ("certificateSubjectName", "CN=Dora Smith\r\nOU=Staff", "contains a control character"),
        ("managedDeviceDisplayName", "PC-1\nPC-2", "contains a control character"),
        ("certificateExtendedKeyUsages", f"{CLIENT}\x07", "contains a control character"),
        (
            "certificateExtendedKeyUsages",
            "Client Authentication\tSecure Email",
            "contains a control character",
        ),
    ],
)
def test_other_control_characters_are_still_refused(
    tmp_path: Path, column: str, cell: str, reason: str
) -> None:
    bodies, problems = read(tmp_path, **{column: cell})
    assert len(bodies) == 1
    assert problems == [f"f:2: column {column}: {cell!r} {reason}"]
