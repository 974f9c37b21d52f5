"""What a file's bytes prove about it before it is read as text.

- :func:`refuse_binary`: a compressed file or a spreadsheet workbook (named ``.csv`` or not) is
  named as such, with what to do, instead of getting an encoding hint;
- :func:`utf8_lines`: line by line, how many lines with non-ASCII bytes are UTF-8 and how many
  are not, so that a file that is UTF-8 but for a few lines is read as UTF-8 (those lines are
  rejected) and a single-byte encoding is chosen only when UTF-8 fails across the sample;
- :func:`check_bom`: a byte-order mark is believed unless the body proves it wrong;
- :func:`unify_line_ends` / :func:`unify_text`: a bare CR is a line ending like LF and CRLF.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from importer.errors import InputError

SAVE_AS_CSV = "save it as CSV UTF-8"
_ZIP_KINDS = (  # what a zip archive holds, by a name or mime type near its start
    (b"xl/", f"this is an Excel workbook: {SAVE_AS_CSV}"),
    (b"spreadsheetml", f"this is an Excel workbook: {SAVE_AS_CSV}"),
    (b"opendocument.spreadsheet", f"this is an OpenDocument spreadsheet: {SAVE_AS_CSV}"),
)
_MAGIC = (
    (b"\x1f\x8b", "this is a gzip file: decompress it first"),
    (b"BZh", "this is a bzip2 file: decompress it first"),
    (b"\xfd7zXZ\x00", "this is an xz file: decompress it first"),
    (b"\x28\xb5\x2f\xfd", "this is a zstd file: decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "this is a 7-Zip archive: extract the CSV file from it first"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", f"this is an Excel workbook (.xls): {SAVE_AS_CSV}"),
)
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_CR_TEXT = re.compile(r"\r(?!\n)")
# Above this share of failing lines per UTF-8 line, the file is taken as single-byte text.
SINGLE_BYTE_RATIO = 4


def refuse_binary(path: str, sample: bytes) -> None:
    """Raise :class:`InputError` when ``sample`` (the file's start) is an archive or workbook."""
    if sample.startswith(_ZIP):
        reason = "this is a zip archive: extract the CSV file from it first"
        for marker, kind in _ZIP_KINDS:
            if marker in sample[:65536]:
                reason = kind
                break
        raise InputError(path, reason, line=1)
    for magic, reason in _MAGIC:
        if sample.startswith(magic) and (magic != b"BZh" or sample[3:4].isdigit()):
            raise InputError(path, reason, line=1)


@dataclass(frozen=True)
class Utf8Lines:
    """How the lines of a sample with non-ASCII bytes decode as UTF-8."""

    good: int  # lines with non-ASCII bytes that are valid UTF-8
    bad: int  # lines that are not
    first_bad: int  # line number (from 1) of the first bad line, 0 if none
    first_error: UnicodeDecodeError | None  # its error, positions within that line

    @property
    def utf8(self) -> bool:
        """True when the sample is UTF-8 but for a few lines (or entirely)."""
        return self.bad == 0 or (self.good > 0 and self.bad <= SINGLE_BYTE_RATIO * self.good)


def utf8_lines(sample: bytes, complete: bool) -> Utf8Lines:
    """Count the lines of ``sample`` that are and are not UTF-8 (ASCII lines count for neither).

    When the sample is not the whole file its last line may be cut inside a character: it is
    left out.
    """
    lines = _LINE_ENDS.split(sample)
    if not complete and len(lines) > 1:
        lines.pop()
    good = bad = first_bad = 0
    first_error = None
    for number, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad += 1
            if not first_bad:
                first_bad, first_error = number, exc
        else:
            good += 1
    return Utf8Lines(good, bad, first_bad, first_error)


def check_bom(path: str, sample: bytes, bom: int, codec: str, complete: bool) -> None:
    """Refuse a file whose body contradicts its byte-order mark, stating both facts.

    A UTF-8 mark is contradicted by a body that fails UTF-8 across its lines (a few bad lines
    are rejected one by one later); a UTF-16 or UTF-32 mark by a body that does not decode, or
    whose text has no line break although its bytes have some (an ASCII or UTF-8 body).
    """
    body = sample[bom:]
    mark = {"utf-8": "UTF-8", "utf-16": "UTF-16", "utf-32": "UTF-32"}.get(codec, codec)
    if codec == "utf-8":
        lines = utf8_lines(body, complete)
        if lines.utf8 or lines.first_error is None:
            return
        byte = lines.first_error.object[lines.first_error.start : lines.first_error.start + 1]
        raise InputError(
            path,
            f"starts with a UTF-8 byte-order mark, but {lines.bad} of its lines are not UTF-8, "
            f"the first with byte 0x{byte.hex()} at column {lines.first_error.start + 1}",
            line=lines.first_bad,
            hint="the text was saved in another encoding: save it as UTF-8 again, "
            "or pass --encoding",
        )
    try:
        text = codecs.getincrementaldecoder(codec)().decode(sample, final=complete)
    except UnicodeDecodeError as exc:
        found = f"the bytes after it are not {mark} (from byte {exc.start} on)"
    else:
        if "\n" in text or b"\n" not in body:
            return
        found = f"the bytes after it hold no {mark} line break"
    if _valid_utf8(body, complete):
        found += "; they read as UTF-8"
    raise InputError(
        path,
        f"starts with a {mark} byte-order mark, but {found}",
        line=1,
        hint="remove the byte-order mark, or save the file as UTF-8 again",
    )


def _valid_utf8(data: bytes, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def unify_line_ends(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces with every bare CR turned into LF (same length: byte offsets stay true).

    CRLF stays as it is; a CR at the end of a piece waits for the next one to see whether an
    LF follows it.
    """
    held = b""
    for piece in pieces:
        if held:
            piece, held = held + piece, b""
        if piece.endswith(b"\r"):
            piece, held = piece[:-1], b"\r"
        if b"\r" in piece and _BARE_CR.search(piece):
            piece = _BARE_CR.sub(b"\n", piece)
        if piece:
            yield piece
    if held:
        yield b"\n"


def unify_text(text: str) -> str:
    """``text`` with every bare CR turned into LF."""
    if "\r" not in text or not _BARE_CR_TEXT.search(text):
        return text
    return _BARE_CR_TEXT.sub("\n", text)
