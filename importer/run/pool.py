"""The sending pass: a producer that reads ahead, workers that send, writes kept in order.

The event loop only sends and settles rows. The next slice of rows is read, decided and given
its bodies on the chunk thread while the current one is sent; journal and report writes run in
order on a writer thread (:class:`OrderedWrites`), which keeps the two promises that make a run
safe to kill at any moment:

- a row's *intent* is durable in the journal before the row is queued for sending, so a crash
  between send and answer leaves a trace the next run reconciles instead of posting blindly;
- a row's *outcome* is durable before any report line claims it.

After a failed write nothing more is written, so no report claims what the journal lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from importer.errors import CertImportError, RunAborted
from importer.input.schema import ValidatedChunk
from importer.model import THUMBPRINT
from importer.outcome import CREATED, FAILED, NOT_SENT, UNKNOWN, Outcome
from importer.run.decide import Job, Slice
from importer.run.journal import Journal, Record
from importer.run.monitor import RunMonitor
from importer.send.client import GraphClient

log = logging.getLogger("importer.runner")

INTENT_GROUP = 256  # intents made durable together, just before their rows are queued
OUTCOME_GROUP = 256  # outcomes made durable together (and at least once a second)
RECONCILE_ROUNDS = 3  # lookup → re-post cycles for a row whose answers keep getting lost

Prepare = Callable[[], Awaitable[tuple[Slice, list[Job]] | None]]


def log_row(vc: ValidatedChunk, pos: int, outcome: Outcome) -> None:
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


def first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure that explains a failed task group: the first of ours, else the first."""
    ours, _ = group.split(CertImportError)
    inner = (ours or group).exceptions[0]
    return first_failure(inner) if isinstance(inner, BaseExceptionGroup) else inner


class OrderedWrites:
    """Journal and report writes, in order, on the writer thread.

    ``intend`` before a group is queued; ``record`` for each outcome; ``publish`` for slices
    whose outcomes are all known (their outcomes are stored first). ``drain`` waits for every
    queued write and raises the first failure.
    """

    def __init__(
        self,
        executor: Executor,
        journal: Journal | None,
        report: Callable[[list[Slice]], None],
    ) -> None:
        self.executor = executor
        self.journal = journal
        self.report = report  # writes finished slices to the reports (writer thread)
        self.records: list[Record] = []  # outcomes not yet handed to the writer thread
        self.writes: deque[asyncio.Future[None]] = deque()
        self.failed: list[BaseException] = []
        self.last_store = time.monotonic()

    def submit(self, func: Callable[..., None], *args: Any) -> asyncio.Future[None]:
        """Queue ``func(*args)`` behind the earlier writes; a failure is raised at the next."""

        def guarded() -> None:
            if self.failed:
                raise self.failed[0]
            try:
                func(*args)
            except BaseException as exc:
                self.failed.append(exc)
                raise

        while self.writes and self.writes[0].done():
            self.writes.popleft().result()
        future = asyncio.get_running_loop().run_in_executor(self.executor, guarded)
        self.writes.append(future)
        return future

    def intend(self, group: list[Job]) -> asyncio.Future[None] | None:
        """Make the group's intents durable; await the future before sending any of them."""
        if self.journal is None:
            return None
        intents = [(j.key, j.thumbprint, j.device, j.body_hash) for j in group]
        return self.submit(self.journal.intend, intents)

    def abandon(self, jobs: list[Job]) -> None:
        """Withdraw the intents of rows that were never sent."""
        if self.journal is not None:
            self.submit(self.journal.abandon, [job.key for job in jobs])

    def record(self, job: Job, outcome: Outcome) -> None:
        """Keep a row's outcome for the journal (stored in groups, at least once a second)."""
        if self.journal is None:
            return
        self.records.append(
            Record(
                job.key,
                job.thumbprint,
                job.device,
                job.body_hash,
                outcome.status,
                outcome.id,
                outcome.attempts,
                outcome.journal_error(),
            )
        )
        if len(self.records) >= OUTCOME_GROUP or time.monotonic() - self.last_store > 1.0:
            self.store()

    def store(self) -> None:
        """Hand the kept outcomes to the journal."""
        self.last_store = time.monotonic()
        if self.records and self.journal is not None:
            self.submit(self.journal.store, self.records[:])
            self.records.clear()

    def publish(self, done: list[Slice]) -> None:
        """Report finished slices, after their outcomes are stored."""
        self.store()
        self.submit(self.report, done)

    async def drain(self) -> None:
        """Wait for every queued write (even when the run failed), then raise a failure."""
        results = await asyncio.gather(*self.writes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


@dataclass(frozen=True)
class PoolSettings:
    """The knobs of the sending pass."""

    concurrency: int
    batch: int
    reconcile: str  # lookup | repost: when a lookup is not possible
    reconcile_delay: float


class SendPool:
    """Workers that send prepared rows and settle their outcomes, fed by a producer.

    ``prepare()`` returns the next slice and its jobs (their bodies built), or None at the end.
    ``halted()`` says the run is stopping or aborted: rows not yet sent are then reported as not
    sent and their intents withdrawn. The first :class:`RunAborted` is kept in ``abort``.
    """

    def __init__(
        self,
        client: GraphClient,
        settings: PoolSettings,
        *,
        writes: OrderedWrites,
        monitor: RunMonitor,
        prepare: Prepare,
        stopping: Callable[[], bool],
        say: Callable[[str], None],
    ) -> None:
        self.client = client
        self.settings = settings
        self.writes = writes
        self.monitor = monitor
        self.prepare = prepare
        self.stopping = stopping
        self.say = say
        self.abort: RunAborted | None = None
        self.reconciled = 0
        # Unbounded, but the producer only adds a group when it is nearly empty: rows queued
        # one by one into a full queue would wake the producer for every row taken.
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.low_water = max(settings.concurrency * settings.batch, INTENT_GROUP)
        self.room = asyncio.Event()
        self.pending: deque[Slice] = deque()  # slices not yet reported, in input order
        self.upcoming: deque[list[Job]] = deque()  # groups of prepared rows, not yet queued
        self.next_slice: asyncio.Future[tuple[Slice, list[Job]] | None] | None = None
        self.held: list[Job] = []  # the group waiting for its intents, not yet queued
        self.in_flight: dict[int, Job] = {}  # id(job) -> job, for rows being sent now
        self.tasks: list[asyncio.Task[None]] = []
        self.abandoned = False
        self.row_debug = log.isEnabledFor(logging.DEBUG)

    def halted(self) -> bool:
        """The run is stopping or aborted: nothing more is sent."""
        return self.stopping() or self.abort is not None

    def not_sent(self) -> Outcome:
        """The outcome of a row the run stopped before sending."""
        reason = f"run aborted: {self.abort}" if self.abort else "run interrupted before sending"
        return Outcome(FAILED, error_code=NOT_SENT, error_message=reason)

    async def run(self) -> None:
        """Send every row ``prepare`` hands out; the reports of every slice are queued."""
        try:
            try:
                async with asyncio.TaskGroup() as group:
                    self.tasks = [
                        group.create_task(self._worker()) for _ in range(self.settings.concurrency)
                    ]
                    self.tasks.append(group.create_task(self._produce()))
            except BaseExceptionGroup as failures:  # a task failed: say why, not "a group"
                raise first_failure(failures) from failures
            if self.abandoned:
                self._settle_abandoned()
            self._flush()
            self.writes.store()
        finally:
            # every queued write finishes, even when the run failed: the reports are only
            # discarded once nothing writes to them
            await self.writes.drain()

    def abandon(self) -> None:
        """Stop now (a second signal): requests in flight are abandoned, and their rows stay
        in doubt in the journal (``unknown``: the next run looks them up); rows not sent yet
        are reported not sent. The reports are still written for every row."""
        if self.abandoned:
            return
        self.abandoned = True
        for task in self.tasks:
            task.cancel()
        if self.next_slice is not None:
            self.next_slice.cancel()

    def _settle_abandoned(self) -> None:
        abandoned = Outcome(
            UNKNOWN,
            error_code="Abandoned",
            error_message="stopped while in flight (a second signal): it may exist in Graph; "
            "the next run looks it up before sending it again",
        )
        for job in self.in_flight.values():
            if job.slot.outcomes[job.pos] is None:
                self._settle(job, abandoned)
        self.in_flight.clear()
        waiting = [*self.held, *(job for group in self.upcoming for job in group)]
        while not self.queue.empty():
            queued = self.queue.get_nowait()
            if queued is not None:
                waiting.append(queued)
        unsettled = [job for job in waiting if job.slot.outcomes[job.pos] is None]
        self._unsent(unsettled, intended=True)
        self.upcoming.clear()
        self.held = []

    # -- settling ----------------------------------------------------------------------------

    def _mark(self, job: Job, outcome: Outcome) -> None:
        job.slot.outcomes[job.pos] = outcome
        job.slot.remaining -= 1
        self.monitor.finished(outcome)
        if self.row_debug:
            log_row(job.slot.vc, job.pos, outcome)

    def _settle(self, job: Job, outcome: Outcome) -> None:
        self._mark(job, outcome)
        self.writes.record(job, outcome)

    def _unsent(self, jobs: list[Job], *, intended: bool) -> None:
        """The run stopped before these rows were sent: report them, withdraw intents."""
        for job in jobs:
            self._mark(job, self.not_sent())
        if intended:
            self.writes.abandon(jobs)

    def _flush(self) -> None:
        done: list[Slice] = []
        while self.pending and self.pending[0].remaining == 0:
            done.append(self.pending.popleft())
        if done:
            self.writes.publish(done)  # outcomes are durable before the report claims them

    # -- sending -----------------------------------------------------------------------------

    async def _send_row(self, job: Job) -> Outcome:
        """Send one row, looking it up first (and after a lost answer) where in doubt."""
        client = self.client
        if job.kind == "update":
            return await client.update(job.graph_id, job.body)
        outcome: Outcome | None = None
        reconcile = job.kind == "reconcile"
        for _ in range(RECONCILE_ROUNDS):
            if reconcile:
                found = await self._look_up(job, outcome)
                if found is not None:
                    return found
            sent = await client.create(job.body)
            if outcome is not None:
                sent = replace(sent, attempts=sent.attempts + outcome.attempts)
            outcome = sent
            if outcome.status != UNKNOWN:
                return outcome
            reconcile = True
        assert outcome is not None
        return outcome

    async def _look_up(self, job: Job, last: Outcome | None) -> Outcome | None:
        """The outcome of a row in doubt that the lookup settles, else None (post it)."""
        settings = self.settings
        if settings.reconcile_delay:
            await self.client.sleep(settings.reconcile_delay)
        lookup = await self.client.find(job.thumbprint, job.device)
        if lookup.found:
            self.reconciled += 1
            return Outcome(
                CREATED,
                id=lookup.object_id,
                error_message="reconciled: found in Graph after a lost answer",
                attempts=last.attempts if last else 0,
            )
        if not lookup.supported and settings.reconcile != "repost":
            return last or Outcome(
                UNKNOWN,
                error_code="LookupUnavailable",
                error_message=f"may exist in Graph; the lookup failed ({lookup.reason}); "
                "check in Intune, or set reconcile = repost",
            )
        return None

    async def _handle(self, jobs: list[Job]) -> None:
        if self.halted():
            self._unsent(jobs, intended=True)
            return
        for job in jobs:
            self.in_flight[id(job)] = job
        await self._send(jobs)  # cancelled by a second signal: the rows stay in in_flight
        for job in jobs:
            self.in_flight.pop(id(job), None)

    async def _send(self, jobs: list[Job]) -> None:
        try:
            if len(jobs) > 1:
                outcomes = await self.client.create_batch([job.body for job in jobs])
                lost = [j for j, o in zip(jobs, outcomes, strict=True) if o.status == UNKNOWN]
                for job, outcome in zip(jobs, outcomes, strict=True):
                    if outcome.status != UNKNOWN:
                        self._settle(job, outcome)
                for job in lost:
                    job.kind = "reconcile"
                    self._settle(job, await self._send_row(job))
            else:
                self._settle(jobs[0], await self._send_row(jobs[0]))
        except RunAborted as exc:
            if self.abort is None:
                self.abort = exc
                self.say(f"error: {exc}")
            for job in jobs:
                if job.slot.outcomes[job.pos] is None:
                    self._settle(
                        job, Outcome(FAILED, error_code="RunAborted", error_message=str(exc))
                    )

    async def _worker(self) -> None:
        batch = self.settings.batch
        queue = self.queue
        finished = False
        while not finished:
            job = await queue.get()
            if queue.qsize() <= self.low_water:
                self.room.set()
            if job is None:
                return
            jobs = [job]
            while job.kind == "create" and len(jobs) < batch and not queue.empty():
                extra = queue.get_nowait()
                if extra is None:
                    finished = True
                    break
                if extra.kind != "create":
                    await self._handle([extra])
                    continue
                jobs.append(extra)
            await self._handle(jobs)
            self._flush()

    # -- producing ---------------------------------------------------------------------------

    async def _take_slice(self) -> bool:
        """The next prepared slice into ``upcoming`` (the one after starts preparing)."""
        prepared = await self.next_slice if self.next_slice is not None else None
        if prepared is None:
            self.next_slice = None
            return False
        self.next_slice = asyncio.ensure_future(self.prepare())
        slot, jobs = prepared
        self.pending.append(slot)
        if len(jobs) < len(slot.outcomes):  # rejected, skipped or changed: no request
            for pos, settled in enumerate(slot.outcomes):
                if settled is not None:
                    self.monitor.settled(settled.status)
                    if self.row_debug:
                        log_row(slot.vc, pos, settled)
        self.upcoming.extend(jobs[i : i + INTENT_GROUP] for i in range(0, len(jobs), INTENT_GROUP))
        self._flush()  # a slice with nothing to send is reported at once
        return True

    async def _release(self, group: list[Job], intents: asyncio.Future[None] | None) -> None:
        """Queue a group once its intents are durable and the queue has room."""
        self.held = group
        if intents is not None:
            await intents
        if self.halted():
            self._unsent(group, intended=intents is not None)
            return
        while self.queue.qsize() > self.low_water:
            self.room.clear()
            await self.room.wait()
        for job in group:
            self.queue.put_nowait(job)
        self.held = []

    async def _produce(self) -> None:
        # The next slice is prepared while this one is sent, and the intents of the next group
        # are written while this group is queued: neither reading nor an intent's fsync holds
        # the workers up. A group's intents are durable before it is queued.
        self.next_slice = asyncio.ensure_future(self.prepare())
        held: tuple[list[Job], asyncio.Future[None] | None] | None = None
        try:
            while self.upcoming or await self._take_slice():
                if not self.upcoming:
                    continue
                group = self.upcoming.popleft()
                intents = None if self.halted() else self.writes.intend(group)
                if held is not None:
                    await self._release(*held)
                held = (group, intents)
            if held is not None:
                await self._release(*held)
        finally:
            if self.next_slice is not None:
                self.next_slice.cancel()
        for _ in range(self.settings.concurrency):
            self.queue.put_nowait(None)


__all__ = ["OrderedWrites", "PoolSettings", "SendPool", "log_row"]
