"""Read an inventory CSV in chunks with pandas: every cell as text, physical line numbers kept."""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from importer.errors import InputError
from importer.model import IGNORED_COLUMNS, PROPERTIES, REQUIRED_COLUMNS

_CANONICAL = {p.casefold(): p for p in PROPERTIES}
_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass(frozen=True)
class Header:
    """The header row of an inventory and how its columns map to Graph properties."""

    names: tuple[str, ...]
    columns: dict[str, str]  # Graph property -> header name as written in the file
    extras: tuple[str, ...]  # unknown columns: warned about, never sent
    ignored: tuple[str, ...]  # id / import_error: read, never sent
    lines: int  # physical lines the header takes (1 unless a header cell holds a newline)


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive records: the original cells and their line numbers."""

    raw: pd.DataFrame  # original header names, every cell a str
    lines: np.ndarray  # physical line where each record starts (header = line 1)

    def __len__(self) -> int:
        return len(self.raw)


def _map_header(path: str, names: list[str], lines: int) -> Header:
    columns: dict[str, str] = {}
    extras: list[str] = []
    ignored: list[str] = []
    for name in names:
        folded = name.strip().casefold()
        prop = _CANONICAL.get(folded)
        if prop is not None:
            if prop in columns:
                raise InputError(
                    path,
                    f"columns {columns[prop]!r} and {name!r} both map to {prop}",
                    line=1,
                    hint="remove or rename one of them",
                )
            columns[prop] = name
        elif folded in IGNORED_COLUMNS:
            ignored.append(name)
        else:
            extras.append(name)
    missing = [p for p in REQUIRED_COLUMNS if p not in columns]
    if missing:
        found = ", ".join(repr(n) for n in names) or "none"
        raise InputError(
            path,
            f"missing required column(s): {', '.join(missing)}; columns found: {found}",
            line=1,
            hint="header names are matched to Graph property names, ignoring case and spaces",
        )
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(path, f"duplicate column name(s): {', '.join(dupes)}", line=1)
    return Header(tuple(names), columns, tuple(extras), tuple(ignored), lines)


class CsvSource:
    """An inventory file read as text in chunks; constructing it reads and checks the header."""

    def __init__(self, path: str | Path, *, chunk_size: int = 50_000, encoding: str = "utf-8-sig"):
        self.path = str(path)
        self.chunk_size = chunk_size
        self.encoding = encoding
        self.header = self._read_header()

    def _read_header(self) -> Header:
        try:
            with open(self.path, encoding=self.encoding, newline="") as handle:
                reader = csv.reader(handle)
                names = next(reader, None)
                lines = reader.line_num
        except FileNotFoundError:
            raise InputError(self.path, "file not found") from None
        except IsADirectoryError:
            raise InputError(self.path, "is a directory, not a CSV file") from None
        except PermissionError:
            raise InputError(self.path, "permission denied") from None
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from None
        except csv.Error as exc:
            raise InputError(self.path, f"header cannot be parsed: {exc}", line=1) from None
        if not names or all(not n.strip() for n in names):
            raise InputError(self.path, "file is empty: no header row", line=1)
        return _map_header(self.path, names, lines)

    def _decode_error(self, exc: UnicodeDecodeError) -> InputError:
        """Find the line of the first byte that is not valid in the file's encoding."""
        line = 1
        decoder_name = self.encoding
        try:
            with open(self.path, "rb") as handle:
                for line, raw in enumerate(handle, start=1):
                    try:
                        raw.decode(decoder_name)
                    except UnicodeDecodeError as bad:
                        byte = raw[bad.start : bad.start + 1].hex()
                        return InputError(
                            self.path,
                            f"byte 0x{byte} at column {bad.start + 1} is not valid {exc.encoding}",
                            line=line,
                            hint="save the file as UTF-8",
                        )
        except OSError:
            pass
        return InputError(self.path, f"not valid {exc.encoding} text", hint="save it as UTF-8")

    def chunks(self) -> Iterator[Chunk]:
        """Yield the records in order, ``chunk_size`` at a time; blank lines are dropped."""
        header = self.header
        next_line = header.lines + 1
        try:
            reader = pd.read_csv(
                self.path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                header=0,
                names=list(header.names),
                index_col=False,
                encoding=self.encoding,
                chunksize=self.chunk_size,
                on_bad_lines="error",
                engine="c",
            )
            with reader:
                for frame in reader:
                    # A record starts on the line after the previous record ends; quoted cells
                    # may hold newlines, so count them to keep physical line numbers exact.
                    newlines = np.zeros(len(frame), dtype=np.int64)
                    for name in frame.columns:
                        col = frame[name]
                        if col.str.contains("\n", regex=False).any():
                            newlines += col.str.count("\n").to_numpy(dtype=np.int64)
                    spans = newlines + 1
                    starts = next_line + np.concatenate(([0], np.cumsum(spans)[:-1]))
                    next_line += int(spans.sum())
                    blank = (frame == "").all(axis=1).to_numpy()
                    if blank.any():
                        frame = frame.loc[~blank]
                        starts = starts[~blank]
                    if len(frame):
                        yield Chunk(frame.reset_index(drop=True), starts)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from None
        except pd.errors.ParserError as exc:
            match = _PARSER_LINE.search(str(exc))
            if match:
                expected, line, saw = match.groups()
                raise InputError(
                    self.path,
                    f"expected {expected} fields, saw {saw}",
                    line=int(line),
                    hint="a delimiter inside a cell needs quotes",
                ) from None
            raise InputError(self.path, f"cannot parse CSV: {exc}") from None
        except OSError as exc:
            raise InputError(self.path, f"cannot read: {exc.strerror}") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
