"""The shipped cron, systemd and alerting recipes stay in step with the CLI and the metrics."""

from __future__ import annotations

import re
import shlex

from helpers import ROOT

from importer.cli import cli
from importer.reports.metrics import render_metrics
from importer.run.pipeline import RunSummary

CONFIG = ROOT / "importer" / "data" / "recipes"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _run_options() -> set[str]:
    command = cli.commands["run"]
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


def _certimport_args(command_line: str) -> list[str]:
    words = shlex.split(command_line)
    start = next(i for i, w in enumerate(words) if w.endswith("/bin/certimport")) + 1
    return words[start : words.index(next(w for w in words[start:] if w.startswith("2>>")))]


def test_systemd_service_runs_certimport_with_known_options_and_handles_exit_codes():
    service = (CONFIG / "certimport.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)\n", service, re.M | re.S)
    assert exec_start is not None
    words = shlex.split(exec_start.group(1).replace("\\\n", " "))
    assert words[:4] == ["/usr/bin/flock", "--nonblock", "--conflict-exit-code", "75"]
    args = words[words.index("run", 5) + 2 :]
    assert {a for a in args if a.startswith("-")} <= _run_options()
    assert "--metrics-file" in args and "--log-file" in args
    assert "SuccessExitStatus=1" in service
    assert "Unit=certimport.service" in (CONFIG / "certimport.timer").read_text()


def test_cron_entry_is_one_line_with_known_options():
    lines = [
        line
        for line in (CONFIG / "certimport.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1 and not lines[0].endswith("\\")
    fields = lines[0].split(None, 6)
    assert fields[:6] == ["15", "2", "*", "*", "*", "certimport"]
    assert "%" not in fields[6]
    args = _certimport_args(fields[6])
    assert args[0] == "run"
    assert {a for a in args if a.startswith("-")} <= _run_options()
    assert "flock -n -E 75" in fields[6]
    assert lines[0] in README


def test_alert_rules_use_metrics_the_file_has():
    summary = RunSummary(input="x", input_sha256="", mode="run", out_dir="o")
    text = render_metrics(summary, exit_code=0, finished=1.0, last_success=1.0)
    written = set(re.findall(r"^(certimport_\w+)", text, re.M))
    rules = (CONFIG / "certimport.rules.yml").read_text()
    used = set(re.findall(r"\b(certimport_\w+)", rules))
    assert used and used <= written
    assert "26 * 3600" in rules and "26 * 3600" in README


def test_recipes_lists_prints_and_writes_without_overwriting(tmp_path):
    from helpers import invoke

    code, listed, _ = invoke("recipes")
    assert code == 0
    names = sorted(p.name for p in CONFIG.iterdir())
    assert [line.split()[0] for line in listed.splitlines()] == names
    code, printed, _ = invoke("recipes", "certimport.timer")
    assert code == 0 and printed == (CONFIG / "certimport.timer").read_text()
    code, _, stderr = invoke("recipes", "nothing.conf")
    assert code == 2 and "no recipe 'nothing.conf'" in stderr
    mine = tmp_path / "out" / "certimport.cron"
    mine.parent.mkdir()
    mine.write_text("mine\n")
    code, _, stderr = invoke("recipes", "--write", str(mine.parent))
    assert code == 0 and "kept" in stderr
    assert mine.read_text() == "mine\n"  # an operator's edited copy is never overwritten
    assert (mine.parent / "certimport.service").read_text() == (
        CONFIG / "certimport.service"
    ).read_text()
