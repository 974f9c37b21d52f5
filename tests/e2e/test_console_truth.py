"""What a person (or a machine) reads at the end of a run says what happened: rows never sent
apart from rows that failed, problems grouped by column and reason, one run id everywhere, and
a JSON console that is JSON on every line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import orjson
from helpers import invoke, read_results, row, write_inventory


def mixed_rows() -> list[dict[str, str]]:
    """12 rows: 3 bad expiry dates, 2 short thumbprints, 1 bad status, 6 valid."""
    rows = [row(n) for n in range(1, 13)]
    for n in (2, 5, 9):
        rows[n - 1]["certificateExpirationDateTime"] = f"31.{n:02d}.2026 25:00"
    for n in (3, 7):
        rows[n - 1]["certificateThumbprint"] = rows[n - 1]["certificateThumbprint"][:-4]
    rows[10]["certificateRevokeStatus"] = "gone"
    return rows


def test_rows_never_sent_are_told_apart_from_rows_that_failed(graph, tmp_path: Path) -> None:
    graph.call(graph.emulator.configure, {"forbidden": True})
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(1, 30)])
    out = tmp_path / "o"
    code, _, stderr = invoke("run", str(path), "--out", str(out), "--concurrency", "2")
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    posted = graph.stats()["posts"]
    assert summary["counts"]["failed"] == 29
    assert summary["not_sent"] == 29 - posted > 0
    lines = stderr.splitlines()
    assert f"  not sent   {29 - posted:>7,}" in lines
    if posted:
        assert f"  failed     {posted:>7,}" in lines
    report = (out / "report.html").read_text()
    assert f'id="count-not-sent" data-status="not sent" data-count="{29 - posted}"' in report
    assert "the run stopped first" in report
    # never-sent rows are not an error of their own in the top errors
    assert all(group["code"] != "NotSent" for group in summary["top_errors"])


def test_top_errors_are_grouped_by_column_and_reason(graph, tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", mixed_rows())
    out = tmp_path / "o"
    code, _, stderr = invoke("run", str(path), "--out", str(out))
    assert code == 1, stderr
    summary = json.loads((out / "summary.json").read_text())
    groups = {g["code"].split(":")[0]: g for g in summary["top_errors"]}
    assert groups["certificateExpirationDateTime"]["rows"] == 3
    assert [e[0] for e in groups["certificateExpirationDateTime"]["examples"]] == [3, 6, 10]
    assert groups["certificateThumbprint"]["rows"] == 2
    assert groups["certificateRevokeStatus"]["rows"] == 1
    assert summary["top_errors"][0]["code"].startswith("certificateExpirationDateTime: ")
    errors = [line for line in stderr.splitlines() if " × " in line]
    assert errors[0].split()[:3] == ["errors", "3", "×"]
    assert "(line 3, 6, 10)" in errors[0]
    report = (out / "report.html").read_text()
    assert 'data-code="certificateThumbprint: is not a SHA-1 thumbprint' in report
    assert 'data-code="InvalidRow"' not in report


def test_json_console_is_json_on_every_line_with_one_run_id(graph, tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", mixed_rows())
    out, log = tmp_path / "o", tmp_path / "run.log"
    code, stdout, stderr = invoke(
        "run", str(path), "--out", str(out), "--log-format", "json", "--log-file", str(log)
    )
    assert code == 1
    assert stdout == ""
    events = [orjson.loads(line) for line in stderr.splitlines()]  # every line is JSON
    summary = json.loads((out / "summary.json").read_text())
    run_id = summary["run_id"]
    assert {e["run_id"] for e in events} == {run_id}
    assert [e for e in events if e.get("event") == "summary"][-1]["exit_code"] == 1
    assert not any("records" in e["message"] and "event" not in e for e in events)
    logged = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert {e["run_id"] for e in logged} == {run_id}
    journal = Path(summary["journal"])
    with sqlite3.connect(journal) as db:
        runs = [r[0] for r in db.execute("SELECT run_id FROM runs")]
    assert runs == [run_id]


def test_a_text_log_file_carries_the_run_id_beside_a_json_one(graph, tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    log = tmp_path / "run.jsonl"
    code, _, stderr = invoke(
        "run", str(path), "--out", str(tmp_path / "o"), "--log-file", str(log),
        "--log-file-format", "json",
    )  # fmt: skip
    assert code == 0, stderr
    assert "certimport run:" in stderr  # the console stays text
    run_id = json.loads((tmp_path / "o" / "summary.json").read_text())["run_id"]
    assert all(orjson.loads(line)["run_id"] == run_id for line in log.read_text().splitlines())


def test_validate_and_plan_print_a_json_summary_with_format_json(graph, tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", mixed_rows())
    for command in ("validate", "plan"):
        code, stdout, _ = invoke(
            command, str(path), "--out", str(tmp_path / command), "--format", "json"
        )
        assert code == 1
        printed = orjson.loads(stdout)
        assert printed["mode"] == command
        assert printed["counts"]["rejected"] == 6
        assert printed["next"] and printed["top_errors"]
        assert printed["run_id"]
        saved = json.loads((tmp_path / command / "summary.json").read_text())
        assert saved["run_id"] == printed["run_id"]
    assert len(read_results(tmp_path / "plan")) == 12
