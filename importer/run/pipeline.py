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
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from importer import errors
from importer.config import Settings, tenant_of
from importer.errors import InputError, RunAborted
from importer.input.mapping import build_bodies
from importer.input.schema import ValidatedChunk, Validator
from importer.input.source import Chunk, CsvSource, file_sha256
from importer.logs import new_run_id
from importer.model import DEVICE, THUMBPRINT
from importer.outcome import (
    DONE,
    EXCLUDED,
    NOT_SENT,
    SETTLED,
    SKIPPED,
    VALID,
    Outcome,
    import_error_prefixes,
)
from importer.reports.publish import publish
from importer.reports.reading import Reading
from importer.reports.results import ERROR_COLUMN, ReportWriter
from importer.reports.summary import Mode, RunSummary
from importer.run.adopt import adopt, needs_adoption
from importer.run.decide import Job, Slice, decide, exclusion, rejection, row_keys
from importer.run.journal import Journal
from importer.run.monitor import RunMonitor
from importer.run.pool import OrderedWrites, PoolSettings, SendPool, log_row
from importer.run.problems import ProblemEcho
from importer.send.client import GraphClient

log = logging.getLogger("importer.runner")
T = TypeVar("T")

Say = Callable[[str], None]
SEND_SLICE = 2048  # rows decided and given bodies at a time in the sending pass


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for."""

    path: str
    out_dir: Path | None = None  # None: the settings' out_dir, else out/<UTC timestamp>
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
    run_id: str = ""  # the command's run id (logs.new_run_id), shared with the journal


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
            {p - start: v for p, v in vc.excluded.items() if start <= p < stop},
        )


def _stamp(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


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
        if request.out_dir is None:
            raise ValueError("the request's out_dir is resolved by the session")
        self.out_dir = request.out_dir
        self.say = say
        self.journal = journal
        self.monitor = monitor or RunMonitor()  # live counters: progress display, timeline
        self.stopping = False
        self.pool: SendPool | None = None  # the sending pass, once it has started
        self.validator: Validator | None = None  # the last pass's, for what it found
        self.not_sent = 0  # rows reported failed because they were never sent
        # One thread for chunk work, not a pool: glibc gives every thread its own malloc arena,
        # and chunk-sized allocations spread over several arenas tripled the peak memory.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certimport-chunks")
        # Journal and report writes, in order, on a thread of their own: an intent's fsync
        # must not wait behind the reading of a chunk (their allocations are slice-sized).
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certimport-writes")

    @property
    def abort(self) -> RunAborted | None:
        """Why the sending pass stopped for good (auth, permission), if it did."""
        return self.pool.abort if self.pool is not None else None

    @property
    def reconciled(self) -> int:
        """Rows in doubt that a lookup found in Graph."""
        return self.pool.reconciled if self.pool is not None else 0

    async def _off_loop(self, func: Callable[..., T], *args: Any) -> T:
        """Run chunk work (parsing, validation, deciding) off the event loop, on one thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def stop(self) -> None:
        """Stop sending: in-flight requests finish, the rest are reported as not sent. Asked
        again (a second signal), stop now: requests in flight are abandoned and their rows
        stay in doubt in the journal, for the next run to look up."""
        if not self.stopping:
            self.say("stopping: finishing requests in flight, then writing the reports")
            self.stopping = True
        elif self.pool is not None and not self.pool.abandoned:
            self.say(
                "stopping now: requests in flight are abandoned (the next run looks their "
                "rows up); writing the reports"
            )
            self.pool.abandon()

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
        """A validator for one pass; a later pass takes the date order the first one settled
        (a file whose first dates do not decide is not read ahead a second time)."""
        settings = self.settings
        earlier = self.validator
        return Validator(
            source.header,
            timezone=settings.timezone,
            date_format=settings.date_format or None,
            dayfirst=settings.dayfirst,
            source=source,
            strict=self.request.strict,
            known_order=earlier.date_order if earlier is not None else None,
        )

    def _validated(self, source: CsvSource) -> Iterator[ValidatedChunk]:
        """The file's chunks, validated; once they are all read, :attr:`validator` is the
        validator that read them (its notes and date order are the whole file's)."""
        validator = self.validator = self._validator(source)
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
        prefixes = import_error_prefixes(wanted)

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
        clock = time.monotonic()
        source = self._source()
        summary = self._begin_summary(source)
        self._check_target()
        self._announce(source, summary)
        problems = ProblemEcho(request.path, self.say, request.show_errors)
        refuse, records, only = "", 0, None
        if request.mode == "run":
            refuse, records, only = await self._first_pass(source, problems, summary)
        writer = ReportWriter(self.out_dir, source.header.names)
        counts: Counter[str] = Counter()
        if self.journal is not None and request.mode == "run":
            self.journal.start_run(summary.input, summary.input_sha256, "run", summary.started)
        try:
            if request.mode == "run" and not refuse:
                assert client is not None, "run mode needs a client"
                await self._second_pass(source, client, writer, counts, records, only, summary)
            else:
                report = None if request.mode == "run" else problems
                await self._off_loop(self._write_unsent, source, writer, counts, report)
                if report is not None:
                    self._tell_notes(report, summary)
                if not sum(counts.values()):
                    raise InputError(request.path, "no data rows after the header")
        except BaseException:
            writer.discard()
            raise
        problems.close(self.out_dir)
        self._finish_summary(summary, counts, time.monotonic() - clock, refuse)
        if self.journal is not None and request.mode == "run":
            self.journal.finish_run(
                summary.records, summary.exit_code, summary.out_dir, dict(counts)
            )
        publish(writer, summary, self.monitor.timeline if request.mode == "run" else None)
        return summary

    def _begin_summary(self, source: CsvSource) -> RunSummary:
        request, settings = self.request, self.settings
        started = datetime.now(UTC)
        return RunSummary(
            input=request.label or str(Path(request.path).resolve()),
            input_sha256=file_sha256(request.path),
            mode=request.mode,
            out_dir=str(self.out_dir),
            run_id=request.run_id or (self.journal.run_id if self.journal else new_run_id()),
            target=settings.collection_url if request.mode in ("run", "plan") else "",
            tenant=tenant_of(settings) if request.mode in ("run", "plan") else "",
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

    def _announce(self, source: CsvSource, summary: RunSummary) -> None:
        """Say how the file is read (unless plain, or a retry) and which columns are ignored."""
        path = self.request.path
        note = source.notable()  # a plain Graph-shaped UTF-8 file goes without saying
        if note and not self.request.only_statuses:
            self.say(f"reading {path}: {note}")
        if source.header.extras:
            warning = (
                f"{path}:1: column(s) {', '.join(source.header.extras)} are not Graph "
                "properties: they are ignored and not sent"
            )
            summary.warnings.append(warning)
            self.say(f"warning: {warning}")

    async def _first_pass(
        self, source: CsvSource, problems: ProblemEcho, summary: RunSummary
    ) -> tuple[str, int, ValidatedChunk | None]:
        """Validate the whole file before anything is sent: (refusal, records, the only chunk)."""
        request = self.request
        self.monitor.phase = "validating"
        before = _stamp(request.path)
        records, invalid, only = await self._off_loop(self._scan, source, problems)
        self._tell_notes(problems, summary)
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
            if note := source.notable():  # said only when there is something to retry
                self.say(f"reading {request.path}: {note}")
        if not records:
            raise InputError(request.path, "no data rows after the header")
        refuse = ""
        if request.strict and invalid:
            refuse = f"--strict: {invalid} invalid row(s), nothing was posted"
        self._guard_shrink(summary.input, records)
        return refuse, records, only

    def _tell_notes(self, problems: ProblemEcho, summary: RunSummary) -> None:
        """Say what the validator found about the whole file; an inferred date order is
        recorded as if it had been given, so that ``retry`` reads the file the same way."""
        validator = self.validator
        if validator is None:
            return
        summary.warnings += problems.notes(validator.notes)
        order = validator.date_order
        if order.how == "inferred" and order.dayfirst is not None:
            summary.reading["dayfirst"] = order.dayfirst

    async def _second_pass(
        self,
        source: CsvSource,
        client: GraphClient,
        writer: ReportWriter,
        counts: Counter[str],
        records: int,
        only: ValidatedChunk | None,
        summary: RunSummary,
    ) -> None:
        """Send the valid rows (after an adoption, when the journal is new to the target),
        sampling the monitor once a second."""
        failure = await self._adopt(client)
        self.monitor.begin(records)
        sampler = asyncio.create_task(self.monitor.sample_every(1.0))
        try:
            await self._send(source, client, writer, counts, only, failure)
        finally:
            sampler.cancel()
            self.monitor.sample()
        traffic = self.monitor.stats
        if traffic is not None:
            summary.requests = traffic.requests
            summary.throttled = traffic.throttled
            summary.retries = traffic.retries
        if self.monitor.pacer is not None:
            summary.pace = self.monitor.pacer.findings(self.monitor.elapsed)

    async def _adopt(self, client: GraphClient) -> RunAborted | None:
        """Read what Graph holds first when the journal has never seen the target; a failure
        to read it is the run's abort (no row is then sent)."""
        journal = self.journal
        if journal is None or not needs_adoption(journal):
            return None
        if not self.settings.adopt:
            self.say(
                f"warning: the journal has never seen {self.settings.graph_root}, and --no-adopt "
                "(adopt = false) skips reading what Graph holds: any certificate already there "
                "is created a second time"
            )
            return None
        self.monitor.phase = "reading what Graph holds"
        try:
            await adopt(client, journal, say=self.say, stopping=lambda: self.stopping)
        except RunAborted as exc:
            return exc
        return None

    def _finish_summary(
        self, summary: RunSummary, counts: Counter[str], seconds: float, refuse: str
    ) -> None:
        summary.finished = datetime.now(UTC).isoformat()
        summary.duration_seconds = round(seconds, 3)
        summary.records = sum(counts.values())
        summary.counts.update(counts)
        summary.reconciled = self.reconciled
        summary.not_sent = self.not_sent
        mode = self.request.mode
        done = sum(summary.counts[s] for s in DONE) if mode == "run" else counts[VALID]
        summary.rows_per_second = round(done / max(summary.duration_seconds, 1e-9), 1)
        if self.abort is not None:
            summary.stopped = str(self.abort)
        elif self.stopping:
            summary.stopped = "interrupted"
        elif refuse:
            summary.stopped = refuse
        summary.exit_code = self._exit_code(summary, bool(refuse))

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
            done = sum(summary.counts[s] for s in SETTLED)
        else:
            done = summary.counts[VALID] + summary.counts[SKIPPED] + summary.counts[EXCLUDED]
        return errors.EXIT_OK if done == summary.records else errors.EXIT_INCOMPLETE

    def _scan(
        self, source: CsvSource, problems: ProblemEcho
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
        problems: ProblemEcho | None,
    ) -> None:
        """validate / dry-run / plan / strict refusal: outcomes without any request."""
        valid = Outcome(VALID)
        for vc in self._validated(source):
            if problems is not None:
                problems.report(vc)
            outcomes: list[Outcome] = [
                rejection(vc, pos)
                if pos in vc.problems
                else exclusion(vc, pos)
                if pos in vc.excluded
                else valid
                for pos in range(len(vc.valid))
            ]
            if self.request.mode == "dry-run":
                build_bodies(vc.values, np.flatnonzero(vc.valid))
            elif self.request.mode == "plan" and self.journal is not None:
                slot, jobs = self._decided(vc)
                outcomes = [o or valid for o in slot.outcomes]
                for job in jobs:
                    verdict = "would be looked up first" if job.kind == "reconcile" else ""
                    outcomes[job.pos] = Outcome(VALID, id=job.graph_id, error_message=verdict)
            if log.isEnabledFor(logging.DEBUG):
                for pos, outcome in enumerate(outcomes):
                    log_row(vc, pos, outcome)
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
            vc.lines.tolist(),
            outcomes,
            vc.values[THUMBPRINT].tolist(),
            devices,
            vc.chunk.raw,
            problems=vc.problems,
        )
        counts.update(o.status for o in outcomes)
        self.not_sent += sum(o.error_code == NOT_SENT for o in outcomes)

    def _prepare(self, chunks: Iterator[ValidatedChunk]) -> tuple[Slice, list[Job]] | None:
        """Read the next slice and decide each row; the jobs carry their bodies (chunk thread)."""
        vc = next(chunks, None)
        if vc is None:
            return None
        slot, jobs = self._decided(vc)
        bodies = build_bodies(vc.values, np.array([job.pos for job in jobs], dtype=int))
        for job, body in zip(jobs, bodies, strict=True):
            job.body = body
        return slot, jobs

    def _decided(self, vc: ValidatedChunk) -> tuple[Slice, list[Job]]:
        """:func:`decide` for one chunk, with the journal's entries for its rows."""
        keys = row_keys(vc)
        entries = self.journal.lookup(keys.keys) if self.journal is not None else {}
        return decide(
            vc,
            keys,
            entries,
            update=self.settings.update,
            resend_rejected=self.settings.resend_rejected,
        )

    async def _send(
        self,
        source: CsvSource,
        client: GraphClient,
        writer: ReportWriter,
        counts: Counter[str],
        only: ValidatedChunk | None = None,
        failure: RunAborted | None = None,
    ) -> None:
        """The sending pass: a :class:`SendPool` fed with slices prepared on the chunk thread
        (``failure``: the run is aborted already, every row is reported not sent)."""
        whole = iter([only]) if only is not None else self._validated(source)
        chunks = (piece for vc in whole for piece in _slices(vc, SEND_SLICE))

        def report(done: list[Slice]) -> None:  # writer thread
            for slot in done:
                outcomes = [o for o in slot.outcomes if o is not None]
                self._write(writer, slot.vc, outcomes, counts)

        settings = self.settings
        self.pool = SendPool(
            client,
            PoolSettings(
                settings.concurrency, settings.batch, settings.reconcile, settings.reconcile_delay
            ),
            writes=OrderedWrites(self._writer, self.journal, report),
            monitor=self.monitor,
            prepare=lambda: self._off_loop(self._prepare, chunks),
            stopping=lambda: self.stopping,
            say=self.say,
        )
        self.pool.abort = failure
        await self.pool.run()
