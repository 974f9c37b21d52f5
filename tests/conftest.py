"""Fixtures of every layer: an isolated environment, the in-repo Graph emulator over real
loopback HTTP (in the test's loop, or in a thread for the CLI), and a test clock.

Plain helpers (rows, bodies, invoke, the clock and emulator classes) are in ``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import STATIC_TOKEN, FakeClock, ThreadedEmulator

from importer.emulator import EmulatorConfig, GraphEmulator

ISOLATED_PREFIXES = ("CERTIMPORT_", "AZURE_", "IDENTITY_")


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run from an empty ``tmp_path`` (no stray config/certimport.toml; relative reports land
    there) with no CERTIMPORT_*, AZURE_* or IDENTITY_* variable; returns ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator() -> AsyncIterator[GraphEmulator]:
    """An emulator in the test's own event loop, without throttling."""
    emu = GraphEmulator(EmulatorConfig(write_limit=0, read_limit=0, seed=7))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.close()


@pytest.fixture
def graph(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ThreadedEmulator]:
    """A threaded emulator, in an isolated environment whose CERTIMPORT_* variables point at it
    (static token)."""
    threaded = ThreadedEmulator(
        EmulatorConfig(
            write_limit=0, read_limit=0, seed=11, static_tokens=frozenset({STATIC_TOKEN})
        )
    )
    monkeypatch.setenv("CERTIMPORT_BASE_URL", threaded.base_url)
    monkeypatch.setenv("CERTIMPORT_AUTH_METHOD", "static")
    monkeypatch.setenv("CERTIMPORT_ACCESS_TOKEN", STATIC_TOKEN)
    monkeypatch.setenv("CERTIMPORT_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("CERTIMPORT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CERTIMPORT_RECONCILE_DELAY", "0")
    monkeypatch.setenv("CERTIMPORT_RATE_LIMIT", "0")  # tests that pace set their own
    try:
        yield threaded
    finally:
        threaded.close()
