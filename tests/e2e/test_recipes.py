"""The shipped cron, systemd and alerting recipes stay in step with the CLI and the metrics."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

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
    return words[start : words.index(next(w for w in words[start:] if w.startswith("2>")))]


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


def _cron_command(tmp_path: Path, env_file: Path, inventory: Path) -> str:
    """The cron entry's command with its paths moved under ``tmp_path``."""
    line = next(
        line
        for line in (CONFIG / "certimport.cron").read_text().splitlines()
        if line.startswith("15 2 ")
    )
    command = line.split(None, 6)[6]
    certimport = Path(sys.executable).parent / "certimport"
    for system, mine in {
        "/etc/certimport/credentials.env": env_file,
        "/srv/certimport/.venv/bin/certimport": certimport,
        "/srv/exports/certificates.csv": inventory,
        "/etc/certimport/certimport.toml": tmp_path / "certimport.toml",
        "/var/lib/node_exporter/textfile_collector": tmp_path / "textfile",
        "/var/log/certimport": tmp_path / "log",
        "/var/lib/certimport": tmp_path / "work",
        "/run/lock": tmp_path,
    }.items():
        command = command.replace(system, str(mine))
    assert "/etc/" not in command and "/var/" not in command and "/srv/" not in command
    for name in ("textfile", "log", "work"):
        (tmp_path / name).mkdir()
    (tmp_path / "certimport.toml").write_text(f'[journal]\nstate_dir = "{tmp_path / "state"}"\n')
    return command


def test_cron_mails_the_exit_code_and_the_run_s_summary_only_when_it_needs_attention(
    graph, tmp_path
):
    """The cron line, run by sh as cron would: a run Graph refuses (exit 3) mails the exit
    code, the summary table (counts, the report's path, what next); a normal night mails
    nothing; both nights are in summary.log."""
    from helpers import row, write_inventory

    inventory = write_inventory(tmp_path / "certificates.csv", [row(n) for n in range(1, 6)])
    env_file = tmp_path / "credentials.env"
    env_file.write_text(
        "\n".join(f"{k}={os.environ[k]}" for k in os.environ if k.startswith("CERTIMPORT_")) + "\n"
    )
    command = _cron_command(tmp_path, env_file, inventory)
    graph.call(graph.emulator.configure, {"forbidden": True})
    night = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120)
    mail = night.stdout
    assert mail.startswith("certimport exited 3\n"), (mail, night.stderr)
    assert "certimport run: " in mail and "not sent" in mail
    assert "report.html" in mail and "next" in mail
    graph.call(graph.emulator.configure, {"forbidden": False})
    night = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert night.stdout == "", night.stdout
    kept = (tmp_path / "log" / "summary.log").read_text()
    assert kept.count("certimport run: ") == 2
    assert "created" in (tmp_path / "log" / "last-run.txt").read_text()
    assert re.search(
        r"certimport_last_run_exit_code\{[^}]*\} 0",
        (tmp_path / "textfile" / "certimport.prom").read_text(),
    )
    logged = (tmp_path / "log" / "certimport.jsonl").read_text().splitlines()
    assert logged and all(line.startswith("{") for line in logged)
