"""Reports through the CLI: failed.csv of a validate run is read again as it was written."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import HEADER, TRICKY, invoke, read_csv, report_cells, write_csv

COLUMNS = list(HEADER)

# No stray config file or CERTIMPORT_* variable reaches the CLI runs.
pytestmark = pytest.mark.usefixtures("isolated")


def test_failed_csv_from_validate_is_read_again(tmp_path: Path) -> None:
    """validate -> failed.csv -> validate: the same rows, the same cells, the same reasons."""
    header = ["Notes", *COLUMNS]
    rows = [header]
    for n, cell in enumerate(TRICKY, start=1):
        cells = report_cells(n)
        cells[2] = f"-PC-{n}"  # a formula start in a Graph column: kept as is in failed.csv
        if n % 2:  # odd rows get a bad serial number; even rows stay valid
            cells[1] = "serial-" + str(n)
        rows.append([cell, *cells])
    inventory = write_csv(tmp_path / "inventory.csv", rows)

    first = invoke("validate", str(inventory), "--out", "one", catch_exceptions=True)
    assert first.exit_code == 1, first.stdout + first.stderr
    failed = tmp_path / "one" / "failed.csv"
    second = invoke("validate", str(failed), "--out", "two", catch_exceptions=True)
    assert second.exit_code == 1, second.stdout + second.stderr

    bad = [r for r in rows[1:] if r[2].startswith("serial-")]
    first_failed = read_csv(failed)
    second_failed = read_csv(tmp_path / "two" / "failed.csv")
    assert first_failed[0] == second_failed[0] == [*header, "import_error"]
    assert [r[:-1] for r in first_failed[1:]] == bad
    assert second_failed == first_failed  # same cells, same reasons, one import_error column

    first_results = read_csv(tmp_path / "one" / "results.csv")[1:]
    second_results = read_csv(tmp_path / "two" / "results.csv")[1:]
    assert [r[4] for r in first_results] == [f"'-PC-{n}" for n in range(1, len(TRICKY) + 1)]
    assert [r[1] for r in second_results] == ["rejected"] * len(bad)
    assert [r[7] for r in second_results] == [r[7] for r in first_results if r[1] == "rejected"]
