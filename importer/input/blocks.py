"""Read an inventory CSV in blocks of whole records: the fast path every clean file takes.

The UTF-8 stream (:func:`importer.input.dialect.utf8_pieces`) is split into blocks of whole
records by a vectorised scan of newlines and quotes, which also gives each record's physical
line. Arrow's CSV reader parses each block into Arrow-backed text columns (pandas' C parser when
Arrow refuses it). A block that does not parse cleanly (a ragged row, a NUL byte, a quote
inside an unquoted cell, a byte that is not UTF-8) is read again record by record
(:mod:`importer.input.records`).

A quoted cell that runs across line breaks is checked before the block is parsed: when it makes
its record malformed (see :meth:`records.Layout.stray_detail`), its quote is a stray one. The
records before it form a block, its line is rejected on its own and scanning starts afresh on
the next line, so the stray quote never swallows the rows after it.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from importer.input.chunk import Chunk, Header
from importer.input.dialect import Dialect, utf8_pieces
from importer.input.records import Layout, Records

PIECE_BYTES = 1 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
MAX_RECORD_BYTES = 1 << 20  # a quoted cell still open this far on is an unterminated quote


class _Scan(NamedTuple):
    """Where the newlines, quotes and record ends of a buffer are."""

    nl: np.ndarray  # offsets of every newline
    quotes: np.ndarray | None  # offsets of every quote (None: there is none)
    ends: np.ndarray  # indices into nl of the newlines that end a record


class _Multi(NamedTuple):
    """The newlines inside quoted cells of a block: per newline, its record and cell."""

    record: np.ndarray  # the index of the record it is in
    starts: np.ndarray  # where that record starts
    stops: np.ndarray  # where it ends (its last newline)
    opened: np.ndarray  # the quote that opens the cell holding the newline
    closed: np.ndarray  # the quote that closes it
    delims: np.ndarray  # every delimiter up to the last such record's end


class _Stray(NamedTuple):
    """A record made malformed by a stray quote."""

    record: int  # its index in the block
    detail: str  # how it is malformed
    closing: int  # the offset of the quote that closes the cell the stray one opens


class _Step(NamedTuple):
    """What one look at the buffer gave: chunks, and how far the buffer was used."""

    chunks: list[Chunk]
    used: int  # bytes of the buffer consumed
    lines: int  # physical lines consumed
    budget: int  # bytes to hold before the next look


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


def _scan(buf: bytes) -> _Scan:
    """The newlines and quotes of ``buf``, and which newlines end records by the quote count."""
    arr = np.frombuffer(buf, np.uint8)
    nl = _positions(arr, 10)
    quotes = _positions(arr, 34) if b'"' in buf else None
    if quotes is not None:  # a newline inside quotes does not end a record
        ends = np.flatnonzero((np.searchsorted(quotes, nl) & 1) == 0)
    else:
        ends = np.arange(len(nl))
    return _Scan(nl, quotes, ends)


class BlockReader:
    """Splits the UTF-8 stream into blocks of whole records and turns each into a Chunk."""

    def __init__(self, path: str, dialect: Dialect, header: Header, chunk_size: int) -> None:
        self.path = path
        self.dialect = dialect
        self.header = header
        self.size = chunk_size
        self.layout = Layout.of(path, dialect, header)
        self.records = Records(self.layout)
        self.width = len(header.names)
        self.delim = dialect.delimiter
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
        self.offset = 0  # stream offset of the buffer's first byte

    # -- splitting ------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Yield the records in order, ``chunk_size`` at a time; blank lines are dropped."""
        pieces = utf8_pieces(self.path, self.dialect)
        start = self._after_header(pieces)
        if start is None:
            return
        buf, line = start
        held = [buf] if buf else []
        size = len(buf)
        budget = self.size * 256  # bytes for a chunk: re-estimated from each block read
        eof = False
        while True:
            while not eof and size < budget:
                piece = next(pieces, None)
                if piece is None:
                    eof = True
                    break
                held.append(piece)
                size += len(piece)
            buf = self._line_ends(b"".join(held), eof)
            held = []  # the pieces are in buf now: let them go
            if eof and buf and not buf.endswith(b"\n"):
                buf += b"\n"  # a last record without a line ending
            if not buf:
                return
            step = self._step(buf, line, eof, budget)
            rest = buf[step.used :]
            del buf  # the block is parsed: only the rest stays in memory
            line += step.lines
            self.offset += step.used
            held, size, budget = ([rest] if rest else []), len(rest), step.budget
            yield from (chunk for chunk in step.chunks if len(chunk))
            if eof and not rest:
                return

    def _after_header(self, pieces: Iterator[bytes]) -> tuple[bytes, int] | None:
        """The stream after the preamble and the header, and the line it starts on."""
        buf = b""
        line = 1  # physical line of buf[0]
        skip = self.header.lines
        while skip:
            found = _LINE_END.search(buf)
            # a CR at the end may be the first half of a CRLF: look at the next piece first
            if found is None or (found.group() == b"\r" and found.end() == len(buf)):
                piece = next(pieces, None)
                if piece is not None:
                    buf += piece
                    continue
                if found is None:
                    return None
            self.offset += found.end()
            buf = buf[found.end() :]
            line += 1
            skip -= 1
        return buf, line

    def _line_ends(self, buf: bytes, eof: bool) -> bytes:
        """``buf`` with each bare CR outside quoted cells turned into an LF (a CR inside one
        stays a character of its cell). ``buf`` starts at a record's start."""
        if b"\r" not in buf or not _BARE_CR.search(buf):
            return buf
        arr = np.frombuffer(buf, np.uint8)
        crs = _positions(arr, 13)
        following = arr[np.minimum(crs + 1, len(arr) - 1)]
        bare = crs[(following != 10) & ((crs + 1 < len(arr)) | eof)]
        if b'"' in buf:
            bare = bare[(np.searchsorted(_positions(arr, 34), bare) & 1) == 0]
        if not len(bare):
            return buf
        out = bytearray(buf)
        np.frombuffer(out, np.uint8)[bare] = 10
        return bytes(out)

    def _step(self, buf: bytes, line: int, eof: bool, budget: int) -> _Step:
        """The chunks the buffer gives now, or none when more of the file is needed first."""
        scan = _scan(buf)
        nl, ends = scan.nl, scan.ends
        tail = int(nl[ends[-1]]) + 1 if len(ends) else 0
        too_long = len(buf) - tail > MAX_RECORD_BYTES
        if len(ends) >= self.size or ((eof or too_long) and len(ends)):
            count = min(len(ends), self.size)
            multi = self._multi(buf, scan, count)
            stray: _Stray | None = None
            if multi is not None:
                stray = self._stray_cells(buf, multi)
            if stray is None:
                last = int(ends[count - 1])
                end = int(nl[last]) + 1
                frame = self._parse(buf, end, line, nl[: last + 1], ends[:count], scan.quotes)
                if frame is None and multi is not None:
                    stray = self._stray_count(scan, multi)
                if stray is None:
                    chunk = (
                        self._finish(frame, line, ends[:count])
                        if frame is not None
                        else self._slow(buf, end, line)
                    )
                    budget = int(end / count * (self.size + 1) * 1.02) + 1
                    return _Step([chunk] if chunk is not None else [], end, last + 1, budget)
            return self._cut(buf, line, scan, stray, budget)
        if eof or too_long:
            # a quote opened at `line` is never closed: report that line, read on after it
            first_end = buf.find(b"\n") + 1
            if not first_end:  # one enormous line: read on until it ends
                return _Step([], 0, 0, 2 * len(buf))
            chunk = self.records.one_line(buf[:first_end], line, self.offset)
            return _Step([chunk], first_end, 1, budget)
        return _Step([], 0, 0, max(budget * 3 // 2, len(buf) + PIECE_BYTES))  # read further

    def _cut(self, buf: bytes, line: int, scan: _Scan, stray: _Stray, budget: int) -> _Step:
        """The records before a stray quote's record, then its first line as a rejected row."""
        record, detail, closing = stray
        chunks: list[Chunk] = []
        lines = used = 0
        if record:
            lines = int(scan.ends[record - 1]) + 1
            used = int(scan.nl[lines - 1]) + 1
            nl, ends = scan.nl[:lines], scan.ends[:record]
            frame = self._parse(buf, used, line, nl, ends, scan.quotes)
            chunk = self._finish(frame, line, ends) if frame is not None else None
            if frame is None:
                chunk = self._slow(buf, used, line)
            chunks += [chunk] if chunk is not None else []
        last = line + int(np.searchsorted(scan.nl, closing))  # the line the quote closes on
        end = int(scan.nl[lines]) + 1
        reason = self.layout.stray_reason(detail, last)
        chunks.append(
            self.records.one_line(buf[used:end], line + lines, self.offset + used, reason)
        )
        return _Step(chunks, end, lines + 1, budget)

    def _multi(self, buf: bytes, scan: _Scan, count: int) -> _Multi | None:
        """Where the first ``count`` records hold quoted cells across line breaks (None when
        none does). Only records before the first quote that opens no cell are looked at: past
        it the count of quotes is not the parsers' (that block is read record by record, which
        judges them)."""
        ends = scan.ends[:count]
        quotes = scan.quotes
        if quotes is None or int(ends[-1]) + 1 == count or not self.plain_delim:
            return None  # no record runs across lines
        arr = np.frombuffer(buf, np.uint8)
        limit = self._agreeing(arr, quotes)
        inside = np.ones(int(ends[-1]) + 1, dtype=bool)
        inside[ends] = False
        inner = np.flatnonzero(inside)  # newlines inside quoted cells
        inner = inner[scan.nl[inner] < limit]
        if not len(inner):
            return None
        record = np.searchsorted(ends, inner)  # the record each of them is in
        before = np.concatenate(([-1], ends[:-1]))[record]
        starts = np.where(before >= 0, scan.nl[np.maximum(before, 0)] + 1, 0)
        stops = scan.nl[ends[record]]
        at = np.searchsorted(quotes, scan.nl[inner])  # the quote closing the cell
        delims = _positions(arr[: int(stops[-1]) + 1], self.delim_byte)
        return _Multi(record, starts, stops, quotes[at - 1], quotes[at], delims)

    def _stray_cells(self, buf: bytes, multi: _Multi) -> _Stray | None:
        """The first record whose cell across line breaks holds delimiters and makes it
        malformed (:meth:`Layout.stray_detail`)."""
        held = np.searchsorted(multi.delims, multi.closed) - np.searchsorted(
            multi.delims, multi.opened
        )
        seen = -1
        for at in np.flatnonzero(held > 0).tolist():
            record = int(multi.record[at])
            if record == seen:
                continue
            seen = record
            text = buf[int(multi.starts[at]) : int(multi.stops[at])].decode("utf-8", "replace")
            detail = self.layout.stray_detail(self.records.parse(text))
            if detail is not None:
                return _Stray(record, detail, int(multi.closed[at]))
        return None

    def _stray_count(self, scan: _Scan, multi: _Multi) -> _Stray | None:
        """The first record across line breaks with another field count than the header's (a
        block that did not parse): its quote is a stray one. Counted only then: it costs a
        look at every delimiter."""
        assert scan.quotes is not None
        delims = multi.delims
        outside = delims[(np.searchsorted(scan.quotes, delims) & 1) == 0]
        fields = np.searchsorted(outside, multi.stops) - np.searchsorted(outside, multi.starts)
        bad = np.flatnonzero(fields + 1 != self.width)
        if not len(bad):
            return None
        first = int(bad[0])
        detail = f"the record would have {int(fields[first]) + 1} fields, not {self.width}"
        return _Stray(int(multi.record[first]), detail, int(multi.closed[first]))

    def _agreeing(self, arr: np.ndarray, quotes: np.ndarray) -> int:
        """The offset of the first opening quote (by count) that does not start a cell, or of
        the buffer's end: beyond it the count of quotes says nothing about record ends."""
        opening, closing = quotes[0::2], quotes[1::2]
        before = arr[np.maximum(opening - 1, 0)]
        agree = (opening == 0) | (before == self.delim_byte) | (before == 10)
        agree[1:] |= opening[1:] == closing[: len(opening) - 1] + 1
        wrong = np.flatnonzero(~agree)
        return int(opening[wrong[0]]) if len(wrong) else len(arr)

    # -- one block ------------------------------------------------------------------------------

    def _parse(
        self,
        buf: bytes,
        end: int,
        line: int,
        nl: np.ndarray,
        ends: np.ndarray,
        quotes: np.ndarray | None,
    ) -> pd.DataFrame | None:
        """The parse of the block ``buf[:end]`` of whole records, or None when it is not clean
        (it is then read record by record)."""
        if buf.find(b"\x00", 0, end) < 0 and self._quotes_agree(buf, end, quotes):
            return self._fast(buf, end, line, nl, ends)
        return None

    def _finish(self, frame: pd.DataFrame, line: int, ends: np.ndarray) -> Chunk | None:
        """The chunk of a parsed block (None when all of its records are blank)."""
        # the physical line each record starts on: the line after the previous record's end
        starts = line + np.concatenate(([0], ends[:-1] + 1))
        blank = self._blank(frame)
        if blank is not None:
            frame = frame.loc[~blank]
            starts = starts[~blank]
        if not len(frame):
            return None
        frame.columns = pd.Index(self.header.names)
        return Chunk(frame.reset_index(drop=True), starts)

    def _slow(self, buf: bytes, end: int, line: int) -> Chunk | None:
        """The block ``buf[:end]`` read record by record (None when all of it is blank)."""
        chunk = self.records.read(buf[:end], line, self.offset)
        return chunk if len(chunk) else None

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
        return self._agreeing(np.frombuffer(buf, np.uint8)[:end], quotes) >= end

    def _fast(
        self, buf: bytes, end: int, line: int, nl: np.ndarray, ends: np.ndarray
    ) -> pd.DataFrame | None:
        """The parse of a clean block (from ``line``), or None when any record is not a clean
        row."""
        records = len(ends)
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
            if not self.layout.given:
                return None  # the lines that are not UTF-8 are rejected one by one
            block = buf[:end]
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as found:
                raise self.records.decode_error(block, found, line) from None
            raise self.records.decode_error(block, exc, line) from None
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
