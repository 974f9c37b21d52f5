"""Encoding by evidence, every line ending, and files that are no CSV at all (real files).

A file that is UTF-8 but for a few lines is read as UTF-8 and only those lines are rejected; a
single-byte encoding is chosen only when UTF-8 fails across the file; a byte-order mark is
believed unless the body proves it wrong; LF, CRLF, a bare CR and a mix of them all end lines;
a compressed file or a workbook is named as such.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import HEADER, cells, invoke

from importer.errors import InputError
from importer.input.source import CsvSource

NAMES = ["José Müller", "Zoë Lefèvre", "Jürgen Weiß", "Ágnes Szabó", "François Dupré"]


def csv_text(rows: list[list[str]], ending: str = "\r\n") -> str:
    def cell(text: str) -> str:
        if any(c in text for c in (",", '"', "\n", "\r")):
            return '"' + text.replace('"', '""') + '"'
        return text

    return "".join(",".join(cell(c) for c in row) + ending for row in rows)


def accented(n: int) -> list[str]:
    return cells(n, certificateSubjectName=f"CN={NAMES[n % 5]}")


def read(path: Path, chunk_size: int = 7, **source: Any) -> tuple[CsvSource, dict[str, Any]]:
    """(source, {"lines", "subjects", "faults"}) of every record."""
    src = CsvSource(path, chunk_size=chunk_size, **{"encoding": "auto", **source})
    got: dict[str, Any] = {"lines": [], "subjects": [], "faults": {}}
    for chunk in src.chunks():
        got["lines"] += chunk.lines.tolist()
        got["subjects"] += chunk.raw["certificateSubjectName"].tolist()
        got["faults"].update({int(chunk.lines[p]): f.reason for p, f in chunk.faults.items()})
    return src, got


def write(tmp_path: Path, data: bytes, name: str = "inventory.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- UTF-8 but for a few lines ----------------------------------------------------------------


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8], ids=["no-bom", "bom"])
@pytest.mark.parametrize("rows", [30, 30_000], ids=["in-the-sample", "past-the-sample"])
def test_a_utf8_file_with_a_cp1252_line_keeps_utf8_and_rejects_that_line(
    tmp_path: Path, bom: bytes, rows: int
) -> None:
    good = [accented(n) for n in range(1, rows + 1)]
    before = csv_text([list(HEADER), *good[:20]]).encode()
    bad = csv_text([cells(99, certificateSubjectName="CN=Jos\xe9 Lop\xe9z")]).encode("cp1252")
    after = csv_text(good[20:]).encode()
    path = write(tmp_path, bom + before + bad + after)
    src, got = read(path, chunk_size=5000)
    assert src.dialect.encoding == "utf-8"
    offset = (bom + before + bad).index(b"\xe9")
    column = bad.index(b"\xe9") + 1
    assert got["faults"] == {
        22: f"byte 0xe9 at column {column} (offset {offset} in the file) is not valid UTF-8: the "
        "rest of the file is read as UTF-8; correct this line, or pass --encoding if the file "
        "is in another encoding throughout"
    }
    assert len(got["lines"]) == rows + 1
    subjects = [s for n, s in enumerate(got["subjects"]) if n != 20]
    assert subjects == [f"CN={NAMES[n % 5]}" for n in range(1, rows + 1)]  # not re-decoded


def test_a_file_that_fails_utf8_across_its_lines_is_single_byte(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), *[accented(n) for n in range(1, 40)]])
    src, got = read(write(tmp_path, text.encode("cp1252")))
    assert (src.dialect.encoding, src.dialect.encoding_reason) == ("cp1252", "detected")
    assert got["faults"] == {}
    assert got["subjects"] == [f"CN={NAMES[n % 5]}" for n in range(1, 40)]


def test_a_given_encoding_still_refuses_a_line_it_cannot_decode(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), accented(1)])
    data = text.encode() + csv_text([accented(2)]).encode("cp1252")
    with pytest.raises(InputError) as caught:
        read(write(tmp_path, data), encoding="utf-8")
    assert caught.value.line == 3
    assert caught.value.hint == "save the file as UTF-8"


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8], ids=["no-bom", "bom"])
def test_a_header_that_is_not_utf8_refuses_the_file(tmp_path: Path, bom: bytes) -> None:
    header = ",".join([*HEADER, "Bemerkung"]).encode() + ",Gr\xfc\xdfe\r\n".encode("cp1252")
    rows = csv_text([[*accented(n), "", ""] for n in range(1, 20)]).encode()
    with pytest.raises(InputError) as caught:
        CsvSource(write(tmp_path, bom + header + rows), encoding="auto")
    column = header.index(b"\xfc") + 1
    assert (caught.value.line, caught.value.reason) == (
        1,
        f"byte 0xfc at column {column} is not valid utf-8",
    )


# --- a byte-order mark the body contradicts ---------------------------------------------------


def test_a_utf8_mark_on_a_cp1252_body_is_refused_with_both_facts(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), *[accented(n) for n in range(1, 10)]])
    with pytest.raises(InputError) as caught:
        CsvSource(write(tmp_path, codecs.BOM_UTF8 + text.encode("cp1252")), encoding="auto")
    assert caught.value.reason.startswith(
        "starts with a UTF-8 byte-order mark, but 9 of its lines are not UTF-8"
    )
    assert caught.value.line == 2


def test_a_utf16_mark_on_a_utf8_body_is_refused_with_both_facts(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), accented(1), accented(2)])
    with pytest.raises(InputError) as caught:
        CsvSource(write(tmp_path, codecs.BOM_UTF16_LE + text.encode()), encoding="auto")
    reason = caught.value.reason
    assert reason.startswith("starts with a UTF-16 byte-order mark, but the bytes after it ")
    assert reason.endswith("; they read as UTF-8")


def test_a_utf16_file_is_believed(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), accented(1), accented(2)])
    src, got = read(write(tmp_path, text.encode("utf-16")))
    assert (src.dialect.encoding, got["faults"]) == ("utf-16", {})
    assert got["subjects"] == ["CN=Zoë Lefèvre", "CN=Jürgen Weiß"]


# --- line endings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endings",
    [["\n"], ["\r\n"], ["\r"], ["\r", "\n", "\r\n"]],
    ids=["lf", "crlf", "cr", "mixed"],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_every_line_ending_ends_a_line(tmp_path: Path, endings: list[str], encoding: str) -> None:
    rows = [list(HEADER), *[accented(n) for n in range(1, 12)]]
    rows[5][HEADER.index("certificateExtendedKeyUsages")] = "1.3.6.1.5.5.7.3.2\r1.3.6.1.5.5.7.3.1"
    text = "".join(csv_text([r], endings[n % len(endings)]) for n, r in enumerate(rows))
    text = text[:-1] if text.endswith("\r") and not text.endswith("\r\n") else text
    src, got = read(write(tmp_path, text.encode(encoding)), chunk_size=4)
    assert got["faults"] == {}
    assert got["lines"] == list(range(2, 13))
    assert got["subjects"] == [f"CN={NAMES[n % 5]}" for n in range(1, 12)]
    # a CR inside a quoted cell is a character of the cell, as for any CSV reader
    usages = [c for ch in src.chunks() for c in ch.raw["certificateExtendedKeyUsages"]]
    assert usages[4] == "1.3.6.1.5.5.7.3.2\r1.3.6.1.5.5.7.3.1"


def test_a_file_of_bare_crs_is_not_one_line(tmp_path: Path) -> None:
    text = csv_text([list(HEADER), *[cells(n) for n in range(1, 7)]], "\r")
    _, got = read(write(tmp_path, text.encode()))
    assert got["lines"] == [2, 3, 4, 5, 6, 7]
    assert got["faults"] == {}


# --- files that are no CSV --------------------------------------------------------------------


def _xlsx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def _ods() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inventory.csv", csv_text([list(HEADER), cells(1)]))
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            gzip.compress(csv_text([list(HEADER), cells(1)]).encode()),
            "this is a gzip file: decompress it first",
        ),
        (_xlsx(), "this is an Excel workbook: save it as CSV UTF-8"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
            "this is an Excel workbook (.xls): save it as CSV UTF-8",
        ),
        (_ods(), "this is an OpenDocument spreadsheet: save it as CSV UTF-8"),
        (_zip(), "this is a zip archive: extract the CSV file from it first"),
    ],
    ids=["gzip", "xlsx", "xls", "ods", "zip"],
)
def test_an_archive_or_a_workbook_is_named_as_such(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        CsvSource(path, encoding="auto")
    assert (caught.value.line, caught.value.reason) == (1, reason)
    result = invoke("validate", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}:1: {reason}\n"
