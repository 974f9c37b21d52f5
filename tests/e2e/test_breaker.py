"""The circuit breaker: a dead target ends the run with exit 3; faults among successes never
trip it."""

from __future__ import annotations

import json
import socket
import time

from helpers import invoke, read_results, row, write_inventory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_port_ends_the_run_with_exit_3_and_every_row_reported(
    graph, tmp_path, monkeypatch
):
    monkeypatch.setenv("CERTIMPORT_BASE_URL", f"http://127.0.0.1:{free_port()}/beta")
    monkeypatch.setenv("CERTIMPORT_BREAKER_REQUESTS", "12")
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "8")
    rows = [row(n) for n in range(10_000)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    started = time.monotonic()
    # --no-adopt: the breaker's work is the sending (an adoption's failed read ends the run
    # before it; test_adopt covers that)
    code, _, stderr = invoke("run", str(path), "--no-adopt", "--out", str(tmp_path / "o"))
    assert code == 3, stderr
    assert time.monotonic() - started < 60
    assert "target unreachable since" in stderr
    results = read_results(tmp_path / "o")
    assert len(results) == 10_000
    assert {r["status"] for r in results} == {"failed"}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["exit_code"] == 3 and "target unreachable" in summary["stopped"]


def test_transient_faults_among_successes_never_trip_it(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("CERTIMPORT_BREAKER_REQUESTS", "8")
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "10")
    # failures of the target itself (a 5xx, a dropped connection) among successes; no 503,
    # whose Retry-After would pause the run for a second each time
    faults = {"fault_rate": 0.15, "faults": ["504", "drop"], "seed": 4}
    graph.call(graph.emulator.configure, faults)
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(300)])
    code, _, stderr = invoke("run", str(path), "--concurrency", "8", "--out", str(tmp_path / "o"))
    assert code in (0, 1), stderr
    assert "target unreachable" not in stderr
    assert graph.stats()["faults"] > 20


def test_a_huge_retry_after_fails_the_rows_at_once_instead_of_hanging(graph, tmp_path):
    graph.call(
        graph.emulator.script,
        [{"status": 429, "retry_after": "99999999", "times": 50}],
    )
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(20)])
    started = time.monotonic()
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert time.monotonic() - started < 30
    assert code == 1, stderr
    results = read_results(tmp_path / "o")
    assert {r["status"] for r in results} == {"failed"}
    assert all("Graph asked to wait 99999999 s" in r["error_message"] for r in results)


def test_show_errors_takes_a_count_of_zero_or_more(tmp_path):
    code, _, stderr = invoke("validate", str(tmp_path / "x.csv"), "--show-errors", "-1")
    assert code == 2
    assert "--show-errors" in stderr and "Traceback" not in stderr
