"""Encodings, delimiters, preamble lines and lines that are not rows, read from real files.

Every test writes the exact bytes of a file in ``tmp_path`` and reads it through
:class:`importer.input.source.CsvSource` (``encoding="auto"``, as the command line does), then
asserts the bodies that would be sent (:func:`importer.input.mapping.build_bodies`) or the exact
line and reason of each rejection.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import HEADER, body, cells

from importer.errors import InputError
from importer.input.dialect import parse_delimiter
from importer.input.mapping import build_bodies
from importer.input.schema import Validator
from importer.input.source import CsvSource

COLUMNS = list(HEADER)


def write(tmp_path: Path, data: bytes, name: str = "inventory.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(
    path: Path, *, chunk_size: int = 3, validator: dict[str, Any] | None = None, **source: Any
) -> tuple[CsvSource, list[tuple[int, dict[str, Any]]], list[str]]:
    """(source, [(line, body)] of valid rows, problems as the operator reads them)."""
    src = CsvSource(path, chunk_size=chunk_size, **{"encoding": "auto", **source})
    check = Validator(src.header, **(validator or {}))
    sent: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for chunk in src.chunks():
        assert len(chunk) <= chunk_size
        vc = check.validate(chunk)
        rows = np.flatnonzero(vc.valid)
        sent += list(zip(vc.lines[rows].tolist(), build_bodies(vc.values, rows), strict=True))
        for pos in sorted(vc.problems):
            problems += [p.describe("f") for p in vc.problems[pos]]
    return src, sent, problems


def csv_text(rows: list[list[str]], delimiter: str = ",", ending: str = "\r\n") -> str:
    def cell(text: str) -> str:
        if any(c in text for c in (delimiter, '"', "\n", "\r")):
            return '"' + text.replace('"', '""') + '"'
        return text

    return "".join(delimiter.join(cell(c) for c in row) + ending for row in rows)


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "encoding", "reason"),
    [
        (lambda t: t.encode("utf-8"), "utf-8", "valid UTF-8"),
        (lambda t: codecs.BOM_UTF8 + t.encode("utf-8"), "utf-8", "byte-order mark"),
        (lambda t: t.encode("utf-16"), "utf-16", "byte-order mark"),
        (lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), "utf-16", "byte-order mark"),
        (lambda t: t.encode("utf-32"), "utf-32", "byte-order mark"),
        (lambda t: t.encode("cp1252"), "cp1252", "detected"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le-bom", "utf16-be-bom", "utf32-bom", "cp1252"],
)
def test_encodings_are_detected_and_accents_survive(
    tmp_path: Path, encoded: Any, encoding: str, reason: str
) -> None:
    subject = "CN=José Müller, O=Société Générale, L=Zürich"
    text = csv_text([COLUMNS, cells(1, certificateSubjectName=subject), cells(2)])
    src, sent, problems = read(write(tmp_path, encoded(text)))
    assert (src.dialect.encoding, src.dialect.encoding_reason) == (encoding, reason)
    assert problems == []
    assert sent == [(2, body(1, certificateSubjectName=subject)), (3, body(2))]


def test_windows_1252_names_with_accents_in_a_larger_file(tmp_path: Path) -> None:
    names = ["Björn Schröder", "Zoë Müller", "François Lefèvre", "Ágnes Szabó", "Jürgen Weiß"]
    rows = [cells(n, certificateSubjectName=f"CN={names[n % 5]}") for n in range(1, 41)]
    src, sent, _ = read(write(tmp_path, csv_text([COLUMNS, *rows]).encode("cp1252")), chunk_size=7)
    assert src.dialect.encoding == "cp1252"
    assert [b["certificateSubjectName"] for _, b in sent] == [
        f"CN={names[n % 5]}" for n in range(1, 41)
    ]


def test_given_encoding_wins(tmp_path: Path) -> None:
    text = csv_text([COLUMNS, cells(1, certificateSubjectName="CN=Øster")])
    src, sent, _ = read(write(tmp_path, text.encode("latin-1")), encoding="latin-1")
    assert (src.dialect.encoding, src.dialect.encoding_reason) == ("iso8859-1", "given")
    assert sent == [(2, body(1, certificateSubjectName="CN=Øster"))]


def test_a_byte_the_given_encoding_cannot_decode_names_its_line(tmp_path: Path) -> None:
    text = csv_text([COLUMNS, cells(1), cells(2, certificateSubjectName="CN=Jos\xe9")])
    path = write(tmp_path, text.encode("latin-1"))
    with pytest.raises(InputError) as caught:
        read(path, encoding="utf-8")
    column = text.split("\r\n")[2].index("\xe9") + 1
    assert (caught.value.line, caught.value.reason) == (
        3,
        f"byte 0xe9 at column {column} is not valid utf-8",
    )


def test_utf8_then_a_utf16_file_appended_is_refused_at_the_joint(tmp_path: Path) -> None:
    data = csv_text([COLUMNS, cells(1)]).encode() + csv_text([cells(2)]).encode("utf-16")
    with pytest.raises(InputError) as caught:
        read(write(tmp_path, data))
    assert caught.value.line == 3
    assert caught.value.reason.startswith("starts with a UTF-16 byte-order mark (0xfffe)")


def test_unknown_encoding_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, csv_text([COLUMNS, cells(1)]).encode())
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        CsvSource(path, encoding="klingon")


# --- delimiters and preamble lines -----------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str) -> None:
    issuer = "CN=Contoso CA, O=Contoso; L=Berlin | DE"
    text = csv_text([COLUMNS, cells(1, certificateIssuerName=issuer)], delimiter)
    src, sent, _ = read(write(tmp_path, text.encode()))
    assert (src.dialect.delimiter, src.dialect.delimiter_reason) == (
        delimiter,
        "detected from the header",
    )
    assert sent == [(2, body(1, certificateIssuerName=issuer))]


def test_given_delimiter_wins(tmp_path: Path) -> None:
    notes = "Notes (" + ",".join("abcdefghijklmnopqrstuvwxyz") + ")"  # more commas than tabs
    text = csv_text([[*COLUMNS, notes], [*cells(1), "n"]], "\t")
    src, sent, _ = read(write(tmp_path, text.encode()), delimiter="\t")
    assert (src.dialect.delimiter, src.dialect.delimiter_reason) == ("\t", "given")
    assert src.header.extras == (notes,)
    assert sent == [(2, body(1))]
    with pytest.raises(InputError, match="missing required column"):
        read(tmp_path / "inventory.csv")  # detected: ',' (26 of them)


def test_bom_and_sep_line_then_semicolons(tmp_path: Path) -> None:
    text = "sep=;\r\n" + csv_text([COLUMNS, cells(1), cells(2)], ";")
    src, sent, problems = read(write(tmp_path, codecs.BOM_UTF8 + text.encode()))
    assert src.dialect.preamble == ("sep=;",)
    assert (src.dialect.delimiter, src.dialect.delimiter_reason) == (";", "sep= line")
    assert src.header.lines == 2
    assert problems == []
    assert sent == [(3, body(1)), (4, body(2))]


def test_powershell_type_line_is_skipped_in_utf16(tmp_path: Path) -> None:
    text = "#TYPE System.Security.Cryptography.X509Certificates.X509Certificate2\r\n"
    text += csv_text([COLUMNS, cells(1)])
    src, sent, _ = read(write(tmp_path, text.encode("utf-16")))
    assert src.dialect.preamble == (
        "#TYPE System.Security.Cryptography.X509Certificates.X509Certificate2",
    )
    assert sent == [(3, body(1))]


@pytest.mark.parametrize(
    ("value", "char"), [("tab", "\t"), ("\\t", "\t"), (";", ";"), ("pipe", "|"), (",", ",")]
)
def test_delimiter_names(value: str, char: str) -> None:
    assert parse_delimiter(value) == char


@pytest.mark.parametrize("value", ["", ";;", '"', "semi", "§"])
def test_bad_delimiters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="delimiter must be one character"):
        parse_delimiter(value)


# --- lines that are not rows -----------------------------------------------------------------


def test_spreadsheet_trailing_empty_columns_and_blank_rows(tmp_path: Path) -> None:
    header = [*COLUMNS, "", ""]
    lines = [header, [*cells(1), "", ""], [""] * 13, [*cells(2), "", ""], [""] * 13]
    src, sent, problems = read(write(tmp_path, csv_text(lines, ";").encode("cp1252")))
    assert src.header.ignored == ("", "")
    assert src.header.extras == ()
    assert problems == []
    assert sent == [(2, body(1)), (4, body(2))]


@pytest.mark.parametrize("chunk_size", [1, 2, 100])
def test_ragged_rows_are_rejected_on_their_line_and_the_rest_imports(
    tmp_path: Path, chunk_size: int
) -> None:
    header = [*COLUMNS, "Notes"]
    text = csv_text([header, [*cells(1), ""]])
    text += ",".join(cells(2)) + ",,extra\r\n"  # line 3: one field too many
    text += "\r\n"  # line 4: blank
    text += ",".join(cells(3)[:-1]) + "\r\n"  # line 5: two fields missing
    text += csv_text([[*cells(4), "two\nlines"]])  # lines 6-7
    text += ",".join(cells(5)) + "\r\n"  # line 8: one missing after a multi-line cell
    text += csv_text([[*cells(6), "n"]])  # line 9
    _, sent, problems = read(write(tmp_path, text.encode()), chunk_size=chunk_size)
    assert problems == [
        "f:3: expected 12 fields, saw 13 (a delimiter inside a cell needs quotes)",
        "f:5: expected 12 fields, saw 10 (a cell or a delimiter is missing)",
        "f:8: expected 12 fields, saw 11 (a cell or a delimiter is missing)",
    ]
    assert sent == [(2, body(1)), (6, body(4)), (9, body(6))]


def test_a_short_row_whose_last_cells_are_empty_is_still_found(tmp_path: Path) -> None:
    text = csv_text([COLUMNS, cells(1, certificateExtendedKeyUsages="")])  # 11 fields, last ""
    text += ",".join(cells(2)[:-2]) + ",\r\n"  # 10 fields, the last empty: one is missing
    _, sent, problems = read(write(tmp_path, text.encode()))
    assert problems == ["f:3: expected 11 fields, saw 10 (a cell or a delimiter is missing)"]
    assert sent == [(2, {k: v for k, v in body(1).items() if k != "certificateExtendedKeyUsages"})]


def test_first_row_too_long_is_rejected_not_cut(tmp_path: Path) -> None:
    text = csv_text([COLUMNS]) + ",".join(cells(1)) + ",x\r\n" + csv_text([cells(2)])
    _, sent, problems = read(write(tmp_path, text.encode()))
    assert problems == ["f:2: expected 11 fields, saw 12 (a delimiter inside a cell needs quotes)"]
    assert sent == [(3, body(2))]


def test_nul_byte_rejects_its_line_naming_the_column(tmp_path: Path) -> None:
    text = csv_text([COLUMNS, cells(1), cells(2, managedDeviceDisplayName="PC\x002"), cells(3)])
    _, sent, problems = read(write(tmp_path, text.encode()))
    assert problems == [
        "f:3: column managedDeviceDisplayName: 'PC\\x002' contains a NUL byte (0x00)"
    ]
    assert [line for line, _ in sent] == [2, 4]


def test_unterminated_quote_rejects_its_line_and_reads_on(tmp_path: Path) -> None:
    text = csv_text([COLUMNS, cells(1)])
    text += ",".join(cells(2)).replace("CN=user2", '"CN=user2') + "\r\n"  # line 3: never closed
    text += csv_text([cells(3), cells(4, certificateIssuerName="CN=CA, O=x")])
    _, sent, problems = read(write(tmp_path, text.encode()), chunk_size=2)
    assert problems == [
        "f:3: a quoted cell starts on this line and is never closed (unterminated quote); "
        "the lines after it are read as rows of their own"
    ]
    assert sent == [(2, body(1)), (4, body(3)), (5, body(4, certificateIssuerName="CN=CA, O=x"))]


def test_a_quote_inside_an_unquoted_cell_is_text(tmp_path: Path) -> None:
    text = csv_text([COLUMNS]) + ",".join(cells(1, managedDeviceDisplayName='PC 5" rack')) + "\n"
    text += csv_text([cells(2)], ending="\n")
    _, sent, problems = read(write(tmp_path, text.encode()))
    assert problems == []
    assert sent == [(2, body(1, managedDeviceDisplayName='PC 5" rack')), (3, body(2))]


def test_physical_lines_stay_exact_across_chunks_with_every_kind_of_line(tmp_path: Path) -> None:
    text, expected, bad, line = csv_text([[*COLUMNS, "Notes"]]), [], [], 2
    for n in range(1, 121):
        if n % 9 == 0:
            text += "\r\n"
            line += 1
        if n % 13 == 0:
            text += ",".join(cells(n)) + ",,x\r\n"
            bad.append(line)
            line += 1
            continue
        notes = "x\r\ny" if n % 7 == 0 else ""
        text += csv_text([[*cells(n), notes]])
        expected.append(line)
        line += 2 if n % 7 == 0 else 1
    _, sent, problems = read(write(tmp_path, text.encode("utf-16")), chunk_size=10)
    assert [line for line, _ in sent] == expected
    assert [int(p.split(":")[1]) for p in problems] == bad
