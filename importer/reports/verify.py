"""The reports of ``certimport verify``: every difference between the journal and Graph.

``verify.csv`` has one line per finding; ``verify.json`` (written last: its presence says the
reports are complete) the counts, the deletion plan's size and the exit code. Both are
private to the owner (they hold device names and user principal names' neighbours).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.reports.results import AtomicCsv, make_private_dir, neutralise, write_private_atomic

GONE = "gone"  # the journal created it (or adopted it); Graph no longer holds that id
DUPLICATE = "duplicate"  # an extra copy of a key Graph holds more than once
DIFFERS = "differs"  # Graph's values are not what certimport last sent
DELETED = "deleted"  # an extra copy removed by --delete-duplicates
KINDS = (GONE, DUPLICATE, DIFFERS, DELETED)
COLUMNS = (
    "finding",
    "certificateThumbprint",
    "managedDeviceDisplayName",
    "id",
    "journal_id",
    "detail",
)


@dataclass(frozen=True)
class Finding:
    """One line of verify.csv."""

    kind: str
    thumbprint: str
    device: str
    graph_id: str
    journal_id: str = ""
    detail: str = ""


class VerifyReport:
    """Writes verify.csv as findings come, then verify.json."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        make_private_dir(out_dir)
        self._csv = AtomicCsv(out_dir / "verify.csv", COLUMNS)
        self.counts: Counter[str] = Counter()

    def add(self, finding: Finding) -> None:
        """Write one finding."""
        self.counts[finding.kind] += 1
        self._csv.writer.writerow(
            (
                finding.kind,
                finding.thumbprint,
                neutralise(finding.device),
                finding.graph_id,
                finding.journal_id,
                finding.detail,
            )
        )

    def publish(self, summary: dict[str, Any]) -> None:
        """Publish verify.csv, then verify.json with ``summary`` and the counts."""
        self._csv.publish()
        data = {**summary, "findings": {kind: self.counts[kind] for kind in KINDS}}
        write_private_atomic(
            self.out_dir / "verify.json", json.dumps(data, indent=2).encode() + b"\n"
        )

    def discard(self) -> None:
        """Drop the partial CSV (the command failed before it finished)."""
        self._csv.discard()


__all__ = ["COLUMNS", "DELETED", "DIFFERS", "DUPLICATE", "GONE", "Finding", "VerifyReport"]
