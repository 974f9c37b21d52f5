"""The date order inferred from the file: which cell decides, across chunks, and what is said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import validated

from importer.input.dates import Evidence, decide, evidence
from importer.input.schema import Validator
from importer.input.source import Chunk, CsvSource

HEADER = "Thumbprint,SerialNumber,Subject,Issuer,NotBefore,NotAfter"


def inventory(tmp_path: Path, dates: list[tuple[str, str]]) -> Path:
    """A PowerShell-shaped export with one row per (NotBefore, NotAfter)."""
    rows = [
        f"{n:040X},{n:X},CN=user{n},CN=Contoso CA,{before},{after}"
        for n, (before, after) in enumerate(dates, start=1)
    ]
    path = tmp_path / "certs.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def run(
    path: Path, *, source: bool = True, chunk_size: int = 2, **dates: Any
) -> tuple[Validator, list[dict[str, Any]], list[str]]:
    """(validator after the whole file, bodies sent, problems as the operator reads them)."""
    src = CsvSource(path, chunk_size=chunk_size)
    check = Validator(src.header, source=src if source else None, **dates)
    sent, problems = validated(src, check)
    return check, sent, problems


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        (["05.01.2025", "13.01.2025 10:32"], [(True, 3)]),
        (["1/5/2025 9:12:44 AM", "1/13/2025 9:12:44 AM"], [(False, 3)]),
        (["05.01.2025", "1/5/2025"], []),
        (["2025-01-13", "2025/01/13", "13.13.2025", "32.01.2025"], []),
        (["13.01.2025", "1/13/2025"], [(True, 2), (False, 3)]),
    ],
)
def test_a_cell_decides_when_it_reads_one_way_only(
    cells: list[str], found: list[tuple[bool, int]]
) -> None:
    lines = np.arange(2, 2 + len(cells))
    got = evidence(pd.Series(cells, dtype="str"), lines, "NotBefore")
    assert [(e.dayfirst, e.line) for e in got] == found


def test_both_orders_in_one_chunk_decide_nothing() -> None:
    day = Evidence(True, 9, "NotBefore", "13.01.2025")
    month = Evidence(False, 4, "NotAfter", "1/13/2025")
    order = decide([day, month])
    assert order is not None and (order.how, order.dayfirst) == ("conflict", None)
    assert order.describe() == (
        "unknown: line 4 (NotAfter '1/13/2025') reads month-first only, "
        "line 9 (NotBefore '13.01.2025') reads day-first only"
    )


def test_the_first_decisive_cell_sets_the_order_and_is_said_once(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        [("05.01.2025 09:00:00", "05.01.2026 09:00:00")] * 1
        + [
            ("20.02.2025 10:00:00", "20.02.2026 10:00:00"),
            ("03.04.2025 11:00", "03.04.2026 11:00"),
        ],
    )
    check, sent, problems = run(path, chunk_size=50)
    assert problems == []
    assert [b["certificateIssuanceDateTime"] for b in sent] == [
        "2025-01-05T09:00:00Z",
        "2025-02-20T10:00:00Z",
        "2025-04-03T11:00:00Z",
    ]
    assert (
        check.date_order.describe()
        == "day-first, inferred from line 3 (NotBefore '20.02.2025 10:00:00')"
    )
    assert [(n.line, n.warning) for n in check.notes] == [(3, False)]
    assert check.notes[0].describe("f") == (
        "f:3: dates are read day-first: column NotBefore holds '20.02.2025 10:00:00', which "
        "reads day-first only (pass --dayfirst or --monthfirst to say it)"
    )


def test_a_later_chunk_decides_for_the_earlier_ones_by_reading_ahead(tmp_path: Path) -> None:
    dates = [("1/5/2025 9:00:00 AM", "1/5/2026 9:00:00 AM")] * 4
    dates.append(("2/20/2025 9:00:00 AM", "2/20/2026 9:00:00 AM"))  # line 6, the third chunk
    path = inventory(tmp_path, dates)
    check, sent, problems = run(path, chunk_size=2)
    assert problems == []
    assert sent[0]["certificateIssuanceDateTime"] == "2025-01-05T09:00:00Z"  # month-first
    assert check.date_order.describe().startswith("month-first, inferred from line 6 ")
    # without the source to read ahead, the first chunks cannot wait for the third
    check, sent, problems = run(path, chunk_size=2, source=False)
    assert len(sent) == 1 and len(problems) == 8
    assert problems[0] == (
        "f:2: column NotAfter: '1/5/2026 9:00:00 AM' is not ISO 8601 and its day and month "
        "order is unknown: pass --dayfirst or --monthfirst, or --date-format"
    )


def test_a_file_that_never_decides_keeps_asking_once(tmp_path: Path) -> None:
    path = inventory(tmp_path, [("05.01.2025", "05.01.2026"), ("06.02.2025", "06.02.2026")] * 3)
    check, sent, problems = run(path, chunk_size=2)
    assert sent == []
    assert len(problems) == 12  # every such cell is rejected: results.csv names each
    assert [(n.line, n.warning) for n in check.notes] == [(2, True)]
    assert "none of them tells the day from the month" in check.notes[0].message
    assert check.date_order.how == "unknown"


def test_a_cell_against_the_inferred_order_names_the_line_it_came_from(tmp_path: Path) -> None:
    dates = [("13.01.2025", "13.01.2026"), ("1/20/2025", "1/20/2026"), ("02.03.2025", "02.03.2026")]
    _, sent, problems = run(inventory(tmp_path, dates), chunk_size=1)
    assert len(sent) == 2
    assert problems[0] == (
        "f:3: column NotAfter: '1/20/2026' is neither an ISO 8601 date-time nor a day-first "
        "date such as 05.01.2025 10:32 (the order was inferred from line 2; pass --monthfirst "
        "if that is wrong)"
    )


def test_a_given_order_is_never_second_guessed(tmp_path: Path) -> None:
    path = inventory(tmp_path, [("2/20/2025", "2/20/2026")])
    check, sent, problems = run(path, dayfirst=True)
    assert sent == [] and len(problems) == 2
    assert check.notes == []
    assert check.date_order.describe() == "day-first (given)"


def test_iso_dates_need_no_order_and_say_nothing(tmp_path: Path) -> None:
    check, _, problems = run(inventory(tmp_path, [("2025-02-30", "2026-01-01")]))
    assert problems == [
        "f:2: column NotBefore: '2025-02-30' is not an ISO 8601 date-time such as "
        "2025-01-05T10:32:00Z"
    ]
    assert check.notes == []
    assert check.date_order.describe() == "ISO 8601 (no other date seen)"


class CountedSource:
    """A CSV source that counts how often the file is read from its start."""

    def __init__(self, path: Path) -> None:
        self.src = CsvSource(path, chunk_size=2)
        self.header = self.src.header
        self.reads = 0

    def chunks(self) -> Iterator[Chunk]:
        self.reads += 1
        return self.src.chunks()


def test_a_second_pass_takes_the_order_the_first_found_without_reading_ahead_again(
    tmp_path: Path,
) -> None:
    dates = [("1/5/2025 9:00:00 AM", "1/5/2026 9:00:00 AM")] * 4
    dates.append(("1/20/2025 9:00:00 AM", "1/20/2026 9:00:00 AM"))  # line 6 decides
    source = CountedSource(inventory(tmp_path, dates))
    first = Validator(source.header, source=source)
    sent, problems = validated(source.src, first)
    assert source.reads == 1  # the read ahead
    second = Validator(source.header, source=source, known_order=first.date_order)
    again, problems_again = validated(source.src, second)
    assert source.reads == 1  # not again
    assert (again, problems_again) == (sent, problems) and len(sent) == 5
    assert second.date_order == first.date_order and second.notes == []
