"""report.html: self-contained, escaped, and rendered by a real browser with the right counts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import Page, invoke, row, thumb, write_inventory

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
