"""A stray quote never swallows rows, in any dialect (real files in tmp_path, CsvSource).

The file of issue 15: rows whose device name is quoted because it holds the delimiter, one row
whose device name opens a quote it never closes (``"Bob's laptop``), and one row with a
legitimate multi-line cell (one extended key usage per line). Read with the quote counted,
the stray quote would run on to the next quote character and join the rows in between into
one cell. Every record must instead be a data line of its own, except the legitimate
multi-line cell, which joins its lines into one record.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from helpers import HEADER, cells

from importer.input.source import CsvSource

ROWS = 120
STRAY = 40  # the row whose device name opens a quote and never closes it
MULTI = 90  # the row whose extended key usages take two lines
DEVICE = HEADER.index("managedDeviceDisplayName")
EKU = HEADER.index("certificateExtendedKeyUsages")
TWO_USAGES = "1.3.6.1.5.5.7.3.2\n1.3.6.1.5.5.7.3.1"


def quoted(text: str, delimiter: str) -> str:
    if any(c in text for c in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def device(n: int, delimiter: str) -> str:
    """Every fifth device name holds the delimiter (so it is quoted)."""
    return f"PC{delimiter} rack {n}" if n % 5 == 0 else f"PC-{n}"


def inventory(delimiter: str, ending: str, strays: dict[int, int]) -> tuple[str, list[int]]:
    """(text, expected line of each record); ``strays``: row -> column whose cell opens a
    quote it never closes."""
    lines = [delimiter.join(HEADER)]
    starts: list[int] = []
    line = 2
    for n in range(1, ROWS + 1):
        values = cells(n, managedDeviceDisplayName=device(n, delimiter))
        if n == MULTI:
            values[EKU] = TWO_USAGES.replace("\n", ending)
        text = delimiter.join(quoted(v, delimiter) for v in values)
        if n in strays:
            values[strays[n]] = '"' + values[strays[n]].replace(delimiter, " ")
            text = delimiter.join(values)
        if n % 17 == 0:
            lines.append("")  # a blank line is no record
            line += 1
        lines.append(text)
        starts.append(line)
        line += 2 if n == MULTI else 1
    return ending.join(lines) + ending, starts


def read(path: Path, chunk_size: int) -> tuple[list[int], list[str], dict[int, str]]:
    """(record lines, device names, fault reasons by line)."""
    lines: list[int] = []
    devices: list[str] = []
    faults: dict[int, str] = {}
    for chunk in CsvSource(path, chunk_size=chunk_size, encoding="auto").chunks():
        lines += chunk.lines.tolist()
        devices += chunk.raw["managedDeviceDisplayName"].tolist()
        faults.update({int(chunk.lines[p]): f.reason for p, f in chunk.faults.items()})
    return lines, devices, faults


def write(tmp_path: Path, text: str, bom: bool) -> Path:
    path = tmp_path / "inventory.csv"
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(
    "delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"]
)
def test_a_stray_quote_rejects_its_line_only(
    tmp_path: Path, delimiter: str, ending: str, bom: bool
) -> None:
    text, starts = inventory(delimiter, ending, {STRAY: DEVICE})
    path = write(tmp_path, text, bom)
    data_lines = text.count(ending) - 1
    blank = text.count(ending + ending)
    for chunk_size in (7, 1000):
        lines, devices, faults = read(path, chunk_size)
        # every data line is a record, but for the one a legitimate multi-line cell joins
        assert len(lines) == data_lines - blank - 1 == ROWS
        assert lines == starts
        stray_line = starts[STRAY - 1]
        assert list(faults) == [stray_line]
        assert faults[stray_line].startswith("a quoted cell opens on this line and closes only on")
        assert faults[stray_line].endswith(
            "the quote is taken as a stray one, this line is rejected and the lines after it "
            "are read as rows of their own"
        )
        expected = [device(n, delimiter) for n in range(1, ROWS + 1)]
        expected[STRAY - 1] = '"' + expected[STRAY - 1].replace(delimiter, " ")  # taken literally
        assert devices == expected


@pytest.mark.parametrize(
    "delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"]
)
def test_a_legitimate_multi_line_cell_is_one_record(tmp_path: Path, delimiter: str) -> None:
    text, starts = inventory(delimiter, "\r\n", {})
    lines, _, faults = read(write(tmp_path, text, True), 7)
    assert (lines, faults) == (starts, {})
    source = CsvSource(tmp_path / "inventory.csv", chunk_size=1000, encoding="auto")
    usages = next(source.chunks()).raw["certificateExtendedKeyUsages"].tolist()
    assert usages[MULTI - 1] == TWO_USAGES.replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("strays", "column"),
    [
        ({STRAY: DEVICE, STRAY + 12: DEVICE}, DEVICE),  # a second stray quote restores the count
        ({STRAY: HEADER.index("certificateThumbprint")}, HEADER.index("certificateThumbprint")),
        ({STRAY: HEADER.index("certificateSubjectName")}, HEADER.index("certificateSubjectName")),
    ],
    ids=["two-strays", "in-a-thumbprint", "in-a-subject"],
)
def test_stray_quotes_in_any_column_lose_no_row(
    tmp_path: Path, strays: dict[int, int], column: int
) -> None:
    text, starts = inventory(";", "\r\n", strays)
    for chunk_size in (1, 10, 1000):
        lines, devices, faults = read(write(tmp_path, text, True), chunk_size)
        assert lines == starts
        assert sorted(faults) == [starts[n - 1] for n in sorted(strays)]
        assert len(devices) == ROWS


def test_a_quote_that_closes_in_the_same_column_rows_later_is_still_stray(
    tmp_path: Path,
) -> None:
    """Read with the quote counted, this record even has the right number of fields: the
    cell holding rows' worth of delimiters gives it away."""
    rows = [",".join(HEADER)]
    for n in range(1, 8):
        values = cells(n)
        if n == 2:
            values[DEVICE] = '"PC-2'
        if n == 5:
            values[DEVICE] = 'PC-5"'
        rows.append(",".join(values))
    path = write(tmp_path, "\n".join(rows) + "\n", False)
    lines, devices, faults = read(path, 100)
    assert lines == [2, 3, 4, 5, 6, 7, 8]
    assert list(faults) == [3]
    assert "closes only on line 6" in faults[3]
    assert devices[3:] == ["PC-4", 'PC-5"', "PC-6", "PC-7"]
