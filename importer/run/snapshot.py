"""What Graph holds, as last read page by page, kept in the journal's database.

A *pass* reads the whole collection once. Each page is written in one transaction together
with the address of the next page, so a pass stopped at any point (``kill -9`` included)
leaves a snapshot that the next pass of the same purpose continues from where it stopped.
The objects go straight into SQLite (``graph_objects``): memory stays flat in their number.

From a finished pass, :meth:`Snapshot.adopt` brings the journal in line with Graph (keys
Graph holds once become ``adopted`` with their id and values; keys it holds more than once
are ``duplicated``, never guessed between), and the ``verify`` queries compare the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from importer.run.journal import ADOPTED, DONE_SQL, DUPLICATED, Journal, row_key

SHOWN_IDS = 10  # ids listed in a duplicated key's message; the count is always exact


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class PassState:
    """How far the last pass got."""

    purpose: str  # "adopt" or "verify"
    started: str
    next_url: str | None  # None once the last page is stored
    pages: int = 0
    objects: int = 0
    finished: str = ""

    @property
    def complete(self) -> bool:
        """True when every page of the pass is stored."""
        return bool(self.finished)


@dataclass(frozen=True)
class AdoptCounts:
    """What an adoption changed in the journal."""

    objects: int  # objects in the snapshot
    keys: int  # distinct keys among them
    adopted: int  # journal keys set from a key Graph holds once (new or corrected)
    duplicated: int  # keys Graph holds more than once, the journal holding none of their ids


@dataclass(frozen=True)
class Duplicate:
    """A key Graph holds more than once."""

    thumbprint: str
    device: str
    ids: tuple[str, ...]  # every id Graph holds for the key
    identical: tuple[str, ...]  # those whose values are what the journal last sent
    journal_id: str  # the id the journal holds for the key ("" when none of them)


class Snapshot:
    """The ``graph_objects`` table and its pass state, in an open journal (locked to write)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @property
    def _db(self) -> Any:
        return self.journal.db

    def state(self) -> PassState | None:
        """The last pass, or None when the journal has never read the collection."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'pass'").fetchone()
        return PassState(**json.loads(row[0])) if row else None

    def adopted_at(self) -> str:
        """When an adoption last completed ("" for never)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'adopted_at'").fetchone()
        return str(row[0]) if row else ""

    def _set(self, name: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def begin(self, purpose: str, first_url: str) -> PassState:
        """Forget the last snapshot and start a pass at ``first_url``."""
        state = PassState(purpose, _now(), first_url)
        with self.journal.transaction():
            self._db.execute("DELETE FROM graph_objects")
            self._set("pass", json.dumps(asdict(state)))
        return state

    def add_page(
        self,
        state: PassState,
        objects: Sequence[tuple[str, str, str, str, int | None]],
        next_url: str | None,
    ) -> PassState:
        """Store one page's objects (id, key, thumbprint, device, body hash) and where the
        next page is, in one transaction; the pass is finished when ``next_url`` is None."""
        new = PassState(
            state.purpose,
            state.started,
            next_url,
            state.pages + 1,
            state.objects + len(objects),
            "" if next_url else _now(),
        )
        with self.journal.transaction():
            self._db.executemany(
                "INSERT INTO graph_objects (id, key, thumbprint, device, body_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET key = excluded.key, "
                "thumbprint = excluded.thumbprint, device = excluded.device, "
                "body_hash = excluded.body_hash",
                objects,
            )
            self._set("pass", json.dumps(asdict(new)))
        return new

    def counted(self) -> tuple[int, int]:
        """(objects, distinct keys) in the snapshot."""
        row = self._db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM graph_objects")
        objects, keys = row.fetchone()
        return int(objects), int(keys)

    def adopt(self, run_id: str) -> AdoptCounts:
        """Bring the journal in line with a finished snapshot, in one transaction.

        A key Graph holds once: the journal gets its id and values (``adopted``; a key the
        journal created keeps its status), and any intent on it is resolved. A key Graph holds
        more than once, none of whose ids the journal holds: ``duplicated``, with every id
        in its error. Keys Graph does not hold are left as they are.
        """
        now = _now()
        with self.journal.transaction():
            adopted = self._adopt_singles(run_id, now)
            duplicated = self._mark_duplicates(run_id, now)
            self._set("adopted_at", now)
        objects, keys = self.counted()
        return AdoptCounts(objects, keys, adopted, duplicated)

    def _adopt_singles(self, run_id: str, now: str) -> int:
        cursor = self._db.execute(
            "INSERT INTO rows (key, thumbprint, device, body_hash, status, graph_id, run_id, "
            "created_at, updated_at) "
            f"SELECT g.key, g.thumbprint, g.device, g.body_hash, '{ADOPTED}', g.id, ?1, ?2, ?2 "
            "FROM graph_objects g JOIN (SELECT key FROM graph_objects GROUP BY key "
            "HAVING COUNT(*) = 1) USING (key) WHERE true "
            "ON CONFLICT(key) DO UPDATE SET "
            f"status = CASE WHEN rows.status IN ({DONE_SQL}) THEN rows.status "
            f"  ELSE '{ADOPTED}' END, "
            "graph_id = excluded.graph_id, body_hash = excluded.body_hash, "
            "intent_run = NULL, intent_hash = NULL, intent_at = NULL, refused_hash = NULL, "
            "last_error = '', run_id = excluded.run_id, updated_at = excluded.updated_at "
            f"WHERE rows.status NOT IN ({DONE_SQL}) OR rows.graph_id != excluded.graph_id "
            "OR rows.body_hash IS NOT excluded.body_hash OR rows.intent_run IS NOT NULL",
            (run_id, now),
        )
        return max(0, int(cursor.rowcount))

    def _mark_duplicates(self, run_id: str, now: str) -> int:
        marked = 0
        for dup in self.duplicates():
            if dup.journal_id:
                continue  # the journal knows which copy is its own: verify reports the rest
            shown = ", ".join(dup.ids[:SHOWN_IDS]) + (", ..." if len(dup.ids) > SHOWN_IDS else "")
            error = (
                f"DuplicateInGraph: Graph holds this certificate on this device "
                f"{len(dup.ids)} times (ids {shown}); not sent: delete the extra copies, then "
                "run certimport journal adopt"
            )
            self._db.execute(
                "INSERT INTO rows (key, thumbprint, device, status, graph_id, last_error, "
                "run_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7, ?7) "
                "ON CONFLICT(key) DO UPDATE SET status = excluded.status, graph_id = '', "
                "last_error = excluded.last_error, intent_run = NULL, intent_hash = NULL, "
                "intent_at = NULL, run_id = excluded.run_id, updated_at = excluded.updated_at",
                (
                    row_key(dup.thumbprint, dup.device),
                    dup.thumbprint,
                    dup.device,
                    DUPLICATED,
                    error,
                    run_id,
                    now,
                ),
            )
            marked += 1
        return marked

    # -- comparisons (verify) ---------------------------------------------------------------

    def duplicates(self) -> Iterator[Duplicate]:
        """Every key the snapshot holds more than once, with its ids (oldest row first)."""
        cursor = self._db.execute(
            "SELECT g.key, g.thumbprint, g.device, json_group_array(g.id), "
            "json_group_array(CASE WHEN g.body_hash = r.body_hash THEN g.id END), "
            "COALESCE(MAX(CASE WHEN g.id = r.graph_id THEN g.id END), '') "
            "FROM graph_objects g LEFT JOIN rows r ON r.key = g.key "
            "WHERE g.key IN (SELECT key FROM graph_objects GROUP BY key HAVING COUNT(*) > 1) "
            "GROUP BY g.key ORDER BY g.key"
        )
        for _key, thumb, device, ids, identical, journal_id in cursor.fetchall():
            same = tuple(i for i in json.loads(identical) if i)
            yield Duplicate(thumb, device, tuple(json.loads(ids)), same, journal_id)

    def gone(self) -> Iterator[tuple[str, str, str]]:
        """(thumbprint, device, id) of keys the journal has in Graph whose id Graph lacks."""
        yield from self._db.execute(
            "SELECT thumbprint, device, graph_id FROM rows "
            f"WHERE status IN ({DONE_SQL}) AND graph_id != '' "
            "AND graph_id NOT IN (SELECT id FROM graph_objects) ORDER BY key"
        ).fetchall()

    def differing(self) -> Iterator[tuple[str, str, str]]:
        """(thumbprint, device, id) of objects whose values differ from what was last sent."""
        yield from self._db.execute(
            "SELECT r.thumbprint, r.device, r.graph_id FROM rows r "
            "JOIN graph_objects g ON g.id = r.graph_id "
            f"WHERE r.status IN ({DONE_SQL}) AND g.body_hash IS NOT r.body_hash ORDER BY r.key"
        ).fetchall()

    def unknown_to_journal(self) -> int:
        """Objects in Graph whose key the journal does not know (another tool's, say)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM graph_objects WHERE key NOT IN (SELECT key FROM rows)"
        ).fetchone()
        return int(row[0])

    def forget(self, object_id: str) -> None:
        """Drop one object from the snapshot (it was deleted from Graph)."""
        self._db.execute("DELETE FROM graph_objects WHERE id = ?", (object_id,))


__all__ = ["AdoptCounts", "Duplicate", "PassState", "Snapshot"]
