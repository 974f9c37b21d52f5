"""The summary on exit: a short table on stderr for runs, with what to run next."""

from __future__ import annotations

import json

from helpers import invoke, row, thumb, write_inventory


def table(stderr: str) -> dict[str, str]:
    """The summary's rows: first word → the rest of the line."""
    rows = {}
    for line in stderr.splitlines():
        if line.startswith("  ") and line.strip():
            name, _, rest = line.strip().partition(" ")
            rows.setdefault(name, rest.strip())
    return rows


def test_clean_run_summary_has_counts_duration_rate_report_and_nothing_next(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(1, 1201)])
    out = tmp_path / "o"
    code, stdout, stderr = invoke("run", str(path), "--out", str(out), "--concurrency", "8")
    assert code == 0, stderr
    assert stdout == ""
    assert stderr.splitlines()[0] == f"certimport run: {path}"
    rows = table(stderr)
    assert rows["created"] == "1,200" and rows["records"] == "1,200"
    # 1,200 POSTs and the one GET that found the target empty (the journal was new to it)
    assert rows["requests"].startswith("1,201 · 429s 0 · retries 0")
    assert "rows/s" in rows["duration"]
    assert rows["report"].startswith(str(out / "report.html"))
    assert "next" not in rows and "failed" not in rows  # zero counts are left out


def test_failed_and_rejected_rows_say_what_to_run_next(graph, tmp_path):
    rows = [row(1), row(2), row(3, certificateRevokeStatus="gone")]
    path = write_inventory(tmp_path / "inv.csv", rows)
    graph.call(
        graph.emulator.script,
        [{"status": 503, "retry_after": "0.01", "times": 4, "thumbprint": thumb(2)}],
    )
    out = tmp_path / "o"
    code, _, stderr = invoke("run", str(path), "--out", str(out))
    assert code == 1
    lines = stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  next"))
    assert f"certimport retry {out}" in lines[first]
    assert lines[first + 1].strip() == (
        f"fix the rejected rows in {out / 'failed.csv'}, then: certimport run {out / 'failed.csv'}"
    )
    assert (table(stderr)["failed"], table(stderr)["rejected"]) == ("1", "1")
    code, _, stderr = invoke("retry", str(out), "--out", str(tmp_path / "r"))
    assert code == 0, stderr
    assert table(stderr)["created"] == "1" and "next" not in table(stderr)


def test_changed_rows_suggest_update(graph, tmp_path):
    rows = [row(1)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 0
    write_inventory(path, [row(1, certificateRevokeStatus="revoked")])
    code, _, stderr = invoke("run", str(path), "--out", str(tmp_path / "b"))
    assert code == 1
    assert f"certimport run {path.resolve()} --update" in table(stderr)["next"]


def test_quiet_run_prints_nothing_but_errors(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateThumbprint="XYZ")])
    code, stdout, stderr = invoke("run", str(path), "-q", "--out", str(tmp_path / "o"))
    assert (code, stdout, stderr) == (1, "", "")
    graph.call(graph.emulator.configure, {"forbidden": True})
    path = write_inventory(tmp_path / "more.csv", [row(3)])
    code, _, stderr = invoke("run", str(path), "-q", "--out", str(tmp_path / "p"))
    assert code == 3
    assert stderr.startswith("error: Graph refused access to the collection (403")
    assert "certimport run:" not in stderr


def test_validate_and_plan_tables_stay_on_stdout(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    for command in ("validate", "plan"):
        code, stdout, stderr = invoke(command, str(path), "-q", "--out", str(tmp_path / command))
        assert code == 0, stderr
        assert stdout.startswith(f"certimport {command}: {path}\n")
        assert f"certimport run {path.resolve()}" in table(stdout)["next"]
        assert stderr == ""


def test_a_run_under_a_smaller_share_tells_the_pace_it_found_and_the_time_paused(graph, tmp_path):
    """Configured 40/s against an emulator that allows 20/s: the run finds the share."""
    graph.call(graph.emulator.configure, {"write_limit": 20, "write_window": 1.0})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(1, 121)])
    out, metrics = tmp_path / "o", tmp_path / "m.prom"
    code, _, stderr = invoke(
        "run", str(path), "--out", str(out), "--rate-limit", "40/1s", "--concurrency", "8",
        "--metrics-file", str(metrics),
    )  # fmt: skip
    assert code == 0, stderr
    pace = json.loads((out / "summary.json").read_text())["pace"]
    assert pace["limit"] == "40/1s" and pace["configured_per_second"] == 40.0
    assert 16.0 <= pace["measured_share_per_second"] <= 21.0
    assert pace["settled_per_second"] < 30.0
    assert pace["throttle_events"] >= 1
    assert 0.0 < pace["paused_share"] < 0.5
    assert table(stderr)["pace"].startswith("settled at ")
    assert "<td>pace</td><td>settled at " in (out / "report.html").read_text()
    assert "certimport_last_run_paused_ratio " in metrics.read_text()
