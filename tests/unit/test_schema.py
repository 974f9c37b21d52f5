"""Validator and build_bodies: every rule, exact problems, exact Graph bodies.

Each test writes a real CSV, reads it with CsvSource, validates every chunk with Validator and
builds the bodies of the valid rows, exactly as a run does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import ALL_COLUMNS, body, row

from importer.input.mapping import build_bodies
from importer.input.schema import Problem, Validator
from importer.input.source import CsvSource

THUMB = "certificateThumbprint"
SERIAL = "certificateSerialNumber"
DEVICE = "managedDeviceDisplayName"
UPN = "userPrincipalName"
ISSUER = "certificateIssuerName"
SUBJECT = "certificateSubjectName"
STATUS = "certificateRevokeStatus"
CHANGED = "certificateRevokeStatusLastChangeDateTime"
ISSUED = "certificateIssuanceDateTime"
EXPIRES = "certificateExpirationDateTime"
USAGES = "certificateKeyUsages"
EKU = "certificateExtendedKeyUsages"
COLUMNS = list(ALL_COLUMNS)

R_THUMB = "is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons"
R_SERIAL = "is not a serial number: 1 to 40 hex digits after removing spaces and colons"
R_STATUS = "is not a revoke status: use one of none, pending, issued, failed, revoked"
R_DATE = "is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z"
R_INT = "is not an integer in Int32 range (-2147483648..2147483647)"
R_REQUIRED = "is required and empty"
R_CONTROL = "contains a control character"
R_ORDER = "issuance date is after the expiration date"
R_DUPE = "duplicates line {}: the same certificate on the same device"


def r_local(zone: str) -> str:
    return (
        f"does not exist or is ambiguous as a local time in {zone} (clock change); "
        "give the offset explicitly"
    )


@dataclass
class Outcome:
    problems: list[Problem] = field(default_factory=list)
    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)  # line -> body

    def at(self, line: int) -> set[tuple[str | None, str, str | None]]:
        """(column, reason, value) of every problem on ``line``."""
        return {(p.column, p.reason, p.value) for p in self.problems if p.line == line}


def write(
    path: Path, rows: list[dict[str, str]], names: list[str] | None = None, *, gap: int = 0
) -> Path:
    """Write rows with header ``names`` (file spelling of COLUMNS, same order).

    CRLF line endings, as Excel writes them; the csv module then quotes any cell holding a
    CR or LF. ``gap`` blank lines follow every record.
    """
    names = names or list(COLUMNS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(names)
        for cells in rows:
            writer.writerow([cells.get(c, "") for c in COLUMNS[: len(names)]])
            handle.write("\r\n" * gap)
    return path


def check(
    tmp_path: Path,
    rows: list[dict[str, str]],
    *,
    timezone: str = "UTC",
    chunk_size: int = 100,
    names: list[str] | None = None,
    gap: int = 0,
) -> Outcome:
    path = write(tmp_path / "inventory.csv", rows, names, gap=gap)
    source = CsvSource(path, chunk_size=chunk_size)
    validator = Validator(source.header, timezone=timezone)
    result = Outcome()
    for chunk in source.chunks():
        vc = validator.validate(chunk)
        assert sorted(vc.problems) == np.flatnonzero(~vc.valid).tolist()
        for pos in sorted(vc.problems):
            result.problems += vc.problems[pos]
        valid = np.flatnonzero(vc.valid)
        bodies = build_bodies(vc.values, valid)
        result.bodies.update(zip(vc.lines[valid].tolist(), bodies, strict=True))
    return result


# --- bodies ----------------------------------------------------------------------------------


def test_valid_row_gives_the_exact_body(tmp_path: Path) -> None:
    result = check(tmp_path, [row(1), row(2, **{CHANGED: "2025-06-04T02:04:53Z"})])
    assert result.problems == []
    assert result.bodies == {2: body(1), 3: body(2, **{CHANGED: "2025-06-04T02:04:53Z"})}
    assert type(result.bodies[2][USAGES]) is int


def test_id_import_error_and_unknown_columns_are_never_sent(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *COLUMNS, "Notes", "import_error"])
        cells = [row(1).get(c, "") for c in COLUMNS]
        writer.writerow(["0f9e-guid", *cells, "a note", "rejected: old"])
    source = CsvSource(path)
    vc = Validator(source.header).validate(next(source.chunks()))
    assert build_bodies(vc.values, np.flatnonzero(vc.valid)) == [body(1)]


def test_optional_empty_cells_are_left_out(tmp_path: Path) -> None:
    result = check(tmp_path, [row(1, **{DEVICE: "", UPN: "", CHANGED: "", USAGES: "", EKU: ""})])
    assert result.problems == []
    assert result.bodies == {2: body(1, **{DEVICE: None, UPN: None, USAGES: None, EKU: None})}


def test_whitespace_only_optional_cells_are_empty(tmp_path: Path) -> None:
    cells = {DEVICE: " ", UPN: "   ", CHANGED: "  ", USAGES: " \t ", EKU: "\t"}
    result = check(tmp_path, [row(1, **cells)])
    assert result.problems == []
    assert result.bodies == {2: body(1, **{DEVICE: None, UPN: None, USAGES: None, EKU: None})}


def test_optional_revoke_change_column_may_be_absent(tmp_path: Path) -> None:
    names = [c for c in COLUMNS if c != CHANGED]
    path = tmp_path / "inventory.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerow(row(1))
    source = CsvSource(path)
    vc = Validator(source.header).validate(next(source.chunks()))
    assert build_bodies(vc.values, np.flatnonzero(vc.valid)) == [body(1)]


# --- normalisation -------------------------------------------------------------------------

AC = "ACA4EC7D63E913AF7EE10C2352C347484CCD780B"


@pytest.mark.parametrize(
    ("column", "cell", "sent"),
    [
        (THUMB, "ac a4 ec 7d 63 e9 13 af 7e e1 0c 23 52 c3 47 48 4c cd 78 0b", AC),
        (THUMB, "ac:a4:ec:7d:63:e9:13:af:7e:e1:0c:23:52:c3:47:48:4c:cd:78:0b", AC),
        (THUMB, "\u200eaca4ec7d63e913af7ee10c2352c347484ccd780b", AC),
        (THUMB, f"  {AC.lower()}  ", AC),
        (SERIAL, "00:9c:78:25", "009C7825"),
        (SERIAL, "0", "0"),
        (SERIAL, "00 ab", "00AB"),
        (SERIAL, "f" * 40, "F" * 40),
        (STATUS, "Revoked", "revoked"),
        (STATUS, " NONE ", "none"),
        (STATUS, "pEnDiNg", "pending"),
        (STATUS, "Issued", "issued"),
        (STATUS, "FAILED", "failed"),
        (USAGES, " 160 ", 160),
        (USAGES, "0", 0),
        (USAGES, "+7", 7),
        (USAGES, "-2147483648", -2147483648),
        (USAGES, "2147483647", 2147483647),
        (USAGES, "00128", 128),
        (UPN, " alice@contoso.com", " alice@contoso.com"),
    ],
)
def test_cells_are_normalised(tmp_path: Path, column: str, cell: str, sent: Any) -> None:
    result = check(tmp_path, [row(1, **{column: cell})])
    assert result.problems == []
    assert result.bodies == {2: body(1, **{column: sent})}


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("2025-01-05T10:32:00Z", "2025-01-05T10:32:00Z"),
        ("2025-01-05T10:32:00+00:00", "2025-01-05T10:32:00Z"),
        ("2025-01-05T10:32:00-00:00", "2025-01-05T10:32:00Z"),
        ("2016-12-31T23:59:01.3955648+03:00", "2016-12-31T20:59:01.3955648Z"),
        ("2025-01-05T10:32:00.5Z", "2025-01-05T10:32:00.5Z"),
        ("2025-01-05T10:32:00,25Z", "2025-01-05T10:32:00.25Z"),
        ("2025-01-05T10:32:00.1000000Z", "2025-01-05T10:32:00.1Z"),
        ("2025-01-05T10:32:00.0000000Z", "2025-01-05T10:32:00Z"),
        ("2025-01-05T10:32:00+0530", "2025-01-05T05:02:00Z"),
        ("2025-01-05T01:00:00+02:00", "2025-01-04T23:00:00Z"),
        ("2025-01-05T20:00:00-08:00", "2025-01-06T04:00:00Z"),
        ("2025-01-05 10:32:00Z", "2025-01-05T10:32:00Z"),
        ("2025-01-05T10:32Z", "2025-01-05T10:32:00Z"),
        ("2025-01-05T10:32:00", "2025-01-05T10:32:00Z"),
        ("2025-01-05", "2025-01-05T00:00:00Z"),
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"),
        (" 2025-01-05T10:32:00Z ", "2025-01-05T10:32:00Z"),
        ("9999-12-31", "9999-12-31T00:00:00Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.9999999Z"),
        ("2025-01-05T10:32:00.123456789+02:00", "2025-01-05T08:32:00.1234567Z"),
        ("2025-01-05T10:32:00z", "2025-01-05T10:32:00Z"),
    ],
)
def test_dates_are_sent_in_utc_with_z(tmp_path: Path, cell: str, sent: str) -> None:
    """Offsets are converted to UTC; up to 7 fractional digits are kept, trailing zeros cut."""
    result = check(tmp_path, [row(1, **{CHANGED: cell})])
    assert result.problems == []
    assert result.bodies[2][CHANGED] == sent


@pytest.mark.parametrize(
    ("timezone", "cell", "sent"),
    [
        ("UTC", "2025-03-30T02:30:00", "2025-03-30T02:30:00Z"),
        ("Europe/Berlin", "2025-01-05T10:32:00", "2025-01-05T09:32:00Z"),
        ("Europe/Berlin", "2025-07-05T10:32:00", "2025-07-05T08:32:00Z"),
        ("Europe/Berlin", "2025-07-05T10:32:00.1234567", "2025-07-05T08:32:00.1234567Z"),
        ("Europe/Berlin", "2025-01-05", "2025-01-04T23:00:00Z"),
        ("Europe/Berlin", "2025-01-05T10:32:00Z", "2025-01-05T10:32:00Z"),
        ("Europe/Berlin", "2025-03-30T02:30:00+01:00", "2025-03-30T01:30:00Z"),
        ("Europe/Berlin", "2025-10-26T02:30:00+02:00", "2025-10-26T00:30:00Z"),
        ("Europe/Berlin", "2025-10-26T02:30:00+01:00", "2025-10-26T01:30:00Z"),
        ("America/New_York", "2025-01-05T10:32:00", "2025-01-05T15:32:00Z"),
        ("Asia/Kolkata", "2025-01-05T10:32:00", "2025-01-05T05:02:00Z"),
    ],
)
def test_dates_without_offset_are_taken_in_the_configured_zone(
    tmp_path: Path, timezone: str, cell: str, sent: str
) -> None:
    result = check(tmp_path, [row(1, **{CHANGED: cell})], timezone=timezone)
    assert result.problems == []
    assert result.bodies[2][CHANGED] == sent


def test_issuance_and_expiration_without_offset_are_converted_too(tmp_path: Path) -> None:
    cells = {ISSUED: "2025-01-05T10:32:00", EXPIRES: "2026-07-05T10:32:00.5"}
    result = check(tmp_path, [row(1, **cells)], timezone="Europe/Berlin")
    assert result.bodies == {
        2: body(1, **{ISSUED: "2025-01-05T09:32:00Z", EXPIRES: "2026-07-05T08:32:00.5Z"})
    }


def test_far_future_expiry_does_not_depend_on_other_rows(tmp_path: Path) -> None:
    rows = [
        row(1, **{EXPIRES: "9999-12-31T23:59:59Z"}),
        row(2, **{EXPIRES: "2026-01-05T10:32:00.1234567Z"}),
    ]
    result = check(tmp_path, rows)
    assert result.problems == []
    assert result.bodies[2][EXPIRES] == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize(
    "cell",
    [
        "0001-01-01T00:00:01Z",  # 0001-01-01T00:00:00Z is Graph's "no date": test_date_range
        "1970-01-01T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2024-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
    ],
)
def test_utc_dates_in_whole_seconds_are_sent_as_written(tmp_path: Path, cell: str) -> None:
    result = check(tmp_path, [row(1), row(2, **{CHANGED: cell}), row(3)])
    assert result.problems == []
    assert [b.get(CHANGED) for b in result.bodies.values()] == [None, cell, None]


def test_cells_that_need_normalising_stay_on_their_rows(tmp_path: Path) -> None:
    """Rows 2 and 4 are sent as written, rows 3 and 5 normalised: each body is its row's."""
    spaced = " ".join(f"{2:040x}"[i : i + 2] for i in range(0, 40, 2))
    rows = [
        row(1),
        row(2, **{THUMB: spaced, STATUS: " Revoked", USAGES: " 160", EKU: "Client Authentication"}),
        row(3),
        row(4, **{ISSUED: "2025-01-05T11:32:00+01:00", EXPIRES: "2026-01-05"}),
    ]
    result = check(tmp_path, rows)
    assert result.problems == []
    assert result.bodies == {
        2: body(1),
        3: body(2, **{STATUS: "revoked"}),
        4: body(3),
        5: body(4, **{EXPIRES: "2026-01-05T00:00:00Z"}),
    }


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        (THUMB, AC[:-1], R_THUMB),
        (THUMB, AC + "0", R_THUMB),
        (THUMB, "G" * 40, R_THUMB),
        (THUMB, "0x" + AC[:38], R_THUMB),
        (THUMB, AC[:20] + "-" + AC[20:], R_THUMB),
        (THUMB, "", R_REQUIRED),
        (THUMB, "   ", R_REQUIRED),
        (SERIAL, "", R_REQUIRED),
        (SERIAL, "0" * 41, R_SERIAL),
        (SERIAL, "12-34", R_SERIAL),
        (SERIAL, "0x1F", R_SERIAL),
        (STATUS, "active", R_STATUS),
        (STATUS, "revoked!", R_STATUS),
        (STATUS, "", R_REQUIRED),
        (ISSUER, "", R_REQUIRED),
        (ISSUER, "   ", R_REQUIRED),
        (SUBJECT, "\t", R_REQUIRED),
        (ISSUED, "", R_REQUIRED),
        (EXPIRES, "", R_REQUIRED),
        (ISSUED, "2026-02-30T00:00:00Z", R_DATE),
        (ISSUED, "2025-02-29", R_DATE),
        (ISSUED, "2025-01-05T24:00:00Z", R_DATE),
        (EXPIRES, "2026-13-01T00:00:00Z", R_DATE),
        (
            EXPIRES,
            "05/01/2026",
            "is not ISO 8601 and its day and month order is unknown: pass --dayfirst or "
            "--monthfirst, or --date-format",
        ),
        (EXPIRES, "2026-1-5", R_DATE),
        (CHANGED, "yesterday", R_DATE),
        (CHANGED, "2025-01-05T10:32:00+25:00", R_DATE),
        (CHANGED, "1736073120", R_DATE),
        (USAGES, "2147483648", R_INT),
        (USAGES, "-2147483649", R_INT),
        (USAGES, "4294967295", R_INT),
        (USAGES, "99999999999999", R_INT),
        (USAGES, "1.0", R_INT),
        (USAGES, "0x1ffffffff", R_INT),
        (USAGES, "abc", R_INT),
        (SUBJECT, "CN=a\x07b", R_CONTROL),
        (SUBJECT, "CN=a\nOU=b", R_CONTROL),
        (ISSUER, "CN=CA\r", R_CONTROL),
        (DEVICE, "PC\x7f1", R_CONTROL),
        (UPN, "a\x1b@contoso.com", R_CONTROL),
        (EKU, "1.3.6\t.1", R_CONTROL),
    ],
)
def test_bad_cell_gives_one_exact_problem(
    tmp_path: Path, column: str, cell: str, reason: str
) -> None:
    result = check(tmp_path, [row(1), row(2, **{column: cell}), row(3)])
    assert result.problems == [Problem(3, column, reason, cell)]
    assert sorted(result.bodies) == [2, 4 + cell.count("\n")]


@pytest.mark.parametrize(
    ("cell", "timezone"),
    [
        ("2025-03-30T02:30:00", "Europe/Berlin"),  # spring forward: 02:00-03:00 never happens
        ("2025-03-30T02:00:00.5", "Europe/Berlin"),
        ("2025-10-26T02:30:00", "Europe/Berlin"),  # fall back: 02:00-03:00 happens twice
        ("2025-03-09T02:30:00", "America/New_York"),
    ],
)
def test_local_times_in_a_clock_change_are_rejected(
    tmp_path: Path, cell: str, timezone: str
) -> None:
    result = check(tmp_path, [row(1, **{ISSUED: cell}), row(2)], timezone=timezone)
    assert result.problems == [Problem(2, ISSUED, r_local(timezone), cell)]
    assert list(result.bodies) == [3]


@pytest.mark.parametrize(
    ("issued", "expires", "timezone", "valid"),
    [
        ("2025-01-05T10:32:00Z", "2025-01-05T10:32:00Z", "UTC", True),
        ("2025-01-05T10:32:00Z", "2025-01-05T10:31:59.9999999Z", "UTC", False),
        ("2027-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "UTC", False),
        ("2025-01-01T01:00:00+02:00", "2024-12-31T23:30:00Z", "UTC", True),
        ("2024-12-31T23:30:00Z", "2025-01-01T01:00:00+02:00", "UTC", False),
        ("2025-01-01T00:30:00", "2024-12-31T23:45:00Z", "Europe/Berlin", True),
        ("2025-01-01T00:30:00", "2024-12-31T23:45:00Z", "UTC", False),
    ],
)
def test_issuance_must_not_be_after_expiration(
    tmp_path: Path, issued: str, expires: str, timezone: str, valid: bool
) -> None:
    result = check(tmp_path, [row(1, **{ISSUED: issued, EXPIRES: expires})], timezone=timezone)
    if valid:
        assert result.problems == []
    else:
        assert result.problems == [Problem(2, ISSUED, R_ORDER)]


def test_order_compares_dates_written_in_utc_with_converted_ones(tmp_path: Path) -> None:
    cells = {ISSUED: "2025-01-05T10:32:00Z", EXPIRES: "2025-01-05T11:31:00+01:00"}
    result = check(tmp_path, [row(1, **cells), row(2)])
    assert result.problems == [Problem(2, ISSUED, R_ORDER)]


def test_problems_of_one_cell_keep_the_order_of_the_checks(tmp_path: Path) -> None:
    result = check(tmp_path, [row(1, **{THUMB: "AB\x01", USAGES: "1\x01"})])
    assert result.problems == [  # by column, then in the order the checks run
        Problem(2, USAGES, R_INT, "1\x01"),
        Problem(2, USAGES, R_CONTROL, "1\x01"),
        Problem(2, THUMB, R_THUMB, "AB\x01"),
        Problem(2, THUMB, R_CONTROL, "AB\x01"),
    ]


def test_order_is_not_checked_when_a_date_is_unreadable(tmp_path: Path) -> None:
    result = check(tmp_path, [row(1, **{ISSUED: "2030-02-30T00:00:00Z"})])
    assert result.problems == [Problem(2, ISSUED, R_DATE, "2030-02-30T00:00:00Z")]


def test_every_problem_of_every_row_is_reported(tmp_path: Path) -> None:
    rows = [
        row(1),
        row(
            2,
            **{
                THUMB: "xyz",
                SERIAL: "",
                ISSUER: "  ",
                SUBJECT: "CN=a\x01b",
                STATUS: "bad",
                CHANGED: "soon",
                USAGES: "2147483648",
            },
        ),
        row(3, **{ISSUED: "2027-01-05T10:32:00Z", USAGES: "x"}),
        row(4, **{EXPIRES: "2026-02-30T00:00:00Z", STATUS: ""}),
        row(5),
    ]
    result = check(tmp_path, rows, chunk_size=2)
    assert result.at(3) == {
        (THUMB, R_THUMB, "xyz"),
        (SERIAL, R_REQUIRED, ""),
        (ISSUER, R_REQUIRED, "  "),
        (SUBJECT, R_CONTROL, "CN=a\x01b"),
        (STATUS, R_STATUS, "bad"),
        (CHANGED, R_DATE, "soon"),
        (USAGES, R_INT, "2147483648"),
    }
    assert result.at(4) == {(ISSUED, R_ORDER, None), (USAGES, R_INT, "x")}
    assert result.at(5) == {(EXPIRES, R_DATE, "2026-02-30T00:00:00Z"), (STATUS, R_REQUIRED, "")}
    assert len(result.problems) == 7 + 2 + 2
    assert sorted(result.bodies) == [2, 6]


def test_problems_name_the_column_as_written_in_the_file(tmp_path: Path) -> None:
    names = [" CERTIFICATEthumbprint ", "certificateserialnumber", *COLUMNS[2:]]
    result = check(tmp_path, [row(1, **{THUMB: "zz", SERIAL: "yy"})], names=names)
    assert sorted(result.problems, key=lambda p: p.reason) == [
        Problem(2, " CERTIFICATEthumbprint ", R_THUMB, "zz"),
        Problem(2, "certificateserialnumber", R_SERIAL, "yy"),
    ]


def test_problem_describe_is_the_line_an_operator_reads() -> None:
    problem = Problem(7, SERIAL, R_SERIAL, "xx")
    assert problem.describe("inv.csv") == f"inv.csv:7: column {SERIAL}: 'xx' {R_SERIAL}"
    assert Problem(3, ISSUED, R_ORDER).describe("a.csv") == f"a.csv:3: column {ISSUED}: {R_ORDER}"
    long = Problem(2, SUBJECT, R_CONTROL, "x" * 100).describe("a.csv")
    assert long == f"a.csv:2: column {SUBJECT}: '{'x' * 57}...' {R_CONTROL}"


# --- duplicate keys --------------------------------------------------------------------------


def test_duplicate_keys_within_a_chunk_name_the_first_line(tmp_path: Path) -> None:
    rows = [
        row(1),  # line 2
        row(1, **{DEVICE: "PC-other"}),  # line 3: same certificate, other device: fine
        row(1, **{THUMB: ":".join(f"{1:040x}"[i : i + 2] for i in range(0, 40, 2))}),  # 4: dupe
        row(2),  # line 5
        row(2, **{SERIAL: "FF"}),  # line 6: same key, other cells: still a duplicate of 5
        row(1),  # line 7: dupe of 2
    ]
    result = check(tmp_path, rows)
    assert result.problems == [
        Problem(4, THUMB, R_DUPE.format(2)),
        Problem(6, THUMB, R_DUPE.format(5)),
        Problem(7, THUMB, R_DUPE.format(2)),
    ]
    assert sorted(result.bodies) == [2, 3, 5]


def test_duplicate_keys_across_chunks_name_the_first_physical_line(tmp_path: Path) -> None:
    # one blank line after every record: records sit on lines 2, 4, 6, ...
    rows = [row(1), row(2), row(3), row(2), row(4), row(1), row(1)]
    result = check(tmp_path, rows, chunk_size=2, gap=1)
    assert result.problems == [
        Problem(8, THUMB, R_DUPE.format(4)),
        Problem(12, THUMB, R_DUPE.format(2)),
        Problem(14, THUMB, R_DUPE.format(2)),
    ]
    assert sorted(result.bodies) == [2, 4, 6, 10]


def test_empty_device_name_is_part_of_the_key(tmp_path: Path) -> None:
    rows = [row(1, **{DEVICE: ""}), row(1, **{DEVICE: " "}), row(1)]
    result = check(tmp_path, rows)
    assert result.problems == [Problem(3, THUMB, R_DUPE.format(2))]
