"""An object Graph holds hashes exactly as the file row it was created from (adoption)."""

from __future__ import annotations

import numpy as np
from helpers import SAMPLES

from importer.input.mapping import body_hashes, build_bodies
from importer.input.schema import Validator
from importer.input.source import CsvSource
from importer.model import DEVICE, THUMBPRINT
from importer.run.adopt import ObjectHasher
from importer.run.journal import row_key


def sample_rows(name: str) -> tuple[list[dict], list[int], list[str]]:
    """The bodies, hashes and keys of a sample's valid rows, as a run computes them."""
    source = CsvSource(SAMPLES / name, chunk_size=1000, encoding="auto")
    validator = Validator(source.header)
    bodies, hashes, keys = [], [], []
    for chunk in source.chunks():
        vc = validator.validate(chunk)
        rows = np.flatnonzero(vc.valid)
        bodies += build_bodies(vc.values, rows)
        hashes += body_hashes(vc.values, rows).tolist()
        devices = vc.values[DEVICE].iloc[rows] if DEVICE in vc.values else [""] * len(rows)
        keys += [
            row_key(t, d) for t, d in zip(vc.values[THUMBPRINT].iloc[rows], devices, strict=True)
        ]
    return bodies, hashes, keys


def test_graph_echo_of_every_sample_row_hashes_as_the_row():
    bodies, hashes, keys = sample_rows("certificates.csv")
    objects = [{"id": f"id-{n}", **body} for n, body in enumerate(bodies)]
    rows = ObjectHasher().rows(objects)
    assert [r[4] for r in rows] == hashes
    assert [r[1] for r in rows] == keys


def test_graph_spellings_of_the_same_values_hash_the_same():
    """Seven fractional digits, +00:00, a lower-case thumbprint, an unset change date."""
    bodies, hashes, _ = sample_rows("certificates.csv")
    body = {**bodies[0]}
    echoed = {
        "id": "x",
        **body,
        "certificateIssuanceDateTime": body["certificateIssuanceDateTime"].replace(
            "Z", ".0000000+00:00"
        ),
        "certificateThumbprint": body["certificateThumbprint"].lower(),
        "certificateRevokeStatusLastChangeDateTime": body.get(
            "certificateRevokeStatusLastChangeDateTime", "0001-01-01T00:00:00Z"
        ),
        "userPrincipalName": body.get("userPrincipalName"),  # null when not set
    }
    [(_, _, _, _, digest)] = ObjectHasher().rows([echoed])
    assert digest == hashes[0]


def test_other_values_hash_differently_and_objects_without_id_are_left_out():
    bodies, hashes, _ = sample_rows("certificates.csv")
    changed = {"id": "y", **bodies[1], "certificateSerialNumber": "01"}
    rows = ObjectHasher().rows([changed, {"certificateThumbprint": "AB"}, "not an object"])
    assert len(rows) == 1 and rows[0][4] != hashes[1]
