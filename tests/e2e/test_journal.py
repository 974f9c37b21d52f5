"""Exactly once: the journal skips what is done, reconciles what is in doubt, survives kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import ROOT, ThreadedEmulator, invoke, read_results, row, thumb, write_inventory


def held(graph: ThreadedEmulator) -> Counter[str]:
    return Counter(r["certificateThumbprint"] for r in graph.records())


def run_to_the_end(path: Path, out: Path, *options: str) -> dict[str, dict[str, str]]:
    """Run until every row is done; the last result of each row, by thumbprint.

    A row whose answers are lost RECONCILE_ROUNDS times in a row ends ``unknown`` (exit 1),
    as designed, and the next run settles it; with thousands of rows and faults on a tenth of
    the requests that happens now and then, so one more run is allowed, never a duplicate.
    """
    last: dict[str, dict[str, str]] = {}
    for attempt in range(2):
        code, _, stderr = invoke("run", str(path), "--out", str(out / str(attempt)), *options)
        for result in read_results(out / str(attempt)):
            if result["status"] != "skipped":  # keep the run that settled the row
                last[result["certificateThumbprint"]] = result
        if code == 0:
            return last
        assert code == 1, stderr
        assert {r["status"] for r in last.values()} <= {"created", "skipped", "unknown"}, stderr
    raise AssertionError(f"rows still not done after a rerun: {stderr}")


def test_rerun_of_the_same_file_sends_nothing(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(40)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    posts = graph.stats()["posts"]
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 0
    assert graph.stats()["posts"] == posts == 40
    results = read_results(tmp_path / "b")
    assert {r["status"] for r in results} == {"skipped"}
    first = {r["line"]: r["id"] for r in read_results(tmp_path / "a")}
    assert {r["line"]: r["id"] for r in results} == first
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["counts"]["skipped"] == 40
    assert read_results(tmp_path / "b", "failed.csv") == []  # nothing left to do
    assert "skipped" in stderr  # the run's summary table is on stderr


def test_changed_row_is_reported_then_patched_with_update(graph, tmp_path):
    rows = [row(n) for n in range(3)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    rows[1]["certificateRevokeStatus"] = "revoked"
    write_inventory(path, rows)
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 1
    assert [r["status"] for r in read_results(tmp_path / "b")] == ["skipped", "changed", "skipped"]
    assert graph.stats()["patches"] == 0
    code, _, _ = invoke("run", str(path), "--update", "--out", str(tmp_path / "c"))
    assert code == 0
    assert [r["status"] for r in read_results(tmp_path / "c")] == ["skipped", "updated", "skipped"]
    stored = {r["certificateThumbprint"]: r for r in graph.records()}
    assert stored[thumb(1)]["certificateRevokeStatus"] == "revoked"
    assert len(stored) == 3
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "d"))
    assert code == 0  # the journal now knows the new body
    assert {r["status"] for r in read_results(tmp_path / "d")} == {"skipped"}


def test_faults_of_every_kind_leave_every_row_created_exactly_once(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "10")
    graph.call(
        graph.emulator.configure,
        {"fault_rate": 0.1, "faults": ["503", "504", "drop", "created_drop"], "seed": 5},
    )
    rows = [row(n) for n in range(2000)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    results = run_to_the_end(path, tmp_path / "o", "--concurrency", "16")
    assert graph.stats()["faults"] > 100
    counts = held(graph)
    assert set(counts) == {r["certificateThumbprint"] for r in rows}
    assert set(counts.values()) == {1}
    ids = {r["certificateThumbprint"]: r["id"] for r in graph.records()}
    assert len(results) == 2000
    for thumbprint, result in results.items():
        assert result["status"] in ("created", "skipped")
        if result["status"] == "created":
            assert ids[thumbprint] == result["id"]


@pytest.mark.parametrize("batch", ["1", "20"])
def test_answers_lost_after_the_object_was_created_never_duplicate_it(
    graph, tmp_path, monkeypatch, batch
):
    """About 7% of creates refused before any work (503, 504 without commit, reset) and 5% failing
    after the object was created (500, 502 and 504 after commit, dropped, and with batching the
    whole $batch answered 504 after its items were created): after run + retry, every key is
    in Graph exactly once."""
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "10")
    faults = ["503", "504", "drop", "created_500", "created_502", "created_504", "created_drop"]
    if batch != "1":
        faults.append("created_batch_504")
    graph.call(graph.emulator.configure, {"fault_rate": 0.12, "faults": faults, "seed": 19})
    rows = [row(n) for n in range(600)]  # the benchmark runs the 1,500
    path = write_inventory(tmp_path / "inv.csv", rows)
    code, _, stderr = invoke(
        "run", str(path), "--concurrency", "8", "--batch", batch, "--out", str(tmp_path / "a")
    )
    assert code in (0, 1), stderr
    if code == 1:
        code, _, stderr = invoke("retry", str(tmp_path / "a"), "--out", str(tmp_path / "b"))
        assert code == 0, stderr
    assert graph.stats()["faults"] > 30
    counts = held(graph)
    assert set(counts) == {r["certificateThumbprint"] for r in rows}  # nothing lost
    assert set(counts.values()) == {1}  # nothing duplicated


def test_a_row_whose_answers_keep_getting_lost_is_unknown_then_the_next_run_settles_it(
    graph, tmp_path
):
    graph.call(graph.emulator.script, [{"action": "drop", "times": 3, "thumbprint": thumb(1)}])
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(3)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "first"))
    assert code == 1, stderr
    assert [r["status"] for r in read_results(tmp_path / "first")] == [
        "created",
        "unknown",
        "created",
    ]
    assert thumb(1) not in held(graph)
    results = run_to_the_end(path, tmp_path / "again")
    assert results[thumb(1)]["status"] == "created"
    assert held(graph) == Counter({thumb(n): 1 for n in range(3)})


def test_batched_faults_also_end_exactly_once(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "10")
    graph.call(graph.emulator.configure, {"fault_rate": 0.1, "seed": 9})
    rows = [row(n) for n in range(600)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    run_to_the_end(path, tmp_path / "o", "--batch", "20")
    assert set(held(graph).values()) == {1}
    assert len(held(graph)) == 600


@pytest.mark.parametrize(
    ("setting", "status", "posts"), [("lookup", "unknown", 1), ("repost", "created", 2)]
)
def test_when_the_lookup_is_not_supported(graph, tmp_path, monkeypatch, setting, status, posts):
    monkeypatch.setenv("CERTIMPORT_RECONCILE", setting)
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    graph.call(graph.emulator.script, [{"action": "created_drop"}])
    graph.call(graph.emulator.configure, {"filter_supported": False})
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "o"))
    result = read_results(tmp_path / "o")[0]
    assert result["status"] == status
    assert graph.stats()["posts"] == posts
    if setting == "lookup":
        assert code == 1
        assert result["error_code"] == "ServerDisconnectedError"
        assert len(graph.records()) == 1
    else:
        assert code == 0
        assert len(graph.records()) == 2  # at-least-once, as chosen: a duplicate is possible


def test_second_concurrent_run_refuses_naming_the_holder(graph, tmp_path):
    state = Path(os.environ["CERTIMPORT_STATE_DIR"])
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    # Take the journal's lock the way a running certimport does, from another process.
    invoke("run", str(path), "--out", str(tmp_path / "a"))
    journal_file = next(state.glob("*.sqlite"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from importer.run.journal import JournalLock;"
            "lock = JournalLock(Path(sys.argv[1])); lock.acquire('holder');"
            "print('ready', flush=True); time.sleep(60)",
            str(journal_file) + ".lock",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
        assert code == 2
        assert f"pid {holder.pid}" in stderr
        assert "another certimport run holds the journal" in stderr
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing anything: its lock is taken over.
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "c"))
    assert code == 0


def test_retry_posts_only_the_failed_and_unknown_rows(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "2")
    rows = [row(n) for n in range(6)]
    rows[4]["certificateThumbprint"] = "bad"
    path = write_inventory(tmp_path / "inv.csv", rows)
    graph.call(
        graph.emulator.script,
        [
            {"status": 503, "times": 2, "thumbprint": thumb(1)},
            {"status": 400, "code": "BadRequest", "message": "no", "thumbprint": thumb(2)},
        ],
    )
    code, _stdout, _ = invoke("run", str(path), "--out", str(tmp_path / "first"))
    assert code == 1
    statuses = [r["status"] for r in read_results(tmp_path / "first")]
    assert statuses == ["created", "failed", "rejected", "created", "rejected", "created"]
    posts = graph.stats()["posts"]
    code, _, stderr = invoke("retry", str(tmp_path / "first"), "--out", str(tmp_path / "again"))
    assert code == 0, stderr
    assert graph.stats()["posts"] == posts + 1  # only the failed row
    again = read_results(tmp_path / "again")
    assert [(r["line"], r["status"]) for r in again] == [("2", "created")]
    assert held(graph)[thumb(1)] == 1


def test_shrunken_input_is_refused_unless_allowed(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(10)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    write_inventory(path, [row(n) for n in range(4)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 2
    assert "fewer than 50% of the 10 of the last run" in stderr
    assert "--allow-shrink" in stderr
    code, _, _ = invoke("run", str(path), "--allow-shrink", "--out", str(tmp_path / "c"))
    assert code == 0


def test_plan_reports_create_skip_changed_reject_and_sends_nothing(graph, tmp_path):
    rows = [row(n) for n in range(4)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    rows[0]["certificateRevokeStatus"] = "revoked"
    rows.append(row(10))
    rows.append(row(11, certificateSerialNumber="zz"))
    write_inventory(path, rows)
    requests = graph.stats()["requests"]
    code, _stdout, _ = invoke("plan", str(path), "--out", str(tmp_path / "p"))
    assert code == 1
    assert graph.stats()["requests"] == requests
    statuses = [r["status"] for r in read_results(tmp_path / "p")]
    assert statuses == ["changed", "skipped", "skipped", "skipped", "valid", "rejected"]


def test_journal_show_and_export(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    code, stdout, _ = invoke("journal", "show")
    assert code == 0
    assert "created" in stdout and "latest runs:" in stdout
    code, stdout, _ = invoke("journal", "export")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("certificateThumbprint,managedDeviceDisplayName,status,id")
    assert len(lines) == 3
    assert all(",created," in line for line in lines[1:])


def test_journal_file_is_private_and_in_wal_mode(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    journal_file = next(Path(os.environ["CERTIMPORT_STATE_DIR"]).glob("*.sqlite"))
    assert journal_file.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(journal_file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_intent_from_a_crash_is_reconciled_not_reposted(graph, tmp_path):
    """A row whose intent was recorded but whose answer never was is looked up first."""
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    journal_file = next(Path(os.environ["CERTIMPORT_STATE_DIR"]).glob("*.sqlite"))
    with sqlite3.connect(journal_file) as db:  # as if the process died right after sending
        db.execute("UPDATE rows SET status = 'new', intent_run = 'crashed', graph_id = ''")
    posts = graph.stats()["posts"]
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 0
    assert graph.stats()["posts"] == posts
    assert "reconciled 2" in stderr
    assert {r["status"] for r in read_results(tmp_path / "b")} == {"created"}


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_moments_then_rerun_ends_exactly_once(graph, tmp_path, seed):
    rng = random.Random(seed)
    graph.call(graph.emulator.configure, {"latency": 0.004})
    rows = [row(n) for n in range(400)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CERTIMPORT_CONCURRENCY": "8"}
    for attempt in range(4):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "importer",
                "run",
                str(path),
                "--out",
                str(tmp_path / f"k{attempt}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(tmp_path / "final")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    counts = held(graph)
    assert len(counts) == 400
    assert set(counts.values()) == {1}
    results = read_results(tmp_path / "final")
    assert {r["status"] for r in results} <= {"created", "skipped"}
    ids = {r["certificateThumbprint"]: r["id"] for r in graph.records()}
    assert all(ids[r["certificateThumbprint"]] == r["id"] for r in results)


def test_a_second_signal_stops_now_and_the_rerun_creates_every_row_once(graph, tmp_path):
    """Throttled and slow: the first SIGTERM would wait for the answers in flight (and a long
    Retry-After); the second abandons them. Their rows stay in doubt, and the rerun looks them
    up: every row is created exactly once."""
    graph.call(graph.emulator.configure, {"latency": 3.0, "write_limit": 6, "write_window": 2.0})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(200)])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CERTIMPORT_CONCURRENCY": "4"}
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while graph.stats()["posts"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    stopped = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - stopped < 2.5, "the answers in flight (3 s each) were waited for"
    assert "stopping now" in stderr
    results = read_results(out)
    assert len(results) == 200
    statuses = Counter(r["status"] for r in results)
    assert statuses["unknown"] >= 1  # abandoned in flight
    assert set(statuses) <= {"created", "unknown", "failed"}
    graph.call(graph.emulator.configure, {"latency": 0.0, "write_limit": 0})
    time.sleep(3.2)  # the abandoned requests are answered by now (and maybe created)
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "rest"))
    assert code == 0, stderr
    assert set(held(graph).values()) == {1}
    assert len(held(graph)) == 200


def test_sigterm_stops_cleanly_with_exit_130_and_reports(graph, tmp_path):
    graph.call(graph.emulator.configure, {"latency": 0.05})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(300)])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CERTIMPORT_CONCURRENCY": "2"}
    out = tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while graph.stats()["posts"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    results = read_results(out)
    assert len(results) == 300
    statuses = Counter(r["status"] for r in results)
    assert statuses["created"] == len(graph.records())
    assert statuses["failed"] == 300 - statuses["created"]
    journal_file = next(Path(os.environ["CERTIMPORT_STATE_DIR"]).glob("*.sqlite"))
    with sqlite3.connect(journal_file) as db:  # no intent left behind for rows never sent
        assert (
            db.execute("SELECT COUNT(*) FROM rows WHERE intent_run IS NOT NULL").fetchone()[0] == 0
        )
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "rest"))
    assert code == 0
    assert len(graph.records()) == 300


# --- what the journal creates, and when -----------------------------------------------------


def tree(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root`` with its mode, to show that nothing changed."""
    return sorted((str(p), p.stat().st_mode) for p in [root, *root.rglob("*")])


@pytest.mark.parametrize("command", ["show", "export"])
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_reading_a_journal_that_does_not_exist_creates_nothing(
    isolated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    how: str,
) -> None:
    state = tmp_path / "missing" / "state"
    options = ["--state-dir", str(state)] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv("CERTIMPORT_STATE_DIR", str(state))
    before = tree(tmp_path)
    code, stdout, stderr = invoke("journal", command, *options)
    assert code == 2
    assert stdout == ""
    assert stderr == (
        "error: no journal for https://graph.microsoft.com (tenant default) at "
        f"{state / 'graph.microsoft.com_default.sqlite'}: nothing has been run against this "
        "target yet\n"
    )
    assert not state.parent.exists()
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", ["show", "export"])
def test_reading_leaves_an_existing_state_directory_as_it_was(
    isolated: Path, tmp_path: Path, command: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    code, _, stderr = invoke("journal", command, "--state-dir", str(state))
    assert code == 2
    assert stderr.splitlines()[-1].startswith("error: no journal for https://graph.microsoft.com")
    assert list(state.iterdir()) == []  # no database, no lock file
    assert state.stat().st_mode & 0o777 == 0o755


def test_a_new_state_directory_is_created_private_with_its_parents(graph, tmp_path, monkeypatch):
    state = tmp_path / "deep" / "er" / "state"
    monkeypatch.setenv("CERTIMPORT_STATE_DIR", str(state))
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "a"))
    assert code == 0, stderr
    assert state.stat().st_mode & 0o777 == 0o700
    assert len(list(state.glob("*.sqlite"))) == 1
    assert "state directory" not in stderr


def test_an_existing_state_directory_keeps_its_mode_with_one_warning(graph, tmp_path):
    state = Path(os.environ["CERTIMPORT_STATE_DIR"])
    state.mkdir()
    os.chmod(state, 0o750)  # shared with a group on purpose, say
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "a"))
    assert code == 0, stderr
    assert state.stat().st_mode & 0o777 == 0o750
    assert next(state.glob("*.sqlite")).stat().st_mode & 0o777 == 0o600
    warning = (
        f"state directory {state} is readable or writable by group or others (mode 750): the "
        "journal names every certificate and device sent; chmod 700 it unless shared on purpose"
    )
    assert stderr.count(warning) == 1
    code, stdout, stderr = invoke("journal", "show")
    assert code == 0
    assert "created" in stdout
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 0
    assert warning not in stderr  # said once
    assert state.stat().st_mode & 0o777 == 0o750


def test_a_private_existing_state_directory_gives_no_warning(graph, tmp_path):
    state = Path(os.environ["CERTIMPORT_STATE_DIR"])
    state.mkdir()
    os.chmod(state, 0o711)  # others may pass through, not list or write
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "a"))
    assert code == 0, stderr
    assert "state directory" not in stderr
    assert state.stat().st_mode & 0o777 == 0o711


def test_plan_without_a_journal_creates_none_and_plans_every_row(graph, tmp_path):
    state = Path(os.environ["CERTIMPORT_STATE_DIR"])
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateSerialNumber="zz")])
    code, _, stderr = invoke("plan", str(path), "--out", str(tmp_path / "p"))
    assert code == 1, stderr
    assert [r["status"] for r in read_results(tmp_path / "p")] == ["valid", "rejected"]
    assert not state.exists()
    assert graph.stats()["requests"] == 0


def test_a_row_graph_refused_is_not_sent_again_unchanged(graph, tmp_path):
    rows = [row(n) for n in range(3)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    graph.call(
        graph.emulator.script,
        [{"status": 400, "code": "BadRequest", "message": "no such CA", "thumbprint": thumb(1)}],
    )
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 1
    posts = graph.stats()["posts"]
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 1
    assert graph.stats()["posts"] == posts  # nothing sent: two skipped, one refused as before
    again = {r["certificateThumbprint"]: r for r in read_results(tmp_path / "b")}
    assert again[thumb(1)]["status"] == "rejected"
    assert again[thumb(1)]["error_code"] == "BadRequest"
    assert "no such CA" in again[thumb(1)]["error_message"]
    assert "unchanged since 20" in again[thumb(1)]["error_message"]
    # Graph's side changed: the operator says so, and the row goes (and is created now)
    code, _, _ = invoke("run", str(path), "--resend-rejected", "--out", str(tmp_path / "c"))
    assert code == 0
    assert graph.stats()["posts"] == posts + 1
    assert held(graph)[thumb(1)] == 1


def test_a_refused_row_that_was_fixed_is_sent_again(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    graph.call(graph.emulator.script, [{"status": 400, "thumbprint": thumb(1)}])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 1
    write_inventory(path, [row(1, certificateSubjectName="CN=fixed")])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    assert [r["certificateSubjectName"] for r in graph.records()] == ["CN=fixed"]


def test_a_damaged_journal_is_named_with_what_moving_it_aside_costs(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    (journal,) = (tmp_path / "state").glob("*.sqlite")
    journal.write_bytes(b"this is not a database, it was overwritten" * 100)
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(journal) in lines[0]
    assert "posts every row again" in lines[0]
    assert not (tmp_path / "b").exists()  # no empty report folder left behind
