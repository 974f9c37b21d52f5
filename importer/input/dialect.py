"""How an inventory file is written: its encoding, its delimiter and the lines before its header.

:func:`detect` reads the first MiB of a file and decides, in this order:

- encoding: a byte-order mark (UTF-8, UTF-16, UTF-32) wins; else valid UTF-8 is UTF-8; else a
  single-byte encoding detected by charset-normalizer (Windows-1252 when it reads as well as
  any other); ``encoding=`` overrides all of it;
- preamble: an Excel ``sep=;`` line (which also names the delimiter) and a PowerShell
  ``#TYPE ...`` line are skipped;
- delimiter: the one of ``,`` ``;`` tab ``|`` that the header uses most, outside quotes
  (``delimiter=`` overrides it).

:func:`utf8_pieces` then streams the file as UTF-8 bytes (transcoding other encodings on the
fly), so the reader only ever scans ASCII-compatible bytes.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from importer.errors import InputError

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

    @property
    def passthrough(self) -> bool:
        """True when the file's bytes are UTF-8 already and can be read without transcoding."""
        return self.encoding == "utf-8"

    def describe(self) -> str:
        """One line for the operator, e.g. ``cp1252 (detected), ';' (sep= line)``."""
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
    return text.split("\n")


def _count_outside_quotes(line: str, candidates: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(candidates, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return counts


def detect(
    path: str, *, encoding: str | None = AUTO, delimiter: str | None = None
) -> tuple[Dialect, str]:
    """Detect the dialect of ``path``; also returns the decoded text of the first MiB.

    ``encoding`` is ``"auto"`` (or None) to detect, else a codec name used as given (a UTF-8 or
    UTF-16 byte-order mark is still skipped). ``delimiter`` is None to detect, else one
    character. Raises :class:`InputError` for a file that cannot be opened or decoded.
    """
    try:
        with open(path, "rb") as handle:
            sample = handle.read(SAMPLE_BYTES + 1)
    except OSError as exc:
        raise _open_error(path, exc) from None
    complete = len(sample) <= SAMPLE_BYTES
    sample = sample[:SAMPLE_BYTES]
    bom, bom_codec = 0, ""
    for mark, name in _BOMS:
        if sample.startswith(mark):
            bom, bom_codec = len(mark), name
            break
    if encoding and encoding.lower() != AUTO:
        codec = _codec(path, encoding)
        if bom and codec.startswith(bom_codec[:6]):
            reason = "given"
        else:
            bom, reason = 0, "given"
            if codec == "utf-8" and sample.startswith(codecs.BOM_UTF8):
                bom = len(codecs.BOM_UTF8)
    elif bom:
        codec, reason = bom_codec, "byte-order mark"
    elif _utf8_valid(sample, complete):
        codec, reason = "utf-8", "valid UTF-8"
    else:
        _joined_files(path, sample)
        codec, reason = _single_byte(path, sample), "detected"
    body = sample[bom:]
    if codec in ("utf-16", "utf-32") and bom:
        # the codec wants its byte-order mark to know the byte order
        body = sample
    hint = "save the file as UTF-8" if codec == "utf-8" else "pass the right --encoding"
    try:
        text = codecs.getincrementaldecoder(codec)().decode(body, final=complete)
    except UnicodeDecodeError as exc:
        if codec.startswith("utf-8") or codec not in ("utf-16", "utf-32"):
            raise decode_error(path, body, exc, hint=hint) from None
        line = body[: exc.start].decode(codec, errors="replace").count("\n") + 1
        raise InputError(path, f"not valid {codec} text", line=line, hint=hint) from None
    text = text.lstrip("\ufeff") if text.startswith("\ufeff") else text
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


def utf8_pieces(path: str, dialect: Dialect) -> Iterator[bytes]:
    """The file after its byte-order mark, as UTF-8 bytes, in pieces of a few MiB.

    UTF-8 files are passed through unchanged (invalid bytes are found later, with their line);
    other encodings are decoded and re-encoded, and a byte that does not decode raises
    :class:`InputError` with its line.
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
                lines_before += text.count("\n")
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
