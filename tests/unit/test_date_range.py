"""Dates Graph would refuse are rejected on their line: outside years 0001-9999 in UTC, and
0001-01-01 (Graph's value for "no date")."""

from __future__ import annotations

import pytest
from helpers import row, write_inventory

from importer.input.schema import Validator
from importer.input.source import CsvSource

ISSUED, EXPIRES = "certificateIssuanceDateTime", "certificateExpirationDateTime"


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        (EXPIRES, "9999-12-31T23:59:59-01:00", "outside Graph's range"),
        (ISSUED, "0001-01-01T00:00:00+01:00", "outside Graph's range"),
        (ISSUED, "0000-01-01T00:00:00Z", "outside Graph's range"),
        (ISSUED, "0001-01-01", "Graph's value for no date"),
        (ISSUED, "0001-01-01T00:00:00Z", "Graph's value for no date"),
        (ISSUED, "0001-01-01T01:00:00+01:00", "Graph's value for no date"),
        (EXPIRES, "9999-12-31T23:59:59Z", None),
        (EXPIRES, "9999-12-31T23:59:59+01:00", None),
        (ISSUED, "0001-01-02T00:00:00Z", None),
        (ISSUED, "0001-01-01T00:00:01Z", None),
    ],
)
def test_dates_outside_what_graph_accepts_are_rejected(tmp_path, column, cell, reason):
    source = CsvSource(write_inventory(tmp_path / "inv.csv", [row(1, **{column: cell})]))
    vc = Validator(source.header).validate(next(source.chunks()))
    problems = vc.problems.get(0, [])
    if reason is None:
        assert problems == []
    else:
        assert [p.column for p in problems] == [column]
        assert reason in problems[0].reason
        assert problems[0].value == cell
