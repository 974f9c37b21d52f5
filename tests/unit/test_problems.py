"""The console's echo of row problems: each kind of problem a few times, then its count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from importer.input.notes import Note
from importer.input.schema import Problem, ValidatedChunk
from importer.input.source import Chunk
from importer.run.problems import PER_KIND, ProblemEcho

DATE = "is not ISO 8601 and its day and month order is unknown: pass --dayfirst or --monthfirst"


def chunk_with(problems: dict[int, list[Problem]], rows: int) -> ValidatedChunk:
    lines = np.arange(2, rows + 2)
    raw = pd.DataFrame({"a": [""] * rows})
    return ValidatedChunk(Chunk(raw, lines, {}), raw, np.ones(rows, dtype=bool), problems)


def echo(limit: int, *chunks: ValidatedChunk) -> list[str]:
    said: list[str] = []
    problems = ProblemEcho("inv.csv", said.append, limit)
    for vc in chunks:
        problems.report(vc)
    problems.close(Path("out"))
    return said


def test_a_hint_that_repeats_is_said_three_times_then_counted() -> None:
    dates = {
        pos: [Problem(pos + 2, "NotBefore", DATE, f"1/{pos % 12 + 1}/2025")] for pos in range(600)
    }
    dates[300].append(Problem(302, "Thumbprint", "is not a SHA-1 thumbprint", "zz"))
    said = echo(100, chunk_with(dates, 600))
    assert said[:PER_KIND] == [
        f"inv.csv:{line}: column NotBefore: '1/{line - 1}/2025' {DATE}" for line in (2, 3, 4)
    ]
    assert "inv.csv:302: column Thumbprint: 'zz' is not a SHA-1 thumbprint" in said
    assert said[-2:] == [
        f"inv.csv: 597 more line(s) where column NotBefore {DATE}",
        f"every problem is in {Path('out') / 'results.csv'}",
    ]
    assert len(said) == PER_KIND + 1 + 2


def test_the_kinds_are_counted_across_chunks() -> None:
    first = chunk_with(
        {pos: [Problem(pos + 2, None, "expected 9 fields, saw 3")] for pos in range(2)}, 2
    )
    second = chunk_with(
        {pos: [Problem(pos + 10, None, "expected 9 fields, saw 3")] for pos in range(4)}, 4
    )
    said = echo(100, first, second)
    assert len([s for s in said if s.endswith("expected 9 fields, saw 3")]) == 4  # 3 + count line
    assert "inv.csv: 3 more line(s) like this: expected 9 fields, saw 3" in said


def test_zero_shows_every_problem_and_nothing_is_summed() -> None:
    dates = {pos: [Problem(pos + 2, "NotBefore", DATE, "1/1/2025")] for pos in range(10)}
    said = echo(0, chunk_with(dates, 10))
    assert len(said) == 10


def test_the_overall_limit_still_holds_over_many_kinds() -> None:
    many = {pos: [Problem(pos + 2, f"c{pos}", "is bad", "x")] for pos in range(30)}
    said = echo(5, chunk_with(many, 30))
    assert len([s for s in said if s.endswith("'x' is bad")]) == 5
    # ten kinds get a count line of their own, the other fifteen one line together
    assert len([s for s in said if "more line(s) where column" in s]) == 10
    assert "inv.csv: 15 more problem(s) of 15 kinds" in said


def test_notes_are_said_once_and_warnings_returned() -> None:
    said: list[str] = []
    problems = ProblemEcho("inv.csv", said.append, 100)
    warnings = problems.notes(
        [Note(3, "column X holds .NET type names"), Note(7, "dates are read day-first", False)]
    )
    assert said == [
        "warning: inv.csv:3: column X holds .NET type names",
        "inv.csv:7: dates are read day-first",
    ]
    assert warnings == ["inv.csv:3: column X holds .NET type names"]
