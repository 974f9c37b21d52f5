"""``-`` as the input path: standard input, spooled to a private temporary file.

A run reads its input twice (validate everything, then send), so a pipe is copied to a file
first: in a new directory of its own (mode 0700), as a file only the owner can read (it holds
user principal names), removed when the command ends. Messages name it ``<stdin>``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from importer.errors import UsageError

STDIN = "-"
LABEL = "<stdin>"


def refuse_special(path: str) -> None:
    """Refuse a named pipe, device or socket as the input, before anything opens it (an open
    of a pipe without a writer would wait forever): a run reads its input twice."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the reader says so, with the reason
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = (
        "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    )
    raise UsageError(
        f"{path} is {kind}, not a regular file: a run reads its input twice; "
        f"feed it through standard input instead (certimport run - < {path})"
    )


class SpooledStdin:
    """A context manager: ``path`` holds what standard input held, until the block ends."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._dir: str | None = None
        self.path = ""

    def __enter__(self) -> SpooledStdin:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        if stream.isatty():
            raise UsageError(
                "the input is '-' (standard input), but it is a terminal: "
                "pipe the inventory in (certimport run - < export.csv) or name the file"
            )
        self._dir = tempfile.mkdtemp(prefix="certimport-stdin-")
        self.path = str(Path(self._dir) / "stdin.csv")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(fd, "wb") as spool:
                shutil.copyfileobj(stream, spool, 1 << 20)
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def rename(self, text: str) -> str:
        """``text`` with the spool file's path said as ``<stdin>``."""
        return text.replace(self.path, LABEL) if self.path else text

    def __repr__(self) -> str:
        return f"SpooledStdin(path={self.path!r})"


__all__ = ["LABEL", "STDIN", "SpooledStdin", "refuse_special"]
