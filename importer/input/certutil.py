"""Read ``certutil -view`` text output: the AD CS database dump made without the ``csv`` word.

    Schema:
      Column Name                   Localized Name                Type    MaxLength
      ----------------------------  ----------------------------  ------  ---------
      SerialNumber                  Serial Number                 String  128 -- Indexed
      Disposition                   Request Disposition           Long    4 -- Indexed

    Row 1:
      Serial Number: "6100000e6a16a00"
      Request Disposition: 0x14 (20) -- Issued

    Row 2:
    ...
    Maximum Row Index: 2

    2 Rows
    CertUtil: -view command completed successfully.

The schema's localized names are the header (the names the ``csv`` form writes, which the
``adcs`` profile maps); each ``Row N:`` block is one record, whose line is that of its
``Row N:`` line. A value becomes the text the ``csv`` form holds: ``"..."`` loses its quotes,
``0x14 (20) -- Issued`` becomes ``20 -- Issued`` and ``0x8`` becomes ``8``; ``EMPTY`` stays
(the profile reads it as empty). A quoted value runs on to the line its quote closes on, and a
value that starts on the next line (``Binary Certificate:`` then PEM) runs to the next blank
line; every other line in a row (hex dumps and decoded certificates of ``-v``, flag lists, the
closing summary) is not a value and is skipped. Without a schema (a cut dump) the names of the
first rows are the header.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from importer.errors import InputError
from importer.input.chunk import Chunk, Header, LineFault, rows_chunk

CERTUTIL_FORM = "certutil -view text"
CERTUTIL_LAYOUT = "certutil -view text, Row N: blocks of Name: value lines"
_ROW = re.compile(r"(\S[^:]*?) (\d+):\s*")  # fullmatch: "Row 12:" (or its translation)
_TITLE = re.compile(r"\S[^:]*:\s*")  # fullmatch: "Schema:"
_RULE = re.compile(r"\s*-{3,}(?:\s+-{3,})+\s*")  # fullmatch: the dashes under column titles
_NUMBER = re.compile(r"0x([0-9a-fA-F]+)(?: \((-?\d+)\))?((?: -- .*)?)")
_COLUMNS = re.compile(r"\s{2,}")
_REPLACED = "\ufffd"


def _field(line: str) -> tuple[str, str] | None:
    """(name, value) of a ``  Name: value`` line (two spaces, then the name), else None."""
    if not line.startswith("  ") or line[2:3].isspace() or not line[2:3]:
        return None
    name, colon, value = line[2:].rstrip().partition(": ")
    if colon:
        return name, value
    return (name[:-1], "") if name.endswith(":") else None


def _is_row(line: str) -> bool:
    """Whether ``line`` starts a row: ``Row 12:`` (or its translation)."""
    return line.endswith(":") and not line[:1].isspace() and bool(_ROW.fullmatch(line))


def is_certutil_text(text: str) -> bool:
    """Whether ``text`` (the decoded start of a file) is ``certutil -view`` text output."""
    lines = text.split("\n", 16)[:16]
    lines = [line.rstrip("\r") for line in lines]
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None or first + 1 >= len(lines):
        return False
    if _is_row(lines[first]) and _field(lines[first + 1]) is not None:
        return True
    following = lines[first + 1 : first + 4]
    return bool(_TITLE.fullmatch(lines[first])) and any(_RULE.fullmatch(x) for x in following)


def _schema(lines: list[str]) -> tuple[list[str], int]:
    """The localized names of the schema block, and the index of the first ``Row N:`` line
    (the number of lines when the sample has none)."""
    names: list[str] = []
    in_schema = False
    for number, line in enumerate(lines):
        if _is_row(line):
            return names, number
        if _RULE.fullmatch(line):
            in_schema = not names
            continue
        if in_schema:
            parts = _COLUMNS.split(line.strip())
            if len(parts) >= 3:  # Column Name, Localized Name, Type, MaxLength [-- Indexed]
                names.append(parts[1])
            elif not line.strip():
                in_schema = False
    return names, len(lines)


def certutil_names(path: str, sample: str) -> tuple[list[str], int]:
    """The header of a dump whose decoded start is ``sample``: the schema's localized names
    (else the names of the sample's rows, in order), and the lines before its first row."""
    lines = [line.rstrip("\r") for line in sample.split("\n")]
    names, first_row = _schema(lines)
    if not names:
        seen: dict[str, None] = {}
        for line in lines[first_row:]:
            found = _field(line)
            if found is not None:
                seen.setdefault(found[0])
        names = list(seen)
    if not names:
        raise InputError(
            path,
            "certutil -view text without a schema or a single 'Name: value' line",
            line=first_row + 1 if first_row < len(lines) else 1,
            hint='export it again with certutil -view ... -out "..." csv',
        )
    return names, first_row


def _value(raw: str) -> str:
    """A one-line value as the csv form of certutil writes it."""
    if raw[:1] not in ('"', "0"):
        return raw  # EMPTY, a date, a name
    if raw.startswith('"'):
        close = raw.rfind('"')
        rest = raw[close + 1 :].strip()
        return raw[1:close] + (" " + rest if rest else "")
    number = _NUMBER.fullmatch(raw)
    if number:
        decimal = number.group(2) or str(int(number.group(1), 16))
        return decimal + number.group(3)
    return raw


@dataclass
class _Row:
    """One ``Row N:`` block being read."""

    line: int
    cells: dict[str, str] = field(default_factory=dict)
    fault: LineFault | None = None
    name: str = ""  # the field whose value may go on over the next lines
    mode: str = ""  # "quote": until a closing quote; "block": until a blank line
    parts: list[str] = field(default_factory=list)

    def start(self, name: str, raw: str) -> None:
        """A ``Name: value`` line."""
        self.end()
        if name in self.cells and self.fault is None:
            self.fault = LineFault(f"field {name!r} appears twice in this row", name)
        if raw.startswith('"') and raw.rfind('"') == 0:
            self.name, self.mode, self.parts = name, "quote", [raw[1:]]
        elif not raw:
            self.name, self.mode, self.parts = name, "block", []
        self.cells[name] = _value(raw)

    def more(self, line: str) -> None:
        """A line that is not a ``Name: value`` line: part of a value, or skipped."""
        if self.mode == "quote":
            close = line.rfind('"')
            if close < 0:
                self.parts.append(line)
                return
            self.parts.append(line[:close])
            rest = line[close + 1 :].strip()
            self.cells[self.name] = "\n".join(self.parts).rstrip("\n") + (
                " " + rest if rest else ""
            )
            self.mode = ""
        elif self.mode == "block":
            if line.strip():
                self.parts.append(line)
            else:
                self.end()

    def end(self) -> None:
        """The current value is complete (a new field, a new row or the end of the file)."""
        if self.mode == "quote" and self.fault is None:
            self.fault = LineFault(
                "the quoted value opened here is never closed", self.name, self.parts[0]
            )
        if self.mode:
            self.cells[self.name] = "\n".join(self.parts)
        self.mode = ""


class CertutilReader:
    """Turns the ``Row N:`` blocks of a dump into chunks of records."""

    def __init__(self, path: str, header: Header, chunk_size: int) -> None:
        self.path = path
        self.names = header.names
        self.known = frozenset(header.names)
        self.size = chunk_size

    def chunks(self, pieces: Iterable[bytes]) -> Iterator[Chunk]:
        """The records of the dump (``pieces``: its UTF-8 stream), ``chunk_size`` at a time."""
        rows: list[list[str]] = []
        starts: list[int] = []
        faults: dict[int, LineFault] = {}
        for row in self._rows(pieces):
            fault = row.fault or self._check(row)
            if fault is not None:
                faults[len(rows)] = fault
            rows.append([row.cells.get(name, "") for name in self.names])
            starts.append(row.line)
            if len(rows) >= self.size:
                yield rows_chunk(self.names, rows, starts, faults)
                rows, starts, faults = [], [], {}
        if rows:
            yield rows_chunk(self.names, rows, starts, faults)

    def _rows(self, pieces: Iterable[bytes]) -> Iterator[_Row]:
        row: _Row | None = None
        for number, line in _lines(pieces):
            found = _field(line)
            if found is None and _is_row(line):
                if row is not None:
                    row.end()
                    yield row
                row = _Row(number)
            elif row is None:
                continue  # the schema, or whatever came before the first row
            elif found is not None and found[0] in self.known:
                row.start(*found)
            else:
                row.more(line)
        if row is not None:
            row.end()
            yield row

    def _check(self, row: _Row) -> LineFault | None:
        """What is wrong with a row read in full: a missing field, a byte that is not UTF-8."""
        missing = [name for name in self.names if name not in row.cells]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            return LineFault(f"the row has no {listed} line: the dump may be cut short")
        for name, cell in row.cells.items():
            if _REPLACED in cell:
                return LineFault(
                    "holds bytes that are not valid UTF-8 (shown as \ufffd): the dump was "
                    "converted with another encoding; export it again",
                    name,
                    cell,
                )
        return None


def _lines(pieces: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """The dump's physical lines, numbered from 1, without their line endings."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    rest = ""
    number = 0
    for piece in pieces:
        parts = (rest + decoder.decode(piece)).split("\n")
        rest = parts.pop()
        for part in parts:
            number += 1
            yield number, part.rstrip("\r")
    rest += decoder.decode(b"", final=True)
    if rest:
        yield number + 1, rest.rstrip("\r")
