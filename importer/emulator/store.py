"""The record store and its queries: creation-ordered records, ``$skiptoken`` cursors,
``$filter`` and ``$select``."""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from .bodies import _PROPERTY_KINDS, _GraphError
from .config import ENTITY_TYPE

_FILTER_CLAUSE_RE: Final = re.compile(r"\s*([A-Za-z@.]+)\s+eq\s+'((?:[^']|'')*)'\s*")
_FILTER_AND_RE: Final = re.compile(r"and\b")
_FILTERABLE: Final = frozenset({"certificateThumbprint", "managedDeviceDisplayName"})
_SELECTABLE: Final = frozenset({"id", *_PROPERTY_KINDS})


class _Store:
    """Records in creation order, with a thumbprint index and cursor-stable paging."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self._seq_of: dict[str, int] = {}
        self._seqs: list[int] = []
        self._ids: list[str] = []
        self._next_seq = 1
        self._dead = 0
        self._by_thumbprint: dict[str, dict[str, None]] = {}

    def clear(self) -> None:
        self.records.clear()
        self._seq_of.clear()
        self._seqs.clear()
        self._ids.clear()
        self._dead = 0
        self._by_thumbprint.clear()

    def add(self, record_id: str, record: dict[str, Any]) -> None:
        seq = self._next_seq
        self._next_seq += 1
        self.records[record_id] = record
        self._seq_of[record_id] = seq
        self._seqs.append(seq)
        self._ids.append(record_id)
        self._index(record_id, record.get("certificateThumbprint"))

    def update(self, record_id: str, changes: Mapping[str, Any]) -> None:
        record = self.records[record_id]
        old = record.get("certificateThumbprint")
        record.update(changes)
        new = record.get("certificateThumbprint")
        if new != old:
            self._unindex(record_id, old)
            self._index(record_id, new)

    def delete(self, record_id: str) -> None:
        record = self.records.pop(record_id)
        self._unindex(record_id, record.get("certificateThumbprint"))
        del self._seq_of[record_id]
        self._dead += 1
        if self._dead > 1024 and self._dead * 2 > len(self._ids):
            alive = [
                (s, i) for s, i in zip(self._seqs, self._ids, strict=True) if i in self.records
            ]
            self._seqs = [s for s, _ in alive]
            self._ids = [i for _, i in alive]
            self._dead = 0

    def _index(self, record_id: str, thumbprint: Any) -> None:
        if not isinstance(thumbprint, str):
            return
        bucket = self._by_thumbprint.setdefault(thumbprint, {})
        seq_of = self._seq_of
        # Buckets stay in creation order so that paging by cursor works; only a PATCH that
        # moves an older record into a bucket can break the order.
        misplaced = bool(bucket) and seq_of[next(reversed(bucket))] > seq_of[record_id]
        bucket[record_id] = None
        if misplaced:
            self._by_thumbprint[thumbprint] = dict.fromkeys(sorted(bucket, key=seq_of.__getitem__))

    def _unindex(self, record_id: str, thumbprint: Any) -> None:
        if not isinstance(thumbprint, str):
            return
        bucket = self._by_thumbprint.get(thumbprint)
        if bucket is not None:
            bucket.pop(record_id, None)
            if not bucket:
                del self._by_thumbprint[thumbprint]

    def _candidates(
        self, conditions: Sequence[tuple[str, str]], after: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        thumbprint = next((v for p, v in conditions if p == "certificateThumbprint"), None)
        if thumbprint is not None:
            for record_id in self._by_thumbprint.get(thumbprint, ()):
                seq = self._seq_of[record_id]
                if seq > after:
                    yield seq, self.records[record_id]
            return
        seqs, ids, records = self._seqs, self._ids, self.records
        for position in range(bisect.bisect_right(seqs, after), len(seqs)):
            record = records.get(ids[position])
            if record is not None:
                yield seqs[position], record

    def _matching(
        self, conditions: Sequence[tuple[str, str]], after: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        for seq, record in self._candidates(conditions, after):
            if all(record.get(name) == value for name, value in conditions):
                yield seq, record

    def page(
        self, conditions: Sequence[tuple[str, str]], after: int, top: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Return up to `top` matching records after cursor `after`, and the next cursor."""
        found: list[dict[str, Any]] = []
        last = after
        for seq, record in self._matching(conditions, after):
            if len(found) == top:
                return found, last
            found.append(record)
            last = seq
        return found, None

    def count(self, conditions: Sequence[tuple[str, str]]) -> int:
        if not conditions:
            return len(self.records)
        return sum(1 for _ in self._matching(conditions, 0))


def _encode_skiptoken(seq: int) -> str:
    return base64.urlsafe_b64encode(f"emulator-cursor:{seq}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "emulator-cursor" and number.isdigit():
            return int(number)
    raise _GraphError(400, "BadRequest", f"The $skiptoken '{token}' is invalid.")


def _parse_filter(text: str) -> list[tuple[str, str]]:
    """Parse ``prop eq 'literal' [and prop eq 'literal' ...]`` on the supported properties."""
    conditions: list[tuple[str, str]] = []
    position = 0
    while True:
        match = _FILTER_CLAUSE_RE.match(text, position)
        if match is None:
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid filter clause: the emulator supports only \"<property> eq '<text>'\" "
                f"joined by 'and', got {text!r}.",
            )
        name = match.group(1)
        if name not in _FILTERABLE:
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid filter clause: filtering on property '{name}' is not supported "
                f"(supported: {', '.join(sorted(_FILTERABLE))}).",
            )
        conditions.append((name, match.group(2).replace("''", "'")))
        position = match.end()
        if position == len(text):
            return conditions
        joiner = _FILTER_AND_RE.match(text, position)
        if joiner is None:
            raise _GraphError(400, "BadRequest", f"Invalid filter clause: {text!r}.")
        position = joiner.end()


def _parse_selection(raw: str | None) -> list[str] | None:
    """The property names of a ``$select`` (None when there is none), or raise."""
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",")]
    unknown = [name for name in names if name not in _SELECTABLE]
    if unknown:
        raise _GraphError(
            400,
            "BadRequest",
            f"Could not find a property named '{unknown[0]}' on type '{ENTITY_TYPE}'.",
        )
    return names


def _select(
    record: Mapping[str, Any], names: Iterable[str], *, keep_context: bool
) -> dict[str, Any]:
    selected: dict[str, Any] = {}
    if keep_context:
        selected["@odata.context"] = record["@odata.context"]
    selected["id"] = record["id"]
    for name in names:
        if name in record:
            selected[name] = record[name]
    return selected
