"""What a validator has to say about a whole file, once: not a problem of one row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    """A fact about the file the operator should know (said once per file, not per row).

    ``warning`` notes mean something was not sent as it is written (cells treated as empty, an
    order that could not be told); the others say how the file was read (an inferred date
    order).
    """

    line: int  # the line the note is about (the first one it applies to)
    message: str
    warning: bool = True

    def describe(self, path: str) -> str:
        """``warning: path:line: message`` (or without ``warning:``), as the console says it."""
        text = f"{path}:{self.line}: {self.message}"
        return f"warning: {text}" if self.warning else text
