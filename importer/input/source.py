"""Read an inventory CSV in chunks with pandas: every cell as text, physical line numbers kept.

The file is detected (:mod:`importer.input.dialect`), its header mapped by a profile
(:mod:`importer.input.profiles`), then read as UTF-8 bytes in blocks of whole records. Record
boundaries and physical line numbers come from a vectorised scan of newlines and quotes; Arrow's
CSV reader parses each block into Arrow-backed text columns (pandas' C parser when Arrow refuses
it, which keeps pandas' reading of ragged rows and its decoding errors). A block that does not
parse cleanly (a row with too many or too few fields, a NUL byte, a stray quote) is read again
record by record with the csv module, so a bad line becomes one faulty row, with its line and
reason, and the rest of the file still imports.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from importer.errors import InputError
from importer.input.dialect import AUTO, Dialect, decode_error, detect, utf8_pieces
from importer.input.profiles import ColumnSetting, Profile, choose

PIECE_BYTES = 1 << 20
MAX_RECORD_BYTES = 1 << 20  # a quoted cell still open this far on is an unterminated quote


@dataclass(frozen=True)
class Header:
    """The header row of an inventory and how its columns map to Graph properties."""

    names: tuple[str, ...]
    columns: dict[str, str]  # Graph property -> header name as written in the file
    extras: tuple[str, ...]  # unknown columns: warned about, never sent
    ignored: tuple[str, ...]  # columns the profile expects but never sends (id, import_error)
    lines: int  # physical lines up to the end of the header (preamble lines included)
    constants: dict[str, str] = field(default_factory=dict)  # Graph property -> constant
    profile: Profile = field(default_factory=lambda: Profile("graph"))
    chosen: str = ""  # how the profile was chosen, e.g. "profile adcs (auto: ...)"

    def label(self, prop: str) -> str:
        """The column a property comes from, as named in the file (or ``prop (constant)``)."""
        return self.columns.get(prop) or f"{prop} (constant)"


@dataclass(frozen=True)
class LineFault:
    """Why a record could not be read as a row (it is rejected with this reason)."""

    reason: str
    column: str | None = None  # the column as named in the file, when one cell is at fault
    value: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive records: the original cells and their line numbers."""

    raw: pd.DataFrame  # original header names, every cell a str
    lines: np.ndarray  # physical line where each record starts (header = line 1)
    faults: Mapping[int, LineFault] = field(default_factory=dict)  # position -> fault

    def __len__(self) -> int:
        return len(self.raw)


def _check_names(path: str, names: list[str], line: int) -> None:
    named = [n for n in names if n.strip()]
    if len(set(named)) != len(named):
        dupes = sorted({n for n in named if named.count(n) > 1})
        raise InputError(path, f"duplicate column name(s): {', '.join(dupes)}", line=line)


def _positions(arr: np.ndarray, byte: int, window: int = 1 << 20) -> np.ndarray:
    """Offsets of ``byte`` in ``arr``, compared a window at a time (no full-size temporary)."""
    found = [
        np.flatnonzero(arr[start : start + window] == byte) + start
        for start in range(0, len(arr), window)
    ]
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)


def _parse_pool() -> pa.MemoryPool:
    """The Arrow memory pool the CSV reader parses blocks into.

    mimalloc, unless ARROW_DEFAULT_MEMORY_POOL chooses one: with the system allocator, which
    the command line selects, glibc keeps what the parser frees of every block (measured on
    1M rows: 330 MB peak for reading alone, 213 MB with mimalloc, at the same speed).
    """
    chosen = "ARROW_DEFAULT_MEMORY_POOL" in os.environ
    if not chosen and "mimalloc" in pa.supported_memory_backends():
        return pa.mimalloc_memory_pool()
    return pa.default_memory_pool()  # chosen by the operator, or a pyarrow without mimalloc


def read_header_names(path: str, dialect: Dialect, sample: str) -> tuple[list[str], int]:
    """The header's cells, and the physical line it ends on (lines before it included).

    ``sample`` is the decoded start of the file that :func:`dialect.detect` returns.
    """
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
        )
        return None if plain else self.describe()

    def chunks(self) -> Iterator[Chunk]:
        """Yield the records in order, ``chunk_size`` at a time; blank lines are dropped."""
        reader = _BlockReader(self)
        yield from reader.chunks()


class _BlockReader:
    """Splits the UTF-8 stream into blocks of whole records and turns each into a Chunk."""

    def __init__(self, source: CsvSource) -> None:
        self.path = source.path
        self.dialect: Dialect = source.dialect
        self.header = source.header
        self.size = source.chunk_size
        self.width = len(source.header.names)
        self.delim = self.dialect.delimiter
        self.delim_byte = ord(self.delim)
        # a one-byte delimiter that is no quote or line end: the byte scans below can see it
        self.plain_delim = self.delim_byte < 0x80 and self.delim not in '"\r\n'
        self.internal = [f"c{i}" for i in range(self.width)]
        self.arrow_parse = pa_csv.ParseOptions(
            delimiter=self.delim if self.plain_delim else ",",
            newlines_in_values=True,
            ignore_empty_lines=False,
        )
        self.arrow_convert = pa_csv.ConvertOptions(
            column_types=dict.fromkeys(self.internal, pa.large_string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        self.arrow_pool = _parse_pool()
        self.hint = (
            "save the file as UTF-8"
            if self.dialect.encoding_reason == "given"
            else ("the file is not UTF-8 throughout: save it as UTF-8 or pass --encoding")
        )

    # -- splitting ------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        pieces = utf8_pieces(self.path, self.dialect)
        buf = b""
        eof = False
        line = 1  # physical line of buf[0]
        skip = self.header.lines
        while skip:  # drop the preamble and the header
            at = buf.find(b"\n")
            if at < 0:
                piece = next(pieces, None)
                if piece is None:
                    return
                buf += piece
                continue
            buf = buf[at + 1 :]
            line += 1
            skip -= 1
        held = [buf] if buf else []
        size = len(buf)
        budget = self.size * 256  # bytes for a chunk: re-estimated from each block read
        while True:
            while not eof and size < budget:
                piece = next(pieces, None)
                if piece is None:
                    eof = True
                    break
                held.append(piece)
                size += len(piece)
            buf = b"".join(held)
            held = []  # the pieces are in buf now: let them go
            if eof and buf and not buf.endswith(b"\n"):
                buf += b"\n"  # a last record without a line ending
            if not buf:
                return
            arr = np.frombuffer(buf, np.uint8)
            nl = _positions(arr, 10)
            quotes = _positions(arr, 34) if b'"' in buf else None
            if quotes is not None:  # a newline inside quotes does not end a record
                ends = np.flatnonzero((np.searchsorted(quotes, nl) & 1) == 0)
            else:
                ends = np.arange(len(nl))
            tail = int(nl[ends[-1]]) + 1 if len(ends) else 0
            too_long = len(buf) - tail > MAX_RECORD_BYTES
            if len(ends) >= self.size or ((eof or too_long) and len(ends)):
                count = min(len(ends), self.size)
                last = int(ends[count - 1])
                end = int(nl[last]) + 1
                chunk = self._block(buf, end, line, nl[: last + 1], ends[:count], quotes)
                rest = buf[end:]
                del buf, arr, quotes  # the block is parsed: only the rest stays in memory
                line += last + 1
                held, size = [rest], len(rest)
                budget = int(end / count * (self.size + 1) * 1.02) + 1
                if chunk is not None:
                    yield chunk
                continue
            if eof or too_long:
                # a quote opened at `line` is never closed: report that line, read on after it
                first_end = buf.find(b"\n") + 1
                if not first_end:  # one enormous line: read on until it ends
                    held, budget = [buf], 2 * len(buf)
                    continue
                chunk = self._one_line(buf[:first_end], line)
                if len(chunk):
                    yield chunk
                line += 1
                held, size = [buf[first_end:]], len(buf) - first_end
                if eof and first_end >= len(buf):
                    return
                continue
            held, budget = [buf], max(budget * 3 // 2, len(buf) + PIECE_BYTES)  # read further

    # -- one block ------------------------------------------------------------------------------

    def _block(
        self,
        buf: bytes,
        end: int,
        line: int,
        nl: np.ndarray,
        ends: np.ndarray,
        quotes: np.ndarray | None,
    ) -> Chunk | None:
        """The rows of one block of whole records (None when all of them are blank)."""
        self._block_line = line
        records = len(ends)
        # the physical line each record starts on: the line after the previous record's end
        starts = line + np.concatenate(([0], ends[:-1] + 1))
        frame = None
        if buf.find(b"\x00", 0, end) < 0 and self._quotes_agree(buf, end, quotes):
            frame = self._fast(buf, end, records, nl, ends)
        if frame is None:
            chunk = self._slow(buf[:end], line)
            return chunk if len(chunk) else None
        blank = self._blank(frame)
        if blank is not None:
            frame = frame.loc[~blank]
            starts = starts[~blank]
        if not len(frame):
            return None
        frame.columns = pd.Index(self.header.names)
        return Chunk(frame.reset_index(drop=True), starts)

    def _quotes_agree(self, buf: bytes, end: int, quotes: np.ndarray | None) -> bool:
        """Whether the parsers split ``buf[:end]`` into the records the quote count found.

        The count takes every quote as opening or closing a quoted cell; a parser opens one only
        at the start of a cell. So each quote the count takes as opening must start a cell, or
        follow the closing quote just before it (a doubled quote inside a quoted cell). A quote
        inside an unquoted cell (``O"Brien``) breaks that: the block is read record by record.
        """
        if quotes is None or not self.plain_delim:
            return True
        quotes = quotes[: np.searchsorted(quotes, end)]
        opening, closing = quotes[0::2], quotes[1::2]
        before = np.frombuffer(buf, np.uint8)[np.maximum(opening - 1, 0)]
        agree = (opening == 0) | (before == self.delim_byte) | (before == 10)
        agree[1:] |= opening[1:] == closing[: len(opening) - 1] + 1
        return bool(agree.all())

    def _fast(
        self,
        buf: bytes,
        end: int,
        records: int,
        nl: np.ndarray,
        ends: np.ndarray,
    ) -> pd.DataFrame | None:
        """The parse of a clean block, or None when any record is not a clean row."""
        if self.plain_delim:
            frame = self._arrow(buf, end, records)
            if frame is not None:
                return frame
        try:
            with warnings.catch_warnings(record=True) as caught:
                # a first row longer than the header is cut with a warning (and later rows as
                # long as it are then cut silently): read such a block record by record
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    # the block alone: rows past its end would hide a record split in two
                    io.BytesIO(memoryview(buf)[:end]),
                    sep=self.delim,
                    header=None,
                    names=self.internal,
                    dtype=str,
                    keep_default_na=False,
                    na_filter=False,
                    skip_blank_lines=False,
                    index_col=False,
                    encoding="utf-8",
                    on_bad_lines="error",
                    engine="c",
                )
        except UnicodeDecodeError as exc:
            block = buf[:end]
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as found:
                raise self._decode_error(block, found) from None
            raise InputError(self.path, f"not valid UTF-8: {exc.reason}") from None
        except pd.errors.ParserError:
            return None
        if caught or len(frame) != records:
            return None
        if self._short_rows(frame, np.frombuffer(buf, np.uint8), nl, ends):
            return None
        return frame

    def _arrow(self, buf: bytes, end: int, records: int) -> pd.DataFrame | None:
        """Arrow's parse of ``buf[:end]``, or None when it refuses the block or splits it
        into other rows than ``records``. It refuses a row with too many or too few fields and
        bytes that are not UTF-8; the caller then reads the block with pandas as before.
        """
        block = pa.py_buffer(buf).slice(0, end)  # no copy
        read = pa_csv.ReadOptions(
            column_names=self.internal,
            use_threads=False,
            block_size=min(max(end + 1, PIECE_BYTES), 2**31 - 1),
        )
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(block),
                read_options=read,
                parse_options=self.arrow_parse,
                convert_options=self.arrow_convert,
                memory_pool=self.arrow_pool,
            )
        except pa.ArrowException:
            return None
        if table.num_rows != records or table.num_columns != self.width:
            return None
        return pd.DataFrame(
            {name: pd.array(table.column(i), dtype="str") for i, name in enumerate(self.internal)}
        )

    def _short_rows(
        self, frame: pd.DataFrame, arr: np.ndarray, nl: np.ndarray, ends: np.ndarray
    ) -> bool:
        """True when some row may have fewer fields than the header (pandas pads those).

        Padding leaves the last columns empty. A row whose last ``t`` columns are empty has
        all its fields only if its line ends with ``t`` delimiters: an unquoted empty field
        follows each, and the field before them (not empty) cannot end with one.
        """
        candidates = (frame.iloc[:, -1] == "").to_numpy(dtype=bool)
        if not candidates.any():
            return False
        rows = np.flatnonzero(candidates)
        empty = (frame.iloc[rows] == "").to_numpy(dtype=bool)[:, ::-1]
        full = empty.all(axis=1)
        trailing = np.where(full, 0, np.argmin(empty, axis=1))  # blank rows are skipped anyway
        record_end = nl[ends[rows]]
        starts = np.concatenate(([-1], nl[ends]))[rows] + 1
        stop = record_end - (arr[np.maximum(record_end - 1, 0)] == 13)  # before a CR
        ok = np.ones(len(rows), dtype=bool)
        for back in range(1, int(trailing.max(initial=0)) + 1):
            at = stop - back
            needed = trailing >= back
            ok &= ~needed | ((at >= starts) & (arr[np.maximum(at, 0)] == self.delim_byte))
        return not bool(ok.all())

    def _blank(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Rows whose every cell is empty (blank lines, ``;;;`` rows), or None if there are none."""
        candidates = (frame.iloc[:, 0] == "").to_numpy(dtype=bool)
        if not candidates.any():
            return None
        blank = candidates.copy()
        blank[candidates] = (frame.loc[candidates] == "").all(axis=1).to_numpy(dtype=bool)
        return blank if blank.any() else None

    def _decode_error(self, raw: bytes, exc: UnicodeDecodeError) -> InputError:
        return decode_error(self.path, raw, exc, first_line=self._block_line, hint=self.hint)

    # -- record by record -----------------------------------------------------------------------

    def _slow(self, block: bytes, line: int) -> Chunk:
        """Read a block with the csv module, one record at a time, keeping the bad ones."""
        self._block_line = line
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._decode_error(block, exc) from None
        physical = text.split("\n")[:-1]
        reader = csv.reader((p + "\n" for p in physical), delimiter=self.delim)
        rows: list[list[str]] = []
        starts: list[int] = []
        faults: dict[int, LineFault] = {}
        consumed = 0
        while True:
            start = line + consumed
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                consumed = reader.line_num
                faults[len(rows)] = LineFault(f"cannot be read as CSV: {exc}")
                rows.append(self._fit([physical[start - line]]))
                starts.append(start)
                continue
            end = line + reader.line_num - 1
            consumed = reader.line_num
            if all(not f for f in fields):
                continue  # a blank line, or only delimiters
            fault = self._fault(fields, start, end)
            if fault is not None:
                faults[len(rows)] = fault
            rows.append(self._fit(fields))
            starts.append(start)
        frame = pd.DataFrame(rows, columns=self.internal, dtype=str) if rows else None
        if frame is None:
            return Chunk(
                pd.DataFrame(columns=list(self.header.names), dtype=str),
                np.array([], dtype=np.int64),
            )
        frame.columns = pd.Index(self.header.names)
        return Chunk(frame, np.array(starts, dtype=np.int64), faults)

    def _fault(self, fields: list[str], start: int, end: int) -> LineFault | None:
        if len(fields) != self.width:
            reason = f"expected {self.width} fields, saw {len(fields)}"
            if end > start:
                reason += f" (the record runs to line {end}: is a quote missing?)"
            elif len(fields) > self.width:
                reason += " (a delimiter inside a cell needs quotes)"
            else:
                reason += " (a cell or a delimiter is missing)"
            return LineFault(reason)
        for name, cell in zip(self.header.names, fields, strict=True):
            if "\x00" in cell:
                return LineFault("contains a NUL byte (0x00)", name, cell)
        return None

    def _fit(self, fields: list[str]) -> list[str]:
        if len(fields) < self.width:
            return fields + [""] * (self.width - len(fields))
        if len(fields) > self.width:
            return [*fields[: self.width - 1], self.delim.join(fields[self.width - 1 :])]
        return fields

    def _one_line(self, raw: bytes, line: int) -> Chunk:
        """The first line of a record whose quote never closes: a row of its own."""
        self._block_line = line
        try:
            text = raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as exc:
            raise self._decode_error(raw, exc) from None
        try:
            fields = next(csv.reader([text], delimiter=self.delim, strict=True), [])
            fault = self._fault(fields, line, line)
        except csv.Error:
            fields = next(csv.reader([text], delimiter=self.delim), [])
            fault = LineFault(
                "a quoted cell starts on this line and is never closed (unterminated quote); "
                "the lines after it are read as rows of their own"
            )
        if fault is None and all(not f for f in fields):
            return Chunk(
                pd.DataFrame(columns=list(self.header.names), dtype=str),
                np.array([], dtype=np.int64),
            )
        frame = pd.DataFrame([self._fit(fields)], columns=self.internal, dtype=str)
        frame.columns = pd.Index(self.header.names)
        return Chunk(frame, np.array([line], dtype=np.int64), {0: fault} if fault else {})

    _block_line = 1


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
