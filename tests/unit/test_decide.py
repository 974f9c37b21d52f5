"""decide(): what each row of a chunk needs, from the journal's entries (a pure function)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import row, thumb, write_inventory

from importer.input.schema import ValidatedChunk, Validator
from importer.input.source import CsvSource
from importer.outcome import CHANGED, REJECTED, SKIPPED
from importer.run.decide import decide, row_keys
from importer.run.journal import Entry


def chunk(tmp_path: Path, rows: list[dict[str, str]]) -> ValidatedChunk:
    source = CsvSource(write_inventory(tmp_path / "inv.csv", rows))
    return Validator(source.header).validate(next(source.chunks()))


def entry_for(vc: ValidatedChunk, pos: int, **fields: object) -> tuple[str, Entry]:
    keys = row_keys(vc)
    i = keys.rows.index(pos)
    values: dict[str, object] = {
        "key": keys.keys[i],
        "body_hash": keys.hashes[i],
        "status": "created",
        "graph_id": f"id-{pos}",
        "attempts": 1,
        "intent_run": None,
    }
    values.update(fields)
    return keys.keys[i], Entry(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("journal", "update", "settled", "kind", "graph_id"),
    [
        ({}, False, None, "create", ""),
        ({"status": "created"}, False, SKIPPED, None, ""),
        ({"status": "updated"}, False, SKIPPED, None, ""),
        ({"status": "created", "body_hash": 1}, False, CHANGED, None, ""),
        ({"status": "created", "body_hash": 1}, True, None, "update", "id-0"),
        ({"status": "created", "intent_run": "r0"}, False, None, "reconcile", ""),
        ({"status": "unknown"}, False, None, "reconcile", ""),
        ({"status": "failed"}, False, None, "create", ""),
        ({"status": "rejected"}, False, None, "create", ""),
    ],
    ids=[
        "new",
        "created-same",
        "updated-same",
        "changed",
        "changed-update",
        "intent",
        "unknown",
        "failed",
        "rejected-by-graph",
    ],
)
def test_each_journal_state_decides_the_row(
    tmp_path, journal, update, settled, kind, graph_id
) -> None:
    vc = chunk(tmp_path, [row(0)])
    entries = dict([entry_for(vc, 0, **journal)]) if journal else {}
    slot, jobs = decide(vc, row_keys(vc), entries, update=update)
    if settled is None:
        assert slot.outcomes == [None]
        assert [(j.pos, j.kind, j.graph_id) for j in jobs] == [(0, kind, graph_id)]
        assert slot.remaining == 1
    else:
        assert jobs == [] and slot.remaining == 0
        assert slot.outcomes[0] is not None and slot.outcomes[0].status == settled
        assert slot.outcomes[0].id == "id-0"


def test_invalid_rows_are_rejected_with_every_problem_and_never_become_jobs(tmp_path) -> None:
    rows = [row(0), row(1, certificateThumbprint="nope", certificateRevokeStatus="bad"), row(2)]
    vc = chunk(tmp_path, rows)
    slot, jobs = decide(vc, row_keys(vc), {}, update=False)
    assert [j.pos for j in jobs] == [0, 2]
    assert [j.thumbprint for j in jobs] == [thumb(0), thumb(2)]
    rejected = slot.outcomes[1]
    assert rejected is not None and rejected.status == REJECTED
    assert rejected.error_code == "InvalidRow"
    assert "certificateThumbprint" in rejected.error_message
    assert "certificateRevokeStatus" in rejected.error_message
    assert slot.remaining == 2
    assert all(j.body == {} for j in jobs)  # bodies are built only for rows that are sent


def test_keys_are_thumbprint_and_device_and_hashes_follow_the_body(tmp_path) -> None:
    vc = chunk(tmp_path, [row(0), row(1, managedDeviceDisplayName="PC-0")])
    keys = row_keys(vc)
    assert keys.thumbprints == [thumb(0), thumb(1)]
    assert keys.devices == ["PC-0", "PC-0"]
    assert len(set(keys.keys)) == 2
    again = chunk(tmp_path, [row(0), row(1, managedDeviceDisplayName="PC-0")])
    assert row_keys(again).hashes == keys.hashes
