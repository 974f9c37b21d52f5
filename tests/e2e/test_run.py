"""End to end through the CLI against the emulator (in a thread), plus one real subprocess."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from helpers import (
    ROOT,
    SAMPLES,
    STATIC_TOKEN,
    ThreadedEmulator,
    invoke,
    read_results,
    row,
    thumb,
    write_inventory,
)


def test_samples_are_created_once_with_ids_matching_the_emulator(graph: ThreadedEmulator, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = invoke("run", str(SAMPLES / "certificates.csv"), "--out", str(out))
    assert code == 0, stderr
    results = read_results(out)
    records = {r["id"]: r for r in graph.records()}
    assert len(results) == len(records) == graph.stats()["posts"]
    assert all(r["status"] == "created" for r in results)
    for result in results:
        stored = records[result["id"]]
        assert stored["certificateThumbprint"] == result["certificateThumbprint"]
        assert stored.get("managedDeviceDisplayName", "") == result["managedDeviceDisplayName"]
    assert [int(r["line"]) for r in results] == sorted(int(r["line"]) for r in results)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["created"] == len(results)
    assert summary["exit_code"] == 0
    assert "created" in stderr  # the run's summary table is on stderr
    assert stdout == ""


def test_bad_rows_are_rejected_with_line_and_column_and_never_posted(graph, tmp_path):
    rows = [row(1), row(2, certificateThumbprint="XYZ"), row(3, certificateRevokeStatus="gone")]
    rows.append(row(4))
    path = write_inventory(tmp_path / "inv.csv", rows)
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 1
    assert f"{path}:3: column certificateThumbprint: 'XYZ' is not a SHA-1 thumbprint" in stderr
    assert f"{path}:4: column certificateRevokeStatus: 'gone' is not a revoke status" in stderr
    assert "Traceback" not in stderr
    posted = {r["certificateThumbprint"] for r in graph.records()}
    assert posted == {thumb(1), thumb(4)}
    assert graph.stats()["posts"] == 2
    statuses = [(r["line"], r["status"]) for r in read_results(tmp_path / "o")]
    assert statuses == [("2", "created"), ("3", "rejected"), ("4", "rejected"), ("5", "created")]


def test_400_rejects_one_row_and_the_run_continues_then_failed_csv_reimports(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(1, 6)])
    graph.call(
        graph.emulator.script,
        [{"status": 400, "code": "BadRequest", "message": "nope", "thumbprint": thumb(3)}],
    )
    out = tmp_path / "first"
    code, _, stderr = invoke("run", str(path), "--out", str(out))
    assert code == 1
    results = read_results(out)
    assert [r["status"] for r in results] == ["created"] * 2 + ["rejected"] + ["created"] * 2
    assert results[2]["error_code"] == "BadRequest"
    assert results[2]["error_message"] == "nope"
    failed = read_results(out, "failed.csv")
    assert len(failed) == 1 and failed[0]["certificateThumbprint"] == thumb(3)
    assert failed[0]["import_error"].startswith("rejected: BadRequest")
    assert f"certimport run {out / 'failed.csv'}" in stderr
    # the operator fixes the refused row in failed.csv and feeds it back (an unchanged row Graph
    # refused is not sent again: see test_a_row_graph_refused_is_not_sent_again_unchanged)
    failed[0]["certificateSubjectName"] = "CN=fixed"
    with (out / "failed.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(failed[0]))
        writer.writeheader()
        writer.writerows(failed)
    code, _, stderr = invoke("run", str(out / "failed.csv"), "--out", str(tmp_path / "second"))
    assert code == 0, stderr
    assert sorted(r["certificateThumbprint"] for r in graph.records()) == [
        thumb(n) for n in range(1, 6)
    ]


def test_403_aborts_with_exit_3_and_reports_every_line(graph, tmp_path):
    graph.call(graph.emulator.configure, {"forbidden": True})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(1, 30)])
    out = tmp_path / "o"
    code, _, stderr = invoke("run", str(path), "--out", str(out), "--concurrency", "2")
    assert code == 3
    assert "403" in stderr and "DeviceManagementConfiguration.ReadWrite.All" in stderr
    results = read_results(out)
    assert len(results) == 29
    assert {r["status"] for r in results} == {"failed"}
    assert graph.stats()["posts"] <= 2
    assert json.loads((out / "summary.json").read_text())["exit_code"] == 3


def test_strict_posts_nothing_when_any_row_is_invalid(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateSerialNumber="")])
    code, _, stderr = invoke("run", str(path), "--strict", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "is required and empty" in stderr
    assert graph.stats()["posts"] == 0


def test_dry_run_posts_nothing(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    code, _, _ = invoke("run", str(path), "--dry-run", "--out", str(tmp_path / "o"))
    assert code == 0
    assert graph.stats()["requests"] == 0
    assert [r["status"] for r in read_results(tmp_path / "o")] == ["valid", "valid"]


def test_unreadable_file_is_exit_2_and_nothing_posted(graph, tmp_path):
    path = tmp_path / "inv.csv"
    write_inventory(path, [row(n) for n in range(1, 4)])
    with path.open("ab") as handle:
        handle.write(b"\xff\xfe broken,line\n")
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{path}:5" in stderr
    assert graph.stats()["posts"] == 0
    assert not (tmp_path / "o" / "results.csv").exists()


def test_missing_columns_are_listed_together(graph, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text("certificateThumbprint,subject\nAB,CN=x\n")
    code, _, stderr = invoke("run", str(path))
    assert code == 2
    assert "certificateSerialNumber" in stderr and "certificateIssuerName" in stderr
    assert graph.stats()["requests"] == 0


def test_config_problems_are_reported_together(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_BASE_URL", "http://example.com/beta")
    monkeypatch.setenv("CERTIMPORT_CONCURRENCY", "many")
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path))
    assert code == 2
    assert "plain http is allowed only for loopback" in stderr
    assert "CERTIMPORT_CONCURRENCY" in stderr
    assert graph.stats()["requests"] == 0


def test_dropped_connection_after_send_is_reconciled_not_posted_twice(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    graph.call(graph.emulator.script, [{"action": "created_drop", "thumbprint": thumb(2)}])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 0
    results = read_results(tmp_path / "o")
    assert [r["status"] for r in results] == ["created", "created"]
    assert results[1]["error_message"].startswith("reconciled")
    records = graph.records()
    assert len(records) == 2
    assert results[1]["id"] in {r["id"] for r in records}
    assert graph.stats()["posts"] == 2  # the lost answer was looked up, not posted again
    assert "reconciled 1" in stderr


def test_dropped_connection_before_create_is_posted_again_after_the_lookup(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    graph.call(graph.emulator.script, [{"action": "drop", "thumbprint": thumb(1)}])
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 0
    assert graph.stats()["posts"] == 2
    assert len(graph.records()) == 1
    assert read_results(tmp_path / "o")[0]["attempts"] == "2"


def test_reports_are_private(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    out = tmp_path / "o"
    assert invoke("run", str(path), "--out", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("results.csv", "failed.csv", "summary.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


def test_managed_identity_run_gets_its_token_from_the_emulator(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_AUTH_METHOD", "managed_identity")
    monkeypatch.delenv("CERTIMPORT_ACCESS_TOKEN")
    monkeypatch.setenv("IDENTITY_ENDPOINT", graph.emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", graph.emulator.config.identity_header)
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code == 0, stderr
    assert graph.stats()["token_requests"] == 1


def test_subprocess_run_and_secret_never_printed(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateKeyUsages="x")])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(tmp_path / "o"), "-vv"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "created" in proc.stderr
    assert "Traceback" not in proc.stderr
    everything = proc.stdout + proc.stderr
    for report in (tmp_path / "o").iterdir():
        everything += report.read_text()
    assert STATIC_TOKEN not in everything


@pytest.mark.parametrize("command", ["validate", "run"])
def test_help_has_an_example(command):
    code, stdout, _ = invoke(command, "--help")
    assert code == 0
    assert "Example" in stdout


def test_unwritable_report_directory_is_a_clean_error(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, stderr = invoke("run", str(path), "--out", str(blocker / "out"))
    assert code == 2
    assert "Traceback" not in stderr
    assert str(blocker) in stderr
    assert graph.stats()["posts"] == 0


def test_tokens_expiring_mid_run_are_renewed(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_AUTH_METHOD", "managed_identity")
    monkeypatch.delenv("CERTIMPORT_ACCESS_TOKEN")
    monkeypatch.setenv("IDENTITY_ENDPOINT", graph.emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", graph.emulator.config.identity_header)
    graph.call(graph.emulator.configure, {"token_lifetime": 1, "latency": 0.1})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(30)])
    code, _, stderr = invoke("run", str(path), "--concurrency", "2", "--out", str(tmp_path / "o"))
    assert code == 0, stderr
    assert len(graph.records()) == 30
    assert graph.stats()["token_requests"] >= 2


@pytest.mark.parametrize("chunk_size", ["100", "50000"])
def test_rows_across_chunks_and_send_slices_keep_their_lines(
    graph, tmp_path, monkeypatch, chunk_size
):
    # several chunks, each sent in slices of 7 rows, with bad rows on and around the edges
    monkeypatch.setattr("importer.run.pipeline.SEND_SLICE", 7)
    monkeypatch.setenv("CERTIMPORT_CHUNK_SIZE", chunk_size)
    bad = {0, 6, 7, 13, 99, 100, 101, 248}
    rows = [row(n, certificateRevokeStatus="gone") if n in bad else row(n) for n in range(250)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    code, _, _ = invoke("run", str(path), "--out", str(tmp_path / "o"), "--show-errors", "1")
    assert code == 1
    results = read_results(tmp_path / "o")
    assert [int(r["line"]) for r in results] == list(range(2, 252))
    assert [r["status"] for r in results] == [
        "rejected" if n in bad else "created" for n in range(250)
    ]
    assert [r["certificateThumbprint"] for r in results] == [thumb(n) for n in range(250)]
    records = {r["id"]: r["certificateThumbprint"] for r in graph.records()}
    assert {r["id"]: r["certificateThumbprint"] for r in results if r["id"]} == records
    assert len(records) == graph.stats()["posts"] == 250 - len(bad)
    failed = read_results(tmp_path / "o", "failed.csv")
    assert [f["certificateThumbprint"] for f in failed] == [thumb(n) for n in sorted(bad)]


def test_a_failed_journal_write_stops_the_run_and_the_next_run_finishes_exactly_once(
    graph, tmp_path, monkeypatch
):
    # The only fault injected into our own code: SQLite failing to store outcomes (a full disk).
    from importer.run.journal import Journal

    write_rows = Journal._write_rows
    calls = {"n": 0}

    def failing_store(self, db, sql, rows, width):
        if db is self._outcomes:  # the second group of outcomes finds the disk full
            calls["n"] += 1
            if calls["n"] == 2:
                raise sqlite3.OperationalError("database or disk is full")
        write_rows(self, db, sql, rows, width)

    monkeypatch.setattr("importer.run.pool.OUTCOME_GROUP", 10)
    monkeypatch.setattr(Journal, "_write_rows", failing_store)
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(100)])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert code != 0
    assert "database or disk is full" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "o" / "results.csv").exists()  # no report claims what was not kept
    monkeypatch.setattr(Journal, "_write_rows", write_rows)
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o2"))
    assert code == 0, stderr
    held = [r["certificateThumbprint"] for r in graph.records()]
    assert sorted(held) == sorted(thumb(n) for n in range(100))  # each exactly once
