"""certimport as an operator has it: a wheel installed into a fresh venv, run from an empty
directory that is not the checkout.

The wheel is built from a copy of the files a wheel is built from (so nothing of the checkout's
working tree leaks in) and installed with pip into a new venv that sees the test venv's
site-packages for its dependencies (fast, offline). The commands run as subprocesses, with a
home and state directory of their own, against an emulator the installed command serves.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLES

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class Installed:
    """A fresh venv with the wheel installed, and an empty working directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.wheel = _build_wheel(base)
        self.venv = base / "venv"
        self.work = base / "work"
        self.work.mkdir()
        home = base / "home"
        home.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CERTIMPORT_", "AZURE_", "PYTHON", "IDENTITY_"))
        }
        self.env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), NO_COLOR="1")

    @property
    def certimport(self) -> str:
        return str(self.venv / "bin" / "certimport")

    def run(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.certimport, *args],
            cwd=cwd or self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )


def _build_wheel(dest: Path) -> Path:
    source = dest / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "importer", source / "importer", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", str(dest / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (dest / "dist").glob("certimport-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel and install it into a new venv, once for this module."""
    target = Installed(tmp_path_factory.mktemp("installed"))
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(target.venv)],
        check=True,
        timeout=120,
    )
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(target.venv), "platbase": str(target.venv)})
    )
    # The dependencies come from the test venv (a path line: its own .pth files, and with them
    # the editable install of the checkout, are not read).
    (purelib / "test-venv-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(target.venv / "bin" / "python")]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", str(target.wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield target


def test_the_wheel_holds_every_file_the_package_reads(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    package = ROOT / "importer"
    wanted = {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert wanted - names == set()
    assert {"importer/data/profiles/adcs.toml", "importer/data/profiles/graph.toml"} <= names


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import importer; print(importer.__file__)"],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(installed.venv)


def test_version_and_help_from_an_empty_directory(installed: Installed) -> None:
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert re.search(r"certimport, version \d+\.\d+", version.stdout)
    for command in (
        "validate",
        "inspect",
        "run",
        "plan",
        "retry",
        "verify",
        "journal",
        "recipes",
        "emulator",
    ):
        shown = installed.run(command, "--help")
        assert shown.returncode == 0, (command, shown.stderr)


def test_the_recipes_come_with_the_wheel(installed: Installed) -> None:
    listed = installed.run("recipes")
    assert listed.returncode == 0, listed.stderr
    assert "certimport.cron" in listed.stdout and "certimport.service" in listed.stdout
    cron = installed.run("recipes", "certimport.cron")
    assert cron.returncode == 0 and "certimport run" in cron.stdout
    written = installed.run("recipes", "--write", "recipes")
    assert written.returncode == 0, written.stderr
    shipped = ROOT / "importer" / "data" / "recipes"
    for path in shipped.iterdir():
        assert (installed.work / "recipes" / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("sample", "args"),
    [
        ("certificates.csv", ()),
        ("certificates.csv", ("--profile", "graph")),
        ("powershell-export.csv", ("--profile", "powershell", "--monthfirst")),
        ("adcs-export.csv", ("--profile", "adcs", "--config", "adcs-columns.toml", "--monthfirst")),
        ("adcs-export.csv", ("--config", "adcs-columns.toml", "--monthfirst")),
    ],
)
def test_validate_and_inspect_with_every_builtin_profile(
    installed: Installed, tmp_path: Path, sample: str, args: tuple[str, ...]
) -> None:
    for name in (sample, "adcs-columns.toml"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    inspected = installed.run("inspect", sample, *args, cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
    assert "profile" in inspected.stdout
    checked = installed.run("validate", sample, *args, "--out", "out", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert (tmp_path / "out" / "results.csv").is_file()


def test_a_profile_in_the_working_directory_replaces_the_builtin_one(
    installed: Installed, tmp_path: Path
) -> None:
    profiles = tmp_path / "config" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "mine.toml").write_text(
        'description = "mine"\n[columns]\ncertificateThumbprint = "Thumb"\n', encoding="utf-8"
    )
    shutil.copy(SAMPLES / "certificates.csv", tmp_path / "certificates.csv")
    listed = installed.run("inspect", "certificates.csv", "--profile", "nosuch", cwd=tmp_path)
    assert listed.returncode == 2
    assert "mine" in listed.stderr and "adcs" in listed.stderr


class _Emulator:
    """``certimport emulator`` of the installed venv, on a free loopback port."""

    def __init__(self, installed: Installed, *args: str) -> None:
        self.process = subprocess.Popen(
            [installed.certimport, "emulator", "--port", "0", "--token", "tok", *args],
            cwd=installed.work,
            env=installed.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"listening on (http://\S+/beta)", line)
        assert found, line
        self.base_url = found.group(1)
        self.root = self.base_url.removesuffix("/beta")

    def configure(self, **values: object) -> None:
        request = urllib.request.Request(
            f"{self.root}/_config",
            data=json.dumps(values).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def records(self) -> list[dict[str, str]]:
        with urllib.request.urlopen(f"{self.root}/_records", timeout=10) as answer:
            data = json.loads(answer.read())
        return list(data["value"] if isinstance(data, dict) else data)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def test_run_then_retry_reads_failed_csv_as_the_run_read_its_input(
    installed: Installed, tmp_path: Path
) -> None:
    """An AD CS run with a profile, a [columns] file, month-first dates and a time zone loses
    rows to faults; `retry DIR`, from another directory, with no option repeated, creates them.
    """
    data = tmp_path / "data"
    data.mkdir()
    for name in ("adcs-export.csv", "adcs-columns.toml"):
        shutil.copy(SAMPLES / name, data / name)
    emulator = _Emulator(installed, "--fault-rate", "0.5", "--seed", "11")
    try:
        env = {
            "CERTIMPORT_BASE_URL": emulator.base_url,
            "CERTIMPORT_AUTH_METHOD": "static",
            "CERTIMPORT_ACCESS_TOKEN": "tok",
        }
        first = installed.run(
            "run", "adcs-export.csv", "--profile", "adcs", "--config", "adcs-columns.toml",
            "--monthfirst", "--timezone", "America/New_York", "--out", "../runs/first",
            cwd=data, env={**env, "CERTIMPORT_MAX_ATTEMPTS": "1"},
        )  # fmt: skip
        assert first.returncode == 1, first.stderr
        with (tmp_path / "runs" / "first" / "results.csv").open(encoding="utf-8") as handle:
            statuses = [r["status"] for r in csv.DictReader(handle)]
        left = sum(s in ("failed", "unknown") for s in statuses)
        assert left, statuses
        assert "certimport retry ../runs/first" in first.stderr

        emulator.configure(fault_rate=0)
        again = installed.run("retry", str(tmp_path / "runs" / "first"), "--out", "second", env=env)
        assert again.returncode == 0, again.stderr
        assert "certimport retry:" in again.stderr
        summary = json.loads((installed.work / "second" / "summary.json").read_text())
        assert summary["command"] == "retry"
        assert summary["counts"]["created"] + summary["counts"]["skipped"] == left
        held = [r["certificateThumbprint"] for r in emulator.records()]
        # the export's denied, pending and failed requests are excluded, never sent
        assert statuses.count("excluded") == 3
        assert len(held) == len(set(held)) == len(statuses) - 3

        nothing = installed.run("retry", "second", env=env)
        assert nothing.returncode == 0, nothing.stderr
        assert nothing.stderr.strip().startswith("nothing to retry")
        assert len(nothing.stderr.strip().splitlines()) == 1
    finally:
        emulator.close()


def test_run_against_the_builtin_emulator(installed: Installed, tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "certificates.csv", tmp_path / "certificates.csv")
    done = installed.run("run", "certificates.csv", "--emulator", "--out", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo" / "report.html").is_file()
