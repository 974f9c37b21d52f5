"""The pipeline, in one direction: read → validate → build bodies → post → report.

A ``run`` reads the file twice: a first pass validates everything (so that an unreadable file,
or ``--strict`` with bad rows, posts nothing, and every problem is reported before any traffic),
a second pass streams the valid rows to the worker pool. Outcomes are written in input order,
chunk by chunk, as soon as a chunk is complete, so memory stays flat for any file size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from importer import errors
from importer.client import GraphClient
from importer.config import Settings
from importer.errors import InputError, RunAborted
from importer.mapping import build_bodies
from importer.model import DEVICE, THUMBPRINT
from importer.outcome import FAILED, REJECTED, STATUSES, VALID, Outcome
from importer.report import ReportWriter
from importer.schema import ValidatedChunk, Validator
from importer.source import CsvSource, file_sha256

log = logging.getLogger("importer.runner")

Mode = Literal["validate", "dry-run", "run"]
Say = Callable[[str], None]


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for."""

    path: str
    out_dir: Path
    mode: Mode = "run"
    strict: bool = False
    show_errors: int = 100  # problems echoed to the console; all are in the reports (0 = all)


@dataclass
class RunSummary:
    """Counts and timings of a run; written to summary.json and shown at the end."""

    input: str
    input_sha256: str
    mode: Mode
    out_dir: str
    target: str = ""
    started: str = ""
    finished: str = ""
    duration_seconds: float = 0.0
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    rows_per_second: float = 0.0
    exit_code: int = 0
    stopped: str = ""  # why the run stopped early, if it did
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form written to summary.json."""
        return dict(self.__dict__)


def _rejection(vc: ValidatedChunk, pos: int) -> Outcome:
    problems = vc.problems[pos]
    message = "; ".join(
        f"column {p.column}: {p.value!r} {p.reason}"
        if p.value is not None
        else (f"column {p.column}: {p.reason}" if p.column else p.reason)
        for p in problems
    )
    return Outcome(REJECTED, error_code="InvalidRow", error_message=message)


class _Problems:
    """Echoes row problems to the operator, up to a limit."""

    def __init__(self, path: str, say: Say, limit: int) -> None:
        self.path = path
        self.say = say
        self.limit = limit
        self.shown = 0
        self.total = 0

    def report(self, vc: ValidatedChunk) -> None:
        for pos in sorted(vc.problems):
            for problem in vc.problems[pos]:
                self.total += 1
                if self.limit == 0 or self.shown < self.limit:
                    self.shown += 1
                    self.say(problem.describe(self.path))

    def close(self, out_dir: Path) -> None:
        if self.total > self.shown:
            self.say(
                f"... and {self.total - self.shown} more problem(s): see {out_dir / 'results.csv'}"
            )


@dataclass
class _Pending:
    """A chunk whose outcomes are being collected; written out once all are known."""

    vc: ValidatedChunk
    outcomes: list[Outcome | None]
    remaining: int


def _validated(source: CsvSource, validator: Validator) -> Iterator[ValidatedChunk]:
    for chunk in source.chunks():
        yield validator.validate(chunk)


class Runner:
    """Runs one request against one settings object; ``stop()`` asks it to wind down."""

    def __init__(self, settings: Settings, request: RunRequest, *, say: Say) -> None:
        self.settings = settings
        self.request = request
        self.say = say
        self.stopping = False
        self.abort: RunAborted | None = None

    def stop(self) -> None:
        """Stop sending: in-flight requests finish, the rest are reported as not sent."""
        if not self.stopping:
            self.say("stopping: finishing requests in flight, then writing the reports")
        self.stopping = True

    async def execute(self, client: GraphClient | None = None) -> RunSummary:
        """Validate (and in run mode post) the file; write the reports; return the summary."""
        request = self.request
        settings = self.settings
        started = datetime.now(UTC)
        clock = time.monotonic()
        source = CsvSource(request.path, chunk_size=settings.chunk_size)
        summary = RunSummary(
            input=str(Path(request.path).resolve()),
            input_sha256=file_sha256(request.path),
            mode=request.mode,
            out_dir=str(request.out_dir),
            target=settings.collection_url if request.mode == "run" else "",
            started=started.isoformat(),
        )
        if source.header.extras:
            warning = (
                f"{request.path}:1: column(s) {', '.join(source.header.extras)} are not Graph "
                "properties: they are ignored and not sent"
            )
            summary.warnings.append(warning)
            self.say(f"warning: {warning}")
        problems = _Problems(request.path, self.say, request.show_errors)
        refuse = False
        if request.mode == "run":
            records, invalid = await asyncio.to_thread(self._scan, source, problems)
            if not records:
                raise InputError(request.path, "no data rows after the header")
            refuse = request.strict and invalid > 0
            if refuse:
                summary.stopped = f"--strict: {invalid} invalid row(s), nothing was posted"
        writer = ReportWriter(request.out_dir, source.header.names)
        counts: Counter[str] = Counter()
        try:
            if request.mode == "run" and not refuse:
                assert client is not None, "run mode needs a client"
                await self._post(source, client, writer, counts)
                summary.requests = client.stats.requests
                summary.throttled = client.stats.throttled
                summary.retries = client.stats.retries
            else:
                report = None if request.mode == "run" else problems
                await asyncio.to_thread(self._write_unposted, source, writer, counts, report)
                if not sum(counts.values()):
                    raise InputError(request.path, "no data rows after the header")
        except BaseException:
            writer.discard()
            raise
        problems.close(request.out_dir)
        finished = datetime.now(UTC)
        summary.finished = finished.isoformat()
        summary.duration_seconds = round(time.monotonic() - clock, 3)
        summary.records = sum(counts.values())
        summary.counts.update(counts)
        done = summary.counts["created"] if request.mode == "run" else summary.counts[VALID]
        summary.rows_per_second = round(done / max(summary.duration_seconds, 1e-9), 1)
        if self.abort is not None:
            summary.stopped = str(self.abort)
        elif self.stopping:
            summary.stopped = "interrupted"
        summary.exit_code = self._exit_code(summary, refuse)
        writer.publish(summary.as_dict())
        return summary

    def _exit_code(self, summary: RunSummary, refused: bool) -> int:
        if self.abort is not None:
            return self.abort.exit_code
        if self.stopping:
            return errors.EXIT_INTERRUPTED
        if refused:
            return errors.EXIT_USAGE
        good = "created" if summary.mode == "run" else VALID
        return errors.EXIT_OK if summary.counts[good] == summary.records else errors.EXIT_INCOMPLETE

    def _scan(self, source: CsvSource, problems: _Problems) -> tuple[int, int]:
        validator = Validator(source.header, timezone=self.settings.timezone)
        records = invalid = 0
        for vc in _validated(source, validator):
            records += len(vc.valid)
            invalid += len(vc.problems)
            problems.report(vc)
        return records, invalid

    def _write_unposted(
        self,
        source: CsvSource,
        writer: ReportWriter,
        counts: Counter[str],
        problems: _Problems | None,
    ) -> None:
        """validate / dry-run / strict refusal: outcomes without any request."""
        validator = Validator(source.header, timezone=self.settings.timezone)
        valid = Outcome(VALID)
        for vc in _validated(source, validator):
            if problems is not None:
                problems.report(vc)
            if self.request.mode == "dry-run":
                build_bodies(vc.values, np.flatnonzero(vc.valid))
            outcomes = [
                _rejection(vc, pos) if pos in vc.problems else valid for pos in range(len(vc.valid))
            ]
            self._write(writer, vc, outcomes, counts)

    @staticmethod
    def _write(
        writer: ReportWriter, vc: ValidatedChunk, outcomes: list[Outcome], counts: Counter[str]
    ) -> None:
        devices = vc.values[DEVICE].tolist() if DEVICE in vc.values else [""] * len(outcomes)
        writer.write(
            vc.lines.tolist(), outcomes, vc.values[THUMBPRINT].tolist(), devices, vc.chunk.raw
        )
        counts.update(o.status for o in outcomes)

    def _not_sent(self) -> Outcome:
        reason = f"run aborted: {self.abort}" if self.abort else "run interrupted before sending"
        return Outcome(FAILED, error_code="NotSent", error_message=reason)

    async def _post(
        self, source: CsvSource, client: GraphClient, writer: ReportWriter, counts: Counter[str]
    ) -> None:
        validator = Validator(source.header, timezone=self.settings.timezone)
        concurrency = self.settings.concurrency
        queue: asyncio.Queue[tuple[_Pending, int, dict[str, Any]] | None] = asyncio.Queue(
            maxsize=concurrency * 4
        )
        pending: deque[_Pending] = deque()

        def flush() -> None:
            while pending and pending[0].remaining == 0:
                done = pending.popleft()
                outcomes = [o for o in done.outcomes if o is not None]
                self._write(writer, done.vc, outcomes, counts)

        async def worker() -> None:
            batch = self.settings.batch
            finished = False
            while not finished:
                item = await queue.get()
                if item is None:
                    return
                items = [item]
                while len(items) < batch and not queue.empty():
                    extra = queue.get_nowait()
                    if extra is None:
                        finished = True
                        break
                    items.append(extra)
                if self.stopping or self.abort is not None:
                    outcomes = [self._not_sent()] * len(items)
                else:
                    try:
                        outcomes = await client.create_batch([body for _, _, body in items])
                    except RunAborted as exc:
                        if self.abort is None:
                            self.abort = exc
                            self.say(f"error: {exc}")
                        failed = Outcome(FAILED, error_code="RunAborted", error_message=str(exc))
                        outcomes = [failed] * len(items)
                for (slot, pos, _), outcome in zip(items, outcomes, strict=True):
                    slot.outcomes[pos] = outcome
                    slot.remaining -= 1
                flush()

        async def produce() -> None:
            chunks = _validated(source, validator)
            while (vc := await asyncio.to_thread(next, chunks, None)) is not None:
                rows = np.flatnonzero(vc.valid)
                slot = _Pending(
                    vc,
                    [
                        _rejection(vc, pos) if pos in vc.problems else None
                        for pos in range(len(vc.valid))
                    ],
                    len(rows),
                )
                pending.append(slot)
                bodies = build_bodies(vc.values, rows)
                for pos, body in zip(rows.tolist(), bodies, strict=True):
                    await queue.put((slot, pos, body))
                flush()
            for _ in range(concurrency):
                await queue.put(None)

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
            group.create_task(produce())
        flush()
