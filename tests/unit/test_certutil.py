"""certutil -view text dumps (Row N: blocks) read through CsvSource from real files.

The dumps below follow published ``certutil -view`` output (see samples/README.md): a
``Schema:`` block, ``Row N:`` blocks of two-space indented ``Name: value`` lines, quoted
strings, ``0x14 (20) -- Issued`` numbers, ``EMPTY``, PEM blocks after ``Binary Certificate:``,
and under ``-v`` hex dumps and decoded certificates between the values.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import SAMPLES

from importer.errors import InputError
from importer.input.dialect import detect
from importer.input.mapping import build_bodies
from importer.input.profiles import ColumnSetting
from importer.input.schema import Validator
from importer.input.source import CsvSource, read_header_names

SCHEMA = """\
Schema:
  Column Name                   Localized Name                Type    MaxLength
  ----------------------------  ----------------------------  ------  ---------
  RequestID                     Issued Request ID             Long    4 -- Indexed
  SerialNumber                  Serial Number                 String  128 -- Indexed
  CertificateHash               Certificate Hash              String  128 -- Indexed
  NotBefore                     Certificate Effective Date    Date    8
  NotAfter                      Certificate Expiration Date   Date    8 -- Indexed
  CommonName                    Issued Common Name            String  8192 -- Indexed
  DistinguishedName             Issued Distinguished Name     String  8192
  Request.Disposition           Request Disposition           Long    4 -- Indexed
  Request.RevokedWhen           Revocation Date               Date    8
"""
NAMES = (
    "Issued Request ID",
    "Serial Number",
    "Certificate Hash",
    "Certificate Effective Date",
    "Certificate Expiration Date",
    "Issued Common Name",
    "Issued Distinguished Name",
    "Request Disposition",
    "Revocation Date",
)
TAIL = "Maximum Row Index: {n}\n\n{n} Rows\nCertUtil: -view command completed successfully.\n"
# The CA database has no issuer column: the CA's name is a constant, as in samples/.
ISSUER = [ColumnSetting("certificateIssuerName", (), "CN=Contoso Issuing CA")]


def hash_of(n: int) -> str:
    return " ".join(f"{(n * 7 + i) % 256:02x}" for i in range(20))


def row(n: int, *, name: str = "", revoked: bool = False, extra: str = "") -> str:
    """One Row block of the SCHEMA columns for certificate ``n``."""
    cn = name or f"pc-{n:04d}.contoso.com"
    disposition = "0x15 (21) -- Revoked" if revoked else "0x14 (20) -- Issued"
    return (
        f"Row {n}:\n"
        f"  Issued Request ID: 0x{n + 1000:x} ({n + 1000})\n"
        f'  Serial Number: "61{n:012x}"\n'
        f'  Certificate Hash: "{hash_of(n)}"\n'
        f"  Certificate Effective Date: 1/{n % 28 + 1}/2025 10:32 AM\n"
        f"  Certificate Expiration Date: 1/{n % 28 + 1}/2027 10:32 AM\n"
        f'  Issued Common Name: "{cn}"\n'
        f'  Issued Distinguished Name: "CN={cn}, OU=Workstations, DC=contoso, DC=com"\n'
        f"  Request Disposition: {disposition}\n"
        f"  Revocation Date: {'4/2/2025 3:20 PM' if revoked else 'EMPTY'}\n"
        f"{extra}\n"
    )


def dump(*rows: str) -> str:
    return SCHEMA + "\n" + "".join(rows) + TAIL.format(n=len(rows))


def write(tmp_path: Path, text: str, encoding: str = "utf-16", ending: str = "\r\n") -> Path:
    path = tmp_path / "dump.txt"
    path.write_bytes(text.replace("\n", ending).encode(encoding))
    return path


def read(path: Path, chunk_size: int = 2) -> tuple[list[int], list[dict[str, str]], dict]:
    """(lines, cells by name, faults by line) of every record."""
    source = CsvSource(path, chunk_size=chunk_size, encoding="auto", columns=ISSUER)
    lines: list[int] = []
    cells: list[dict[str, str]] = []
    faults: dict[int, Any] = {}
    for chunk in source.chunks():
        assert len(chunk) <= chunk_size
        lines += chunk.lines.tolist()
        cells += [dict(zip(chunk.raw.columns, r, strict=True)) for r in chunk.raw.values]
        faults.update({int(chunk.lines[p]): f for p, f in chunk.faults.items()})
    return lines, cells, faults


def bodies(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line, body) of the valid records and the problems, as a run sends and reports them."""
    source = CsvSource(path, chunk_size=3, encoding="auto", columns=ISSUER)
    check = Validator(source.header, timezone="UTC", dayfirst=False)
    sent: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for chunk in source.chunks():
        vc = check.validate(chunk)
        valid = np.flatnonzero(vc.valid)
        sent += list(zip(vc.lines[valid].tolist(), build_bodies(vc.values, valid), strict=True))
        problems += [p.describe("f") for pos in sorted(vc.problems) for p in vc.problems[pos]]
    return sent, problems


# --- detection and header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "ending"),
    [("utf-16", "\r\n"), ("utf-16", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\n"), ("utf-8", "\r")],
    ids=["utf16-crlf", "utf16-lf", "utf8-crlf", "utf8-bom-lf", "utf8-cr"],
)
def test_a_dump_is_detected_and_its_schema_names_are_the_header(
    tmp_path: Path, encoding: str, ending: str
) -> None:
    path = write(tmp_path, dump(row(1), row(2)), encoding, ending)
    dialect, sample = detect(str(path))
    assert dialect.form == "certutil"
    assert "certutil -view text" in dialect.describe()
    names, _ = read_header_names(str(path), dialect, sample)
    assert tuple(names) == NAMES
    source = CsvSource(path, encoding="auto", columns=ISSUER)
    assert source.header.profile.name == "adcs"
    assert source.header.names == NAMES
    assert source.notable() is not None  # the operator is told how the file is read


def test_rows_become_records_at_their_row_line_with_csv_form_values(tmp_path: Path) -> None:
    path = write(tmp_path, dump(row(1), row(2, revoked=True), row(3, name="José Müller")))
    lines, cells, faults = read(path)
    first = SCHEMA.count("\n") + 2  # the schema, a blank line, then "Row 1:"
    assert lines == [first, first + 11, first + 22]
    assert faults == {}
    assert cells[0] == {
        "Issued Request ID": "1001",
        "Serial Number": "61000000000001",
        "Certificate Hash": hash_of(1),
        "Certificate Effective Date": "1/2/2025 10:32 AM",
        "Certificate Expiration Date": "1/2/2027 10:32 AM",
        "Issued Common Name": "pc-0001.contoso.com",
        "Issued Distinguished Name": "CN=pc-0001.contoso.com, OU=Workstations, DC=contoso, DC=com",
        "Request Disposition": "20 -- Issued",
        "Revocation Date": "EMPTY",
    }
    assert cells[1]["Request Disposition"] == "21 -- Revoked"
    assert cells[1]["Revocation Date"] == "4/2/2025 3:20 PM"
    assert cells[2]["Issued Common Name"] == "José Müller"


def test_the_adcs_profile_maps_a_dump_to_graph_bodies(tmp_path: Path) -> None:
    path = write(tmp_path, dump(row(1), row(2, revoked=True)))
    sent, problems = bodies(path)
    assert problems == []
    (line1, body1), (line2, body2) = sent
    assert (line1, line2) == (SCHEMA.count("\n") + 2, SCHEMA.count("\n") + 13)
    assert body1["certificateThumbprint"] == hash_of(1).replace(" ", "").upper()
    assert body1["certificateSerialNumber"] == "61000000000001"
    assert body1["certificateIssuerName"] == "CN=Contoso Issuing CA"
    assert body1["certificateRevokeStatus"] == "none"
    assert "certificateRevokeStatusLastChangeDateTime" not in body1  # EMPTY is empty
    assert body1["certificateIssuanceDateTime"] == "2025-01-02T10:32:00Z"
    assert body2["certificateRevokeStatus"] == "revoked"
    assert body2["certificateRevokeStatusLastChangeDateTime"] == "2025-04-02T15:20:00Z"


def test_a_bad_cell_is_reported_on_the_line_of_its_row(tmp_path: Path) -> None:
    bad = row(2).replace(f'"{hash_of(2)}"', '"12 34"')
    path = write(tmp_path, dump(row(1), bad, row(3)))
    sent, problems = bodies(path)
    line = SCHEMA.count("\n") + 13
    assert problems == [
        f"f:{line}: column Certificate Hash: '12 34' is not a SHA-1 thumbprint: 40 hex digits "
        "after removing spaces and colons"
    ]
    assert [n for n, _ in sent] == [line - 11, line + 11]


# --- what a row may hold besides its values ---------------------------------------------------

VERBOSE = """\
  Binary Certificate:
-----BEGIN CERTIFICATE-----
MIIF7zCCBNegAwIBAgITIAAAACEjcF5lfh4m1wAAAAAAITANBgkqhkiG9w0BAQsF
-----END CERTIFICATE-----

X509 Certificate:
Version: 3
Serial Number: 200000002123705e657e1e26d7000000000021
Subject:
    CN=meereen.essos.local
  Name Hash(sha1): f5ee86dadcdca8c420a0856d643df230cbde7fc5
 NotBefore: 7/30/2025 7:14 PM GMT
  Request Disposition Message: "Issued  0x80094004, The Enrollee has no E-Mail name.
"
0000    49 00 73 00 73 00 75 00  65 00 64 00               I.s.s.u.e.d.
  Template Enrollment Flags: 0x29 (41)
    CT_FLAG_INCLUDE_SYMMETRIC_ALGORITHMS -- 1
    CT_FLAG_PUBLISH_TO_DS -- 8
"""
VERBOSE_SCHEMA = (
    "  RawCertificate                Binary Certificate            Binary  16384\n"
    "  Request.DispositionMessage    Request Disposition Message   String  8192\n"
    "  EnrollmentFlags               Template Enrollment Flags     Long    4\n"
)


def test_pem_blocks_multi_line_quotes_and_verbose_dumps_stay_in_their_row(tmp_path: Path) -> None:
    text = dump(row(1, extra=VERBOSE), row(2, extra=VERBOSE)).replace(
        "Long    4 -- Indexed\n  SerialNumber",
        "Long    4 -- Indexed\n" + VERBOSE_SCHEMA + "  SerialNumber",
        1,
    )
    lines, cells, faults = read(write(tmp_path, text, "utf-8", "\n"))
    assert faults == {}
    assert len(cells) == 2
    assert lines[1] - lines[0] == row(1, extra=VERBOSE).count("\n")
    first = cells[0]
    assert first["Binary Certificate"] == (
        "-----BEGIN CERTIFICATE-----\n"
        "MIIF7zCCBNegAwIBAgITIAAAACEjcF5lfh4m1wAAAAAAITANBgkqhkiG9w0BAQsF\n"
        "-----END CERTIFICATE-----"
    )
    # the decoded certificate's "Serial Number:" and "Name Hash" lines are not values
    assert first["Serial Number"] == "61000000000001"
    assert first["Request Disposition Message"] == (
        "Issued  0x80094004, The Enrollee has no E-Mail name."
    )
    assert first["Template Enrollment Flags"] == "41"


def test_a_row_cut_short_and_a_quote_never_closed_are_rejected_on_their_row(
    tmp_path: Path,
) -> None:
    cut = "".join(row(2).splitlines(keepends=True)[:5]) + "\n"  # the dump ends inside row 2
    unclosed = row(3).replace('"pc-0003.contoso.com"\n', '"pc-0003.contoso.com\n')
    text = SCHEMA + "\n" + row(1) + unclosed + cut
    lines, _, faults = read(write(tmp_path, text))
    assert len(lines) == 3
    unclosed_line, cut_line = lines[1], lines[2]
    assert faults[unclosed_line].reason == "the quoted value opened here is never closed"
    assert faults[unclosed_line].column == "Issued Common Name"
    assert faults[cut_line].reason == (
        "the row has no 'Certificate Expiration Date', 'Issued Common Name', "
        "'Issued Distinguished Name', 'Request Disposition', 'Revocation Date' line: "
        "the dump may be cut short"
    )
    assert list(faults) == [unclosed_line, cut_line]


def test_a_dump_without_a_schema_takes_its_names_from_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path, row(1) + row(2), "utf-8")
    source = CsvSource(path, encoding="auto", columns=ISSUER)
    assert source.dialect.form == "certutil"
    assert source.header.names == NAMES
    lines, cells, faults = read(path)
    assert (lines, faults) == ([1, 12], {})
    assert cells[1]["Serial Number"] == "61000000000002"


def test_a_schema_without_rows_has_no_records_and_no_names_is_refused(tmp_path: Path) -> None:
    assert read(write(tmp_path, SCHEMA + "\n" + TAIL.format(n=0)))[0] == []
    path = tmp_path / "empty-dump.txt"
    path.write_bytes(codecs.BOM_UTF8 + "\r\n".join(SCHEMA.splitlines()[:3]).encode() + b"\r\n")
    with pytest.raises(InputError) as caught:
        CsvSource(path, encoding="auto", columns=ISSUER)
    assert caught.value.reason.startswith("certutil -view text without a schema")


def test_the_shipped_sample_is_a_utf16_dump_of_20_certificates_and_2_requests() -> None:
    path = SAMPLES / "certutil-view.txt"
    assert path.read_bytes().startswith(codecs.BOM_UTF16_LE)
    lines, cells, faults = read(path, chunk_size=50)
    assert faults == {}
    assert len(cells) == 22
    assert len({c["Serial Number"] for c in cells[:20]}) == 20
    dispositions = {c["Request Disposition"] for c in cells}
    assert dispositions == {"20 -- Issued", "21 -- Revoked", "31 -- Denied", "9 -- Pending"}
    text = path.read_bytes().decode("utf-16").splitlines()
    assert all(text[n - 1].startswith("Row ") for n in lines)
