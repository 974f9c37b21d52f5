"""The journal: what has been sent to one Graph target, kept in SQLite so runs can resume.

One database file per target (Graph root + tenant), under the state directory. For each row key
(thumbprint + device name) it keeps the hash of the body last sent, the last known status, the
created id, attempts, the last error and the run that touched it. Before a row is sent its
*intent* is committed, so that a crash between send and answer leaves a trace the next run
reconciles (looks the key up in Graph) instead of posting blindly. Outcomes are committed in
small groups, always before a report claims them.

Intents wait for the disk (``synchronous=FULL``): they are what makes a crash safe. Outcomes do
not wait (they go through a second connection, ``synchronous=NORMAL``): the next intent commit,
or the end of the run, flushes the same write-ahead log. An
outcome lost with the power leaves its row's intent in place, so the next run looks the row up
in Graph instead of posting it again: nothing is duplicated, one lookup is spent.

A lock file next to the database (``flock``, released by the kernel when the holder dies, even
by ``kill -9``) keeps a second run of the same target out, and says who holds it.

Nothing is created before a journal is opened for writing (with its lock): then a missing
state directory is made, private (0700); an existing one keeps its mode, with a warning when
group or others may read or write it. A journal opened for reading (``lock=False``) creates
nothing: a missing one reads as empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import logging
import os
import re
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar, cast

import orjson

from importer.errors import JournalError, LockHeld
from importer.outcome import CREATED, REJECTED, UNKNOWN, UPDATED

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY,
    thumbprint TEXT NOT NULL,
    device TEXT NOT NULL,
    body_hash INTEGER,
    status TEXT NOT NULL,
    graph_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL,
    intent_run TEXT,
    intent_hash INTEGER,
    intent_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    refused_hash INTEGER
);
CREATE INDEX IF NOT EXISTS rows_intent ON rows (intent_run) WHERE intent_run IS NOT NULL;
CREATE TABLE IF NOT EXISTS graph_objects (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    thumbprint TEXT NOT NULL,
    device TEXT NOT NULL,
    body_hash INTEGER
);
CREATE INDEX IF NOT EXISTS graph_objects_key ON graph_objects (key);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    mode TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    records INTEGER,
    exit_code INTEGER,
    out_dir TEXT,
    counts TEXT
);
"""
# Statuses kept per key. "intent" is kept apart (intent_* columns) so that the last known
# outcome survives a send that never returned.
ADOPTED = "adopted"  # found in Graph by an adoption (one object with the key): not created by us
DUPLICATED = "duplicated"  # an adoption found the key in Graph more than once: never guessed
DONE_STATUSES = (CREATED, UPDATED, ADOPTED)
DONE_SQL = ", ".join(f"'{status}'" for status in DONE_STATUSES)  # for IN (...) in SQL
MAX_ROWS_PER_STATEMENT = 500  # rows written by one INSERT; fewer when SQLite allows fewer
SHARED_BITS = 0o066  # read or write for group or others

log = logging.getLogger(__name__)
_warned_dirs: set[Path] = set()  # state directories already warned about in this process


_M = TypeVar("_M", bound=Callable[..., Any])


def _translated(method: _M) -> _M:
    """SQLite's errors, raised by a journal method, as :class:`JournalError` naming the file."""

    @functools.wraps(method)
    def call(self: Journal, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise JournalError(self.path, exc) from exc

    return cast(_M, call)


# Columns added after the first release, with their definitions: an older journal gets them.
_ADDED_COLUMNS = {"refused_hash": "INTEGER"}  # the body Graph refused (4xx), last time


def _add_missing_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(rows)")}
    for name, definition in _ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE rows ADD COLUMN {name} {definition}")


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/certimport``, else ``~/.local/state/certimport``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "certimport"


def target_name(graph_root: str, tenant: str) -> str:
    """A file-name-safe name for a target (Graph root + tenant)."""
    text = f"{graph_root.split('://', 1)[-1]}_{tenant or 'default'}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def make_state_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) with mode 0700 when it does not exist.

    An existing directory is never changed: the operator may share it on purpose. When group
    or others may read or write it, a warning says so (once per directory and process).
    """
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(directory, 0o700)
    except FileExistsError:
        warn_if_shared(directory)
        return
    # Ours, just made: the umask may have taken owner bits too, so set the mode exactly.
    os.chmod(directory, 0o700)


def warn_if_shared(directory: Path) -> None:
    """Warn (once) when an existing state directory is open to group or others."""
    try:
        mode = directory.stat().st_mode
    except OSError:
        return  # missing or unreadable: opening the journal says so
    key = directory.absolute()
    if stat.S_ISDIR(mode) and mode & SHARED_BITS and key not in _warned_dirs:
        _warned_dirs.add(key)
        log.warning(
            "state directory %s is readable or writable by group or others (mode %03o): the "
            "journal names every certificate and device sent; chmod 700 it unless shared on "
            "purpose",
            directory,
            mode & 0o777,
        )


def row_key(thumbprint: str, device: str) -> str:
    """The journal key of a row."""
    return f"{thumbprint}\x1f{device}"


def _json(items: Iterable[Any]) -> str:
    """A JSON array for ``json_each``: one statement reads or changes a whole set of keys."""
    return orjson.dumps(list(items)).decode()


def _values(rows: int, width: int) -> str:
    """``VALUES (?, ...), ...`` for ``rows`` rows of ``width`` parameters: a group is written
    by one statement with its parameters bound in C, not one Python round trip per row."""
    row = f"({', '.join('?' * width)})"
    return f"VALUES {', '.join([row] * rows)}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Entry:
    """What the journal knows about one key."""

    key: str
    body_hash: int | None
    status: str
    graph_id: str
    attempts: int
    intent_run: str | None
    refused_hash: int | None = None  # the body Graph refused with a 4xx, if it did last time
    last_error: str = ""
    updated_at: str = ""

    @property
    def in_doubt(self) -> bool:
        """A send was started and its answer never recorded (a crash, or no answer)."""
        return self.intent_run is not None or self.status == UNKNOWN


class Record(NamedTuple):
    """An outcome to store for a key; a tuple in the order of the columns, bound as it is."""

    key: str
    thumbprint: str
    device: str
    body_hash: int
    status: str
    graph_id: str = ""
    attempts: int = 0
    last_error: str = ""


class JournalLock:
    """An exclusive ``flock`` on ``<journal>.lock`` that names its holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self, run_id: str) -> None:
        """Take the lock or raise LockHeld naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            try:
                info = json.loads(holder)
                who = f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
            except ValueError:
                who = "another process"
            raise LockHeld(
                f"another certimport run holds the journal {self.path.with_suffix('')}: {who}; "
                "wait for it to finish (a lock left by a dead process is taken over)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "run": run_id}
            )
        )
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Drop the lock."""
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class Journal:
    """The SQLite journal of one target. Use as a context manager (locks and closes).

    With ``lock`` (a run) it is opened for writing: the state directory and the database are
    created when missing. Without it, for commands that only read, nothing is created: a
    missing journal is opened as an empty one in memory. Constructing it touches no file.
    """

    def __init__(self, path: Path, *, run_id: str, lock: bool = True) -> None:
        self.path = path
        self.run_id = run_id
        self._lock = JournalLock(path.with_name(path.name + ".lock")) if lock else None
        self._in_memory = False  # opened for reading and the file does not exist
        self._db: sqlite3.Connection | None = None
        self._outcomes: sqlite3.Connection | None = None  # writes outcomes, synchronous=NORMAL
        self._reader: sqlite3.Connection | None = None

    @classmethod
    def for_target(
        cls, state_dir: Path, graph_root: str, tenant: str, *, run_id: str, lock: bool = True
    ) -> Journal:
        """The journal file of a target inside ``state_dir``."""
        return cls(
            state_dir / f"{target_name(graph_root, tenant)}.sqlite", run_id=run_id, lock=lock
        )

    def __enter__(self) -> Journal:
        if self._lock is not None:
            make_state_dir(self.path.parent)
            self._lock.acquire(self.run_id)
        else:
            warn_if_shared(self.path.parent)
        try:
            self._open()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> None:
        if self._lock is None and not self.path.exists():
            self._open_empty()
            return
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(SCHEMA)
            _add_missing_columns(db)
        except sqlite3.DatabaseError as exc:
            raise JournalError(self.path, exc) from exc
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.chmod(side, 0o600)
        self._db = db
        outcomes = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        outcomes.execute("PRAGMA synchronous=NORMAL")  # see the module docstring
        outcomes.execute("PRAGMA busy_timeout=10000")
        self._outcomes = outcomes

    def _open_empty(self) -> None:
        """A journal that is not there yet, for reading: empty tables in memory, no file."""
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(SCHEMA)
        self._db = db
        self._in_memory = True

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        assert self._db is not None, "the journal is not open"
        return self._db

    def close(self) -> None:
        """Close the database and release the lock."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._outcomes is not None:
            self._outcomes.close()
            self._outcomes = None
        if self._db is not None:
            self._db.close()
            self._db = None
        self._in_memory = False
        if self._lock is not None:
            self._lock.release()

    # -- reading --------------------------------------------------------------------------

    @_translated
    def lookup(self, keys: Sequence[str]) -> dict[str, Entry]:
        """Entries for the given keys (missing keys are absent from the result).

        Reads through a connection of its own, so that a thread deciding the next rows and
        a thread writing intents and outcomes never share one (WAL lets them run together).
        """
        if self._reader is None and not self._in_memory:
            assert self._db is not None, "the journal is not open"
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA query_only=1")
            self._reader.execute("PRAGMA busy_timeout=10000")
        # An empty journal in memory has no file for a second connection: its one serves.
        reader = self._reader or self.db
        found: dict[str, Entry] = {}
        step = 20_000
        for start in range(0, len(keys), step):
            cursor = reader.execute(
                "SELECT key, body_hash, status, graph_id, attempts, intent_run, refused_hash, "
                "last_error, updated_at FROM rows WHERE key IN (SELECT value FROM json_each(?))",
                (_json(keys[start : start + step]),),
            )
            for values in cursor:
                found[values[0]] = Entry(*values)
        return found

    @_translated
    def counts(self) -> dict[str, int]:
        """Keys per status, and how many have an unresolved intent."""
        result = dict(self.db.execute("SELECT status, COUNT(*) FROM rows GROUP BY status"))
        result["in_doubt"] = self.db.execute(
            "SELECT COUNT(*) FROM rows WHERE intent_run IS NOT NULL"
        ).fetchone()[0]
        return result

    def iter_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every row, for export."""
        try:
            yield from self.db.execute(
                "SELECT thumbprint, device, status, graph_id, attempts, last_error, run_id, "
                "intent_run, created_at, updated_at FROM rows ORDER BY created_at, key"
            )
        except sqlite3.Error as exc:
            raise JournalError(self.path, exc) from exc

    @_translated
    def last_run(self, source: str) -> dict[str, Any] | None:
        """The last finished run of ``source`` that completed (exit 0 or 1)."""
        row = self.db.execute(
            "SELECT run_id, records, finished FROM runs WHERE source = ? AND mode = 'run' "
            "AND exit_code IN (0, 1) ORDER BY finished DESC LIMIT 1",
            (source,),
        ).fetchone()
        if row is None:
            return None
        return {"run_id": row[0], "records": row[1], "finished": row[2]}

    @_translated
    def recent_runs(self, limit: int = 10) -> list[tuple[Any, ...]]:
        """The latest runs, newest first."""
        return list(
            self.db.execute(
                "SELECT run_id, mode, started, finished, records, exit_code, source FROM runs "
                "ORDER BY started DESC LIMIT ?",
                (limit,),
            )
        )

    # -- writing --------------------------------------------------------------------------

    @_translated
    def intend(self, items: Sequence[tuple[str, str, str, int]]) -> None:
        """Durably record that these keys (key, thumbprint, device, body hash) are being sent."""
        self._write_rows(
            self.db,
            "INSERT INTO rows (key, thumbprint, device, intent_hash, status, run_id, "
            "intent_run, intent_at, created_at, updated_at) "
            "SELECT column1, column2, column3, column4, 'new', ?1, ?1, ?2, ?2, ?2 FROM ({}) "
            "WHERE true ON CONFLICT(key) DO UPDATE SET intent_run = excluded.intent_run, "
            "intent_hash = excluded.intent_hash, intent_at = excluded.intent_at",
            items,
            4,
        )

    def _write_rows(
        self, db: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]], width: int
    ) -> None:
        """Run ``sql`` (``?1`` the run id, ``?2`` the time, ``{}`` the rows' ``VALUES``) over
        ``rows`` in one transaction.

        A group that fits SQLite's limit on parameters is one statement, which is its own
        transaction: every call into SQLite hands the GIL over and back, and the event loop
        waits whenever this thread takes it.
        """
        if not rows:
            return
        now = _now()
        limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        step = max(1, min(MAX_ROWS_PER_STATEMENT, (limit - 2) // width))
        with contextlib.ExitStack() as stack:
            if len(rows) > step:
                stack.enter_context(_Transaction(db))
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                params: list[Any] = [self.run_id, now]
                params.extend(itertools.chain.from_iterable(part))
                db.execute(sql.format(_values(len(part), width)), params)

    @_translated
    def abandon(self, keys: Iterable[str]) -> None:
        """Forget the intents of keys that were never sent (the run stopped first)."""
        with self.transaction():
            self.db.execute(
                "UPDATE rows SET intent_run = NULL, intent_hash = NULL, intent_at = NULL "
                "WHERE key IN (SELECT value FROM json_each(?)) AND intent_run = ?",
                (_json(keys), self.run_id),
            )
            self.db.execute("DELETE FROM rows WHERE status = 'new' AND intent_run IS NULL")

    @_translated
    def store(self, records: Sequence[Record]) -> None:
        """Make these outcomes durable (one transaction; an intent of theirs is cleared).

        They go through a connection with ``synchronous=NORMAL``: see the module docstring.
        """
        assert self._outcomes is not None, "the journal is not open"
        self._write_rows(
            self._outcomes,
            "INSERT INTO rows (key, thumbprint, device, body_hash, status, graph_id, "
            "attempts, last_error, run_id, created_at, updated_at, refused_hash) "
            "SELECT column1, column2, column3, column4, column5, column6, column7, "
            f"column8, ?1, ?2, ?2, CASE WHEN column5 = '{REJECTED}' THEN column4 END "
            "FROM ({}) WHERE true "
            "ON CONFLICT(key) DO UPDATE SET "
            f"refused_hash = CASE WHEN excluded.status = '{REJECTED}' "
            "  THEN excluded.body_hash END, "
            f"body_hash = CASE WHEN excluded.status IN ({DONE_SQL}) "
            "  THEN excluded.body_hash ELSE rows.body_hash END, "
            f"status = CASE WHEN rows.status IN ({DONE_SQL}) "
            f"  AND excluded.status NOT IN ({DONE_SQL}) "
            "  THEN rows.status ELSE excluded.status END, "
            "graph_id = CASE WHEN excluded.graph_id != '' THEN excluded.graph_id "
            "  ELSE rows.graph_id END, "
            "attempts = rows.attempts + excluded.attempts, "
            "last_error = excluded.last_error, run_id = excluded.run_id, "
            "intent_run = NULL, intent_hash = NULL, intent_at = NULL, "
            "updated_at = excluded.updated_at",
            records,
            8,
        )

    @_translated
    def start_run(self, source: str, sha256: str, mode: str, started: str) -> None:
        """Note the start of this run."""
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO runs (run_id, source, source_sha256, mode, started) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.run_id, source, sha256, mode, started),
            )

    @_translated
    def finish_run(
        self, records: int, exit_code: int, out_dir: str, counts: dict[str, int]
    ) -> None:
        """Note the end of this run."""
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET finished = ?, records = ?, exit_code = ?, out_dir = ?, "
                "counts = ? WHERE run_id = ?",
                (_now(), records, exit_code, out_dir, json.dumps(counts), self.run_id),
            )

    def transaction(self) -> _Transaction:
        """``with journal.transaction():`` one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back
        when the block raises)."""
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
