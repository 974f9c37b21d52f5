"""Reports: neutralised cells, atomic private files, failed.csv that round-trips."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import HEADER, TRICKY, read_csv, report_cells, write_csv

from importer.input.source import CsvSource
from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN, VALID, Outcome
from importer.reports.results import RESULT_COLUMNS, ReportWriter, neutralise

COLUMNS = list(HEADER)


# No stray config file or CERTIMPORT_* variable reaches the reports.
pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("-", "'-"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("", ""),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (" =x", " =x"),
        ("'=x", "'=x"),
        ("1-2", "1-2"),
        ("\n=x", "\n=x"),
    ],
)
def test_neutralise(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tricky_file(tmp_path: Path, header: list[str]) -> Path:
    """One row per tricky cell, placed in the subject column."""
    rows = [header]
    for n, cell in enumerate(TRICKY, start=1):
        cells = dict(zip(COLUMNS, report_cells(n), strict=True))
        cells["certificateSubjectName"] = cell
        rows.append([cells.get(name.strip(), f"extra-{n}") for name in header])
    return write_csv(tmp_path / "inventory.csv", rows)


def write_report(source: CsvSource, out: Path, outcome: Outcome) -> ReportWriter:
    writer = ReportWriter(out, source.header.names)
    for chunk in source.chunks():
        thumbs = chunk.raw[source.header.columns["certificateThumbprint"]].tolist()
        devices = chunk.raw[source.header.columns["managedDeviceDisplayName"]].tolist()
        writer.write(chunk.lines.tolist(), [outcome] * len(chunk), thumbs, devices, chunk.raw)
    return writer


def test_reports_appear_only_after_publish_private(tmp_path: Path) -> None:
    out = tmp_path / "out" / "run1"
    out.mkdir(parents=True, mode=0o755)
    os.chmod(out, 0o755)
    source = CsvSource(tricky_file(tmp_path, COLUMNS), chunk_size=3)
    writer = write_report(source, out, Outcome(REJECTED, error_code="InvalidRow"))
    assert mode(out) == 0o700
    assert sorted(p.name for p in out.iterdir()) == [".failed.csv.partial", ".results.csv.partial"]
    for partial in out.iterdir():
        assert mode(partial) == 0o600
    writer.publish({"records": len(TRICKY)})
    assert sorted(p.name for p in out.iterdir()) == ["failed.csv", "results.csv", "summary.json"]
    for report in out.iterdir():
        assert mode(report) == 0o600
    assert json.loads((out / "summary.json").read_text()) == {"records": len(TRICKY)}
    assert len(read_csv(out / "results.csv")) == 1 + len(TRICKY)


def test_discard_leaves_no_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = CsvSource(tricky_file(tmp_path, COLUMNS))
    write_report(source, out, Outcome(REJECTED)).discard()
    assert not out.exists()  # the directory it made is gone too: no empty report folder
    out.mkdir()
    (out / "keep.txt").write_text("the operator's")
    write_report(source, out, Outcome(REJECTED)).discard()
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # a directory it found stays


def test_results_csv_neutralises_cells(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "inventory.csv",
        [
            COLUMNS,
            ["=" + report_cells(1)[0][1:], *report_cells(1)[1:2], "-PC", *report_cells(1)[3:]],
        ],
    )
    source = CsvSource(path)
    outcome = Outcome(
        REJECTED,
        http_status=400,
        error_code="=BadRequest",
        error_message="+property certificateThumbprint is invalid",
        attempts=1,
        request_id="r-1",
    )
    writer = write_report(source, tmp_path / "out", outcome)
    writer.publish({})
    results = read_csv(tmp_path / "out" / "results.csv")
    assert results == [
        list(RESULT_COLUMNS),
        [
            "2",
            "rejected",
            "",
            "'=" + report_cells(1)[0][1:],
            "'-PC",
            "400",
            "'=BadRequest",
            "'+property certificateThumbprint is invalid",
            "1",
            "r-1",
        ],
    ]


@pytest.mark.parametrize(
    "header",
    [
        COLUMNS,
        [" CERTIFICATEthumbprint ", *COLUMNS[1:], "Notes"],
        ["id", *COLUMNS],
    ],
    ids=["graph-names", "odd-spelling-and-extra", "with-id"],
)
def test_failed_csv_keeps_header_and_cells_unchanged(tmp_path: Path, header: list[str]) -> None:
    path = tricky_file(tmp_path, header)
    source = CsvSource(path, chunk_size=4)
    writer = write_report(source, tmp_path / "out", Outcome(REJECTED, error_code="=X"))
    writer.publish({})
    original = read_csv(path)
    failed = read_csv(tmp_path / "out" / "failed.csv")
    assert failed[0] == [*header, "import_error"]
    assert [row[:-1] for row in failed[1:]] == original[1:]
    assert {row[-1] for row in failed[1:]} == {"rejected: =X: "}


@pytest.mark.parametrize(
    ("status", "in_failed"),
    [(CREATED, False), (VALID, False), (REJECTED, True), (FAILED, True), (UNKNOWN, True)],
)
def test_failed_csv_holds_every_row_not_created(
    tmp_path: Path, status: str, in_failed: bool
) -> None:
    path = write_csv(tmp_path / "inventory.csv", [COLUMNS, report_cells(1)])
    writer = write_report(CsvSource(path), tmp_path / "out", Outcome(status, error_message="m"))
    writer.publish({})
    failed = read_csv(tmp_path / "out" / "failed.csv")
    expected = [[*report_cells(1), f"{status}: : m"]] if in_failed else []
    assert failed == [[*COLUMNS, "import_error"], *expected]


@pytest.mark.parametrize("error_column", ["import_error", "Import_Error", " import_error "])
def test_existing_import_error_column_is_replaced_not_duplicated(
    tmp_path: Path, error_column: str
) -> None:
    header = [*COLUMNS[:3], error_column, *COLUMNS[3:]]
    cells = [*report_cells(1)[:3], "rejected: old reason", *report_cells(1)[3:]]
    path = write_csv(tmp_path / "inventory.csv", [header, cells])
    writer = write_report(CsvSource(path), tmp_path / "out", Outcome(REJECTED, error_code="New"))
    writer.publish({})
    assert read_csv(tmp_path / "out" / "failed.csv") == [
        [*COLUMNS, "import_error"],
        [*report_cells(1), "rejected: New: "],
    ]
