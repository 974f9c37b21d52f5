"""``certimport inspect``: what certimport makes of a file, before anything is sent.

Detected encoding, delimiter and skipped lines, the profile and how each header maps to a Graph
property, the number of records (valid and rejected), and the first records as the bodies that
would be sent. A file that cannot be imported as it is still gets the part that was found, then
the list of what is missing (the CLI exits 2); so does a file of which no record would be sent
(no data rows, or every record rejected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from importer.config import Settings
from importer.errors import CertImportError, InputError
from importer.input.dialect import Dialect, delimiter_name, detect
from importer.input.mapping import build_bodies
from importer.input.profiles import HeaderMatch, choose, load_profiles, match_header
from importer.input.schema import Validator
from importer.input.source import CsvSource, read_header_names
from importer.model import PROPERTIES


@dataclass
class Inspection:
    """Everything ``inspect`` found out about one file."""

    path: str
    dialect: Dialect
    names: list[str]
    chosen: str = ""  # how the profile was chosen
    match: HeaderMatch | None = None
    error: InputError | None = None  # why the file cannot be imported as it is
    scanned: bool = False  # every record was read and validated (records/rejected are final)
    records: int = 0
    rejected: int = 0
    excluded: int = 0  # records the profile says are not certificates
    dates: str = ""  # how day and month are told apart (given, inferred from a line)
    notes: list[str] = field(default_factory=list)  # what the validator said of the file
    first: list[tuple[int, str]] = field(default_factory=list)  # (line, body or problems)

    def lines(self) -> list[str]:
        """The report, one line per item, for stdout."""
        dialect = self.dialect
        out = [
            f"file       {self.path}",
            f"encoding   {dialect.encoding} ({dialect.encoding_reason})",
            f"delimiter  {delimiter_name(dialect.delimiter)} ({dialect.delimiter_reason})",
        ]
        for number, text in enumerate(dialect.preamble, start=1):
            out.append(f"skipped    line {number}: {text[:70]!r}")
        if self.chosen:
            out.append(f"profile    {self.chosen.removeprefix('profile ')}")
        match = self.match
        if match is not None:
            form = "certutil -view text" if dialect.form == "certutil" else "CSV"
            what = match.profile.description
            out.append(f"format     {form}{': ' + what if what else ''}")
        if match is not None:
            out.append("columns    header -> Graph property")
            # a derived property shows its rule: 'Issued Common Name' as 'CN={}'
            shown = {
                p: rule.describe(match.columns[p])
                for p, rule in match.derived.items()
                if p in match.columns
            }
            width = max([len(repr(n)) for n in self.names] + [len(s) for s in shown.values()])
            width = max(width, 20)
            for prop in PROPERTIES:
                if prop in match.columns:
                    out.append(f"  {shown.get(prop, repr(match.columns[prop])):<{width}} -> {prop}")
                elif prop in match.constants:
                    out.append(f"  {'constant ' + repr(match.constants[prop]):<{width}} -> {prop}")
                else:
                    state = "MISSING" if prop in match.missing else "not mapped"
                    out.append(f"  {'(' + state + ')':<{width}} -> {prop}")
            for name in match.ignored:
                out.append(
                    f"  {name!r:<{width}}    read, never sent (profile {match.profile.name})"
                )
            for name in match.extras:
                out.append(f"  {name!r:<{width}}    not a Graph property: not sent")
        if self.dates:
            out.append(f"dates      {self.dates}")
        out += [f"note       {note}" for note in self.notes]
        if self.scanned:
            valid = self.records - self.rejected - self.excluded
            excluded = f", {self.excluded} excluded" if self.excluded else ""
            out.append(
                f"records    {self.records} ({valid} valid, {self.rejected} rejected{excluded})"
            )
            if self.first:
                out.append(f"first {len(self.first)} record(s) as they would be sent:")
                out += [f"  line {line}: {text}" for line, text in self.first]
        if self.error is not None:
            out.append(f"cannot import: {self.error}")
        return out


def inspect_file(path: str, settings: Settings, *, rows: int = 5) -> Inspection:
    """Inspect ``path`` with the input settings; reads (and validates) the whole file.

    Raises :class:`InputError` only when the file cannot be read at all; a header that cannot
    be mapped, or a file of which no record would be sent, is reported in
    :attr:`Inspection.error`. The counts cover every record, read chunk by chunk.
    """
    delimiter = settings.delimiter or None
    dialect, sample = detect(path, encoding=settings.encoding, delimiter=delimiter)
    names, _ = read_header_names(path, dialect, sample)
    inspection = Inspection(path, dialect, names)
    line = len(dialect.preamble) + 1
    try:
        inspection.match, inspection.chosen = choose(
            path, names, profile=settings.profile, columns=settings.columns, line=line
        )
        source = CsvSource(
            path,
            chunk_size=settings.chunk_size,
            encoding=settings.encoding,
            delimiter=delimiter,
            profile=settings.profile,
            columns=settings.columns,
        )
    except InputError as exc:
        inspection.error = exc
        if inspection.match is None:
            inspection.match = _closest(names, settings)
            if inspection.match is not None:
                inspection.chosen = f"profile {inspection.match.profile.name} (closest match)"
        return inspection
    validator = Validator(
        source.header,
        timezone=settings.timezone,
        date_format=settings.date_format or None,
        dayfirst=settings.dayfirst,
        source=source,
    )
    for chunk in source.chunks():
        vc = validator.validate(chunk)
        inspection.records += len(vc.valid)
        inspection.rejected += len(vc.problems)
        inspection.excluded += len(vc.excluded)
        wanted = rows - len(inspection.first)
        if wanted <= 0:
            continue
        for pos in range(min(wanted, len(vc.valid))):
            line_number = int(vc.lines[pos])
            if pos in vc.problems:
                text = "rejected: " + "; ".join(
                    p.describe(path).split(": ", 1)[1] for p in vc.problems[pos]
                )
            elif pos in vc.excluded:
                text = f"excluded: {vc.excluded[pos]}"
            else:
                body: dict[str, Any] = build_bodies(vc.values, np.array([pos]))[0]
                text = orjson.dumps(body).decode()
            inspection.first.append((line_number, text))
    inspection.scanned = True
    order = validator.date_order
    if order.how != "given" or order.dayfirst is not None:
        inspection.dates = order.describe()
    inspection.notes = [n.describe(path) for n in validator.notes if n.warning]
    inspection.error = _nothing_to_send(
        path, inspection.records, inspection.rejected + inspection.excluded
    )
    return inspection


def _nothing_to_send(path: str, records: int, rejected: int) -> InputError | None:
    """Why no record of the file would be sent, or None when at least one would."""
    if records == 0:
        return InputError(path, "no record would be sent: there are no data rows after the header")
    if rejected < records:
        return None
    what = "the only record is" if records == 1 else f"all {records} records are"
    return InputError(
        path,
        f"no record would be sent: {what} rejected",
        hint="certimport validate lists the reason for every row",
    )


def _closest(names: list[str], settings: Settings) -> HeaderMatch | None:
    """The mapping of the profile that fits best, to show what was found."""
    try:
        profiles = load_profiles(settings.profile)
    except CertImportError:
        return None
    matches = [match_header(p.with_columns(settings.columns), names) for p in profiles]
    return max(matches, key=lambda m: (m.score, -m.profile.priority), default=None)
