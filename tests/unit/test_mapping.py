"""build_bodies and body_hashes: the exact bodies sent and the hashes kept in journals.

The hashes are stored in users' journals, so they are pinned to literal values (computed with
the first implementation) and the current code is compared with a copy of that implementation
on varied frames: dtypes, empty cells, absent columns, non-ASCII text, row subsets, no rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLES

from importer.config import load_settings
from importer.input.mapping import body_hashes, build_bodies
from importer.input.schema import Validator
from importer.input.source import CsvSource
from importer.model import KEY_USAGES, ODATA_TYPE, PROPERTIES, REVOKE_CHANGED

# --- the first implementation, kept as the reference ---------------------------------------


def reference_build_bodies(values: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    columns = [p for p in PROPERTIES if p in values.columns]
    frame = values.iloc[rows]
    cells: list[list[Any]] = []
    for name in columns:
        column = frame[name].tolist()
        if name == KEY_USAGES:
            column = [int(v) if v else "" for v in column]
        cells.append(column)
    return [
        {
            "@odata.type": ODATA_TYPE,
            **{k: v for k, v in zip(columns, record, strict=True) if v != ""},
        }
        for record in zip(*cells, strict=True)
    ]


def reference_body_hashes(values: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    frame = values.iloc[rows]
    empty = pd.Series("", index=frame.index, dtype=object)
    parts = [frame[p].astype(object) if p in frame.columns else empty for p in PROPERTIES]
    joined = parts[0].str.cat(pd.concat(parts[1:], axis=1), sep="\x1f")
    return pd.util.hash_array(joined.to_numpy(dtype=object)).view(np.int64)


def assert_same(values: pd.DataFrame, rows: np.ndarray) -> None:
    """The current code gives what the reference gives: values, types and key order."""
    bodies = build_bodies(values, rows)
    expected = reference_build_bodies(values, rows)
    assert bodies == expected
    assert [list(b.items()) for b in bodies] == [list(b.items()) for b in expected]
    assert [[type(v) for v in b.values()] for b in bodies] == [
        [type(v) for v in b.values()] for b in expected
    ]
    hashes = body_hashes(values, rows)
    assert hashes.dtype == np.int64
    np.testing.assert_array_equal(hashes, reference_body_hashes(values, rows))


# --- known bodies ---------------------------------------------------------------------------

FULL = {
    "certificateThumbprint": "ACA4EC7D63E913AF7EE10C2352C347484CCD780B",
    "certificateSerialNumber": "009C78A1",
    "managedDeviceDisplayName": "PC-00001",
    "userPrincipalName": "ana@contoso.com",
    "certificateIssuerName": "CN=Contoso Issuing CA 01, DC=contoso, DC=com",
    "certificateSubjectName": "CN=ana, OU=Staff, O=Contoso",
    "certificateRevokeStatus": "revoked",
    "certificateRevokeStatusLastChangeDateTime": "2025-03-01T08:00:00Z",
    "certificateIssuanceDateTime": "2025-01-05T10:32:00Z",
    "certificateExpirationDateTime": "2026-01-05T10:32:00Z",
    "certificateKeyUsages": "160",
    "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2",
}
SPARSE = {
    "certificateThumbprint": "0000000000000000000000000000000000000001",
    "certificateSerialNumber": "01",
    "managedDeviceDisplayName": "Poste-Zoë-東京",
    "userPrincipalName": "",
    "certificateIssuerName": "CN=Émetteur",
    "certificateSubjectName": "CN=Zoë",
    "certificateRevokeStatus": "none",
    "certificateRevokeStatusLastChangeDateTime": "",
    "certificateIssuanceDateTime": "2024-02-29T00:00:00Z",
    "certificateExpirationDateTime": "2025-02-28T23:59:59.5Z",
    "certificateKeyUsages": "",
    "certificateExtendedKeyUsages": "",
}
EMPTY = dict.fromkeys(PROPERTIES, "")
# Computed with the first implementation; a journal written by any version holds these.
FULL_HASH = -6411223130246432786
SPARSE_HASH = -733070542600630628
EMPTY_HASH = -3034939382882705679


def known(dtype: Any = "str") -> pd.DataFrame:
    return pd.DataFrame([FULL, SPARSE, EMPTY], dtype=dtype)


@pytest.mark.parametrize("dtype", ["str", object, "string", pd.StringDtype("python")])
def test_hashes_of_known_bodies_are_pinned(dtype: Any) -> None:
    values = known(dtype)
    hashes = body_hashes(values, np.arange(3))
    assert hashes.dtype == np.int64
    assert hashes.tolist() == [FULL_HASH, SPARSE_HASH, EMPTY_HASH]
    assert body_hashes(values, np.array([2, 0])).tolist() == [EMPTY_HASH, FULL_HASH]


def test_hash_is_pandas_hash_of_the_joined_cells() -> None:
    joined = np.array(["\x1f".join(FULL[p] for p in PROPERTIES)], dtype=object)
    assert pd.util.hash_array(joined).view(np.int64).tolist() == [FULL_HASH]


def test_missing_optional_column_hashes_like_an_empty_column() -> None:
    values = known().drop(columns=[REVOKE_CHANGED])
    assert body_hashes(values, np.array([1, 2])).tolist() == [SPARSE_HASH, EMPTY_HASH]
    values = known()
    values[REVOKE_CHANGED] = ""
    without = values.drop(columns=[REVOKE_CHANGED])
    np.testing.assert_array_equal(
        body_hashes(values, np.arange(3)), body_hashes(without, np.arange(3))
    )


def test_bodies_leave_out_empty_cells_and_send_key_usages_as_int() -> None:
    bodies = build_bodies(known(), np.array([0, 1]))
    assert [list(b.items()) for b in bodies] == [
        [
            ("@odata.type", ODATA_TYPE),
            *((p, 160 if p == KEY_USAGES else FULL[p]) for p in PROPERTIES),
        ],
        [("@odata.type", ODATA_TYPE), *((p, v) for p, v in SPARSE.items() if v)],
    ]
    assert type(bodies[0][KEY_USAGES]) is int
    assert build_bodies(known(), np.array([2])) == [{"@odata.type": ODATA_TYPE}]


def test_key_usage_zero_is_sent() -> None:
    values = known()
    values[KEY_USAGES] = ["0", "", "65535"]
    assert [b.get(KEY_USAGES) for b in build_bodies(values, np.arange(3))] == [0, None, 65535]


def test_no_rows() -> None:
    values = known()
    rows = np.array([], dtype=np.int64)
    assert build_bodies(values, rows) == []
    assert body_hashes(values, rows).dtype == np.int64
    assert body_hashes(values, rows).tolist() == []
    assert_same(values, rows)
    assert_same(values.iloc[:0], rows)


# --- the same as the reference --------------------------------------------------------------

WORDS = ["a", "Zoë", "東京", "CN=x, O=y", "x\x1fy", " ", "é" * 50, "0", "1.3.6.1.5.5.7.3.2"]


def varied_frame(rng: np.random.Generator, n: int, dtype: Any) -> pd.DataFrame:
    """Every kind of column: never, sometimes, mostly and always empty; some absent."""
    columns: dict[str, list[str]] = {}
    for i, name in enumerate(PROPERTIES):
        if name == REVOKE_CHANGED and rng.random() < 0.5:
            continue
        empty_share = [0.0, 0.0, 0.1, 0.5, 0.95, 1.0][(i + int(rng.integers(6))) % 6]
        if name == KEY_USAGES:
            cells = [str(v) for v in rng.choice([0, 1, 128, 160, 32768], n)]
        else:
            cells = [f"{rng.choice(WORDS)}-{k}" for k in rng.integers(0, n + 1, n)]
        columns[name] = ["" if rng.random() < empty_share else c for c in cells]
    return pd.DataFrame(columns, index=pd.RangeIndex(n) * 3 + 7, dtype=dtype)


@pytest.mark.parametrize("dtype", ["str", object, "string", pd.StringDtype("python")])
@pytest.mark.parametrize("seed", range(4))
def test_same_as_reference_on_varied_frames(dtype: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = varied_frame(rng, 300, dtype)
    n = len(values)
    assert_same(values, np.arange(n))
    assert_same(values, np.flatnonzero(rng.random(n) < 0.3))
    assert_same(values, rng.permutation(n)[:50])
    assert_same(values, np.array([n - 1, 0, n - 1]))
    assert_same(values, np.array([5]))
    assert_same(values, np.array([], dtype=int))


def test_same_as_reference_with_optional_columns_absent() -> None:
    values = varied_frame(np.random.default_rng(9), 100, "str")
    rows = np.arange(100)[::-1]
    for absent in ([REVOKE_CHANGED], ["userPrincipalName", KEY_USAGES], list(PROPERTIES[1:])):
        assert_same(values.drop(columns=[c for c in absent if c in values]), rows)


def test_missing_values_hash_and_map_as_before() -> None:
    """NA never comes out of the validator; if it did, nothing would change."""
    for dtype in ("str", object, "string"):
        values = known(dtype)
        values.iloc[1, 2] = None
        np.testing.assert_array_equal(
            body_hashes(values, np.arange(3)), reference_body_hashes(values, np.arange(3))
        )
        assert body_hashes(values, np.arange(3)).tolist() == [FULL_HASH, -1, EMPTY_HASH]
    values = known("str")
    values.iloc[1, 2] = None
    (body,) = build_bodies(values, np.array([1]))
    (expected,) = reference_build_bodies(values, np.array([1]))
    assert list(body) == list(expected)
    assert math.isnan(body[PROPERTIES[2]])


def validated(path: Path, source: dict[str, Any], options: dict[str, Any]) -> list[Any]:
    src = CsvSource(path, chunk_size=4, encoding="auto", **source)
    check = Validator(src.header, **options)
    return [check.validate(chunk) for chunk in src.chunks()]


ADCS_COLUMNS = load_settings(SAMPLES / "adcs-columns.toml", environ={}).columns


@pytest.mark.parametrize(
    ("name", "source", "options"),
    [
        ("certificates.csv", {}, {}),
        ("bad-values.csv", {}, {}),
        ("duplicates.csv", {}, {}),
        ("not-utf8.csv", {}, {}),
        ("with-bom-and-extras.csv", {}, {}),
        ("adcs-export.csv", {"columns": ADCS_COLUMNS}, {"dayfirst": False}),
        ("powershell-export.csv", {}, {"dayfirst": False, "timezone": "Europe/Amsterdam"}),
        ("spreadsheet-semicolon.csv", {}, {"dayfirst": True, "timezone": "Europe/Berlin"}),
    ],
)
def test_same_as_reference_on_samples(
    name: str, source: dict[str, Any], options: dict[str, Any]
) -> None:
    chunks = validated(SAMPLES / name, source, options)
    assert sum(int(vc.valid.sum()) for vc in chunks) > 0
    for vc in chunks:
        assert_same(vc.values, np.flatnonzero(vc.valid))
        assert_same(vc.values, np.arange(len(vc.values)))
