"""The event loop choice in CLI runs: a run works on either loop, a bad choice is exit 2."""

from __future__ import annotations

import pytest
from helpers import invoke, read_results, row, write_inventory

from importer import aio

uvloop = pytest.importorskip("uvloop")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_run_works_on_either_loop(graph, tmp_path, monkeypatch, loop):
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, loop)
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(20)])
    result = invoke("run", str(path), "--out", str(tmp_path / "o"), catch_exceptions=True)
    assert result.exit_code == 0, result.stderr
    assert [r["status"] for r in read_results(tmp_path / "o")] == ["created"] * 20


def test_a_bad_loop_setting_is_one_line_and_exit_2(graph, tmp_path, monkeypatch):
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, "tokio")
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    result = invoke("run", str(path), "--out", str(tmp_path / "o"), catch_exceptions=True)
    assert result.exit_code == 2
    assert "CERTIMPORT_EVENT_LOOP must be one of auto, uvloop, asyncio" in result.stderr
    assert "Traceback" not in result.stderr
    assert graph.stats()["posts"] == 0
