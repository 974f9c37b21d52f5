"""CsvSource: header mapping, cells as text, physical line numbers, unreadable files.

Every test writes a real file in ``tmp_path`` (exact bytes, so CRLF and BOMs are what they say)
and reads it through :class:`importer.input.source.CsvSource`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ALL_COLUMNS
from helpers import record as csv_record

from importer.errors import InputError
from importer.input.source import CsvSource

COLUMNS = list(ALL_COLUMNS)
HEADER = ",".join(COLUMNS)
REQUIRED = [c for c in COLUMNS if c != "certificateRevokeStatusLastChangeDateTime"]


def record(n: int, *, subject: str = "") -> str:
    """One CSV record (no line ending) for inventory row ``n``; device name is ``PC-n``; the
    subject cell is always quoted."""
    changes = {"certificateSubjectName": subject} if subject else {}
    return csv_record(n, quote={"certificateSubjectName"}, **changes)


def write(tmp_path: Path, content: str | bytes, name: str = "inventory.csv") -> Path:
    """Write ``content`` exactly (no newline translation)."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read_all(path: Path, chunk_size: int = 2) -> tuple[list[int], list[dict[str, str]]]:
    """Every record of the file: (physical start lines, cells by header name as written)."""
    source = CsvSource(path, chunk_size=chunk_size)
    lines: list[int] = []
    rows: list[dict[str, str]] = []
    for chunk in source.chunks():
        assert len(chunk) == len(chunk.lines) <= chunk_size
        lines += [int(n) for n in chunk.lines]
        names = list(chunk.raw.columns)  # unnamed trailing columns share the name ""
        cells = chunk.raw.itertuples(index=False, name=None)
        rows += [dict(zip(names, row, strict=True)) for row in cells]
    return lines, rows


def read_error(path: Path, chunk_size: int = 2) -> InputError:
    """The InputError raised while opening or reading ``path`` (whichever step finds it)."""
    with pytest.raises(InputError) as caught:
        read_all(path, chunk_size)
    return caught.value


# --- header --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "prop"),
    [
        ("certificatethumbprint", "certificateThumbprint"),
        ("CERTIFICATETHUMBPRINT", "certificateThumbprint"),
        ("  certificateThumbprint  ", "certificateThumbprint"),
        ("\tCertificateSerialNumber ", "certificateSerialNumber"),
        (" MANAGEDdeviceDISPLAYname", "managedDeviceDisplayName"),
        ("certificateKeyUsages   ", "certificateKeyUsages"),
    ],
)
def test_header_names_match_case_insensitively_and_ignore_surrounding_spaces(
    tmp_path: Path, written: str, prop: str
) -> None:
    names = [written if c == prop else c for c in COLUMNS]
    path = write(tmp_path, ",".join(names) + "\n" + record(1) + "\n")
    source = CsvSource(path)
    assert source.header.columns[prop] == written
    assert source.header.extras == ()
    _, rows = read_all(path)
    assert (
        rows[0][written]
        == {
            "certificateThumbprint": f"{1:040X}",
            "certificateSerialNumber": "1",
            "managedDeviceDisplayName": "PC-1",
            "certificateKeyUsages": "160",
        }[prop]
    )


def test_revoke_change_date_column_is_optional(tmp_path: Path) -> None:
    names = [c for c in COLUMNS if c != "certificateRevokeStatusLastChangeDateTime"]
    cells = record(1).split(",")
    del cells[COLUMNS.index("certificateRevokeStatusLastChangeDateTime")]
    path = write(tmp_path, ",".join(names) + "\n" + ",".join(cells) + "\n")
    source = CsvSource(path)
    assert "certificateRevokeStatusLastChangeDateTime" not in source.header.columns
    assert read_all(path)[0] == [2]


def test_bom_is_harmless(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff" + HEADER + "\r\n" + record(1) + "\r\n")
    source = CsvSource(path)
    assert source.header.names == tuple(COLUMNS)
    assert source.header.columns["certificateThumbprint"] == "certificateThumbprint"
    assert source.header.extras == ()
    lines, rows = read_all(path)
    assert lines == [2]
    assert rows[0]["certificateThumbprint"] == f"{1:040X}"


def test_id_and_import_error_columns_are_ignored_and_unknown_columns_are_extras(
    tmp_path: Path,
) -> None:
    names = ["ID", *COLUMNS[:3], "Notes", *COLUMNS[3:], " import_error ", "Owner"]
    cells = record(1).split(",")
    # the issuer/subject cells hold no commas, so a plain split is a faithful list of cells
    cells = ["guid-1", *cells[:3], "note", *cells[3:], "rejected: x", "ops"]
    path = write(tmp_path, ",".join(names) + "\n" + ",".join(cells) + "\n")
    source = CsvSource(path)
    assert source.header.ignored == ("ID", " import_error ")
    assert source.header.extras == ("Notes", "Owner")
    assert set(source.header.columns) == set(COLUMNS)
    assert source.header.names == tuple(names)
    _, rows = read_all(path)
    assert list(rows[0]) == names  # the original cells stay available for failed.csv
    assert rows[0]["ID"] == "guid-1"
    assert rows[0][" import_error "] == "rejected: x"


# --- cells are text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    ["007", "0001", "NA", "N/A", "null", "NULL", "None", "NaN", "nan", "", "#N/A", "1e5",
     "TRUE", "false", "-0", "  padded  ", "1,234", '"quoted"', "=1+1"],
)  # fmt: skip
def test_every_cell_is_read_as_the_exact_text(tmp_path: Path, cell: str) -> None:
    quoted = '"' + cell.replace('"', '""') + '"'
    base = record(1).split(",")
    ext = COLUMNS.index("certificateExtendedKeyUsages")
    serial = COLUMNS.index("certificateSerialNumber")
    base[ext] = quoted
    base[serial] = quoted
    path = write(tmp_path, HEADER + "\n" + ",".join(base) + "\n")
    _, rows = read_all(path)
    assert rows[0]["certificateExtendedKeyUsages"] == cell
    assert rows[0]["certificateSerialNumber"] == cell
    assert all(isinstance(value, str) for value in rows[0].values())


def test_unquoted_leading_zeros_and_na_words_stay_strings(tmp_path: Path) -> None:
    line = (
        "00AB00AB00AB00AB00AB00AB00AB00AB00AB00AB,0012,NA,null,CN=CA,CN=S,none,,"
        "2025-01-05T10:32:00Z,2026-01-05T10:32:00Z,0160,"
    )
    path = write(tmp_path, HEADER + "\n" + line + "\n")
    _, rows = read_all(path)
    assert rows[0] == dict(zip(COLUMNS, line.split(","), strict=True))


# --- physical line numbers -------------------------------------------------------------------

NL = "\n"
CRLF = "\r\n"
LINE_CASES = [
    pytest.param([HEADER, record(1), record(2), record(3), ""], NL, [2, 3, 4], id="plain"),
    pytest.param([HEADER, record(1), record(2), record(3)], NL, [2, 3, 4], id="no-final-newline"),
    pytest.param(
        [HEADER, record(1), "", record(2), "", "", record(3), ""], NL, [2, 4, 7], id="blank-lines"
    ),
    pytest.param(
        [HEADER, "", record(1), record(2), "", "", ""], NL, [3, 4], id="blank-first-and-trailing"
    ),
    pytest.param(
        [HEADER, record(1, subject="CN=a\nOU=b\nO=c"), record(2), record(3), ""],
        NL,
        [2, 5, 6],
        id="quoted-newlines",
    ),
    pytest.param(
        [HEADER, record(1), "", record(2, subject="CN=a\nb"), "", record(3), record(4), ""],
        NL,
        [2, 4, 7, 8],
        id="quoted-and-blank",
    ),
    pytest.param(
        [HEADER, record(1), record(2, subject="CN=a\r\nb"), "", record(3), ""],
        CRLF,
        [2, 3, 6],
        id="crlf",
    ),
    pytest.param(
        [HEADER, record(1), "", "", record(2), record(3), record(4), record(5), ""],
        CRLF,
        [2, 5, 6, 7, 8],
        id="crlf-blank-lines",
    ),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
@pytest.mark.parametrize(("lines", "ending", "expected"), LINE_CASES)
def test_physical_line_numbers(
    tmp_path: Path, lines: list[str], ending: str, expected: list[int], chunk_size: int
) -> None:
    path = write(tmp_path, ending.join(lines))
    got, rows = read_all(path, chunk_size)
    assert got == expected
    # each line number belongs to its own record (records are numbered 1, 2, ... in order)
    assert [r["managedDeviceDisplayName"] for r in rows] == [
        f"PC-{n}" for n in range(1, len(expected) + 1)
    ]


def test_header_spanning_two_lines_shifts_every_record(tmp_path: Path) -> None:
    header = HEADER + ',"Notes\n(free text)"'
    content = NL.join([header, record(1) + ",a", "", record(2) + ',"x\ny"', record(3) + ",c", ""])
    path = write(tmp_path, content)
    assert CsvSource(path).header.lines == 2
    assert CsvSource(path).header.extras == ("Notes\n(free text)",)
    assert read_all(path)[0] == [3, 5, 7]


def test_line_numbers_across_many_chunk_boundaries(tmp_path: Path) -> None:
    """250 records, blank lines and multi-line cells sprinkled over chunks of 100."""
    out = [HEADER]
    expected: list[int] = []
    line = 2
    for n in range(1, 251):
        if n % 7 == 0:
            out.append("")
            line += 1
        subject = "CN=x\nOU=y" if n % 11 == 0 else ""
        expected.append(line)
        out.append(record(n, subject=subject))
        line += 2 if subject else 1
    path = write(tmp_path, NL.join(out) + NL)
    got, rows = read_all(path, chunk_size=100)
    assert got == expected
    assert rows[-1]["managedDeviceDisplayName"] == "PC-250"
    assert len(rows) == 250


# --- unreadable files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        (
            [c for c in COLUMNS if c != "certificateSerialNumber"],
            ["certificateSerialNumber"],
        ),
        (
            [c for c in COLUMNS if c not in ("certificateThumbprint", "certificateKeyUsages")],
            ["certificateThumbprint", "certificateKeyUsages"],
        ),
        (["id", "Notes"], REQUIRED),
        (
            ["Thumbprint", "Serial Number", *COLUMNS[2:]],
            ["certificateThumbprint", "certificateSerialNumber"],
        ),
    ],
)
def test_missing_required_columns_name_every_one_on_line_1(
    tmp_path: Path, names: list[str], missing: list[str]
) -> None:
    path = write(tmp_path, ",".join(names) + "\n" + ",".join("x" * len(names)) + "\n")
    error = read_error(path)
    assert error.line == 1
    assert error.reason.startswith(f"missing required column(s): {', '.join(missing)}; ")
    assert error.reason.endswith("columns found: " + ", ".join(repr(n) for n in names))
    assert str(error).startswith(f"{path}:1: missing required column(s): ")


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        ([*COLUMNS, "Notes", "Notes"], "duplicate column name(s): Notes"),
        (["id", *COLUMNS, "id"], "duplicate column name(s): id"),
        (
            [*COLUMNS, " CERTIFICATEthumbprint"],
            "columns 'certificateThumbprint' and ' CERTIFICATEthumbprint' both map to "
            "certificateThumbprint",
        ),
    ],
)
def test_duplicate_column_names_are_refused_on_line_1(
    tmp_path: Path, names: list[str], reason: str
) -> None:
    path = write(tmp_path, ",".join(names) + "\n" + ",".join("x" * len(names)) + "\n")
    error = read_error(path)
    assert (error.line, error.reason) == (1, reason)


def test_one_unnamed_trailing_column_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ",\n" + record(1) + ",\n")
    assert CsvSource(path).header.extras == ()
    assert read_all(path)[0] == [2]


def test_several_unnamed_trailing_columns_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ",,\n" + record(1) + ",,\n")
    lines, rows = read_all(path)
    assert lines == [2]
    assert rows[0]["certificateThumbprint"] == f"{1:040X}"


@pytest.mark.parametrize(
    "content",
    [b"", b"\xef\xbb\xbf", b"\n", b"\r\n\r\n", b"\n\n\n"],
    ids=["zero-bytes", "bom-only", "newline", "crlf-blank-lines", "blank-lines"],
)
def test_empty_file_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    error = read_error(write(tmp_path, content))
    assert (error.line, error.reason) == (1, "file is empty: no header row")


def test_header_only_file_has_no_records(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, HEADER + "\n")) == ([], [])


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert read_error(tmp_path / "nope.csv").reason == "file not found"
    assert read_error(tmp_path).reason == "is a directory, not a CSV file"


def _latin1(lines: list[str]) -> bytes:
    return "\n".join(lines).encode("latin-1")


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param(_latin1([HEADER + ",Notes\xe9", record(1) + ",a", ""]), 1, id="header"),
        pytest.param(
            _latin1([HEADER, record(1), record(2, subject="CN=Jos\xe9"), ""]), 3, id="line-3"
        ),
        pytest.param(
            _latin1([HEADER, record(1, subject="CN=a\nb"), "", record(2, subject="CN=\xe9"), ""]),
            5,
            id="after-quoted-newline-and-blank",
        ),
        pytest.param(
            _latin1([HEADER, *[record(n) for n in range(1, 401)], record(401, subject="\xe9"), ""]),
            402,
            id="line-402-after-four-chunks",
        ),
    ],
)
def test_non_utf8_byte_is_reported_with_its_line(tmp_path: Path, content: bytes, line: int) -> None:
    column = content.split(b"\n")[line - 1].index(b"\xe9") + 1
    error = read_error(write(tmp_path, content), chunk_size=100)
    assert error.line == line
    assert error.reason == f"byte 0xe9 at column {column} is not valid utf-8"
    assert error.hint == "save the file as UTF-8"


@pytest.mark.parametrize(
    ("lines", "line"),
    [
        pytest.param([HEADER, record(1), record(2) + ",extra", record(3), ""], 3, id="line-3"),
        pytest.param(
            [HEADER, record(1), "", "", record(2) + ",extra", ""], 5, id="after-blank-lines"
        ),
        pytest.param(
            [HEADER, *[record(n) for n in range(1, 8)], record(8) + ",extra", ""],
            9,
            id="after-chunk-boundaries",
        ),
        pytest.param(
            [HEADER, record(1, subject="CN=a\nb"), record(2), record(3) + ",x", ""],
            5,
            id="after-quoted-newline",
        ),
        pytest.param(
            [HEADER + ',"No\ntes"', record(1) + ",a", record(2) + ",b,c", ""],
            4,
            id="after-two-line-header",
        ),
    ],
)
def test_ragged_row_is_a_rejected_line_and_the_rest_is_read(
    tmp_path: Path, lines: list[str], line: int
) -> None:
    path = write(tmp_path, "\n".join(lines))
    fields = len(CsvSource(path).header.names)
    faults = {}
    starts: list[int] = []
    for chunk in CsvSource(path, chunk_size=2).chunks():
        starts += [int(n) for n in chunk.lines]
        faults.update({int(chunk.lines[pos]): fault for pos, fault in chunk.faults.items()})
    assert list(faults) == [line]
    assert faults[line].reason.startswith(f"expected {fields} fields, saw {fields + 1}")
    assert line in starts  # the bad line is still a record: it is reported, not dropped
    assert len(starts) == len([x for x in lines[1:] if x.strip()])


@pytest.mark.parametrize("chunk_size", [1, 2, 100])
def test_a_quote_inside_an_unquoted_cell_loses_no_record(tmp_path: Path, chunk_size: int) -> None:
    """Counting quotes, lines 3 to 6 look like one record with a quoted cell across lines;
    a CSV parser reads each line as a row. No row may be dropped or given another's line."""
    lines = [record(n) for n in range(1, 7)]
    lines[1] = lines[1].replace("PC-2", 'PC"2')
    lines[4] = lines[4].replace("PC-5", 'PC"5')
    path = write(tmp_path, "\n".join([HEADER, *lines, ""]))
    starts: list[int] = []
    devices: list[str] = []
    for chunk in CsvSource(path, chunk_size=chunk_size).chunks():
        assert not chunk.faults
        starts += [int(n) for n in chunk.lines]
        devices += chunk.raw["managedDeviceDisplayName"].tolist()
    assert starts == [2, 3, 4, 5, 6, 7]
    assert devices == ["PC-1", 'PC"2', "PC-3", "PC-4", 'PC"5', "PC-6"]
