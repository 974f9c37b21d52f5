"""Profiles: how the columns of one kind of export map to Graph properties, kept as TOML data.

A profile (``<name>.toml``) names, for each Graph property, the header(s) it is
read from or a constant, which properties must be mapped, which headers are expected but not
sent, which cells mean "empty" (``EMPTY`` in certutil exports) and how a status column becomes
Graph's revoke status. The ``[columns]`` table of the settings overrides a profile's columns.
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
from importer.model import PROPERTIES, REQUIRED_CELLS, REQUIRED_COLUMNS, REVOKE_STATUSES

AUTO = "auto"
BUILTIN_DIR: Traversable = resources.files("importer") / "data" / "profiles"
LOCAL_DIR = Path("config") / "profiles"  # an operator's own profiles, in the working directory
_SPACES = re.compile(r"\s+")
_CODE = re.compile(r"^(\S+)\s+--\s")  # certutil writes dispositions as "21 -- Revoked"


def fold(text: str) -> str:
    """A header or table key as compared: trimmed, case-folded, runs of spaces made one."""
    return _SPACES.sub(" ", text.strip()).casefold()


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

    def with_columns(self, settings: Iterable[ColumnSetting]) -> Profile:
        """This profile with some columns replaced (the ``[columns]`` table of the settings)."""
        columns = dict(self.columns)
        for setting in settings:
            columns[setting.prop] = setting
        return replace(self, columns=columns)

    def revoke_value(self, cell: str) -> str | None:
        """Graph's revoke status for a cell, or None when the table has no such value."""
        table = self.revoke_status or {s: s for s in REVOKE_STATUSES}
        key = fold(cell)
        if key in table:
            return table[key]
        code = _CODE.match(key)
        return table.get(code.group(1)) if code else None

    def revoke_keys(self) -> list[str]:
        """The values the revoke-status table accepts, for messages."""
        return list(self.revoke_status or REVOKE_STATUSES)


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
    problems: list[str] = []
    origin = str(path)
    known = {"description", "priority", "required", "ignore", "empty", "columns", "revoke_status"}
    for key in data:
        if key not in known:
            problems.append(
                f"{origin}: unknown key {key!r}; known keys: {', '.join(sorted(known))}"
            )
    columns = parse_columns(data.get("columns", {}), origin, problems)
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
    description = data.get("description", "")
    ignore = (
        _strings(data.get("ignore", []), f"{origin}: ignore", problems)
        if data.get("ignore")
        else ()
    )
    empty = (
        _strings(data.get("empty", []), f"{origin}: empty", problems) if data.get("empty") else ()
    )
    if problems:
        raise ConfigError(problems)
    return Profile(
        name=Path(path.name).stem,
        description=str(description),
        source=origin,
        priority=priority,
        columns={c.prop: c for c in columns},
        # Graph's required cells are required by every profile
        required=tuple(p for p in PROPERTIES if p in required or p in REQUIRED_CELLS),
        ignore=ignore,
        empty=empty,
        revoke_status=table,
    )


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

    @property
    def score(self) -> int:
        """How many properties this profile finds in the header."""
        return len(self.columns)


def match_header(profile: Profile, names: Sequence[str]) -> HeaderMatch:
    """Map the header ``names`` with ``profile``."""
    by_fold: dict[str, list[str]] = {}
    for name in names:
        by_fold.setdefault(fold(name), []).append(name)
    columns: dict[str, str] = {}
    constants: dict[str, str] = {}
    used: set[str] = set()
    conflict = ""
    for prop in PROPERTIES:
        setting = profile.columns.get(prop)
        if setting is None:
            continue
        if setting.constant is not None:
            constants[prop] = setting.constant
            continue
        for header in setting.headers:
            written = by_fold.get(fold(header))
            if not written:
                continue
            if len(written) > 1 and not conflict:
                conflict = f"columns {written[0]!r} and {written[1]!r} both map to {prop}"
            columns[prop] = written[0]
            used.update(written)
            break
    ignore = {fold(i) for i in profile.ignore} | {"import_error"}  # failed.csv's own column
    ignored = tuple(n for n in names if n not in used and (fold(n) in ignore or not n.strip()))
    extras = tuple(n for n in names if n not in used and n not in ignored)
    missing = tuple(p for p in profile.required if p not in columns and p not in constants)
    return HeaderMatch(profile, columns, constants, extras, ignored, missing, conflict)


def _suggestions(match: HeaderMatch, names: Sequence[str]) -> list[str]:
    unused = {fold(n): n for n in match.extras}
    hints = []
    for prop in match.missing:
        setting = match.profile.columns.get(prop)
        wanted = [*(setting.headers if setting else ()), prop]
        for header in wanted:
            close = difflib.get_close_matches(fold(header), list(unused), n=1, cutoff=0.75)
            if close:
                hints.append(f"did you mean {unused[close[0]]!r} for {prop} ({header!r})?")
                break
    return hints


def missing_error(
    path: str, match: HeaderMatch, names: Sequence[str], chosen: str, *, line: int = 1
) -> InputError:
    """The error for a header that lacks required properties: all of them, and what to do."""
    found = ", ".join(repr(n) for n in names) or "none"
    hints = _suggestions(match, names)
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
        raise missing_error(path, best, names, how, line=line)
    return best, how
