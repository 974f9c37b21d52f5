"""Properties a profile derives from another column, declared as data in its ``[derive]`` table.

::

    [derive]
    certificateSubjectName = { from = "Issued Common Name", template = "CN={}" }
    certificateIssuerName = { from = "ConfigString", after = "\\", template = "CN={}" }
    certificateRevokeStatus = [
        { from = "Request.RevokedWhen", template = "revoked", empty = "none" },
        { value = "none" },
    ]

A property is derived only when none of its ``[columns]`` headers is in the file. Its rules are
tried in order: the first whose ``from`` header (or one of a list) is in the file is used, and
``{ value = "..." }`` is a constant that always applies (the end of a list). A derived cell is
``template`` with ``{}`` replaced by the source cell, trimmed and, with ``after``, cut to the
text after the last ``after``; a template without ``{}`` is the same text for every non-empty
source cell. An empty source cell (also one of the profile's ``empty`` markers) gives ``empty``,
which defaults to an empty cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

KEYS = frozenset({"from", "template", "after", "empty", "value"})


@dataclass(frozen=True)
class Derivation:
    """One rule of a ``[derive]`` table: a property's cells made from another column's."""

    prop: str
    source: tuple[str, ...] = ()  # headers, the first found in the file is read
    template: str = "{}"
    after: str = ""  # keep only the text after the last occurrence of this
    empty: str = ""  # the value for an empty source cell
    constant: str | None = None  # { value = "..." }: no source column

    def describe(self, header: str | None = None) -> str:
        """How the rule reads, for ``inspect``: ``'Issued Common Name' as 'CN={}'``."""
        if self.constant is not None:
            return f"constant {self.constant!r}"
        text = repr(header) if header else " or ".join(repr(h) for h in self.source)
        if self.after:
            text += f" after the last '{self.after}'"  # as written in the TOML, unescaped
        if self.template != "{}":
            text += f" as '{self.template}'"
        if self.empty:
            text += f" (empty: '{self.empty}')"
        return text

    def apply(self, cells: pd.Series) -> pd.Series:
        """The derived cells of the source column's ``cells`` (text, "" for empty)."""
        text = cells.str.strip()
        if self.after:
            # greedy: everything up to and including the last separator goes
            text = text.str.replace(f"(?s)^.*{re.escape(self.after)}", "", regex=True)
            text = text.str.strip()
        if "{}" in self.template:
            before, _, rest = self.template.partition("{}")
            derived = before + text + rest if before or rest else text
        else:
            derived = pd.Series(self.template, index=cells.index, dtype=cells.dtype)
        empty = (text == "").to_numpy(dtype=bool)
        if empty.any():
            derived = derived.mask(empty, self.empty)
        return derived


def parse_rule(prop: str, value: Any, where: str, problems: list[str]) -> Derivation | None:
    """One rule, ``{ from = ..., template = ... }`` or ``{ value = ... }``; problems are listed."""
    if not isinstance(value, dict):
        problems.append(f'{where} must be a table such as {{ from = "Header" }}, got {value!r}')
        return None
    unknown = sorted(set(value) - KEYS)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; known: {_known()}")
        return None
    strings = {k: v for k, v in value.items() if k != "from"}
    wrong = sorted(k for k, v in strings.items() if not isinstance(v, str))
    if wrong:
        problems.append(f"{where}: {', '.join(wrong)} must be text")
        return None
    if "value" in value:
        if set(value) != {"value"}:
            problems.append(f"{where}: {{ value = ... }} takes no other key")
            return None
        return Derivation(prop, constant=value["value"])
    source = value.get("from")
    if isinstance(source, str):
        source = [source]
    if not (isinstance(source, list) and source and all(isinstance(s, str) for s in source)):
        problems.append(f"{where}: from must name a header or a list of headers, got {source!r}")
        return None
    template = strings.get("template", "{}")
    if template.count("{}") > 1:
        problems.append(f"{where}: template {template!r} may hold {{}} once")
        return None
    return Derivation(
        prop,
        source=tuple(source),
        template=template,
        after=strings.get("after", ""),
        empty=strings.get("empty", ""),
    )


def parse_derive(
    table: Mapping[str, Any], properties: Mapping[str, str], origin: str, problems: list[str]
) -> dict[str, tuple[Derivation, ...]]:
    """Read a ``[derive]`` table; ``properties`` maps case-folded names to Graph properties."""
    found: dict[str, tuple[Derivation, ...]] = {}
    for name, value in table.items():
        prop = properties.get(name.casefold())
        where = f"{origin}: [derive] {name}"
        if prop is None:
            problems.append(f"{where} is not a Graph property")
            continue
        rules = value if isinstance(value, list) else [value]
        parsed = [parse_rule(prop, rule, where, problems) for rule in rules]
        kept = tuple(r for r in parsed if r is not None)
        if any(r.constant is not None for r in kept[:-1]):
            problems.append(f"{where}: {{ value = ... }} always applies: it can only come last")
        if kept:
            found[prop] = kept
    return found


def _known() -> str:
    return ", ".join(sorted(KEYS))
