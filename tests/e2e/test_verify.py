"""``certimport verify``: the journal against Graph; duplicates deleted only when proven ours."""

from __future__ import annotations

import csv
import json
import urllib.request
from collections import Counter
from pathlib import Path

from helpers import STATIC_TOKEN, body, invoke, read_results, row, thumb, write_inventory

from importer.model import COLLECTION_PATH


def findings(out: Path) -> list[dict[str, str]]:
    with (out / "verify.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def copies(graph) -> Counter[str]:
    return Counter(r["certificateThumbprint"] for r in graph.records())


def graph_request(graph, method: str, object_id: str, data: dict | None = None) -> int:
    request = urllib.request.Request(
        f"{graph.base_url}{COLLECTION_PATH}/{object_id}",
        data=json.dumps(data).encode() if data is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {STATIC_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
        return answer.status


def imported(graph, tmp_path: Path, count: int = 6) -> dict[str, str]:
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(count)])
    assert invoke("run", str(path), "--out", str(tmp_path / "run"))[0] == 0
    return {r["certificateThumbprint"]: r["id"] for r in read_results(tmp_path / "run")}


def test_a_consistent_target_verifies_with_exit_0(graph, tmp_path):
    imported(graph, tmp_path)
    code, _, stderr = invoke("verify", "--out", str(tmp_path / "v"))
    assert code == 0, stderr
    assert "consistent" in stderr
    assert findings(tmp_path / "v") == []
    summary = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert (summary["objects"], summary["exit_code"]) == (6, 0)
    assert (tmp_path / "v" / "verify.csv").stat().st_mode & 0o077 == 0


def test_verify_finds_a_planted_duplicate_and_deletes_only_it(graph, tmp_path):
    ids = imported(graph, tmp_path)
    [ours] = graph.call(graph.emulator.seed, [body(2)])  # what a blind re-post leaves
    [theirs] = graph.call(graph.emulator.seed, [body(3, certificateRevokeStatus="revoked")])
    code, _, stderr = invoke("verify", "--out", str(tmp_path / "v"))
    assert code == 1, stderr
    found = {(f["finding"], f["id"]): f for f in findings(tmp_path / "v")}
    assert set(found) == {("duplicate", ours), ("duplicate", theirs)}
    assert found[("duplicate", ours)]["journal_id"] == ids[thumb(2)]
    assert "plan: delete 1 extra copies" in stderr and "nothing deleted" in stderr
    assert copies(graph)[thumb(2)] == 2  # read-only without --delete-duplicates

    code, _, stderr = invoke("verify", "--delete-duplicates", "--out", str(tmp_path / "d"))
    assert code == 1, stderr  # the copy with other values is not certimport's: it stays
    assert graph.stats()["deletes"] == 1
    remaining = {r["id"] for r in graph.records()}
    assert ours not in remaining and ids[thumb(2)] in remaining and theirs in remaining
    assert ("deleted", ours) in {(f["finding"], f["id"]) for f in findings(tmp_path / "d")}


def test_a_plan_beyond_max_deletes_deletes_nothing(graph, tmp_path):
    imported(graph, tmp_path)
    graph.call(graph.emulator.seed, [body(1), body(4)])
    code, _, stderr = invoke(
        "verify", "--delete-duplicates", "--max-deletes", "1", "--out", str(tmp_path / "v")
    )
    assert code == 1
    assert "more than --max-deletes 1" in stderr
    assert graph.stats()["deletes"] == 0


def test_verify_reports_objects_gone_and_values_changed_in_graph(graph, tmp_path):
    ids = imported(graph, tmp_path)
    assert graph_request(graph, "DELETE", ids[thumb(0)]) == 204
    patch = {"certificateRevokeStatus": "revoked"}
    assert graph_request(graph, "PATCH", ids[thumb(5)], patch) in (200, 204)
    code, _, stderr = invoke("verify", "--out", str(tmp_path / "v"))
    assert code == 1, stderr
    kinds = {(f["finding"], f["certificateThumbprint"]) for f in findings(tmp_path / "v")}
    assert kinds == {("gone", thumb(0)), ("differs", thumb(5))}
