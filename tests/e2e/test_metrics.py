"""--metrics-file: Prometheus text format, atomic, last success carried across failed runs."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from helpers import invoke, row, thumb, write_inventory
from prometheus_client.parser import text_string_to_metric_families


def parse(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics file, keyed by (name, sorted labels but the target label,
    which every sample has, the same on all)."""
    samples = {}
    targets = set()
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge"
        assert family.documentation
        for sample in family.samples:
            labels = dict(sample.labels)
            targets.add(labels.pop("target"))
            samples[(sample.name, tuple(sorted(labels.items())))] = sample.value
    assert len(targets) == 1
    return samples


def target_of(path: Path) -> str:
    """The target label of a metrics file's samples."""
    family = next(iter(text_string_to_metric_families(path.read_text())))
    return family.samples[0].labels["target"]


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(f"certimport_{name}", tuple(sorted(labels.items())))]


def test_run_writes_every_metric_and_a_failed_run_keeps_the_last_success(graph, tmp_path):
    metrics = tmp_path / "textfile" / "certimport.prom"
    metrics.parent.mkdir()
    rows = [row(n) for n in range(1, 5)] + [row(5, certificateRevokeStatus="gone")]
    path = write_inventory(tmp_path / "inv.csv", rows)
    throttle = {"status": 429, "retry_after": "0.01", "thumbprint": thumb(3)}
    graph.call(graph.emulator.script, [throttle])
    before = time.time()
    code, _, stderr = invoke(
        "run", str(path), "--out", str(tmp_path / "a"), "--metrics-file", str(metrics)
    )
    assert code == 1, stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    samples = parse(metrics)
    assert value(samples, "last_run_rows", status="created") == 4
    assert value(samples, "last_run_rows", status="rejected") == 1
    assert value(samples, "last_run_rows", status="failed") == 0
    assert value(samples, "last_run_records") == 5
    # 5 POSTs, and the GET of the adoption (the journal is new to the target)
    assert value(samples, "last_run_requests") == summary["requests"] == 6
    assert value(samples, "last_run_throttled_requests") == 1
    assert value(samples, "last_run_retries") == 1
    assert value(samples, "last_run_duration_seconds") == summary["duration_seconds"]
    assert value(samples, "last_run_exit_code") == 1
    assert value(samples, "last_run_not_sent_rows") == 0
    assert value(samples, "last_run_reconciled_rows") == 0
    # one run id: the journal's, summary.json's, the metrics'
    assert value(samples, "last_run_info", run_id=summary["run_id"], mode="run") == 1
    assert summary["run_id"] in (tmp_path / "a" / "report.html").read_text()
    graph_root = summary["target"].split("/beta/")[0]
    assert target_of(metrics) == graph_root  # no tenant set: the Graph root alone
    success = value(samples, "last_success_timestamp_seconds")
    assert before <= success <= time.time()
    assert stat.S_IMODE(metrics.stat().st_mode) == 0o644
    assert [p.name for p in metrics.parent.iterdir()] == ["certimport.prom"]

    bad = tmp_path / "bad.csv"
    bad.write_text("certificateThumbprint\nAB\n")
    code, _, _ = invoke("run", str(bad), "--metrics-file", str(metrics))
    assert code == 2
    samples = parse(metrics)
    assert target_of(metrics) == ""  # the run ended before its settings named a target
    assert value(samples, "last_run_exit_code") == 2
    assert value(samples, "last_success_timestamp_seconds") == success  # carried over
    assert value(samples, "last_run_timestamp_seconds") >= success
    assert not any(name == "certimport_last_run_rows" for name, _ in samples)
    assert [p.name for p in metrics.parent.iterdir()] == ["certimport.prom"]


def test_retry_takes_a_metrics_file_too(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    fault = {"status": 503, "retry_after": "0.01", "times": 4, "thumbprint": thumb(2)}
    graph.call(graph.emulator.script, [fault])  # 4 = CERTIMPORT_MAX_ATTEMPTS: row 2 fails
    assert invoke("run", str(path), "--out", str(tmp_path / "a"))[0] == 1
    metrics = tmp_path / "retry.prom"
    code, _, stderr = invoke(
        "retry", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--metrics-file", str(metrics)
    )
    assert code == 0, stderr
    samples = parse(metrics)
    assert value(samples, "last_run_rows", status="created") == 1
    assert value(samples, "last_run_exit_code") == 0


def test_metrics_directory_is_checked_before_anything_is_sent(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path), "--metrics-file", str(tmp_path / "no" / "m.prom"))
    assert code == 2
    assert "--metrics-file" in stderr and "does not exist" in stderr
    assert graph.stats()["requests"] == 0
