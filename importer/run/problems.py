"""What the console says about a file's problems: each kind a few times, then its count.

A file with one systematic fault (dates in the other order, a column of type names) has the
same problem on every line: printing it 600 times hides the one other problem that matters.
So each kind of problem (the same column and reason) is shown for its first few lines, and the
close says how many more lines have it; ``results.csv`` still holds every row. Notes about the
whole file (an inferred date order, a column of type names) are said once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from importer.input.notes import Note
from importer.input.schema import ValidatedChunk

Say = Callable[[str], None]
PER_KIND = 3  # lines shown for each kind of problem
KINDS_SUMMED = 10  # kinds given a count line at the close; the rest in one line


class ProblemEcho:
    """Echoes row problems to the operator: ``PER_KIND`` lines per kind, up to ``limit``
    lines in all (0: every problem, each on its line)."""

    def __init__(self, path: str, say: Say, limit: int) -> None:
        self.path = path
        self.say = say
        self.limit = limit
        self.shown = 0
        self.total = 0
        self.kinds: Counter[tuple[str, str]] = Counter()  # (column, reason) -> problems
        self.kinds_shown: Counter[tuple[str, str]] = Counter()

    def report(self, vc: ValidatedChunk) -> None:
        """Say the chunk's problems that are still worth a line of their own."""
        for pos in sorted(vc.problems):
            for problem in vc.problems[pos]:
                self.total += 1
                kind = (problem.column or "", problem.reason)
                self.kinds[kind] += 1
                if self.limit == 0 or (
                    self.shown < self.limit and self.kinds_shown[kind] < PER_KIND
                ):
                    self.shown += 1
                    self.kinds_shown[kind] += 1
                    self.say(problem.describe(self.path))

    def notes(self, notes: Iterable[Note]) -> list[str]:
        """Say the file's notes; return the warnings among them, as said."""
        warnings = []
        for note in notes:
            text = note.describe(self.path)
            self.say(text)
            if note.warning:
                warnings.append(text.removeprefix("warning: "))
        return warnings

    def close(self, out_dir: Path) -> None:
        """Say how many lines of each kind went unsaid, and where every one is."""
        if self.total <= self.shown:
            return
        hidden = [(kind, n - self.kinds_shown[kind]) for kind, n in self.kinds.items()]
        hidden = sorted((h for h in hidden if h[1]), key=lambda h: -h[1])
        for (column, reason), count in hidden[:KINDS_SUMMED]:
            what = f"where column {column} {reason}" if column else f"like this: {reason}"
            self.say(f"{self.path}: {count:,} more line(s) {what}")
        rest = sum(count for _, count in hidden[KINDS_SUMMED:])
        if rest:
            self.say(f"{self.path}: {rest:,} more problem(s) of {len(hidden) - KINDS_SUMMED} kinds")
        self.say(f"every problem is in {out_dir / 'results.csv'}")


__all__ = ["PER_KIND", "ProblemEcho"]
