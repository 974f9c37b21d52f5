"""``certimport verify``: compare the journal with what Graph holds; delete only proven re-posts.

A verification reads the whole collection (as an adoption does, resumable) and reports:
objects the journal created that Graph no longer holds (``gone``), keys Graph holds more than
once with every id (``duplicate``), and objects whose values differ from what certimport last
sent (``differs``). It changes nothing in Graph unless asked.

With ``delete_duplicates`` it removes the extra copies of a key, and only those whose values
are identical to what certimport sent for the key (the evidence that they are its own
re-posts), keeping the id the journal holds. A key whose journal id is none of Graph's ids,
or an extra copy with other values, is reported and left alone. The plan is printed before
anything is deleted, and a plan larger than ``max_deletes`` deletes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from importer.outcome import DELETED as DELETED_STATUS
from importer.reports.verify import DELETED, DIFFERS, DUPLICATE, GONE, Finding, VerifyReport
from importer.run.adopt import CollectionPass
from importer.run.journal import Journal
from importer.run.snapshot import Duplicate, Snapshot
from importer.send.client import GraphClient

Say = Callable[[str], None]
SHOWN_PLAN = 20  # planned deletions printed one per line; the rest are counted


@dataclass(frozen=True)
class VerifyOptions:
    """What a verification may do."""

    out_dir: Path
    delete_duplicates: bool = False
    max_deletes: int = 100


@dataclass(frozen=True)
class VerifyResult:
    """Counts of one verification, and its exit code (0 consistent, 1 differences)."""

    objects: int
    keys: int
    gone: int
    duplicate_keys: int
    differs: int
    unknown_to_journal: int
    planned: int
    deleted: int
    exit_code: int


def _detail(dup: Duplicate, extra: str) -> str:
    if not dup.journal_id:
        return (
            f"Graph holds this key {len(dup.ids)} times and the journal holds none of these "
            "ids: not deleted (certimport cannot tell which copy is its own)"
        )
    if extra in dup.identical:
        return f"extra copy of {dup.journal_id} with the values certimport sent"
    return f"extra copy of {dup.journal_id} with other values: not deleted (not certimport's)"


class Verification:
    """One ``verify`` against one target."""

    def __init__(
        self, client: GraphClient, journal: Journal, options: VerifyOptions, *, say: Say
    ) -> None:
        self.client = client
        self.journal = journal
        self.options = options
        self.say = say
        self.snapshot = Snapshot(journal)
        self.report = VerifyReport(options.out_dir)

    async def run(self) -> VerifyResult:
        """Read Graph, report the differences, delete what is asked and proven; publish."""
        try:
            state = await CollectionPass(
                self.client, self.journal, say=self.say, purpose="verify"
            ).read()
            plan, duplicate_keys = self._compare()
            deleted = await self._delete(plan)
        except BaseException:
            self.report.discard()
            raise
        counts = self.report.counts
        remaining_keys = duplicate_keys - sum(1 for _ in self._resolved(plan, deleted))
        exit_code = 1 if counts[GONE] or counts[DIFFERS] or remaining_keys else 0
        objects, keys = self.snapshot.counted()
        result = VerifyResult(
            objects=objects,
            keys=keys,
            gone=counts[GONE],
            duplicate_keys=remaining_keys,
            differs=counts[DIFFERS],
            unknown_to_journal=self.snapshot.unknown_to_journal(),
            planned=len(plan),
            deleted=len(deleted),
            exit_code=exit_code,
        )
        self.report.publish(
            {**result.__dict__, "pages": state.pages, "journal": str(self.journal.path)}
        )
        return result

    def _compare(self) -> tuple[list[tuple[Duplicate, str]], int]:
        """Write the findings; the planned deletions (key, extra id) and the duplicated keys."""
        report = self.report
        for thumb, device, graph_id in self.snapshot.gone():
            report.add(Finding(GONE, thumb, device, graph_id, graph_id, "not in Graph any more"))
        plan: list[tuple[Duplicate, str]] = []
        keys = 0
        for dup in self.snapshot.duplicates():
            keys += 1
            for extra in dup.ids:
                if extra == dup.journal_id:
                    continue
                report.add(
                    Finding(
                        DUPLICATE,
                        dup.thumbprint,
                        dup.device,
                        extra,
                        dup.journal_id,
                        _detail(dup, extra),
                    )
                )
                if dup.journal_id and extra in dup.identical:
                    plan.append((dup, extra))
        for thumb, device, graph_id in self.snapshot.differing():
            report.add(
                Finding(
                    DIFFERS, thumb, device, graph_id, graph_id, "values differ from those last sent"
                )
            )
        return plan, keys

    async def _delete(self, plan: list[tuple[Duplicate, str]]) -> set[str]:
        options = self.options
        if not plan:
            return set()
        keys = len({(d.thumbprint, d.device) for d, _ in plan})
        self.say(
            f"plan: delete {len(plan):,} extra copies of {keys:,} keys, keeping the id the "
            "journal holds"
        )
        for dup, extra in plan[:SHOWN_PLAN]:
            self.say(
                f"  delete {extra} ({dup.thumbprint} on {dup.device or '-'}; keep {dup.journal_id})"
            )
        if len(plan) > SHOWN_PLAN:
            self.say(f"  ... and {len(plan) - SHOWN_PLAN:,} more (verify.csv lists them all)")
        if not options.delete_duplicates:
            self.say("nothing deleted: pass --delete-duplicates to carry out this plan")
            return set()
        if len(plan) > options.max_deletes:
            self.say(
                f"nothing deleted: the plan has {len(plan):,} deletions, more than "
                f"--max-deletes {options.max_deletes:,}"
            )
            return set()
        return await self._carry_out(plan)

    async def _carry_out(self, plan: list[tuple[Duplicate, str]]) -> set[str]:
        gate = asyncio.Semaphore(max(1, self.client.concurrency))
        deleted: set[str] = set()

        async def one(dup: Duplicate, extra: str) -> None:
            async with gate:
                outcome = await self.client.delete(extra)
            if outcome.status == DELETED_STATUS:
                deleted.add(extra)
                self.snapshot.forget(extra)
                self.report.add(
                    Finding(DELETED, dup.thumbprint, dup.device, extra, dup.journal_id, "deleted")
                )
            else:
                self.say(f"could not delete {extra}: {outcome.error_code} {outcome.error_message}")

        await asyncio.gather(*(one(dup, extra) for dup, extra in plan))
        self.say(f"deleted {len(deleted):,} of {len(plan):,} planned copies")
        return deleted

    @staticmethod
    def _resolved(plan: list[tuple[Duplicate, str]], deleted: set[str]) -> list[Duplicate]:
        """Keys every extra copy of which was deleted."""
        by_key: dict[tuple[str, str], Duplicate] = {(d.thumbprint, d.device): d for d, _ in plan}
        return [
            dup
            for dup in by_key.values()
            if all(i == dup.journal_id or i in deleted for i in dup.ids)
        ]


def describe(result: VerifyResult, out_dir: Path) -> list[str]:
    """The console lines of a verification."""
    verdict = "consistent" if result.exit_code == 0 else "differences found"
    return [
        f"verify: {verdict}. Graph holds {result.objects:,} objects ({result.keys:,} keys); "
        f"{result.unknown_to_journal:,} of them are unknown to the journal",
        f"  gone from Graph: {result.gone:,}  keys held more than once: "
        f"{result.duplicate_keys:,}  values differ: {result.differs:,}  "
        f"deleted: {result.deleted:,}",
        f"reports: {out_dir / 'verify.csv'}",
    ]


__all__ = ["Verification", "VerifyOptions", "VerifyResult", "describe"]
