"""The metrics file on its own: the last success is carried over when a run did not finish."""

from __future__ import annotations

import pytest

from importer.reports.metrics import read_last_success, render_metrics, write_metrics
from importer.run.pipeline import RunSummary


@pytest.mark.parametrize(("exit_code", "carried"), [(0, False), (1, False), (2, True), (3, True)])
def test_last_success_is_now_only_when_the_run_finished(tmp_path, exit_code, carried):
    target = tmp_path / "m.prom"
    target.write_text(render_metrics(None, exit_code=0, finished=1000.0, last_success=1000.0))
    summary = RunSummary(input="x", input_sha256="", mode="run", out_dir="o", exit_code=exit_code)
    write_metrics(target, summary, exit_code=exit_code, now=2000.0)
    assert read_last_success(target) == (1000.0 if carried else 2000.0)
