"""What each record of a chunk needs, decided from the journal: a pure function, no I/O.

For each valid row the journal's entry for its key decides:

- none → create;
- in doubt (a send whose answer was lost, or a crash mid-send) → reconcile (look it up in
  Graph first);
- created, or adopted from Graph, with the same body → ``skipped``; with another body →
  ``changed`` (an update, a PATCH of the known id, with ``update``);
- refused by Graph (a 4xx) with the same body → ``rejected`` again without a request (unless
  ``resend_rejected``);
- found in Graph more than once by an adoption → ``rejected`` with every id, never sent;
- anything else (failed, unknown, refused with another body) → create.

Invalid rows are ``rejected`` with every problem of the row; rows the profile says are not
certificates (a denied request) are ``excluded`` with the profile's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from importer.input.mapping import body_hashes
from importer.input.schema import ValidatedChunk
from importer.model import DEVICE, THUMBPRINT
from importer.outcome import (
    CHANGED,
    EXCLUDED,
    INVALID_ROW,
    REJECTED,
    SKIPPED,
    Outcome,
    parse_journal_error,
)
from importer.run.journal import DONE_STATUSES, DUPLICATED, Entry, row_key

JobKind = Literal["create", "update", "reconcile"]
CHANGED_MESSAGE = "created earlier with other values; --update applies them"


@dataclass
class Slice:
    """Records of one chunk (or part of one) whose outcomes are being collected; reported in
    input order once ``remaining`` reaches 0."""

    vc: ValidatedChunk
    outcomes: list[Outcome | None]
    remaining: int = 0


@dataclass(slots=True)
class Job:
    """One row to send: create, update (PATCH) or reconcile (look up, then create)."""

    slot: Slice
    pos: int
    key: str
    thumbprint: str
    device: str
    body_hash: int
    kind: JobKind = "create"
    graph_id: str = ""
    body: dict[str, Any] = field(default_factory=dict)  # given only to rows that are sent


@dataclass(frozen=True)
class RowKeys:
    """The valid rows of a chunk (positions) with their journal keys and body hashes."""

    rows: list[int]
    thumbprints: list[str]
    devices: list[str]
    keys: list[str]
    hashes: list[int]


def row_keys(vc: ValidatedChunk) -> RowKeys:
    """Keys and body hashes of the chunk's valid rows, to look up in the journal."""
    rows = np.flatnonzero(vc.valid)
    thumbs = vc.values[THUMBPRINT].iloc[rows].tolist()
    devices = vc.values[DEVICE].iloc[rows].tolist() if DEVICE in vc.values else [""] * len(rows)
    keys = [row_key(t, d) for t, d in zip(thumbs, devices, strict=True)]
    return RowKeys(rows.tolist(), thumbs, devices, keys, body_hashes(vc.values, rows).tolist())


def rejection(vc: ValidatedChunk, pos: int) -> Outcome:
    """The outcome of an invalid record: every problem of its row in one message."""
    message = "; ".join(
        f"column {p.column}: {p.value!r} {p.reason}"
        if p.value is not None
        else (f"column {p.column}: {p.reason}" if p.column else p.reason)
        for p in vc.problems[pos]
    )
    return Outcome(REJECTED, error_code=INVALID_ROW, error_message=message)


def exclusion(vc: ValidatedChunk, pos: int) -> Outcome:
    """The outcome of a record the profile says is not a certificate: never sent."""
    return Outcome(EXCLUDED, error_code="NotACertificate", error_message=vc.excluded[pos])


def refused_again(entry: Entry) -> Outcome:
    """A row Graph refused (4xx) last time with the same body: rejected again, not sent."""
    code, message = parse_journal_error(entry.last_error)
    since = entry.updated_at[:10] or "an earlier run"
    return Outcome(
        REJECTED,
        error_code=code or "Refused",
        error_message=f"{message} (Graph refused this row unchanged since {since}; not sent "
        "again: fix the row, or pass --resend-rejected if Graph's side changed)",
    )


def duplicated(entry: Entry) -> Outcome:
    """A row whose key an adoption found in Graph more than once: not sent (a third copy)."""
    code, message = parse_journal_error(entry.last_error)
    return Outcome(REJECTED, error_code=code or "DuplicateInGraph", error_message=message)


def decide(
    vc: ValidatedChunk,
    keys: RowKeys,
    entries: dict[str, Entry],
    *,
    update: bool,
    resend_rejected: bool = False,
) -> tuple[Slice, list[Job]]:
    """The chunk's settled outcomes (rejected, skipped, changed) and the jobs for the rest.

    ``entries`` are the journal's entries for ``keys.keys`` (missing keys are new rows).
    """
    slot = Slice(vc, [None] * len(vc.valid))
    for pos in vc.problems:
        slot.outcomes[pos] = rejection(vc, pos)
    for pos in vc.excluded:
        slot.outcomes[pos] = exclusion(vc, pos)
    jobs: list[Job] = []
    for pos, key, thumb, device, body_hash in zip(
        keys.rows, keys.keys, keys.thumbprints, keys.devices, keys.hashes, strict=True
    ):
        job = Job(slot, pos, key, thumb, device, body_hash)
        entry = entries.get(key)
        if entry is None:
            jobs.append(job)
        elif entry.in_doubt:
            job.kind = "reconcile"
            jobs.append(job)
        elif entry.status == REJECTED and entry.refused_hash == body_hash and not resend_rejected:
            slot.outcomes[pos] = refused_again(entry)
        elif entry.status == DUPLICATED:
            slot.outcomes[pos] = duplicated(entry)
        elif entry.status in DONE_STATUSES:
            if entry.body_hash == body_hash:
                slot.outcomes[pos] = Outcome(SKIPPED, id=entry.graph_id)
            elif update:
                job.kind, job.graph_id = "update", entry.graph_id
                jobs.append(job)
            else:
                slot.outcomes[pos] = Outcome(
                    CHANGED, id=entry.graph_id, error_code="Changed", error_message=CHANGED_MESSAGE
                )
        else:
            jobs.append(job)
    slot.remaining = len(jobs)
    return slot, jobs


__all__ = ["Job", "JobKind", "RowKeys", "Slice", "decide", "exclusion", "rejection", "row_keys"]
