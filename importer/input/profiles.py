"""Profiles: how the columns of one kind of export map to Graph properties, kept as TOML data.

A profile (``<name>.toml``) names, for each Graph property, the header(s) it is
read from or a constant, which properties must be mapped, which headers are expected but not
sent, which cells mean "empty" (``EMPTY`` in certutil exports), how a status column becomes
Graph's revoke status, which properties are derived from another column when their own is not
in the file (``[derive]``, :mod:`importer.input.derive`), how to export a column that a tool
wrote as a .NET type name (``[type_names]``) and what to say when a required property is
missing (``[hints]``). The ``[columns]`` table of the settings overrides a profile's columns.
``--profile auto`` scores every profile against the header and takes the one that maps most
columns. Headers are compared after trimming, case-folding and collapsing runs of spaces.

The built-in profiles ship inside the package (``importer/data/profiles``, read through
:mod:`importlib.resources`, so an installed wheel has them in any working directory); a
``config/profiles/<name>.toml`` in the working directory adds one or replaces a built-in one.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from importer.errors import ConfigError, InputError, UsageError
from importer.input.derive import Derivation, parse_derive
from importer.model import PROPERTIES, REQUIRED_CELLS, REQUIRED_COLUMNS, REVOKE_STATUSES

AUTO = "auto"
BUILTIN_DIR: Traversable = resources.files("importer") / "data" / "profiles"
LOCAL_DIR = Path("config") / "profiles"  # an operator's own profiles, in the working directory
_SPACES = re.compile(r"\s+")
_CODE = re.compile(r"^(\S+)\s+--\s")  # certutil writes dispositions as "21 -- Revoked"
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
# Every Graph property starts with it: header names are compared on what follows it.
_SHARED_PREFIX = re.compile(r"^(?:certificate|cert)")
KNOWN_KEYS = frozenset(
    {
        "description", "priority", "required", "ignore", "empty", "columns", "revoke_status",
        "derive", "type_names", "hints", "exclude",
    }
)  # fmt: skip


def fold(text: str) -> str:
    """A header or table key as compared: trimmed, case-folded, runs of spaces made one."""
    return _SPACES.sub(" ", text.strip()).casefold()


def squash(text: str) -> str:
    """Only the letters and digits of a header, case-folded: ``Certificate Hash`` and
    ``CertificateHash`` are the same column of two tools."""
    return _NOT_ALNUM.sub("", text.casefold())


@dataclass(frozen=True)
class ColumnSetting:
    """Where one property's cells come from: the first of ``headers`` found, or a constant."""

    prop: str
    headers: tuple[str, ...] = ()
    constant: str | None = None

    def describe(self) -> str:
        """``'Header'``, ``'A' or 'B'``, or ``constant 'value'``."""
        if self.constant is not None:
            return f"constant {self.constant!r}"
        return " or ".join(repr(h) for h in self.headers)


@dataclass(frozen=True, eq=False)
class Profile:
    """One kind of inventory: column mapping and value rules. Built from a TOML file."""

    name: str
    description: str = ""
    source: str = ""  # the TOML file it came from
    priority: int = 100  # auto-detection tie-break: lower wins
    columns: Mapping[str, ColumnSetting] = field(default_factory=dict)
    required: tuple[str, ...] = REQUIRED_COLUMNS
    ignore: tuple[str, ...] = ()  # headers read, never sent, not warned about
    empty: tuple[str, ...] = ()  # cells that mean "no value", e.g. EMPTY
    revoke_status: Mapping[str, str] = field(default_factory=dict)  # folded cell -> status
    derive: Mapping[str, tuple[Derivation, ...]] = field(default_factory=dict)  # property ->
    type_names: Mapping[str, str] = field(default_factory=dict)  # folded header -> how to export
    hints: Mapping[str, str] = field(default_factory=dict)  # property -> what to do if missing
    # property -> {folded cell or code -> why}: rows that are not certificates (not sent)
    exclude: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def with_columns(self, settings: Iterable[ColumnSetting]) -> Profile:
        """This profile with some columns replaced (the ``[columns]`` table of the settings).

        A property the settings map is no longer derived: the operator's mapping wins.
        """
        columns = dict(self.columns)
        derive = dict(self.derive)
        for setting in settings:
            columns[setting.prop] = setting
            derive.pop(setting.prop, None)
        return replace(self, columns=columns, derive=derive)

    def revoke_value(self, cell: str) -> str | None:
        """Graph's revoke status for a cell, or None when the table has no such value."""
        table = self.revoke_status or {s: s for s in REVOKE_STATUSES}
        key = fold(cell)
        if key in REVOKE_STATUSES and key not in table:  # Graph's own values are kept
            return key
        return _lookup(table, key)

    def excluded(self, prop: str, cell: str) -> str | None:
        """Why a row whose ``prop`` cell is ``cell`` is not a certificate, or None.

        Matched like the revoke-status table: the whole cell, or the code before `` -- ``.
        """
        table = self.exclude.get(prop)
        return _lookup(table, fold(cell)) if table else None

    def revoke_keys(self) -> list[str]:
        """The values the revoke-status table accepts, for messages."""
        return list(self.revoke_status or REVOKE_STATUSES)


def _lookup(table: Mapping[str, str], key: str) -> str | None:
    """``table``'s value for a folded cell: the whole cell, or the code before `` -- ``."""
    if key in table:
        return table[key]
    code = _CODE.match(key)
    return table.get(code.group(1)) if code else None


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    problems.append(f"{where} must be a string or a list of strings, got {value!r}")
    return ()


def parse_columns(
    table: Mapping[str, Any], origin: str, problems: list[str]
) -> list[ColumnSetting]:
    """Read a ``[columns]`` table: ``property = "Header"``, ``["A", "B"]`` or ``{ value = "x" }``.

    Problems are appended to ``problems`` (reported together by the caller).
    """
    settings: list[ColumnSetting] = []
    canonical = {p.casefold(): p for p in PROPERTIES}
    for name, value in table.items():
        prop = canonical.get(name.casefold())
        if prop is None:
            close = difflib.get_close_matches(name, PROPERTIES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{origin}: [columns] {name} is not a Graph property{hint}")
            continue
        where = f"{origin}: [columns] {name}"
        if isinstance(value, dict):
            constant = value.get("value")
            if set(value) != {"value"} or not isinstance(constant, str):
                problems.append(f'{where} must be {{ value = "text" }}, got {value!r}')
                continue
            settings.append(ColumnSetting(prop, constant=constant))
        else:
            headers = _strings(value, where, problems)
            if headers:
                settings.append(ColumnSetting(prop, headers=headers))
    return settings


def load_profile(path: str | Path | Traversable) -> Profile:
    """Read one profile file; raises :class:`ConfigError` listing every problem in it.

    ``path`` is a file of the operator's or a built-in profile inside the package.
    """
    if isinstance(path, str):
        path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise UsageError(f"profile file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"profile {path} is a directory, not a .toml file") from exc
    except OSError as exc:
        raise UsageError(f"cannot read profile {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return parse_profile(data, name=Path(path.name).stem, origin=str(path))


def parse_profile(data: Mapping[str, Any], *, name: str, origin: str) -> Profile:
    """A profile from its TOML table; raises :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append(
                f"{origin}: unknown key {key!r}; known keys: {', '.join(sorted(KNOWN_KEYS))}"
            )
    columns = {c.prop: c for c in parse_columns(data.get("columns", {}), origin, problems)}
    required = _strings(data.get("required", list(REQUIRED_CELLS)), f"{origin}: required", problems)
    for prop in required:
        if prop not in PROPERTIES:
            problems.append(f"{origin}: required: {prop!r} is not a Graph property")
    table: dict[str, str] = {}
    for key, status in dict(data.get("revoke_status", {})).items():
        if status not in REVOKE_STATUSES:
            problems.append(
                f"{origin}: revoke_status {key!r} = {status!r}: use one of "
                + ", ".join(REVOKE_STATUSES)
            )
        table[fold(str(key))] = status
    priority = data.get("priority", 100)
    if not isinstance(priority, int):
        problems.append(f"{origin}: priority must be an integer, got {priority!r}")
        priority = 100
    canonical = {p.casefold(): p for p in PROPERTIES}
    derive = parse_derive(data.get("derive", {}), canonical, origin, problems)
    for prop in derive:
        if prop in columns and columns[prop].constant is not None:
            problems.append(
                f"{origin}: [derive] {prop}: [columns] gives it a constant, which always applies"
            )
    type_names = _texts(data.get("type_names", {}), f"{origin}: [type_names]", problems)
    hints = _texts(data.get("hints", {}), f"{origin}: [hints]", problems)
    for prop in hints:
        if prop not in PROPERTIES:
            problems.append(f"{origin}: [hints] {prop} is not a Graph property")
    ignore = _optional_strings(data, "ignore", origin, problems)
    empty = _optional_strings(data, "empty", origin, problems)
    exclude = _exclusions(data.get("exclude", {}), canonical, origin, problems)
    if problems:
        raise ConfigError(problems)
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        source=origin,
        priority=priority,
        columns=columns,
        # Graph's required cells are required by every profile
        required=tuple(p for p in PROPERTIES if p in required or p in REQUIRED_CELLS),
        ignore=ignore,
        empty=empty,
        revoke_status=table,
        derive=derive,
        type_names={fold(k): v for k, v in type_names.items()},
        hints=hints,
        exclude=exclude,
    )


def _exclusions(
    value: Any, canonical: Mapping[str, str], origin: str, problems: list[str]
) -> dict[str, dict[str, str]]:
    """``[exclude.<property>]`` tables: ``"<cell or code>" = "why it is not a certificate"``."""
    if not isinstance(value, dict):
        problems.append(f"{origin}: [exclude] must be a table of property tables")
        return {}
    out: dict[str, dict[str, str]] = {}
    for name, table in value.items():
        prop = canonical.get(str(name).casefold())
        if prop is None:
            problems.append(f"{origin}: [exclude.{name}]: {name!r} is not a Graph property")
            continue
        texts = _texts(table, f"{origin}: [exclude.{name}]", problems)
        out[prop] = {fold(k): v for k, v in texts.items()}
    return out


def _optional_strings(
    data: Mapping[str, Any], key: str, origin: str, problems: list[str]
) -> tuple[str, ...]:
    value = data.get(key)
    return _strings(value, f"{origin}: {key}", problems) if value else ()


def _texts(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    """A table of ``key = "text"`` entries."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table, got {value!r}")
        return {}
    wrong = sorted(k for k, v in value.items() if not isinstance(v, str))
    if wrong:
        problems.append(f"{where}: {', '.join(wrong)} must be text")
    return {k: v for k, v in value.items() if isinstance(v, str)}


def profile_files(
    dirs: Sequence[Path | Traversable] | None = None,
) -> dict[str, Path | Traversable]:
    """Profile name -> file: the working directory's ``config/profiles`` over the built-in ones."""
    found: dict[str, Path | Traversable] = {}
    for directory in dirs if dirs is not None else (LOCAL_DIR, BUILTIN_DIR):
        if directory.is_dir():
            files = [p for p in directory.iterdir() if p.name.endswith(".toml") and p.is_file()]
            for path in sorted(files, key=lambda p: p.name):
                found.setdefault(Path(path.name).stem, path)
    return found


def builtin_names() -> list[str]:
    """The names of the profiles that ship with certimport."""
    return sorted(profile_files([BUILTIN_DIR]))


def load_profiles(
    spec: str = AUTO, dirs: Sequence[Path | Traversable] | None = None
) -> list[Profile]:
    """The candidate profiles for ``spec``: every known profile for ``auto``, else the one named.

    ``spec`` may also be a path to a ``.toml`` file. Raises :class:`UsageError` for an unknown
    name, listing the known ones.
    """
    if spec.endswith(".toml") or "/" in spec:
        return [load_profile(spec)]
    files = profile_files(dirs)
    if spec == AUTO:
        if not files:
            raise UsageError("no profiles found (the package's own are missing: reinstall)")
        profiles = [load_profile(p) for p in files.values()]
        return sorted(profiles, key=lambda p: (p.priority, p.name))
    if spec not in files:
        known = ", ".join([AUTO, *sorted(files)])
        raise UsageError(f"unknown profile {spec!r}; known profiles: {known}")
    return [load_profile(files[spec])]


@dataclass(frozen=True)
class HeaderMatch:
    """How one profile maps one header row."""

    profile: Profile
    columns: dict[str, str]  # property -> header name as written in the file
    constants: dict[str, str]  # property -> constant value
    extras: tuple[str, ...]  # headers not mapped: warned about, never sent
    ignored: tuple[str, ...]  # headers the profile expects but never sends (and unnamed ones)
    missing: tuple[str, ...]  # required properties mapped to nothing
    conflict: str = ""  # two headers for one property
    # properties derived from another column (in ``columns``, under the source column) or
    # given by a derive rule's constant (in ``constants``)
    derived: dict[str, Derivation] = field(default_factory=dict)

    @property
    def score(self) -> int:
        """How many properties this profile finds in the header."""
        return len(self.columns)


def match_header(profile: Profile, names: Sequence[str]) -> HeaderMatch:
    """Map the header ``names`` with ``profile``: a property's own headers first, then its
    ``[derive]`` rules."""
    by_fold: dict[str, list[str]] = {}
    for name in names:
        by_fold.setdefault(fold(name), []).append(name)
    columns: dict[str, str] = {}
    constants: dict[str, str] = {}
    derived: dict[str, Derivation] = {}
    used: set[str] = set()
    conflicts: list[str] = []

    def first(headers: Iterable[str], prop: str) -> str | None:
        written = _written(by_fold, headers)
        if len(written) > 1:
            conflicts.append(f"columns {written[0]!r} and {written[1]!r} both map to {prop}")
        used.update(written)
        return written[0] if written else None

    for prop in PROPERTIES:
        setting = profile.columns.get(prop)
        if setting is not None and setting.constant is not None:
            constants[prop] = setting.constant
            continue
        found = first(setting.headers, prop) if setting is not None else None
        if found is not None:
            columns[prop] = found
            continue
        for rule in profile.derive.get(prop, ()):
            source = first(rule.source, prop) if rule.constant is None else None
            if rule.constant is not None or source is not None:
                derived[prop] = rule
                if source is not None:
                    columns[prop] = source
                else:
                    constants[prop] = str(rule.constant)
                break
    ignore = {fold(i) for i in profile.ignore} | {"import_error"}  # failed.csv's own column
    ignored = tuple(n for n in names if n not in used and (fold(n) in ignore or not n.strip()))
    extras = tuple(n for n in names if n not in used and n not in ignored)
    missing = tuple(p for p in profile.required if p not in columns and p not in constants)
    conflict = conflicts[0] if conflicts else ""
    return HeaderMatch(profile, columns, constants, extras, ignored, missing, conflict, derived)


def _written(by_fold: Mapping[str, list[str]], headers: Iterable[str]) -> list[str]:
    """The file's headers (as written) for the first of ``headers`` that is in the file."""
    for header in headers:
        written = by_fold.get(fold(header))
        if written:
            return written
    return []


def header_meanings(profiles: Iterable[Profile]) -> dict[str, set[str]]:
    """Squashed header -> what the profiles read it as: properties, or "" for ignored."""
    meanings: dict[str, set[str]] = {}
    for profile in profiles:
        for prop, setting in profile.columns.items():
            for header in setting.headers:
                meanings.setdefault(squash(header), set()).add(prop)
        for prop, rules in profile.derive.items():
            for header in (h for r in rules for h in r.source):
                meanings.setdefault(squash(header), set()).add(prop)
        for header in [*profile.ignore, *profile.type_names]:
            meanings.setdefault(squash(header), set()).add("")
    return meanings


def _distinct(name: str) -> str:
    """What tells a header apart from the others: not the ``certificate`` they all start with."""
    return _SHARED_PREFIX.sub("", squash(name))


def _suggestions(match: HeaderMatch, meanings: Mapping[str, set[str]]) -> list[str]:
    """Close matches for the missing properties among the unmapped headers.

    A header some profile reads as another property, or ignores, is never proposed: a
    ``CertificateTemplate`` column is no thumbprint however alike the names look.
    """
    hints = []
    for prop in match.missing:
        unused = {
            _distinct(n): n
            for n in match.extras
            if _distinct(n) and prop in meanings.get(squash(n), {prop})
        }
        setting = match.profile.columns.get(prop)
        for header in [*(setting.headers if setting else ()), prop]:
            close = difflib.get_close_matches(_distinct(header), list(unused), n=1, cutoff=0.75)
            if close:
                hints.append(f"did you mean {unused[close[0]]!r} for {prop} ({header!r})?")
                break
    return hints


def missing_error(
    path: str,
    match: HeaderMatch,
    names: Sequence[str],
    chosen: str,
    *,
    line: int = 1,
    meanings: Mapping[str, set[str]] | None = None,
) -> InputError:
    """The error for a header that lacks required properties: all of them, and what to do.

    ``meanings`` (:func:`header_meanings` of every known profile) keeps the close-match hints
    from proposing a header that is known to mean something else.
    """
    found = ", ".join(repr(n) for n in names) or "none"
    hints = [match.profile.hints[p] for p in match.missing if p in match.profile.hints]
    hints += _suggestions(match, meanings if meanings is not None else header_meanings([]))
    if match.profile.name == "graph":
        hints.insert(
            0, "header names are matched to Graph property names, ignoring case and spaces"
        )
    else:
        hints.append(
            f"{chosen}; map headers or give constants in the config's [columns], e.g. "
            f'{match.missing[0]} = "Your header" or {{ value = "..." }}'
        )
    return InputError(
        path,
        f"missing required column(s): {', '.join(match.missing)}; columns found: {found}",
        line=line,
        hint="; ".join(hints),
    )


def choose(
    path: str,
    names: Sequence[str],
    *,
    profile: str = AUTO,
    columns: Iterable[ColumnSetting] = (),
    dirs: Sequence[Path | Traversable] | None = None,
    line: int = 1,
) -> tuple[HeaderMatch, str]:
    """Pick the profile for a header; returns the match and how it was chosen, for messages.

    Raises :class:`InputError` when two headers map to one property or required properties are
    unmapped (naming all of them, the headers found, and close matches).
    """
    overrides = list(columns)
    candidates = [p.with_columns(overrides) for p in load_profiles(profile, dirs)]
    matches = [match_header(p, names) for p in candidates]
    if profile == AUTO:
        best = max(matches, key=lambda m: (m.score, -m.profile.priority))
        others = ", ".join(m.profile.name for m in matches)
        how = f"profile {best.profile.name} (auto: best match of {others})"
    else:
        best = matches[0]
        how = f"profile {best.profile.name} (given)"
    if best.conflict:
        raise InputError(path, best.conflict, line=line, hint="remove or rename one of them")
    if best.missing:
        known = candidates if profile == AUTO else [*candidates, *_all_profiles(dirs)]
        meanings = header_meanings(known)
        raise missing_error(path, best, names, how, line=line, meanings=meanings)
    return best, how


def _all_profiles(dirs: Sequence[Path | Traversable] | None) -> list[Profile]:
    """Every profile that loads (for the hints of a given profile: what headers mean)."""
    try:
        return load_profiles(AUTO, dirs)
    except (ConfigError, UsageError):
        return []
