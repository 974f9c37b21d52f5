"""The pipeline, in one direction: read → validate → decide → send → journal → report.

A ``run`` reads the file twice: a first pass validates everything (so that an unreadable file,
or ``--strict`` with bad rows, posts nothing, and every problem is reported before any traffic),
a second pass streams the rows to the worker pool. For each valid row the journal decides:
new → create; created with the same body → skipped; created with another body → changed
(PATCHed with ``--update``); in doubt (a send whose answer was lost, or a crash mid-send) →
looked up in Graph first. A row's intent is durable before it is sent, its outcome before the
report claims it. Outcomes are written in input order, chunk by chunk, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from importer import errors
from importer.config import Settings
from importer.errors import InputError, RunAborted
from importer.input.mapping import body_hashes, build_bodies
from importer.input.schema import ValidatedChunk, Validator
from importer.input.source import Chunk, CsvSource, file_sha256
from importer.model import DEVICE, THUMBPRINT
from importer.outcome import (
    CHANGED,
    CREATED,
    DONE,
    FAILED,
    REJECTED,
    SKIPPED,
    STATUSES,
    UNKNOWN,
    UPDATED,
    VALID,
    Outcome,
)
from importer.reports.html import render_report
from importer.reports.reading import Reading
from importer.reports.results import ERROR_COLUMN, ReportWriter
from importer.run.journal import Entry, Journal, Record, row_key
from importer.run.monitor import RunMonitor
from importer.send.client import GraphClient

log = logging.getLogger("importer.runner")
T = TypeVar("T")

Mode = Literal["validate", "dry-run", "plan", "run"]
Say = Callable[[str], None]
# Rows a ``retry`` re-sends from a failed.csv: those whose import_error starts with these.
RETRY_STATUSES = (FAILED, UNKNOWN)
INTENT_GROUP = 256  # intents made durable together, just before their rows are queued
OUTCOME_GROUP = 256  # outcomes made durable together (and at least once a second)
SEND_SLICE = 2048  # rows decided and given bodies at a time in the sending pass
RECONCILE_ROUNDS = 3  # lookup → re-post cycles for a row whose answers keep getting lost


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for."""

    path: str
    out_dir: Path
    mode: Mode = "run"
    strict: bool = False
    show_errors: int = 100  # problems echoed to the console; all are in the reports (0 = all)
    allow_shrink: bool = False
    only_statuses: tuple[str, ...] = ()  # retry: only failed.csv rows with these statuses
    command: str = ""  # the command as the operator typed it (retry), when not the mode
    config: Path | None = None  # the settings file read, recorded with how the input was read
    emulator: bool = False  # sending to the built-in emulator
    expect_target: str = ""  # retry: the collection the run sent to (refused if another)
    label: str = ""  # the input's name in reports when not its path (<stdin>)


@dataclass
class RunSummary:
    """Counts and timings of a run; written to summary.json and shown at the end."""

    input: str
    input_sha256: str
    mode: Mode
    out_dir: str
    run_id: str = ""
    target: str = ""
    journal: str = ""
    started: str = ""
    finished: str = ""
    duration_seconds: float = 0.0
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    reconciled: int = 0
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    rows_per_second: float = 0.0
    exit_code: int = 0
    stopped: str = ""  # why the run stopped early, if it did
    warnings: list[str] = field(default_factory=list)
    command: str = ""  # "retry" for a retry; else the mode is the command
    reading: dict[str, Any] = field(default_factory=dict)  # how the input was read (Reading)

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


def _slices(vc: ValidatedChunk, size: int) -> Iterator[ValidatedChunk]:
    """``vc`` in pieces of ``size`` records: sending starts before a whole chunk is prepared."""
    total = len(vc.valid)
    if total <= size:
        yield vc
        return
    chunk = vc.chunk
    for start in range(0, total, size):
        stop = min(total, start + size)
        yield ValidatedChunk(
            Chunk(
                chunk.raw.iloc[start:stop].reset_index(drop=True),
                chunk.lines[start:stop],
                {p - start: f for p, f in chunk.faults.items() if start <= p < stop},
            ),
            vc.values.iloc[start:stop].reset_index(drop=True),
            vc.valid[start:stop],
            {p - start: v for p, v in vc.problems.items() if start <= p < stop},
        )


def _stamp(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def _log_row(vc: ValidatedChunk, pos: int, outcome: Outcome) -> None:
    """One DEBUG line for one row's outcome, with its fields for JSON logs."""
    line = int(vc.lines[pos])
    thumbprint = vc.values[THUMBPRINT].iat[pos]
    log.debug(
        "line %d: %s %s",
        line,
        outcome.status,
        outcome.error_code or outcome.id,
        extra={
            "event": "row",
            "line": line,
            "status": outcome.status,
            "thumbprint": thumbprint if isinstance(thumbprint, str) else "",
            "id": outcome.id,
            "http_status": outcome.http_status,
            "error_code": outcome.error_code,
            "error_message": outcome.error_message,
            "attempts": outcome.attempts,
            "request_id": outcome.request_id,
        },
    )


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


@dataclass(slots=True)
class _Job:
    """One row to send: create, update (PATCH) or reconcile (look up, then create)."""

    slot: _Pending
    pos: int
    body: dict[str, Any]
    key: str
    thumbprint: str
    device: str
    body_hash: int
    kind: Literal["create", "update", "reconcile"] = "create"
    graph_id: str = ""


class Runner:
    """Runs one request against one settings object; ``stop()`` asks it to wind down."""

    def __init__(
        self,
        settings: Settings,
        request: RunRequest,
        *,
        say: Say,
        journal: Journal | None = None,
        monitor: RunMonitor | None = None,
    ) -> None:
        self.settings = settings
        self.request = request
        self.say = say
        self.journal = journal
        self.monitor = monitor or RunMonitor()  # live counters: progress display, timeline
        self.stopping = False
        self.abort: RunAborted | None = None
        self.reconciled = 0
        # One thread for chunk work, not a pool: glibc gives every thread its own malloc arena,
        # and chunk-sized allocations spread over several arenas tripled the peak memory.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certimport-chunks")
        # Journal and report writes, in order, on a thread of their own: an intent's fsync
        # must not wait behind the reading of a chunk (their allocations are slice-sized).
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certimport-writes")

    async def _off_loop(self, func: Callable[..., T], *args: Any) -> T:
        """Run chunk work (parsing, validation, deciding) off the event loop, on one thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def stop(self) -> None:
        """Stop sending: in-flight requests finish, the rest are reported as not sent."""
        if not self.stopping:
            self.say("stopping: finishing requests in flight, then writing the reports")
        self.stopping = True

    def _source(self) -> CsvSource:
        settings = self.settings
        return CsvSource(
            self.request.path,
            chunk_size=settings.chunk_size,
            encoding=settings.encoding,
            delimiter=settings.delimiter or None,
            profile=settings.profile,
            columns=settings.columns,
        )

    def _validator(self, source: CsvSource) -> Validator:
        settings = self.settings
        return Validator(
            source.header,
            timezone=settings.timezone,
            date_format=settings.date_format or None,
            dayfirst=settings.dayfirst,
        )

    def _validated(self, source: CsvSource) -> Iterator[ValidatedChunk]:
        validator = self._validator(source)
        selected = self._selector(source)
        for chunk in source.chunks():
            if selected is not None:
                keep = selected(chunk.raw)
                if not keep.any():
                    continue
                chunk = replace(
                    chunk, raw=chunk.raw.loc[keep].reset_index(drop=True), lines=chunk.lines[keep]
                )
            yield validator.validate(chunk)

    def _selector(self, source: CsvSource) -> Callable[[Any], np.ndarray] | None:
        """For ``retry``: keep only failed.csv rows whose import_error has a retry status."""
        wanted = self.request.only_statuses
        if not wanted:
            return None
        column = next(
            (n for n in source.header.names if n.strip().casefold() == ERROR_COLUMN), None
        )
        if column is None:
            raise InputError(
                self.request.path,
                f"has no {ERROR_COLUMN} column: retry needs the failed.csv of a run",
                line=1,
            )
        prefixes = tuple(f"{status}:" for status in wanted)

        def select(raw: Any) -> np.ndarray:
            return np.asarray(raw[column].str.startswith(prefixes).to_numpy(), dtype=bool)

        return select

    async def execute(self, client: GraphClient | None = None) -> RunSummary:
        """Validate, and in run mode send, the file; write the reports; return the summary."""
        try:
            return await self._execute(client)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._writer.shutdown(wait=False, cancel_futures=True)

    async def _execute(self, client: GraphClient | None) -> RunSummary:
        request = self.request
        settings = self.settings
        started = datetime.now(UTC)
        clock = time.monotonic()
        source = self._source()
        run_id = started.strftime("%Y%m%dT%H%M%S.%fZ")
        summary = RunSummary(
            input=request.label or str(Path(request.path).resolve()),
            input_sha256=file_sha256(request.path),
            mode=request.mode,
            out_dir=str(request.out_dir),
            run_id=run_id,
            target=settings.collection_url if request.mode in ("run", "plan") else "",
            journal=str(self.journal.path) if self.journal else "",
            started=started.isoformat(),
            command=request.command or request.mode,
            reading=Reading.of_run(
                settings,
                source.header.profile,
                encoding=source.dialect.encoding,
                delimiter=source.dialect.delimiter,
                config=request.config,
                journal=self.journal.path if self.journal else None,
                emulator=request.emulator,
            ).as_dict(),
        )
        self._check_target()
        note = source.notable()  # a plain Graph-shaped UTF-8 file goes without saying
        if note and not request.only_statuses:
            self.say(f"reading {request.path}: {note}")
        if source.header.extras:
            warning = (
                f"{request.path}:1: column(s) {', '.join(source.header.extras)} are not Graph "
                "properties: they are ignored and not sent"
            )
            summary.warnings.append(warning)
            self.say(f"warning: {warning}")
        problems = _Problems(request.path, self.say, request.show_errors)
        refuse = ""
        if request.mode == "run":
            self.monitor.phase = "validating"
            before = _stamp(request.path)
            records, invalid, only = await self._off_loop(self._scan, source, problems)
            if _stamp(request.path) != before:
                raise InputError(
                    request.path,
                    "changed while it was being read; run again once the export is complete",
                )
            if request.only_statuses:
                if not records:
                    wanted = " or ".join(request.only_statuses)
                    raise errors.NothingToRetry(
                        f"nothing to retry: {request.path} has no {wanted} rows"
                    )
                if note:  # said only when there is something to retry (cron runs it nightly)
                    self.say(f"reading {request.path}: {note}")
            if not records:
                raise InputError(request.path, "no data rows after the header")
            if request.strict and invalid:
                refuse = f"--strict: {invalid} invalid row(s), nothing was posted"
            self._guard_shrink(summary.input, records)
        writer = ReportWriter(request.out_dir, source.header.names)
        counts: Counter[str] = Counter()
        if self.journal is not None and request.mode == "run":
            self.journal.start_run(summary.input, summary.input_sha256, "run", summary.started)
        try:
            if request.mode == "run" and not refuse:
                assert client is not None, "run mode needs a client"
                self.monitor.begin(records, pacer=client.pacer, stats=client.stats)
                sampler = asyncio.create_task(self.monitor.sample_every(1.0))
                try:
                    await self._send(source, client, writer, counts, only)
                finally:
                    sampler.cancel()
                    self.monitor.sample()
                summary.requests = client.stats.requests
                summary.throttled = client.stats.throttled
                summary.retries = client.stats.retries
            else:
                report = None if request.mode == "run" else problems
                await self._off_loop(self._write_unsent, source, writer, counts, report)
                if not sum(counts.values()):
                    raise InputError(request.path, "no data rows after the header")
        except BaseException:
            writer.discard()
            raise
        problems.close(request.out_dir)
        summary.finished = datetime.now(UTC).isoformat()
        summary.duration_seconds = round(time.monotonic() - clock, 3)
        summary.records = sum(counts.values())
        summary.counts.update(counts)
        summary.reconciled = self.reconciled
        done = sum(summary.counts[s] for s in DONE) if request.mode == "run" else counts[VALID]
        summary.rows_per_second = round(done / max(summary.duration_seconds, 1e-9), 1)
        if self.abort is not None:
            summary.stopped = str(self.abort)
        elif self.stopping:
            summary.stopped = "interrupted"
        elif refuse:
            summary.stopped = refuse
        summary.exit_code = self._exit_code(summary, bool(refuse))
        if self.journal is not None and request.mode == "run":
            self.journal.finish_run(
                summary.records, summary.exit_code, summary.out_dir, dict(counts)
            )
        timeline = self.monitor.timeline if request.mode == "run" else None
        writer.publish(summary.as_dict(), html=render_report(summary, timeline, writer.errors))
        return summary

    def _check_target(self) -> None:
        """For ``retry``: refuse to send a run's rows to another target than the run's."""
        expected = self.request.expect_target
        actual = self.settings.collection_url
        if expected and not self.request.emulator and expected != actual:
            raise errors.UsageError(
                f"the run sent to {expected}, these settings to {actual}: its unknown rows can "
                "only be settled where they were sent; pass the run's --config"
            )

    def _guard_shrink(self, source: str, records: int) -> None:
        """Refuse an input far smaller than the last completed run of the same file."""
        if self.journal is None or self.request.allow_shrink or self.request.only_statuses:
            return
        last = self.journal.last_run(source)
        if last and last["records"] and records < last["records"] * self.settings.shrink_guard:
            raise InputError(
                self.request.path,
                f"has {records} rows, fewer than {self.settings.shrink_guard:.0%} of the "
                f"{last['records']} of the last run (finished {last['finished']}); "
                "a truncated export?",
                hint="pass --allow-shrink if the inventory really shrank",
            )

    def _exit_code(self, summary: RunSummary, refused: bool) -> int:
        if self.abort is not None:
            return self.abort.exit_code
        if self.stopping:
            return errors.EXIT_INTERRUPTED
        if refused:
            return errors.EXIT_USAGE
        if summary.mode == "run":
            done = sum(summary.counts[s] for s in DONE)
        else:
            done = summary.counts[VALID] + summary.counts[SKIPPED]
        return errors.EXIT_OK if done == summary.records else errors.EXIT_INCOMPLETE

    def _scan(
        self, source: CsvSource, problems: _Problems
    ) -> tuple[int, int, ValidatedChunk | None]:
        """The first pass: (records, invalid records, the chunk if the file is only one).

        A file that fits in one chunk is read and validated once: the sending pass reuses it
        (it would hold that chunk in memory anyway).
        """
        records = invalid = 0
        only: ValidatedChunk | None = None
        for count, vc in enumerate(self._validated(source)):
            records += len(vc.valid)
            invalid += len(vc.problems)
            problems.report(vc)
            self.monitor.scanned = records
            only = vc if count == 0 else None  # not kept past the second chunk
        return records, invalid, only

    def _write_unsent(
        self,
        source: CsvSource,
        writer: ReportWriter,
        counts: Counter[str],
        problems: _Problems | None,
    ) -> None:
        """validate / dry-run / plan / strict refusal: outcomes without any request."""
        valid = Outcome(VALID)
        for vc in self._validated(source):
            if problems is not None:
                problems.report(vc)
            outcomes: list[Outcome] = [
                _rejection(vc, pos) if pos in vc.problems else valid for pos in range(len(vc.valid))
            ]
            rows = np.flatnonzero(vc.valid)
            if self.request.mode == "dry-run":
                build_bodies(vc.values, rows)
            elif self.request.mode == "plan" and self.journal is not None:
                for job in self._decide(vc, rows, outcomes, None):
                    verdict = "would be looked up first" if job.kind == "reconcile" else ""
                    outcomes[job.pos] = Outcome(VALID, id=job.graph_id, error_message=verdict)
            if log.isEnabledFor(logging.DEBUG):
                for pos, outcome in enumerate(outcomes):
                    _log_row(vc, pos, outcome)
            self._write(writer, vc, outcomes, counts)

    def _write(
        self,
        writer: ReportWriter,
        vc: ValidatedChunk,
        outcomes: list[Outcome],
        counts: Counter[str],
    ) -> None:
        devices = vc.values[DEVICE].tolist() if DEVICE in vc.values else [""] * len(outcomes)
        writer.write(
            vc.lines.tolist(), outcomes, vc.values[THUMBPRINT].tolist(), devices, vc.chunk.raw
        )
        counts.update(o.status for o in outcomes)

    def _decide(
        self,
        vc: ValidatedChunk,
        rows: np.ndarray,
        outcomes: list[Outcome | None] | list[Outcome],
        slot: _Pending | None,
    ) -> list[_Job]:
        """Settle skipped/changed rows in ``outcomes``; return the rows that need sending.

        The jobs' bodies are left empty: only rows that are sent need one (see ``_send``).
        """
        thumbs = vc.values[THUMBPRINT].iloc[rows].tolist()
        devices = vc.values[DEVICE].iloc[rows].tolist() if DEVICE in vc.values else [""] * len(rows)
        keys = [row_key(t, d) for t, d in zip(thumbs, devices, strict=True)]
        hashes = body_hashes(vc.values, rows).tolist()
        known: dict[str, Entry] = self.journal.lookup(keys) if self.journal else {}
        jobs: list[_Job] = []
        placeholder = slot or _Pending(vc, [], 0)
        for pos, key, thumb, device, body_hash in zip(
            rows.tolist(), keys, thumbs, devices, hashes, strict=True
        ):
            job = _Job(placeholder, pos, {}, key, thumb, device, body_hash)
            entry = known.get(key)
            if entry is None:
                jobs.append(job)
            elif entry.in_doubt:
                job.kind = "reconcile"
                jobs.append(job)
            elif entry.status in (CREATED, UPDATED):
                if entry.body_hash == body_hash:
                    outcomes[pos] = Outcome(SKIPPED, id=entry.graph_id)
                elif self.settings.update:
                    job.kind, job.graph_id = "update", entry.graph_id
                    jobs.append(job)
                else:
                    outcomes[pos] = Outcome(
                        CHANGED,
                        id=entry.graph_id,
                        error_code="Changed",
                        error_message="created earlier with other values; --update applies them",
                    )
            else:
                jobs.append(job)
        return jobs

    def _not_sent(self) -> Outcome:
        reason = f"run aborted: {self.abort}" if self.abort else "run interrupted before sending"
        return Outcome(FAILED, error_code="NotSent", error_message=reason)

    async def _run_job(self, client: GraphClient, job: _Job) -> Outcome:
        """Send one row, looking it up first (and after a lost answer) where in doubt."""
        if job.kind == "update":
            return await client.update(job.graph_id, job.body)
        outcome: Outcome | None = None
        rounds = 0
        reconcile = job.kind == "reconcile"
        while rounds < RECONCILE_ROUNDS:
            if reconcile:
                if self.settings.reconcile_delay:
                    await client.policy.sleep(self.settings.reconcile_delay)
                lookup = await client.find(job.thumbprint, job.device)
                if lookup.found:
                    self.reconciled += 1
                    return Outcome(
                        CREATED,
                        id=lookup.object_id,
                        error_message="reconciled: found in Graph after a lost answer",
                        attempts=outcome.attempts if outcome else 0,
                    )
                if not lookup.supported and self.settings.reconcile != "repost":
                    return outcome or Outcome(
                        UNKNOWN,
                        error_code="LookupUnavailable",
                        error_message=f"may exist in Graph; the lookup failed ({lookup.reason}); "
                        "check in Intune, or set reconcile = repost",
                    )
            rounds += 1
            sent = await client.create(job.body)
            if outcome is not None:
                sent = replace(sent, attempts=sent.attempts + outcome.attempts)
            outcome = sent
            if outcome.status != UNKNOWN:
                return outcome
            reconcile = True
        assert outcome is not None
        return outcome

    def _prepare(self, chunks: Iterator[ValidatedChunk]) -> tuple[_Pending, list[_Job]] | None:
        """Read the next chunk and decide each row; the jobs carry their bodies (chunk thread)."""
        vc = next(chunks, None)
        if vc is None:
            return None
        slot = _Pending(vc, [None] * len(vc.valid), 0)
        for pos in vc.problems:
            slot.outcomes[pos] = _rejection(vc, pos)
        jobs = self._decide(vc, np.flatnonzero(vc.valid), slot.outcomes, slot)
        bodies = build_bodies(vc.values, np.array([job.pos for job in jobs], dtype=int))
        for job, body in zip(jobs, bodies, strict=True):
            job.body = body
        slot.remaining = len(jobs)
        return slot, jobs

    async def _send(
        self,
        source: CsvSource,
        client: GraphClient,
        writer: ReportWriter,
        counts: Counter[str],
        only: ValidatedChunk | None = None,
    ) -> None:
        """The sending pass. The event loop only sends and settles rows: reading and deciding
        run on the chunk thread, journal and report writes in order on the writer thread."""
        concurrency = self.settings.concurrency
        # Unbounded, but the producer only adds a group when it is nearly empty: rows queued
        # one by one into a full queue would wake the producer for every row taken.
        queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        low_water = max(concurrency * self.settings.batch, INTENT_GROUP)
        room = asyncio.Event()
        pending: deque[_Pending] = deque()
        journal = self.journal
        monitor = self.monitor
        row_debug = log.isEnabledFor(logging.DEBUG)
        loop = asyncio.get_running_loop()
        records: list[Record] = []  # outcomes not yet handed to the writer thread
        writes: deque[asyncio.Future[None]] = deque()  # writer-thread work, in order
        failed: list[BaseException] = []
        last_store = time.monotonic()

        def in_order(func: Callable[..., None], *args: Any) -> asyncio.Future[None]:
            """Queue a journal or report write behind the earlier ones (writer thread).

            After a failed write nothing more is written: no report line may claim an outcome
            the journal did not keep. The failure is raised in the loop on the next call.
            """

            def guarded() -> None:
                if failed:
                    raise failed[0]
                try:
                    func(*args)
                except BaseException as exc:
                    failed.append(exc)
                    raise

            while writes and writes[0].done():
                writes.popleft().result()
            future = loop.run_in_executor(self._writer, guarded)
            writes.append(future)
            return future

        def store() -> None:
            nonlocal last_store
            last_store = time.monotonic()
            if records and journal is not None:
                in_order(journal.store, records[:])
                records.clear()

        def publish(done: list[_Pending]) -> None:  # writer thread
            for slot in done:
                outcomes = [o for o in slot.outcomes if o is not None]
                self._write(writer, slot.vc, outcomes, counts)

        def flush() -> None:
            done: list[_Pending] = []
            while pending and pending[0].remaining == 0:
                done.append(pending.popleft())
            if done:
                store()  # outcomes are durable before the report claims them
                in_order(publish, done)

        def mark(job: _Job, outcome: Outcome) -> None:
            job.slot.outcomes[job.pos] = outcome
            job.slot.remaining -= 1
            monitor.settled(outcome.status)
            if row_debug:
                _log_row(job.slot.vc, job.pos, outcome)

        def unsent(jobs: list[_Job], *, intended: bool) -> None:
            """The run stopped before these rows were sent: report them, withdraw intents."""
            for job in jobs:
                mark(job, self._not_sent())
            if intended and journal is not None:
                in_order(journal.abandon, [job.key for job in jobs])

        def intend(group: list[_Job]) -> asyncio.Future[None] | None:
            if journal is None:
                return None
            intents = [(j.key, j.thumbprint, j.device, j.body_hash) for j in group]
            return in_order(journal.intend, intents)

        def settle(job: _Job, outcome: Outcome) -> None:
            mark(job, outcome)
            if journal is None:
                return
            records.append(
                Record(
                    job.key,
                    job.thumbprint,
                    job.device,
                    job.body_hash,
                    outcome.status,
                    outcome.id,
                    outcome.attempts,
                    f"{outcome.error_code}: {outcome.error_message}" if outcome.error_code else "",
                )
            )
            if len(records) >= OUTCOME_GROUP or time.monotonic() - last_store > 1.0:
                store()

        def halted() -> bool:
            return self.stopping or self.abort is not None

        async def handle(jobs: list[_Job]) -> None:
            if halted():
                unsent(jobs, intended=True)
                return
            try:
                if len(jobs) > 1:
                    outcomes = await client.create_batch([job.body for job in jobs])
                    lost = [
                        (j, o) for j, o in zip(jobs, outcomes, strict=True) if o.status == UNKNOWN
                    ]
                    for job, outcome in zip(jobs, outcomes, strict=True):
                        if outcome.status != UNKNOWN:
                            settle(job, outcome)
                    for job, _ in lost:
                        job.kind = "reconcile"
                        settle(job, await self._run_job(client, job))
                else:
                    settle(jobs[0], await self._run_job(client, jobs[0]))
            except RunAborted as exc:
                if self.abort is None:
                    self.abort = exc
                    self.say(f"error: {exc}")
                for job in jobs:
                    if job.slot.outcomes[job.pos] is None:
                        settle(
                            job, Outcome(FAILED, error_code="RunAborted", error_message=str(exc))
                        )

        async def worker() -> None:
            batch = self.settings.batch
            finished = False
            while not finished:
                job = await queue.get()
                if queue.qsize() <= low_water:
                    room.set()
                if job is None:
                    return
                jobs = [job]
                while job.kind == "create" and len(jobs) < batch and not queue.empty():
                    extra = queue.get_nowait()
                    if extra is None:
                        finished = True
                        break
                    if extra.kind != "create":
                        await handle([extra])
                        continue
                    jobs.append(extra)
                await handle(jobs)
                flush()

        async def produce() -> None:
            whole = iter([only]) if only is not None else self._validated(source)
            chunks = (piece for vc in whole for piece in _slices(vc, SEND_SLICE))
            # The next slice is prepared while this one is sent, and the intents of the next
            # group are written while this group is queued: neither reading nor an intent's
            # fsync holds the workers up. A group's intents are durable before it is queued.
            upcoming: deque[list[_Job]] = deque()  # groups of prepared slices
            next_slice: asyncio.Future[tuple[_Pending, list[_Job]] | None] | None
            next_slice = asyncio.ensure_future(self._off_loop(self._prepare, chunks))

            async def take_slice() -> bool:
                nonlocal next_slice
                prepared = await next_slice if next_slice is not None else None
                if prepared is None:
                    next_slice = None
                    return False
                next_slice = asyncio.ensure_future(self._off_loop(self._prepare, chunks))
                slot, jobs = prepared
                pending.append(slot)
                if len(jobs) < len(slot.outcomes):  # rejected, skipped or changed: no request
                    for pos, settled in enumerate(slot.outcomes):
                        if settled is not None:
                            monitor.settled(settled.status)
                            if row_debug:
                                _log_row(slot.vc, pos, settled)
                upcoming.extend(
                    jobs[i : i + INTENT_GROUP] for i in range(0, len(jobs), INTENT_GROUP)
                )
                flush()  # a slice with nothing to send is reported at once
                return True

            async def release(group: list[_Job], intents: asyncio.Future[None] | None) -> None:
                if intents is not None:
                    await intents
                if halted():
                    unsent(group, intended=intents is not None)
                    return
                while queue.qsize() > low_water:
                    room.clear()
                    await room.wait()
                for job in group:
                    queue.put_nowait(job)

            held: tuple[list[_Job], asyncio.Future[None] | None] | None = None
            try:
                while upcoming or await take_slice():
                    if not upcoming:
                        continue
                    group = upcoming.popleft()
                    intents = None if halted() else intend(group)
                    if held is not None:
                        await release(*held)
                    held = (group, intents)
                if held is not None:
                    await release(*held)
            finally:
                if next_slice is not None:
                    next_slice.cancel()
            for _ in range(concurrency):
                queue.put_nowait(None)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker())
                group.create_task(produce())
            flush()
            store()
        finally:
            # every queued write finishes, even when the run failed: the reports are only
            # discarded once nothing writes to them
            results = await asyncio.gather(*writes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
