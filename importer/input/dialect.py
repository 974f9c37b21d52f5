"""How an inventory file is written: its encoding, its delimiter and the lines before its header.

:func:`detect` reads the first MiB of a file and decides, in this order:

- what it is not: a gzip, zip or other archive, an Excel workbook (``.xlsx``, ``.xls``) or an
  OpenDocument spreadsheet is refused as such (:mod:`importer.input.evidence`);
- encoding: a byte-order mark wins unless the body proves it wrong (then the file is refused
  with both facts); else UTF-8 when the text is UTF-8, or UTF-8 but for a few lines (those
  lines are rejected when read); else a single-byte encoding detected by charset-normalizer
  (Windows-1252 when it reads as well as any other); ``encoding=`` overrides all of it;
- form: a ``certutil -view`` text dump (``Row N:`` blocks) is read by
  :mod:`importer.input.certutil`; anything else is CSV;
- preamble: an Excel ``sep=;`` line (which also names the delimiter) and a PowerShell
  ``#TYPE ...`` line are skipped;
- delimiter: the one of ``,`` ``;`` tab ``|`` that the header uses most, outside quotes
  (``delimiter=`` overrides it).

:func:`utf8_pieces` then streams the file as UTF-8 bytes (transcoding other encodings on the
fly), so the reader only ever scans ASCII-compatible bytes. LF, CRLF and a bare CR all end a
line.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from importer.errors import InputError
from importer.input.certutil import CERTUTIL_FORM, CERTUTIL_LAYOUT, is_certutil_text
from importer.input.evidence import check_bom, refuse_binary, unify_text, utf8_lines

SAMPLE_BYTES = 1 << 20
READ_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
AUTO = "auto"
# Single-byte encodings, most likely first, used to break ties between equally readable ones.
_PREFERRED = (
    "cp1252",
    "cp1250",
    "cp1251",
    "cp1257",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1258",
    "cp850",
    "cp437",
    "iso8859_15",
    "latin_1",
)
_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SEP_LINE = re.compile(r'^"?sep=(.)"?[,;\t|]*\s*$', re.IGNORECASE)
_TYPE_LINE = re.compile(r"^#TYPE\b")
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


def delimiter_name(delimiter: str) -> str:
    """How a delimiter is shown to the operator: ``','``, ``';'``, ``tab``."""
    return _NAMES.get(delimiter, repr(delimiter))


def parse_delimiter(value: str) -> str:
    """A ``--delimiter`` value as one character (``tab``, ``\\t``, ``comma``... accepted)."""
    named = {
        "tab": "\t",
        "\\t": "\t",
        "comma": ",",
        "semicolon": ";",
        "pipe": "|",
    }
    char = named.get(value.strip().lower(), value)
    if len(char) != 1 or char in '"\r\n' or not char.isascii():
        raise ValueError(f"delimiter must be one character such as , ; tab |, got {value!r}")
    return char


@dataclass(frozen=True)
class Dialect:
    """What :func:`detect` found out about a file."""

    encoding: str  # Python codec name of the text after the byte-order mark
    encoding_reason: str  # "byte-order mark", "valid UTF-8", "detected", "given"
    bom: int  # bytes of byte-order mark at the start of the file
    delimiter: str
    delimiter_reason: str  # "sep= line", "detected from the header", "given"
    preamble: tuple[str, ...]  # lines skipped before the header (sep=;, #TYPE ...)
    form: str = "csv"  # "csv", or "certutil" for certutil -view text (Row N: blocks)

    @property
    def passthrough(self) -> bool:
        """True when the file's bytes are UTF-8 already and can be read without transcoding."""
        return self.encoding == "utf-8"

    def describe(self) -> str:
        """One line for the operator, e.g. ``cp1252 (detected), ';' (sep= line)``."""
        if self.form == "certutil":
            return f"{self.encoding} ({self.encoding_reason}), {CERTUTIL_FORM} (Row N: blocks)"
        text = f"{self.encoding} ({self.encoding_reason}), delimiter "
        text += f"{delimiter_name(self.delimiter)} ({self.delimiter_reason})"
        if self.preamble:
            text += f", skipped {', '.join(repr(p[:40]) for p in self.preamble)}"
        return text


def _codec(path: str, name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputError(
            path, f"unknown encoding {name!r}", hint="use a Python codec name such as cp1252"
        ) from None


def _open_error(path: str, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(path, "file not found")
    if isinstance(exc, IsADirectoryError):
        return InputError(path, "is a directory, not a CSV file")
    if isinstance(exc, PermissionError):
        return InputError(path, "permission denied")
    return InputError(path, f"cannot read: {exc.strerror}")


def decode_error(
    path: str, raw: bytes, exc: UnicodeDecodeError, *, first_line: int = 1, hint: str | None
) -> InputError:
    """The line and column of the byte that ``raw`` (starting at ``first_line``) fails on."""
    start = exc.start
    line = first_line + raw.count(b"\n", 0, start)
    column = start - (raw.rfind(b"\n", 0, start) + 1) + 1  # in bytes, like an editor's status bar
    byte = raw[start : start + 1].hex()
    return InputError(
        path,
        f"byte 0x{byte} at column {column} is not valid {exc.encoding}",
        line=line,
        hint=hint,
    )


def _utf8_valid(sample: bytes, complete: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _joined_files(path: str, sample: bytes) -> None:
    """A UTF-16 byte-order mark at the start of a later line: files of two encodings joined."""
    for mark in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        at = sample.find(b"\n" + mark)
        if at >= 0:
            raise InputError(
                path,
                f"starts with a UTF-16 byte-order mark (0x{mark.hex()}): the file looks like "
                "files of different encodings joined together",
                line=sample.count(b"\n", 0, at + 1) + 1,
                hint="convert each part to UTF-8 before joining them",
            )


def _single_byte(path: str, sample: bytes) -> str:
    from charset_normalizer import from_bytes

    results = list(from_bytes(sample))
    if not results:
        raise InputError(
            path,
            "the text is neither UTF-8 nor a recognisable single-byte encoding",
            hint="pass --encoding, e.g. --encoding cp1252",
        )
    lowest = min(r.percent_chaos for r in results)
    readable = [r for r in results if r.percent_chaos <= lowest + 1.0]
    names = {codecs.lookup(n).name for r in readable for n in r.could_be_from_charset}
    for preferred in _PREFERRED:
        if codecs.lookup(preferred).name in names:
            return codecs.lookup(preferred).name
    return codecs.lookup(readable[0].encoding).name


def _split_lines(text: str) -> list[str]:
    return text.split("\n")  # the text's bare CRs are LFs already (unify_text)


def _count_outside_quotes(line: str, candidates: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(candidates, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return counts


def _encoding(
    path: str, sample: bytes, complete: bool, encoding: str | None
) -> tuple[str, str, int]:
    """(codec, why, byte-order mark length) of a file that starts with ``sample``."""
    bom, bom_codec = 0, ""
    for mark, name in _BOMS:
        if sample.startswith(mark):
            bom, bom_codec = len(mark), name
            break
    if encoding and encoding.lower() != AUTO:
        codec = _codec(path, encoding)
        if not (bom and codec.startswith(bom_codec[:6])):
            bom = len(codecs.BOM_UTF8) if codec == "utf-8" and bom_codec == "utf-8" else 0
        return codec, "given", bom
    if bom:
        check_bom(path, sample, bom, bom_codec, complete)
        return bom_codec, "byte-order mark", bom
    if _utf8_valid(sample, complete):
        return "utf-8", "valid UTF-8", 0
    _joined_files(path, sample)
    lines = utf8_lines(sample, complete)
    if lines.utf8:
        return "utf-8", f"valid UTF-8 but for {lines.bad} line(s)", 0
    return _single_byte(path, sample), "detected", 0


def _decode_sample(path: str, sample: bytes, codec: str, why: str, bom: int, complete: bool) -> str:
    """The decoded start of the file (bytes that are not UTF-8 in an auto-detected UTF-8 file
    are replaced: their lines are rejected when the file is read)."""
    body = sample[bom:]
    if codec in ("utf-16", "utf-32") and bom:
        body = sample  # the codec wants its byte-order mark to know the byte order
    hint = "save the file as UTF-8" if codec == "utf-8" else "pass the right --encoding"
    errors = "strict" if codec != "utf-8" or why in ("given", "valid UTF-8") else "replace"
    try:
        text = codecs.getincrementaldecoder(codec)(errors).decode(body, final=complete)
    except UnicodeDecodeError as exc:
        if codec.startswith("utf-8") or codec not in ("utf-16", "utf-32"):
            raise decode_error(path, body, exc, hint=hint) from None
        line = body[: exc.start].decode(codec, errors="replace").count("\n") + 1
        raise InputError(path, f"not valid {codec} text", line=line, hint=hint) from None
    return unify_text(text.lstrip("\ufeff") if text.startswith("\ufeff") else text)


def detect(
    path: str, *, encoding: str | None = AUTO, delimiter: str | None = None
) -> tuple[Dialect, str]:
    """Detect the dialect of ``path``; also returns the decoded text of the first MiB.

    ``encoding`` is ``"auto"`` (or None) to detect, else a codec name used as given (a UTF-8 or
    UTF-16 byte-order mark is still skipped). ``delimiter`` is None to detect, else one
    character. A ``certutil -view`` text dump is recognised as such (``form="certutil"``).
    Raises :class:`InputError` for a file that cannot be opened or decoded, and for an archive
    or a workbook.
    """
    try:
        with open(path, "rb") as handle:
            sample = handle.read(SAMPLE_BYTES + 1)
    except OSError as exc:
        raise _open_error(path, exc) from None
    complete = len(sample) <= SAMPLE_BYTES
    sample = sample[:SAMPLE_BYTES]
    refuse_binary(path, sample)
    codec, reason, bom = _encoding(path, sample, complete, encoding)
    text = _decode_sample(path, sample, codec, reason, bom, complete)
    if codec == "utf-8" and reason not in ("given", "valid UTF-8"):
        _header_is_utf8(path, sample, text)
    if is_certutil_text(text):
        return Dialect(codec, reason, bom, ":", CERTUTIL_LAYOUT, (), form="certutil"), text
    lines = _split_lines(text)
    preamble: list[str] = []
    sep = ""
    for first in lines[:2]:
        stripped = first.rstrip("\r")
        match = _SEP_LINE.match(stripped)
        if match and not sep and len(lines) > len(preamble) + 1:
            sep = match.group(1)
            preamble.append(stripped)
        elif _TYPE_LINE.match(stripped) and len(lines) > len(preamble) + 1:
            preamble.append(stripped)
        else:
            break
    header = lines[len(preamble)] if len(lines) > len(preamble) else ""
    if delimiter is not None:
        chosen, why = delimiter, "given"
    elif sep:
        chosen, why = sep, "sep= line"
    else:
        counts = _count_outside_quotes(header, DELIMITERS)
        best = max(DELIMITERS, key=lambda d: counts[d])
        chosen, why = (best, "detected from the header") if counts[best] else (",", "default")
    return Dialect(codec, reason, bom, chosen, why, tuple(preamble)), text


def _header_is_utf8(path: str, sample: bytes, text: str) -> None:
    """The first lines (a preamble and the header) must be UTF-8 even when a few rows are not:
    without them no line can be read."""
    head = _split_lines(text)[:3]
    for number, line in enumerate(head, start=1):
        if "\ufffd" not in line:
            continue
        raw = re.split(rb"\r\n|\r|\n", sample, maxsplit=3)[number - 1]
        raw = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise decode_error(
                path, raw, exc, first_line=number, hint="save the file as UTF-8"
            ) from None


def utf8_pieces(path: str, dialect: Dialect) -> Iterator[bytes]:
    """The file after its byte-order mark, as UTF-8 bytes, in pieces of a few MiB.

    UTF-8 files are passed through unchanged (invalid bytes are found later, with their line;
    a UTF-8 stream's byte offsets are the file's, less its byte-order mark); other encodings
    are decoded and re-encoded, and a byte that does not decode raises :class:`InputError`
    with its line. Line endings are left as they are: a bare CR is turned into an LF by the
    readers (outside quoted cells, for CSV).
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        if dialect.passthrough:
            handle.seek(dialect.bom)
            while piece := handle.read(READ_BYTES):
                yield piece
            return
        bom_needed = dialect.encoding in ("utf-16", "utf-32")
        handle.seek(0 if bom_needed else dialect.bom)
        decoder = codecs.getincrementaldecoder(dialect.encoding)()
        lines_before = 1
        while True:
            piece = handle.read(READ_BYTES)
            final = not piece
            try:
                text = decoder.decode(piece, final=final)
            except UnicodeDecodeError as exc:
                raise _transcode_error(path, dialect, piece, exc, lines_before) from None
            if text:
                lines_before += text.count("\n") + text.count("\r") - text.count("\r\n")
                yield text.encode("utf-8")
            if final:
                return
    finally:
        handle.close()


def _transcode_error(
    path: str, dialect: Dialect, piece: bytes, exc: UnicodeDecodeError, lines_before: int
) -> InputError:
    prefix = piece[: exc.start].decode(dialect.encoding, errors="replace")
    line = lines_before + prefix.count("\n")
    column = len(prefix) - (prefix.rfind("\n") + 1) + 1
    byte = piece[exc.start : exc.start + 1].hex()
    return InputError(
        path,
        f"byte 0x{byte} at column {column} is not valid {dialect.encoding}",
        line=line,
        hint="pass the right --encoding",
    )
