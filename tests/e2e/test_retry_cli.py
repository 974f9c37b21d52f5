"""`certimport retry RUN_DIR` reads failed.csv the way the run read its input; `-` is stdin;
--version and --help import none of the data stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers import ROOT, SAMPLES, invoke, read_results, row, write_inventory

ROW2 = "281C5F78DE3F618B1A923F03BB3768472EEADEC4"  # 2/14/2025 4:05 PM in samples/adcs-export
ROW4 = "2A4A50F6328AE0ADA0342EF0F7B032F7F7E4624C"  # 11/30/2024 9:00 AM


def _adcs_run(graph, tmp_path: Path) -> Path:
    """An AD CS run, profiled and date-formatted, that leaves two rows failed."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("adcs-export.csv", "adcs-columns.toml"):
        shutil.copy(SAMPLES / name, data / name)
    graph.call(
        graph.emulator.script,
        [{"status": 503, "times": 9, "thumbprint": t} for t in (ROW2, ROW4)],
    )
    out = tmp_path / "first"
    code, _, stderr = invoke(
        "run", str(data / "adcs-export.csv"), "--profile", "adcs",
        "--config", str(data / "adcs-columns.toml"), "--monthfirst",
        "--timezone", "America/New_York", "--out", str(out),
    )  # fmt: skip
    assert code == 1, stderr
    assert [r["status"] for r in read_results(out)].count("failed") == 2
    return out


def test_retry_reads_failed_csv_with_the_runs_profile_columns_dates_and_zone(
    graph, tmp_path, monkeypatch
):
    first = _adcs_run(graph, tmp_path)
    reading = json.loads((first / "summary.json").read_text())["reading"]
    assert reading["profile"] == "adcs" and reading["dayfirst"] is False
    assert reading["timezone"] == "America/New_York"
    assert reading["config_file"] == str(tmp_path / "data" / "adcs-columns.toml")
    graph.call(graph.emulator.reset)  # the script's faults are gone; so are the created rows
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, stderr = invoke("retry", str(first), "--out", str(tmp_path / "again"))
    assert code == 0, stderr
    assert stderr.startswith("reading ") and "certimport retry:" in stderr
    assert [r["status"] for r in read_results(tmp_path / "again")] == ["created", "created"]
    held = {r["certificateThumbprint"]: r for r in graph.records()}
    assert set(held) == {ROW2, ROW4}
    # month first, in New York (EST is UTC-5): the run's reading, not today's defaults
    assert held[ROW2]["certificateIssuanceDateTime"] == "2025-02-14T21:05:00Z"
    assert held[ROW4]["certificateIssuanceDateTime"] == "2024-11-30T14:00:00Z"
    assert held[ROW2]["certificateIssuerName"] == "CN=Contoso Issuing CA 01, DC=contoso, DC=com"
    assert held[ROW2]["managedDeviceDisplayName"] == "pc-0217.contoso.com"
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["command"] == "retry" and summary["mode"] == "run"


def test_flags_given_to_retry_win_over_the_runs_reading(graph, tmp_path):
    first = _adcs_run(graph, tmp_path)
    graph.call(graph.emulator.reset)
    code, _, stderr = invoke("retry", str(first), "--dayfirst", "--out", str(tmp_path / "again"))
    assert code == 1, stderr
    statuses = {r["certificateThumbprint"]: r["status"] for r in read_results(tmp_path / "again")}
    assert statuses[ROW2] == "rejected"  # 2/14 read day first is no date
    code, _, stderr = invoke("retry", str(first), "--timezone", "UTC", "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    held = {r["certificateThumbprint"]: r for r in graph.records()}
    assert held[ROW4]["certificateIssuanceDateTime"] == "2024-11-30T09:00:00Z"


def test_retry_names_a_config_file_of_the_run_that_is_gone(graph, tmp_path):
    first = _adcs_run(graph, tmp_path)
    (tmp_path / "data" / "adcs-columns.toml").unlink()
    code, _, stderr = invoke("retry", str(first))
    assert code == 2
    assert str(tmp_path / "data" / "adcs-columns.toml") in stderr and "--config" in stderr


def test_retry_refuses_another_target_than_the_runs(graph, tmp_path, monkeypatch):
    first = _adcs_run(graph, tmp_path)
    posts = graph.stats()["posts"]
    monkeypatch.setenv("CERTIMPORT_BASE_URL", "http://127.0.0.1:9/beta")
    code, _, stderr = invoke("retry", str(first))
    assert code == 2
    assert "the run sent to" in stderr and graph.base_url in stderr
    assert graph.stats()["posts"] == posts


def test_nothing_to_retry_is_one_line_and_exit_0(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateSerialNumber="zz")])
    assert invoke("run", str(path), "--out", str(tmp_path / "first"))[0] == 1
    code, stdout, stderr = invoke("retry", str(tmp_path / "first"), "--out", str(tmp_path / "b"))
    assert code == 0
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        f"nothing to retry: {tmp_path / 'first' / 'failed.csv'} has no failed or unknown rows"
    ]
    assert not (tmp_path / "b").exists()


def test_a_run_directory_from_before_the_reading_was_recorded_still_retries(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2)])
    graph.call(graph.emulator.script, [{"status": 503, "times": 9, "thumbprint": f"{2:040X}"}])
    assert invoke("run", str(path), "--out", str(tmp_path / "first"))[0] == 1
    summary_path = tmp_path / "first" / "summary.json"
    old = json.loads(summary_path.read_text())
    del old["reading"]
    summary_path.write_text(json.dumps(old))
    graph.call(graph.emulator.reset)
    code, _, stderr = invoke("retry", str(tmp_path / "first"), "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    assert "does not say how the run read its input" in stderr


def test_stdin_is_read_as_the_input_and_named_stdin(graph, tmp_path):
    data = (SAMPLES / "bad-values.csv").read_bytes()
    code, _, stderr = invoke("validate", "-", "--out", str(tmp_path / "v"), stdin=data)
    assert code == 1
    assert "<stdin>:3: column certificateThumbprint" in stderr
    assert tempfile.gettempdir() not in stderr
    assert json.loads((tmp_path / "v" / "summary.json").read_text())["input"] == "<stdin>"
    code, _, stderr = invoke(
        "run", "-", "--out", str(tmp_path / "r"), stdin=(SAMPLES / "certificates.csv").read_bytes()
    )
    assert code == 0, stderr
    assert len(graph.records()) == 48
    code, stdout, _ = invoke("inspect", "-", stdin=(SAMPLES / "certificates.csv").read_bytes())
    assert code == 0 and stdout.startswith("file       <stdin>")
    leftovers = [p for p in Path(tempfile.gettempdir()).glob("certimport-stdin-*")]
    assert leftovers == []


def test_empty_stdin_is_an_input_error():
    code, _, stderr = invoke("validate", "-", stdin=b"")
    assert code == 2
    assert stderr.strip() == "error: <stdin>:1: file is empty: no header row"


def test_version_help_and_completion_import_none_of_the_data_stack(tmp_path):
    probe = (
        "import sys\n"
        "from importer.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], prog_name='certimport')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'pandas', 'pyarrow', 'pandera', 'numpy', 'aiohttp', 'azure.identity'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("_CERTIMPORT")}
    for args in (["--version"], ["--help"], ["run", "--help"], ["retry", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stderr.strip().splitlines()[-1] == "[]", (args, done.stderr)
    completion = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={
            **env,
            "PYTHONPATH": str(ROOT),
            "_CERTIMPORT_COMPLETE": "bash_complete",
            "COMP_WORDS": "certimport re",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "retry" in completion.stdout
    assert completion.stderr.strip().splitlines()[-1] == "[]", completion.stderr


def test_journal_show_for_a_target_without_a_journal_says_so_once(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "importer", "journal", "show", "--state-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CERTIMPORT_")},
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: no journal for ")
    assert not (tmp_path / "s").exists()


def test_a_named_pipe_as_input_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    for command in ("validate", "inspect", "run", "plan"):
        code, _, stderr = invoke(command, str(fifo))
        assert code == 2, command
        assert f"{fifo} is a named pipe, not a regular file" in stderr
        assert "certimport run - <" in stderr
