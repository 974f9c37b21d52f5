"""Shared fixtures: the in-repo Graph emulator over real loopback HTTP, and a test clock."""

from __future__ import annotations

import asyncio
import csv
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from importer.emulator import EmulatorConfig, GraphEmulator

T = TypeVar("T")
STATIC_TOKEN = "static-secret-7f3a9c1e"
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
HEADER = [
    "certificateThumbprint",
    "certificateSerialNumber",
    "managedDeviceDisplayName",
    "userPrincipalName",
    "certificateIssuerName",
    "certificateSubjectName",
    "certificateRevokeStatus",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateKeyUsages",
    "certificateExtendedKeyUsages",
]
# Every writable property, in Graph's order (HEADER lacks the optional last-change date).
ALL_COLUMNS = [*HEADER[:7], "certificateRevokeStatusLastChangeDateTime", *HEADER[7:]]


def thumb(n: int) -> str:
    """A distinct valid thumbprint for row ``n``."""
    return f"{n:040X}"


def row(n: int, **changes: str) -> dict[str, str]:
    """A valid inventory row; keyword arguments replace cells."""
    cells = {
        "certificateThumbprint": thumb(n),
        "certificateSerialNumber": f"{n:X}",
        "managedDeviceDisplayName": f"PC-{n:05d}",
        "userPrincipalName": f"user{n}@contoso.com",
        "certificateIssuerName": "CN=Contoso Issuing CA, DC=contoso, DC=com",
        "certificateSubjectName": f"CN=user{n}",
        "certificateRevokeStatus": "none",
        "certificateIssuanceDateTime": "2025-01-05T10:32:00Z",
        "certificateExpirationDateTime": "2026-01-05T10:32:00Z",
        "certificateKeyUsages": "160",
        "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2",
    }
    cells.update(changes)
    return cells


def write_inventory(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows as a Graph-shaped inventory CSV."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_results(out_dir: Path, name: str = "results.csv") -> list[dict[str, str]]:
    """The rows of a report CSV."""
    with (out_dir / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class FakeClock:
    """A monotonic clock that moves only when something sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


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


class ThreadedEmulator:
    """An emulator in a background thread, for tests that run the CLI (its own event loop)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emulator = GraphEmulator(config)
        self.call(self.emulator.start)

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` (sync or async) in the emulator's loop and return its result."""

        async def invoke() -> Any:
            result = func(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(timeout=30)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def records(self) -> list[dict[str, Any]]:
        return self.call(lambda: list(self.emulator.records.values()))

    def stats(self) -> dict[str, int]:
        return self.call(lambda: dict(self.emulator.stats))

    def close(self) -> None:
        self.call(self.emulator.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ThreadedEmulator]:
    """A threaded emulator, with the CERTIMPORT_* environment pointing at it (static token)."""
    threaded = ThreadedEmulator(
        EmulatorConfig(
            write_limit=0, read_limit=0, seed=11, static_tokens=frozenset({STATIC_TOKEN})
        )
    )
    monkeypatch.chdir(tmp_path)  # no stray config/certimport.toml; out/ lands in tmp
    for name in list(os.environ):
        if name.startswith(("CERTIMPORT_", "AZURE_", "IDENTITY_")):
            monkeypatch.delenv(name)
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
