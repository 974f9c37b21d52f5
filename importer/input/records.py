"""Reading CSV record by record with the csv module: the path for blocks that do not parse cleanly.

A bad line becomes one faulty row, with its line and reason, and the rest of the block still
imports. Three kinds of line are judged here:

- a record that is not a row (too many or too few fields, a NUL byte);
- a line whose bytes are not UTF-8 in a file detected as UTF-8: rejected with the byte, its
  column and its offset in the file (the file's other lines are read as UTF-8);
- a **stray quote**: a quoted cell that runs across line breaks and makes its record malformed
  (a wrong field count, a cell holding line breaks and delimiters where its property allows
  neither, or a row's worth of delimiters). The quote is taken literally: its line is rejected
  and the lines after it are read again as rows of their own, so it never swallows rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TYPE_CHECKING

from importer.errors import InputError
from importer.input.chunk import Chunk, Header, LineFault, empty_chunk, rows_chunk
from importer.input.dialect import Dialect, decode_error
from importer.model import (
    EXPIRES,
    EXTENDED_KEY_USAGES,
    ISSUED,
    KEY_USAGES,
    REVOKE_CHANGED,
    REVOKE_STATUS,
    SERIAL,
    THUMBPRINT,
    UPN,
)

# Cells that may hold line breaks (one item per line) and delimiters (", " or "; " between items).
LIST_PROPERTIES = (EXTENDED_KEY_USAGES, KEY_USAGES)
# Cells of a fixed format: neither a line break nor a delimiter belongs in them.
STRICT_PROPERTIES = (THUMBPRINT, SERIAL, REVOKE_STATUS, ISSUED, EXPIRES, REVOKE_CHANGED, UPN)
UNTERMINATED = (
    "a quoted cell starts on this line and is never closed (unterminated quote); "
    "the lines after it are read as rows of their own"
)
_PLACEHOLDER = "\ue000"  # stands for a stray quote while its line is parsed
if TYPE_CHECKING:
    from _csv import Reader as _CsvReader


@dataclass(frozen=True)
class Layout:
    """What the record readers need to know of a file's columns and encoding."""

    path: str
    names: tuple[str, ...]
    delimiter: str
    strict: frozenset[int]  # positions of STRICT_PROPERTIES columns
    lists: frozenset[int]  # positions of LIST_PROPERTIES columns
    given: bool  # the encoding was given: a byte it cannot decode refuses the file
    bom: int  # bytes of byte-order mark before the stream's first byte

    @classmethod
    def of(cls, path: str, dialect: Dialect, header: Header) -> Layout:
        """The layout of a file read with ``dialect`` whose header is ``header``."""
        names = header.names

        def positions(props: tuple[str, ...]) -> frozenset[int]:
            return frozenset(
                names.index(header.columns[p]) for p in props if header.columns.get(p) in names
            )

        return cls(
            path=path,
            names=names,
            delimiter=dialect.delimiter,
            strict=positions(STRICT_PROPERTIES),
            lists=positions(LIST_PROPERTIES),
            given=dialect.encoding_reason == "given",
            bom=dialect.bom if dialect.passthrough else 0,
        )

    @property
    def width(self) -> int:
        """Fields in a row: the header's."""
        return len(self.names)

    def stray_detail(self, fields: list[str]) -> str | None:
        """Why a record read across line breaks is malformed (its quote is a stray one)."""
        if len(fields) != self.width:
            return f"the record would have {len(fields)} fields, not {self.width}"
        for at, cell in enumerate(fields):
            if "\n" not in cell and "\r" not in cell:
                continue
            held = cell.count(self.delimiter)
            if held and at in self.strict:
                return f"column {self.names[at]} would hold line breaks and delimiters"
            if held >= max(self.width - 1, 2) and at not in self.lists:
                return f"column {self.names[at] or at + 1} would hold {held} delimiters"
        return None

    def stray_reason(self, detail: str, last: int) -> str:
        """The fault of a line whose quote runs to line ``last``."""
        return (
            f"a quoted cell opens on this line and closes only on line {last} ({detail}): "
            "the quote is taken as a stray one, this line is rejected and the lines after it "
            "are read as rows of their own"
        )


class Records:
    """Reads blocks of UTF-8 bytes record by record, keeping the bad ones as faulty rows."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def read(self, block: bytes, line: int, offset: int) -> Chunk:
        """The records of ``block`` (whole lines, starting on ``line``, at byte ``offset`` of
        the stream); blank lines are dropped."""
        lay = self.layout
        physical, undecodable = self._decode(block, line, offset)
        rows: list[list[str]] = []
        starts: list[int] = []
        faults: dict[int, LineFault] = {}
        base = 0  # the reader reads physical[base:]
        reader = self._reader(physical, base)
        while True:
            first = base + reader.line_num
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                faults[len(rows)] = LineFault(f"cannot be read as CSV: {exc}")
                rows.append(self._fit([physical[first]]))
                starts.append(line + first)
                continue
            last = base + reader.line_num - 1
            detail = lay.stray_detail(fields) if last > first else None
            fault: LineFault | None
            if detail is not None:  # read again from the next line, the quote taken literally
                fields = self.literal(physical[first])
                base, reader = first + 1, self._reader(physical, first + 1)
                fault = LineFault(lay.stray_reason(detail, line + last))
                last = first
            elif all(not f for f in fields):
                continue  # a blank line, or only delimiters
            else:
                fault = self.fault(fields, line + first, line + last)
            if undecodable:
                bad = [undecodable[n] for n in range(first, last + 1) if n in undecodable]
                fault = LineFault(bad[0]) if bad else fault
            if fault is not None:
                faults[len(rows)] = fault
            rows.append(self._fit(fields))
            starts.append(line + first)
        return rows_chunk(lay.names, rows, starts, faults)

    def parse(self, text: str) -> list[str]:
        """The fields of the first record of ``text`` (lines, the last without its ending)."""
        lines = (line + "\n" for line in text.rstrip("\r").split("\n"))
        try:
            return next(csv.reader(lines, delimiter=self.layout.delimiter), [])
        except csv.Error:
            return [text]

    def _reader(self, physical: list[str], base: int) -> _CsvReader:
        return csv.reader((p + "\n" for p in physical[base:]), delimiter=self.layout.delimiter)

    def _decode(self, block: bytes, line: int, offset: int) -> tuple[list[str], dict[int, str]]:
        """The physical lines of ``block`` as text, and why those that are not UTF-8 are not.

        With a given encoding a byte that does not decode refuses the file; in a file detected
        as UTF-8 it rejects its line (by index), and its bytes read as U+FFFD.
        """
        try:
            return block.decode("utf-8").split("\n")[:-1], {}
        except UnicodeDecodeError as exc:
            if self.layout.given:
                raise self.decode_error(block, exc, line) from None
        physical: list[str] = []
        undecodable: dict[int, str] = {}
        at = offset + self.layout.bom
        for number, raw in enumerate(block.split(b"\n")[:-1]):
            try:
                physical.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                physical.append(raw.decode("utf-8", errors="replace"))
                undecodable[number] = (
                    f"byte 0x{raw[exc.start : exc.start + 1].hex()} at column {exc.start + 1} "
                    f"(offset {at + exc.start} in the file) is not valid UTF-8: the rest of "
                    "the file is read as UTF-8; correct this line, or pass --encoding if the "
                    "file is in another encoding throughout"
                )
            at += len(raw) + 1
        return physical, undecodable

    def decode_error(self, raw: bytes, exc: UnicodeDecodeError, line: int) -> InputError:
        """The refusal of a file whose given encoding fails on ``raw`` (from ``line``)."""
        return decode_error(
            self.layout.path, raw, exc, first_line=line, hint="save the file as UTF-8"
        )

    def fault(self, fields: list[str], start: int, end: int) -> LineFault | None:
        """Why a record of ``fields`` (lines ``start`` to ``end``) is not a row, if it is not."""
        width = self.layout.width
        if len(fields) != width:
            reason = f"expected {width} fields, saw {len(fields)}"
            if end > start:
                reason += f" (the record runs to line {end}: is a quote missing?)"
            elif len(fields) > width:
                reason += " (a delimiter inside a cell needs quotes)"
            else:
                reason += " (a cell or a delimiter is missing)"
            return LineFault(reason)
        for name, cell in zip(self.layout.names, fields, strict=True):
            if "\x00" in cell:
                return LineFault("contains a NUL byte (0x00)", name, cell)
        return None

    def _fit(self, fields: list[str]) -> list[str]:
        width, delim = self.layout.width, self.layout.delimiter
        if len(fields) < width:
            return fields + [""] * (width - len(fields))
        if len(fields) > width:
            return [*fields[: width - 1], delim.join(fields[width - 1 :])]
        return fields

    def literal(self, text: str) -> list[str]:
        """The cells of one line whose last opening quote is never closed, that quote taken as a
        character of its cell (the line's other quoted cells are read as usual)."""
        text = text.rstrip("\r")
        at = open_quote(text, self.layout.delimiter)
        if at is None or _PLACEHOLDER in text:
            return next(csv.reader([text], delimiter=self.layout.delimiter), [])
        parsed = next(
            csv.reader(
                [text[:at] + _PLACEHOLDER + text[at + 1 :]], delimiter=self.layout.delimiter
            ),
            [],
        )
        return [cell.replace(_PLACEHOLDER, '"') for cell in parsed]

    def one_line(self, raw: bytes, line: int, offset: int, reason: str | None = None) -> Chunk:
        """One line read as a row of its own: the first line of a record whose quote never
        closes (``reason`` None: it is :data:`UNTERMINATED` when the line alone has an open
        quote), or of one whose quote is a stray one (``reason`` given)."""
        lay = self.layout
        physical, undecodable = self._decode(raw, line, offset)
        text = physical[0] if physical else ""
        fault: LineFault | None
        try:
            fields = next(csv.reader([text.rstrip("\r")], delimiter=lay.delimiter, strict=True), [])
            fault = LineFault(reason) if reason else self.fault(fields, line, line)
        except csv.Error:
            fields = self.literal(text)
            fault = LineFault(reason or UNTERMINATED)
        if undecodable:
            fault = LineFault(undecodable[0])
        if fault is None and all(not f for f in fields):
            return empty_chunk(lay.names)
        return rows_chunk(lay.names, [self._fit(fields)], [line], {0: fault} if fault else {})


def open_quote(text: str, delimiter: str) -> int | None:
    """Where the quoted cell that ``text`` leaves open begins, or None if it closes them all.

    A quote opens a cell only at its start (inside an unquoted cell it is a character); a
    doubled quote inside a quoted cell is one quote character of it.
    """
    quoted = False
    opened = closed = -1
    cell_start = True
    for at, char in enumerate(text):
        if quoted:
            if char == '"':
                quoted, closed = False, at
        elif char == '"' and closed == at - 1 and closed >= 0:
            quoted = True  # a doubled quote: the cell opened at `opened` goes on
        elif char == '"' and cell_start:
            quoted, opened = True, at
        cell_start = not quoted and char == delimiter
    return opened if quoted else None
