"""Read an inventory in chunks with pandas: every cell as text, physical line numbers kept.

The file is detected (:mod:`importer.input.dialect`), its header mapped by a profile
(:mod:`importer.input.profiles`), then read as UTF-8 bytes: a CSV file in blocks of whole
records (:mod:`importer.input.blocks`, record by record where a block does not parse cleanly:
:mod:`importer.input.records`), a ``certutil -view`` text dump row block by row block
(:mod:`importer.input.certutil`). Both give the same :class:`Chunk` objects.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from importer.errors import InputError
from importer.input.blocks import BlockReader
from importer.input.certutil import CertutilReader, certutil_names
from importer.input.chunk import Chunk, Header, LineFault
from importer.input.dialect import AUTO, Dialect, detect, utf8_pieces
from importer.input.evidence import unify_line_ends
from importer.input.profiles import ColumnSetting, choose

__all__ = ["Chunk", "CsvSource", "Header", "LineFault", "file_sha256", "read_header_names"]


def _check_names(path: str, names: list[str], line: int) -> None:
    named = [n for n in names if n.strip()]
    if len(set(named)) != len(named):
        dupes = sorted({n for n in named if named.count(n) > 1})
        raise InputError(path, f"duplicate column name(s): {', '.join(dupes)}", line=line)


def read_header_names(path: str, dialect: Dialect, sample: str) -> tuple[list[str], int]:
    """The header's cells, and the physical line it ends on (lines before it included).

    ``sample`` is the decoded start of the file that :func:`dialect.detect` returns. For a
    ``certutil -view`` text dump they are the localized column names of its schema.
    """
    if dialect.form == "certutil":
        return certutil_names(path, sample)
    skipped = len(dialect.preamble)
    lines = sample.split("\n")[skipped:]
    reader = csv.reader((line + "\n" for line in lines), delimiter=dialect.delimiter)
    try:
        names = next(reader, None)
    except csv.Error as exc:
        raise InputError(path, f"header cannot be parsed: {exc}", line=skipped + 1) from None
    if not names or all(not n.strip() for n in names):
        raise InputError(path, "file is empty: no header row", line=skipped + 1)
    names[0] = names[0].lstrip("\ufeff")
    return names, skipped + reader.line_num


class CsvSource:
    """An inventory file read as text in chunks; constructing it reads and checks the header.

    ``encoding`` is a codec name, or ``"auto"`` to detect it (the command line's default; the
    default here reads UTF-8 with or without a byte-order mark). ``delimiter`` None detects it
    from the header. ``profile`` is ``"auto"``, a profile name or a ``.toml`` path; ``columns``
    overrides the profile's column mapping (the ``[columns]`` table of the settings).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        chunk_size: int = 50_000,
        encoding: str = "utf-8-sig",
        delimiter: str | None = None,
        profile: str = AUTO,
        columns: Iterable[ColumnSetting] = (),
        profile_dirs: Sequence[Path] | None = None,
    ) -> None:
        self.path = str(path)
        self.chunk_size = chunk_size
        codec = "utf-8" if encoding.lower().replace("_", "-") == "utf-8-sig" else encoding
        self.dialect, sample = detect(self.path, encoding=codec, delimiter=delimiter)
        self.encoding = self.dialect.encoding
        self.header = self._read_header(sample, profile, list(columns), profile_dirs)

    def _read_header(
        self,
        sample: str,
        profile: str,
        columns: list[ColumnSetting],
        dirs: Sequence[Path] | None,
    ) -> Header:
        names, lines = read_header_names(self.path, self.dialect, sample)
        line = len(self.dialect.preamble) + 1
        match, chosen = choose(
            self.path, names, profile=profile, columns=columns, dirs=dirs, line=line
        )
        _check_names(self.path, names, line)
        return Header(
            names=tuple(names),
            columns=match.columns,
            extras=match.extras,
            ignored=match.ignored,
            lines=lines,
            constants=match.constants,
            profile=match.profile,
            chosen=chosen,
        )

    def describe(self) -> str:
        """Encoding, delimiter and profile, for the operator."""
        return f"{self.dialect.describe()}; {self.header.chosen}"

    def notable(self) -> str | None:
        """:meth:`describe` when the file is not a plain Graph-shaped UTF-8 CSV, else None."""
        dialect = self.dialect
        plain = (
            self.header.profile.name == "graph"
            and dialect.encoding == "utf-8"
            and dialect.delimiter == ","
            and not dialect.preamble
            and dialect.form == "csv"
        )
        return None if plain else self.describe()

    def chunks(self) -> Iterator[Chunk]:
        """Yield the records in order, ``chunk_size`` at a time; blank lines are dropped."""
        if self.dialect.form == "certutil":
            pieces = unify_line_ends(utf8_pieces(self.path, self.dialect))
            yield from CertutilReader(self.path, self.header, self.chunk_size).chunks(pieces)
            return
        yield from BlockReader(self.path, self.dialect, self.header, self.chunk_size).chunks()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
