"""The official SDK (msgraph-beta-sdk, the ``bench`` extra) as a second client of the emulator:
``benchmarks/sdk_check.py``, skipped where the SDK is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from helpers import ROOT

from importer.emulator import EmulatorConfig, GraphEmulator

pytest.importorskip("msgraph_beta", reason="msgraph-beta-sdk (the bench extra) not installed")

SCRIPT = ROOT / "benchmarks" / "sdk_check.py"
# The SDK's generated request builders warn about their own deprecated classes as they load.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sdk_check():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sdk_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sdk_check"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


async def test_what_the_sdk_sends_is_answered_as_graph_would() -> None:
    token = "sdk-token"
    config = EmulatorConfig(static_tokens=frozenset({token}), write_limit=0, read_limit=0)
    async with GraphEmulator(config) as emulator:
        steps = await sdk_check().check(emulator.base_url, token)
        assert [s for s in steps if not s.ok] == []
        assert len(steps) == 6
        assert emulator.stats["posts"] == 3  # two created, one refused (400)
        assert emulator.stats["patches"] == emulator.stats["deletes"] == 1
        assert emulator.stats["bad_requests"] == 1 and emulator.stats["not_found"] == 1


async def test_the_sdk_sees_a_graph_error_from_a_refused_token() -> None:
    async with GraphEmulator(EmulatorConfig(write_limit=0, read_limit=0)) as emulator:
        steps = await sdk_check().check(emulator.base_url, "not-accepted")
    (step,) = steps  # the first step fails, so nothing else is tried
    assert not step.ok and "ODataError" in step.detail


def test_the_script_runs_its_own_emulator_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok   ") == 6 and "FAIL" not in proc.stdout
