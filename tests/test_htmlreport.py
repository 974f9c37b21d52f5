"""report.html: self-contained, escaped, and rendered by a real browser with the right counts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import row, thumb, write_inventory

from importer.cli import cli
from importer.outcome import Outcome
from importer.reports.html import CSP, render_report
from importer.reports.results import ErrorDigest
from importer.reports.timeline import Timeline
from importer.run.pipeline import RunSummary

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


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


class Page(HTMLParser):
    """What the tests read off a page: counts, error codes, links, resources, scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.codes: list[str] = []
        self.links: list[str] = []
        self.fetches: list[str] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        if "data-count" in found and found.get("id", "").startswith("count-"):
            self.counts[found["id"].removeprefix("count-")] = int(found["data-count"] or 0)
        if tag == "tr" and "data-code" in found:
            self.codes.append(found["data-code"] or "")
        if tag == "a":
            self.links.append(found.get("href") or "")
        for name in ("src", "srcset", "data", "poster"):
            if name in found:
                self.fetches.append(f"{tag} {name}={found[name]}")
        if tag == "link":
            self.fetches.append(f"link {found.get('href')}")


def _summary(**changes: object) -> RunSummary:
    summary = RunSummary(
        input="/data/inv.csv",
        input_sha256="ab" * 32,
        mode="run",
        out_dir="/data/out/x",
        started="2026-11-27T01:00:00+00:00",
        finished="2026-11-27T01:10:00+00:00",
        duration_seconds=600.0,
        records=10,
        exit_code=1,
    )
    summary.counts.update(created=7, rejected=2, failed=1)
    for key, value in changes.items():
        setattr(summary, key, value)
    return summary


def test_page_escapes_input_text_and_fetches_nothing():
    digest = ErrorDigest()
    hostile = '<script>alert("x")</script><img src=http://evil.example/x.png>'
    for line in range(2, 8):
        digest.add(line, Outcome("rejected", error_code="BadRequest", error_message=hostile))
    digest.add(9, Outcome("failed", error_code="<b>HTTP503</b>", error_message="gave up"))
    digest.add(10, Outcome("created", id="x"))
    timeline = Timeline()
    timeline.add(0.5, done=3, throttled=2, requests=5)
    timeline.add(4.5, not_done=1, requests=1)
    text = render_report(_summary(warnings=[hostile]), timeline, digest)
    page = Page(text)
    assert "<script" not in text and "evil.example/x.png>" not in text
    assert page.fetches == [] and "script" not in page.tags
    assert f'content="{CSP}"' in text
    assert not re.search(r"url\(|@import", text)  # no resource pulled in by the style either
    assert page.counts == {"created": 7, "rejected": 2, "failed": 1, "records": 10}
    assert page.codes == ["BadRequest", "<b>HTTP503</b>"]
    assert text.count("<li>line ") == 3 + 1  # three examples of the first code, one of the next
    assert page.links == ["results.csv", "failed.csv", "summary.json"]
    assert "certimport retry /data/out/x" in text


def test_chart_of_a_long_run_stays_small():
    timeline = Timeline(max_buckets=720)
    for second in range(0, 3 * 86_400, 7):
        timeline.add(second, done=4, throttled=1 if second % 700 == 0 else 0, requests=4)
    text = render_report(_summary(), timeline, ErrorDigest())
    assert text.count("<rect") <= 2 * 720
    assert len(text) < 400_000


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(INSTALL)
    return exe


def _isolated() -> list[str]:
    """A private network namespace for the browser, where this machine allows one."""
    for prefix in (["unshare", "-n", "--"], ["unshare", "-rn", "--"]):
        if shutil.which("unshare"):
            probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
            if probe.returncode == 0:
                return prefix
    return []


def render_dom(page: Path, profile: Path) -> str:
    """The DOM headless chromium built from ``page`` (a file: URL, no network)."""
    cmd = [*_isolated(), _chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
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
    assert page.codes[:1] == ["InvalidRow"] and set(page.codes) == {
        "InvalidRow",
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
