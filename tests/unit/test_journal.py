"""The journal on its own: its lock, what it keeps and when it writes, what opening creates."""

from __future__ import annotations

import os
import sqlite3

import pytest

from importer.run.journal import Journal, JournalLock, LockHeld, Record


def test_lock_is_exclusive_within_the_machine(tmp_path):
    first = JournalLock(tmp_path / "j.lock")
    first.acquire("one")
    try:
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            JournalLock(tmp_path / "j.lock").acquire("two")
    finally:
        first.release()
    JournalLock(tmp_path / "j.lock").acquire("three")


def test_journal_can_be_opened_without_lock_for_reading(tmp_path):
    with Journal(tmp_path / "j.sqlite", run_id="r1") as journal:
        journal.intend([("k", "T", "D", 1)])
    with Journal(tmp_path / "j.sqlite", run_id="r2", lock=False) as journal:
        assert journal.lookup(["k"])["k"].in_doubt


def test_a_lost_answer_to_an_update_keeps_the_old_body_so_the_next_run_patches_again(tmp_path):
    with Journal(tmp_path / "j.sqlite", run_id="r1") as journal:
        journal.store([Record("k", "T", "D", 1, "created", "id-1", 1)])
        journal.store([Record("k", "T", "D", 2, "unknown", "", 1, "Timeout: no answer")])
        entry = journal.lookup(["k"])["k"]
    assert (entry.status, entry.body_hash, entry.graph_id) == ("created", 1, "id-1")


def test_outcomes_do_not_wait_for_the_disk_but_intents_and_run_records_do(tmp_path):
    normal, full = 1, 2
    with Journal(tmp_path / "j.sqlite", run_id="r1") as journal:
        writes: dict[str, list[str]] = {"intents": [], "outcomes": []}
        journal.db.set_trace_callback(writes["intents"].append)
        assert journal._outcomes is not None
        journal._outcomes.set_trace_callback(writes["outcomes"].append)
        journal.intend([("k", "T", "D", 1)])
        journal.store([Record("k", "T", "D", 1, "created", "id-1", 1)])
        journal.finish_run(1, 0, "out", {"created": 1})
        assert [w.split()[0] for w in writes["intents"]] == ["INSERT", "BEGIN", "UPDATE", "COMMIT"]
        assert [w.split()[0] for w in writes["outcomes"]] == ["INSERT"]
        assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == full
        assert journal._outcomes.execute("PRAGMA synchronous").fetchone()[0] == normal
    with Journal(tmp_path / "j.sqlite", run_id="r2", lock=False) as journal:
        assert journal.lookup(["k"])["k"].status == "created"


def test_groups_larger_than_sqlites_parameter_limit_are_written_whole(tmp_path):
    keys = [f"{i:040X}\x1fPC-{i}" for i in range(101)]
    with Journal(tmp_path / "j.sqlite", run_id="r1") as journal:
        assert journal._outcomes is not None
        for db in (journal.db, journal._outcomes):  # 7 intents or 3 outcomes a statement
            db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 30)
        journal.intend([(k, k[:40], k[41:], i) for i, k in enumerate(keys)])
        assert len(journal.lookup(keys)) == 101
        assert all(e.in_doubt for e in journal.lookup(keys).values())
        journal.store(
            [Record(k, k[:40], k[41:], i, "created", f"id-{i}", 1) for i, k in enumerate(keys)]
        )
        found = journal.lookup(keys)
    assert [(found[k].status, found[k].graph_id, found[k].body_hash) for k in keys] == [
        ("created", f"id-{i}", i) for i in range(101)
    ]
    assert not any(e.in_doubt for e in found.values())


# --- what the journal creates, and when -----------------------------------------------------


def test_constructing_a_journal_touches_nothing(tmp_path):
    path = tmp_path / "state" / "j.sqlite"
    Journal(path, run_id="r1")
    Journal.for_target(tmp_path / "other", "https://graph.microsoft.com", "", run_id="r1")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_journal_opened_for_reading_is_empty_and_stays_missing(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, run_id="r1", lock=False) as journal:
        assert journal.lookup(["k"]) == {}
        assert journal.counts() == {"in_doubt": 0}
        assert journal.last_run(str(tmp_path / "inv.csv")) is None
        assert journal.recent_runs() == []
        assert list(journal.iter_rows()) == []
    assert list(tmp_path.iterdir()) == []
