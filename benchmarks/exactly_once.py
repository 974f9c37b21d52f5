"""Exactly-once benchmark: adoption of what Graph holds, and a fault mix that commits then fails.

Run with ``.venv/bin/python benchmarks/exactly_once.py [--quick] [--only adopt|faults]``.

- ``adopt``: the emulator (its own process) holds 100,000 objects (seeded through ``/_seed``,
  generated like the inventories of ``bench.py``); ``certimport journal adopt`` into an empty
  journal, then a ``run`` of the same inventory. Prints time, GET requests and peak RSS, for
  two sizes, to show memory is flat in the number of objects.
- ``faults``: 1,500 rows with 8% of POSTs failing before any work (503, 504, a reset) and 4%
  committed and then failing (half a 504, half a dropped connection); then ``retry`` of the
  run directory. And 2,000 rows with ``--batch 20`` where 2% of ``$batch`` calls answer 504
  after committing their items. Prints duplicates and lost rows in the emulator's store.

Nothing here asserts: the figures are read off the output (tests assert zero duplicates on
smaller fault mixes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import ROOT, TOKEN, Emulator, generate, run_child

PRE_WORK = ["503", "503", "503", "504", "504", "504", "drop", "drop"]  # 8 of 12 kinds
AFTER_COMMIT = ["created_504", "created_504", "created_drop", "created_drop"]  # 4 of 12


def bodies_of(path: Path) -> list[dict[str, object]]:
    """The Graph bodies of a generated inventory, as certimport would send them."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    bodies = []
    for row in rows:
        body: dict[str, object] = {k: v for k, v in row.items() if v != ""}
        body["certificateKeyUsages"] = int(row["certificateKeyUsages"])
        body["@odata.type"] = "#microsoft.graph.managedAllDeviceCertificateState"
        bodies.append(body)
    return bodies


def env_for(emulator: Emulator, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CERTIMPORT_BASE_URL": f"{emulator.root}/beta",
        "CERTIMPORT_AUTH_METHOD": "static",
        "CERTIMPORT_ACCESS_TOKEN": TOKEN,
        "CERTIMPORT_STATE_DIR": str(state),
        "CERTIMPORT_RATE_LIMIT": "0",
        "CERTIMPORT_READ_RATE_LIMIT": "0",
    }


def adoption(emulator: Emulator, work: Path, objects: int) -> str:
    path = generate(work / f"held-{objects}.csv", objects)
    emulator.setup()
    bodies = bodies_of(path)
    for start in range(0, len(bodies), 1000):  # the emulator takes bodies up to 1 MiB
        emulator._call("/_seed", bodies[start : start + 1000])
    env = env_for(emulator, work / f"adopt-state-{objects}")
    gets = emulator.stats()["gets"]
    wall, cpu, rss, _, _ = run_child([sys.executable, "-m", "importer", "journal", "adopt"], env)
    requests = emulator.stats()["gets"] - gets
    posts = emulator.stats()["posts"]
    out = work / f"adopt-run-{objects}"
    run_wall, _, run_rss, _, _ = run_child(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(out)], env
    )
    counts = json.loads((out / "summary.json").read_text())["counts"]
    return (
        f"adopt {objects:>7,} objects: {wall:6.1f} s wall, {cpu:6.1f} s CPU, {requests:>4} GETs, "
        f"peak RSS {rss:5.0f} MB | then run of the same file: {run_wall:5.1f} s, "
        f"{emulator.stats()['posts'] - posts} POSTs, skipped {counts.get('skipped', 0):,}, "
        f"peak RSS {run_rss:.0f} MB"
    )


def held_counts(emulator: Emulator) -> Counter[tuple[str, str]]:
    return Counter(
        (r["certificateThumbprint"], r.get("managedDeviceDisplayName", ""))
        for r in emulator.records()
    )


def fault_mix(emulator: Emulator, work: Path, rows: int, batch: int, seed: int) -> str:
    path = generate(work / f"faults-{rows}-{batch}.csv", rows)
    if batch > 1:
        faults, rate = [*PRE_WORK, *AFTER_COMMIT, "created_batch_504"], 0.13
    else:
        faults, rate = [*PRE_WORK, *AFTER_COMMIT], 0.12
    emulator.setup(fault_rate=rate, faults=faults, seed=seed)
    env = env_for(emulator, work / f"faults-state-{rows}-{batch}")
    out = work / f"faults-out-{rows}-{batch}"
    args = ["run", str(path), "--concurrency", "8", "--batch", str(batch), "--out", str(out)]
    run_child([sys.executable, "-m", "importer", *args], env)
    first = json.loads((out / "summary.json").read_text())["counts"]
    emulator._call("/_config", {"fault_rate": 0.0})
    run_child([sys.executable, "-m", "importer", "retry", str(out), "--out", str(out) + "-r"], env)
    held = held_counts(emulator)
    stats = emulator.stats()
    duplicates = sum(n - 1 for n in held.values() if n > 1)
    lost = rows - len(held)
    return (
        f"fault mix {rows:,} rows batch={batch}: {stats['faults']} faults injected; run: "
        f"created {first.get('created', 0):,}, unknown {first.get('unknown', 0)}, failed "
        f"{first.get('failed', 0)}; after retry: {duplicates} duplicates, {lost} lost"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes (a smoke run).")
    parser.add_argument("--only", choices=["adopt", "faults"], action="append")
    args = parser.parse_args()
    cases = set(args.only or ["adopt", "faults"])
    scale = 0.1 if args.quick else 1.0
    lines = []
    with tempfile.TemporaryDirectory(prefix="certimport-once-") as tmp:
        work = Path(tmp)
        emulator = Emulator()
        try:
            if "adopt" in cases:
                for objects in (int(20_000 * scale), int(100_000 * scale)):
                    lines.append(adoption(emulator, work, objects))
                    print(lines[-1], flush=True)
            if "faults" in cases:
                for rows, batch, seed in ((int(1500 * scale), 1, 3), (int(2000 * scale), 20, 5)):
                    lines.append(fault_mix(emulator, work, rows, batch, seed))
                    print(lines[-1], flush=True)
        finally:
            emulator.close()


if __name__ == "__main__":
    main()
