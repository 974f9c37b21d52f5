"""The composition root of one command over one file.

A :class:`Session` loads the settings once (after the built-in emulator, when asked for, has
started and said where it listens), opens the target's journal, builds the token source and
the Graph client, installs the signal handlers, and runs the :class:`~importer.run.pipeline.
Runner`. Everything it opened is closed when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from importer.config import Settings, load_settings, tenant_of
from importer.logs import new_run_id, register_secret
from importer.reports.summary import RunSummary
from importer.run.journal import Journal, default_state_dir
from importer.run.monitor import RunMonitor
from importer.run.pipeline import Runner, RunRequest
from importer.send.auth import build_token_source
from importer.send.breaker import CircuitBreaker
from importer.send.client import ClientStats, GraphClient
from importer.send.pacing import Pacer
from importer.send.retry import RetryPolicy

T = TypeVar("T")
Say = Callable[[str], None]


def default_out_dir() -> Path:
    """``out/<UTC timestamp>``, with a suffix when that directory exists already."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = Path("out") / stamp
    n = 2
    while out.exists():
        out = Path("out") / f"{stamp}-{n}"
        n += 1
    return out


def journal_for(settings: Settings, *, lock: bool, run_id: str = "") -> Journal:
    """The journal of the settings' target (not opened yet), for the run ``run_id``."""
    state_dir = Path(settings.state_dir) if settings.state_dir else default_state_dir()
    return Journal.for_target(
        state_dir,
        settings.graph_root,
        tenant_of(settings),
        run_id=run_id or new_run_id(),
        lock=lock,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings ask for."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        deadline=settings.retry_deadline,
        max_retry_after=settings.max_retry_after,
    )


class Session:
    """One command (validate, dry-run, plan or run) over one file, with what it needs."""

    def __init__(
        self,
        *,
        config: str | None,
        overrides: Mapping[str, Any],
        say: Say,
        monitor: RunMonitor,
        use_emulator: bool = False,
    ) -> None:
        self.config = config
        self.overrides = dict(overrides)
        self.say = say
        self.monitor = monitor
        self.use_emulator = use_emulator

    def __repr__(self) -> str:
        return f"Session(config={self.config!r}, emulator={self.use_emulator})"

    async def run(self, request: RunRequest) -> RunSummary:
        """Run ``request``; its ``out_dir`` defaults to the settings' or ``out/<timestamp>``."""
        async with self._target() as overrides:
            settings = load_settings(self.config, overrides=overrides)
            out_dir = request.out_dir or (
                Path(settings.out_dir) if settings.out_dir else default_out_dir()
            )
            request = replace(request, out_dir=out_dir)
            if request.mode not in ("run", "plan"):
                return await self._execute(settings, request, None)
            with journal_for(
                settings, lock=request.mode == "run", run_id=request.run_id
            ) as journal:
                return await self._execute(settings, request, journal)

    @contextlib.asynccontextmanager
    async def _target(self) -> AsyncIterator[dict[str, Any]]:
        """The settings overrides of the target: the built-in emulator's when asked for."""
        if not self.use_emulator:
            yield self.overrides
            return
        from importer.emulator import EmulatorConfig, GraphEmulator

        emulator = GraphEmulator(EmulatorConfig())
        await emulator.start()
        overrides = {
            **self.overrides,
            "base_url": emulator.base_url,
            "auth_method": "static",
            "access_token": emulator.issue_token(),
        }
        scratch: tempfile.TemporaryDirectory[str] | None = None
        if not overrides.get("state_dir"):
            # The emulator forgets everything when it stops: so does its journal.
            scratch = tempfile.TemporaryDirectory(prefix="certimport-emulator-")
            overrides["state_dir"] = scratch.name
        self.say(f"using the built-in Graph emulator at {emulator.base_url}")
        try:
            yield overrides
        finally:
            await emulator.close()
            if scratch is not None:
                scratch.cleanup()

    async def against_target(
        self, work: Callable[[Settings, Journal, GraphClient], Awaitable[T]]
    ) -> T:
        """Run ``work`` with the target's settings, its journal (locked) and a Graph client:
        for the commands that talk to Graph without a file (journal adopt, verify)."""
        async with self._target() as overrides:
            settings = load_settings(self.config, overrides=overrides)
            if settings.access_token:
                register_secret(settings.access_token.reveal())
            with journal_for(settings, lock=True) as journal:
                async with self._client(settings) as client:
                    return await work(settings, journal, client)

    @contextlib.asynccontextmanager
    async def _client(self, settings: Settings) -> AsyncIterator[GraphClient]:
        tokens = build_token_source(settings)
        pacer = Pacer(settings.rate_limit, max_pause=settings.max_retry_after)
        stats = ClientStats()
        self.monitor.attach(pacer=pacer, stats=stats)
        try:
            async with GraphClient(
                settings.collection_url,
                tokens,
                policy=retry_policy(settings),
                pacer=pacer,
                read_pacer=Pacer(settings.read_rate_limit, max_pause=settings.max_retry_after),
                concurrency=settings.concurrency,
                request_timeout=settings.request_timeout,
                stats=stats,
                breaker=CircuitBreaker(
                    requests=settings.breaker_requests, seconds=settings.breaker_seconds
                ),
            ) as client:
                yield client
        finally:
            await tokens.close()

    async def _execute(
        self, settings: Settings, request: RunRequest, journal: Journal | None
    ) -> RunSummary:
        if settings.access_token:
            register_secret(settings.access_token.reveal())
        runner = Runner(settings, request, say=self.say, journal=journal, monitor=self.monitor)
        if request.mode != "run":
            return await _with_signals(runner.stop, runner.execute())
        async with self._client(settings) as client:
            return await _with_signals(runner.stop, runner.execute(client))


async def _with_signals(stop: Callable[[], None], work: Awaitable[T]) -> T:
    """Await ``work`` with SIGINT and SIGTERM calling ``stop`` instead of killing the process."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await work
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


__all__ = ["Session", "default_out_dir", "journal_for", "retry_policy", "tenant_of"]
