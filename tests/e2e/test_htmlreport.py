"""report.html: self-contained, escaped, and rendered by a real browser with the right counts."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, Page, invoke, row, thumb, write_inventory

INSTALL = "chromium is not installed: `apt-get install chromium` (Debian) to run this test"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no DNS lookup of its update hosts
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(INSTALL)
    return exe


def _network_namespace() -> list[str]:
    """A private network namespace for the browser, where this machine allows one."""
    for prefix in (["unshare", "-n", "--"], ["unshare", "-rn", "--"]):
        if shutil.which("unshare"):
            probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
            if probe.returncode == 0:
                return prefix
    return []


def render_dom(page: Path, profile: Path) -> str:
    """The DOM headless chromium built from ``page`` (a file: URL, no network)."""
    cmd = [*_network_namespace(), _chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    done = subprocess.run(
        [*cmd, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_in_chromium_with_the_run_s_counts(graph, tmp_path):
    rows = [row(n) for n in range(1, 9)]
    rows += [row(9, certificateThumbprint="XYZ"), row(10, certificateRevokeStatus="gone")]
    path = write_inventory(tmp_path / "inv.csv", rows)
    graph.call(
        graph.emulator.script,
        [
            {"status": 400, "code": "BadRequest", "message": "nope", "thumbprint": thumb(3)},
            {"status": 503, "retry_after": "0.01", "times": 4, "thumbprint": thumb(4)},
            {"status": 429, "retry_after": "0.01", "thumbprint": thumb(5)},
        ],
    )
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(path), "--out", str(out))
    assert code == 1, stderr
    assert f"report     {out / 'report.html'}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    dom = render_dom(out / "report.html", tmp_path / "chromium-profile")
    page = Page(dom)
    expected = {k: v for k, v in summary["counts"].items() if v}
    assert expected == {"created": 6, "rejected": 3, "failed": 1}
    assert page.counts == {**expected, "records": 10}
    # validation problems by column and reason, Graph's answers by error code
    assert {code.split(":")[0] for code in page.codes} == {
        "certificateThumbprint",
        "certificateRevokeStatus",
        "BadRequest",
        "ServiceUnavailable",
    }
    assert "<svg" in dom and 'id="throughput-chart"' in dom
    assert re.search(r'id="throttled-total">1<', dom)
    assert "exit 1: finished; some rows need attention" in dom
    for name in ("results.csv", "failed.csv"):
        assert name in page.links and (out / name).is_file()
    assert f"certimport retry {out}" in dom
    assert f"certimport run {out / 'failed.csv'}" in dom


# --- the chart, seen in a browser --------------------------------------------------------------

WIDTHS = (375, 1280)  # a phone and a laptop


def screenshot(page: Path, png: Path, width: int, profile: Path) -> tuple[int, int]:
    """A headless chromium screenshot of ``page`` (a file: URL, no network) at ``width`` px;
    its size in pixels, read from the PNG's header."""
    cmd = [*_network_namespace(), _chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    done = subprocess.run(
        [
            *cmd,
            "--hide-scrollbars",
            f"--window-size={width},2000",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def _run_cli(path: Path, out: Path, *args: str, interrupt_after: float | None = None) -> int:
    """``certimport run PATH`` in a child process (the `graph` fixture's environment); SIGINT
    after ``interrupt_after`` seconds of sending, if given. Its exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "importer", "run", str(path), "--out", str(out), *args]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "report.html").is_file(), stderr.decode(errors="replace")[-2000:]
    return proc.returncode


RUNS = {
    # kind: emulator settings, rows (invalid ones among them), CLI options, interrupt after
    "clean": ({}, 120, 0, ("--rate-limit", "40/1s"), None),
    "throttled": ({"write_limit": 20, "write_window": 2.0}, 100, 3, ("--rate-limit", "0"), None),
    "faults": ({"fault_rate": 0.15}, 80, 6, ("--rate-limit", "40/1s"), None),
    "interrupted": ({"write_limit": 20, "write_window": 2.0}, 400, 4, ("--rate-limit", "0"), 6.0),
}


@pytest.mark.parametrize("kind", list(RUNS))
def test_chart_in_a_browser_shows_what_graph_answered(graph, tmp_path, kind):
    """Four kinds of run, drawn by a real browser at a phone's and a laptop's width (the
    screenshots stay in the test's tmp_path: look at them): the scale fits the rows Graph
    answered, rows never sent are a note and never a bar, and 429s have a lane of their own."""
    _chromium()
    config, count, invalid, options, interrupt_after = RUNS[kind]
    for name, value in config.items():
        graph.call(setattr, graph.emulator.config, name, value)
    if kind == "faults":  # and two rows Graph refuses
        refuse = {"status": 400, "code": "BadRequest", "message": "no"}
        graph.call(graph.emulator.script, [{**refuse, "thumbprint": thumb(n)} for n in (30, 31)])
    rows = [row(n) for n in range(1, count + 1)]
    for n in range(invalid):
        rows[10 * n + 5] = row(10 * n + 6, certificateThumbprint="not hex")
    out = tmp_path / "out"
    code = _run_cli(
        write_inventory(tmp_path / "inv.csv", rows), out, *options, interrupt_after=interrupt_after
    )
    assert code == {"clean": 0, "interrupted": 130}.get(kind, 1)
    html = (out / "report.html").read_text()
    for width in WIDTHS:
        png = tmp_path / f"{kind}-{width}.png"
        assert screenshot(out / "report.html", png, width, tmp_path / "profile")[0] == width
    top = float(re.search(r'id="throughput-chart"[^>]*data-top="([^"]+)"', html)[1])
    summary = json.loads((out / "summary.json").read_text())
    answered = summary["counts"]["created"] + summary["counts"]["rejected"] - invalid
    if kind == "faults":
        assert summary["counts"]["rejected"] == invalid + 2 and 'fill="#ef6c00"' in html
    assert top <= max(answered, 1)  # never the whole run in one second
    never_sent = re.search(r"([\d,]+) never sent", html)
    if kind == "interrupted":
        assert never_sent and int(never_sent[1].replace(",", "")) > 100
        assert top <= 50  # 10 rows/s let through, not the rows never sent
    else:
        assert never_sent is None
    if invalid:
        assert f"{invalid} rejected before sending" in html
    throttled = int(re.search(r'id="throttled-total">([\d,]+)<', html)[1].replace(",", ""))
    assert throttled == summary["throttled"]
    if kind in ("throttled", "interrupted"):
        assert throttled > 0 and 'fill="#c62828"' in html
        assert re.search(r"<title>paused from .* [1-9]\d* × 429</title>", html)
