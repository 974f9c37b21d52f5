"""Adoption: a journal new to its target reads what Graph holds first and posts only the rest."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from helpers import ROOT, body, invoke, read_results, row, thumb, write_inventory

SAMPLES = ROOT / "samples"


def held(graph) -> Counter[str]:
    return Counter(
        (r["certificateThumbprint"], r.get("managedDeviceDisplayName", "")) for r in graph.records()
    )


def journal_file(tmp_path: Path) -> Path:
    [path] = (tmp_path / "state").glob("*.sqlite")
    return path


def test_deleting_the_state_directory_between_two_runs_creates_nothing_new(graph, tmp_path):
    sample = SAMPLES / "certificates.csv"
    assert invoke("run", str(sample), "--out", str(tmp_path / "a"))[0] == 0
    posts = graph.stats()["posts"]
    shutil.rmtree(tmp_path / "state")
    code, _, stderr = invoke("run", str(sample), "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    assert "adopted what Graph holds: 48 objects" in stderr
    assert graph.stats()["posts"] == posts  # not one POST
    assert max(held(graph).values()) == 1
    first = {r["line"]: r["id"] for r in read_results(tmp_path / "a")}
    second = read_results(tmp_path / "b")
    assert {r["status"] for r in second} == {"skipped"}
    assert {r["line"]: r["id"] for r in second} == first  # the ids Graph holds


def test_adoption_posts_only_what_graph_lacks_and_sees_changed_values(graph, tmp_path):
    held_before = [body(n) for n in range(10)]
    held_before[3]["certificateRevokeStatus"] = "revoked"  # Graph holds other values
    graph.call(graph.emulator.seed, held_before)
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(15)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "a"))
    assert code == 1, stderr  # a changed row is left for --update
    statuses = {r["certificateThumbprint"]: r["status"] for r in read_results(tmp_path / "a")}
    assert statuses[thumb(3)] == "changed"
    assert Counter(statuses.values()) == {"skipped": 9, "changed": 1, "created": 5}
    assert graph.stats()["posts"] == 5
    # --update PATCHes the changed one to the file's values
    code, _, stderr = invoke("run", str(path), "--update", "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    [record] = [r for r in graph.records() if r["certificateThumbprint"] == thumb(3)]
    assert record["certificateRevokeStatus"] == row(3)["certificateRevokeStatus"]


def test_keys_graph_holds_twice_are_reported_not_guessed(graph, tmp_path):
    graph.call(graph.emulator.seed, [body(1), body(1), body(2)])
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2), row(3)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "a"))
    assert code == 1, stderr
    results = {r["certificateThumbprint"]: r for r in read_results(tmp_path / "a")}
    assert results[thumb(1)]["status"] == "rejected"
    assert "2 times" in results[thumb(1)]["error_message"]
    assert (results[thumb(2)]["status"], results[thumb(3)]["status"]) == ("skipped", "created")
    assert held(graph)[(thumb(1), "PC-1")] == 2  # no third copy
    failed = read_results(tmp_path / "a", "failed.csv")
    assert [f["certificateThumbprint"] for f in failed] == [thumb(1)]


def test_no_adopt_says_what_it_risks(graph, tmp_path):
    graph.call(graph.emulator.seed, [body(1)])
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path), "--no-adopt", "--out", str(tmp_path / "a"))
    assert code == 0
    assert "created a second time" in stderr
    assert held(graph)[(thumb(1), "PC-1")] == 2


def test_a_journal_that_has_seen_the_target_does_not_read_it_again(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(3)])
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    lists = graph.stats()["gets"]
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 0
    assert "reading what Graph holds" not in stderr
    assert graph.stats()["gets"] == lists


def test_journal_adopt_on_demand_pages_through_everything(graph, tmp_path):
    graph.call(graph.emulator.configure, {"page_size": 7})
    graph.call(graph.emulator.seed, [body(n) for n in range(30)])
    code, out, stderr = invoke("journal", "adopt")
    assert code == 0, stderr
    assert "30 objects (30 keys)" in out + stderr
    db = sqlite3.connect(journal_file(tmp_path))
    assert db.execute("SELECT COUNT(*) FROM rows WHERE status = 'adopted'").fetchone() == (30,)
    # a page of $top=999 is what the client asks for; the emulator's page_size is the default
    assert graph.stats()["gets"] == 1


def test_an_adoption_killed_halfway_is_completed_by_the_next(graph, tmp_path):
    """kill -9 during the read: the next adoption continues from the stored next link."""
    graph.call(graph.emulator.seed, [body(n) for n in range(3000)])
    env_script = (
        "import os, sys; from importer.cli import cli; "
        "sys.argv = ['certimport', 'journal', 'adopt']; cli()"
    )
    # slow the reads so that the kill lands after some pages and before the last
    graph.call(graph.emulator.configure, {"latency": 0.15})
    process = subprocess.Popen(
        [sys.executable, "-c", env_script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = tmp_path / "state"
    try:
        for _ in range(200):
            files = list(state.glob("*.sqlite"))
            if files:
                db = sqlite3.connect(files[0])
                row_ = db.execute("SELECT value FROM meta WHERE name = 'pass'").fetchone()
                db.close()
                if row_ and json.loads(row_[0])["pages"] >= 1:
                    break
            subprocess.run(["sleep", "0.05"], check=True)
        process.kill()
    finally:
        process.wait()
    db = sqlite3.connect(journal_file(tmp_path))
    progress = json.loads(db.execute("SELECT value FROM meta WHERE name = 'pass'").fetchone()[0])
    assert 1 <= progress["pages"] < 4 and progress["next_url"]
    graph.call(graph.emulator.configure, {"latency": 0.0})
    code, _, stderr = invoke("journal", "adopt")
    assert code == 0, stderr
    assert "resuming" in stderr
    assert db.execute("SELECT COUNT(*) FROM rows WHERE status = 'adopted'").fetchone() == (3000,)


def test_a_target_that_cannot_be_read_posts_nothing_and_reports_every_row(graph, tmp_path):
    graph.call(graph.emulator.configure, {"forbidden": True})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(20)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 3, stderr
    assert "403" in stderr and "DeviceManagementConfiguration.ReadWrite.All" in stderr
    results = read_results(tmp_path / "o")
    assert len(results) == 20 and {r["status"] for r in results} == {"failed"}
    assert graph.stats()["posts"] == 0


def test_an_unreachable_target_ends_the_read_with_exit_3(graph, tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CERTIMPORT_BASE_URL", f"http://127.0.0.1:{port}/beta")
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "2")
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(5)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 3, stderr
    assert "could not read what Graph holds" in stderr and "--no-adopt" in stderr
    assert {r["status"] for r in read_results(tmp_path / "o")} == {"failed"}
