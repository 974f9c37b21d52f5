"""Adoption: read what Graph already holds into the journal, so nothing is posted twice.

A run whose journal has never seen its target (a new host, a lost state directory, a
container without a volume) pages through the whole collection first: ``$select`` of every
property certimport sends and ``id``, ``$top=999``, each ``@odata.nextLink`` followed as
Graph gives it, every GET paced by the read budget. Each object is normalised exactly as a
file's row is (the same validator) and hashed the same way, so a row whose key Graph holds
with the same values is ``skipped`` and one with other values ``changed``, without a request.

Cost: one GET per 999 objects (100 for 100,000 objects), from the read budget (Intune allows
1,000 requests per 20 seconds per app), not from the write budget the posts need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

import numpy as np
import orjson
import pandas as pd

from importer.errors import PermissionDenied, RunAborted
from importer.input.mapping import body_hashes
from importer.input.profiles import Profile
from importer.input.schema import Validator
from importer.input.source import Chunk, Header
from importer.model import DEVICE, PROPERTIES, THUMBPRINT
from importer.run.journal import Journal, row_key
from importer.run.snapshot import AdoptCounts, PassState, Snapshot
from importer.send.classify import Verdict
from importer.send.client import GraphClient, next_link

log = logging.getLogger(__name__)
Say = Callable[[str], None]
PAGE_SIZE = 999  # the largest $top Graph's list operations accept
PROGRESS_SECONDS = 5.0
_UNSET_DATE_PREFIX = "0001-01-01"  # DateTimeOffset.MinValue: how Graph shows a date not set


class AdoptionFailed(RunAborted):
    """Graph's collection could not be read to the end: nothing is posted blindly."""


def first_page_url(collection_url: str) -> str:
    """The first page of a pass: every property certimport sends, and ``id``."""
    select = ",".join(("id", *PROPERTIES))
    return f"{collection_url}?$select={quote(select, safe=',')}&$top={PAGE_SIZE}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "" if value.startswith(_UNSET_DATE_PREFIX) else value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return orjson.dumps(value).decode()
    return str(value)


class ObjectHasher:
    """Graph objects as (id, key, thumbprint, device, body hash), normalised as rows are."""

    def __init__(self) -> None:
        self.header = Header(
            names=PROPERTIES,
            columns={p: p for p in PROPERTIES},
            extras=(),
            ignored=(),
            lines=1,
            profile=Profile("graph"),
        )

    def rows(
        self, objects: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, str, str, str, int | None]]:
        """The snapshot rows of one page (objects without an id are left out)."""
        kept = [o for o in objects if isinstance(o, Mapping) and o.get("id")]
        if not kept:
            return []
        raw = pd.DataFrame({p: [_cell(o.get(p)) for o in kept] for p in PROPERTIES}, dtype=object)
        # a validator per page: it remembers keys to catch duplicates in a file, which for
        # Graph's objects is the snapshot's job
        validator = Validator(self.header)
        values = validator.validate(Chunk(raw, np.arange(2, len(raw) + 2))).values
        hashes = body_hashes(values, np.arange(len(values))).tolist()
        thumbs = values[THUMBPRINT].tolist()
        devices = values[DEVICE].tolist()
        return [
            (str(o["id"]), row_key(t, d), t, d, h)
            for o, t, d, h in zip(kept, thumbs, devices, hashes, strict=True)
        ]


@dataclass(frozen=True)
class AdoptReport:
    """The outcome of one adoption."""

    counts: AdoptCounts
    pages: int
    seconds: float
    resumed: bool


class CollectionPass:
    """Reads the whole collection into the journal's snapshot, resuming an unfinished pass."""

    def __init__(
        self,
        client: GraphClient,
        journal: Journal,
        *,
        say: Say,
        purpose: str,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.snapshot = Snapshot(journal)
        self.say = say
        self.purpose = purpose
        self.stopping = stopping
        self.hasher = ObjectHasher()
        self.resumed = False
        self._started = time.monotonic()
        self._last_said = self._started

    def _start(self) -> PassState:
        state = self.snapshot.state()
        if state is not None and state.purpose == self.purpose and not state.complete:
            self.resumed = True
            self.say(
                f"resuming the unfinished read of Graph's collection at page {state.pages + 1} "
                f"({state.objects:,} objects stored)"
            )
            return state
        return self.snapshot.begin(self.purpose, first_page_url(self.client.collection_url))

    async def read(self) -> PassState:
        """Every page, each stored with the next page's address as it arrives (fewer when
        ``stopping()`` turns true: then the state returned is not complete)."""
        state = self._start()
        while state.next_url is not None:
            if self.stopping():
                return state  # incomplete: the next pass continues from here
            result = await self.client.get_page(state.next_url)
            if result.verdict is not Verdict.CREATED:
                if self.resumed and state.pages and result.verdict is Verdict.REJECTED:
                    # a next link kept across a restart may have expired: read it all again
                    self.say("the stored next page is no longer valid: reading from the start")
                    self.resumed = False
                    state = self.snapshot.begin(
                        self.purpose, first_page_url(self.client.collection_url)
                    )
                    continue
                if result.status in (403, 404):
                    self._refused(result.status, result.error_code, result.error_message)
                raise AdoptionFailed(
                    f"could not read what Graph holds (page {state.pages + 1}: "
                    f"{result.status or 'no answer'} {result.error_code} "
                    f"{result.error_message})".rstrip()
                    + "; nothing was posted. Run again later (the read resumes where it "
                    "stopped), or pass --no-adopt to post without looking (every certificate "
                    "Graph already holds would then be created a second time)"
                )
            payload = result.payload
            objects = payload.get("value")
            rows = self.hasher.rows(objects if isinstance(objects, list) else [])
            state = self.snapshot.add_page(state, rows, next_link(payload))
            self._progress(state)
        return state

    def _refused(self, status: int, code: str, message: str) -> NoReturn:
        if status == 403:
            raise PermissionDenied(
                f"Graph refused to list the collection (403 {code}: {message}); the app needs "
                "DeviceManagementConfiguration.ReadWrite.All and the tenant an Intune licence"
            )
        raise RunAborted(
            f"the collection {self.client.collection_url} answered 404 {code}: check "
            "base_url / cloud"
        )

    def _progress(self, state: PassState) -> None:
        """A line every PROGRESS_SECONDS while the read lasts (a short read says nothing)."""
        now = time.monotonic()
        if now - self._last_said < PROGRESS_SECONDS:
            return
        self._last_said = now
        rate = state.objects / max(now - self._started, 1e-6)
        self.say(
            f"read {state.objects:,} objects from Graph in {state.pages:,} pages "
            f"({rate:,.0f}/s){'' if state.next_url else ', done'}"
        )


async def adopt(
    client: GraphClient,
    journal: Journal,
    *,
    say: Say,
    stopping: Callable[[], bool] = lambda: False,
    always_say: bool = False,
) -> AdoptReport | None:
    """Read the collection (resuming an unfinished adoption) and adopt what Graph holds.

    Says one line when Graph held anything (or with ``always_say``); logs it always. None
    when ``stopping()`` ended the read early (nothing is adopted; the next adoption goes on).
    """
    started = time.monotonic()
    log.info("the journal has never seen the target: reading what Graph holds first")
    reader = CollectionPass(client, journal, say=say, purpose="adopt", stopping=stopping)
    state = await reader.read()
    if not state.complete:
        say(f"stopped reading what Graph holds after {state.pages:,} pages; the next run goes on")
        return None
    counts = Snapshot(journal).adopt(journal.run_id)
    report = AdoptReport(counts, state.pages, time.monotonic() - started, reader.resumed)
    if counts.objects or always_say:
        say(describe(report))
    log.info(
        "adoption: %d objects, %d keys, %d adopted, %d duplicated keys",
        counts.objects,
        counts.keys,
        counts.adopted,
        counts.duplicated,
        extra={"event": "adopted", **counts.__dict__, "pages": state.pages},
    )
    return report


def describe(report: AdoptReport) -> str:
    """One line for the console."""
    c = report.counts
    line = (
        f"adopted what Graph holds: {c.objects:,} objects ({c.keys:,} keys) in "
        f"{report.pages:,} pages, {report.seconds:.1f} s; {c.adopted:,} journal entries set"
    )
    if c.duplicated:
        line += (
            f"; {c.duplicated:,} keys Graph holds more than once are not sent "
            "(certimport verify lists them)"
        )
    return line


def needs_adoption(journal: Journal) -> bool:
    """True when the journal has never seen its target, or an adoption was left unfinished."""
    snapshot = Snapshot(journal)
    state = snapshot.state()
    if state is not None and state.purpose == "adopt" and not state.complete:
        return True
    if snapshot.adopted_at():
        return False
    seen = journal.db.execute(
        "SELECT 1 FROM runs WHERE mode = 'run' AND finished IS NOT NULL LIMIT 1"
    ).fetchone()
    return seen is None


__all__ = [
    "AdoptReport",
    "AdoptionFailed",
    "CollectionPass",
    "ObjectHasher",
    "adopt",
    "describe",
    "first_page_url",
    "needs_adoption",
]
