"""Pacing benchmark: how much of a share smaller than configured each policy uses, and at what
cost in 429s, against the emulator (its own process, as in ``bench.py``).

Run with ``.venv/bin/python benchmarks/pacing.py [--quick] [--only SCENARIO]``.

Scenarios (32 workers, 20 ms latency, certimport configured above the emulator's real limit):

- ``share60``: configured 100/s, real 60/s (another app takes the rest of the tenant's quota);
- ``intune``: configured 100/20 s, real 50/20 s (Intune's per-tenant 200 shared with others);
- ``halves``: configured 100/s, real 100/s, then 50/s for a phase, then 100/s again (the limit
  is changed on the emulator through ``POST /_config`` while the policy runs); the table tells
  the seconds each policy took to settle after each change (settled: 5 seconds in a row with
  no 429 and at least 90% of the new share);
- ``alone``: configured 2000/20 s, real 2000/20 s, no other app.

Policies, one after the other on the same scenario: certimport itself; a plain aiohttp poster
that honours Retry-After (each worker sleeps it, then sends again; no pacing); and an imitation
of the AWS SDKs' ``adaptive`` retry mode (botocore ``retries/adaptive.py``: a token bucket
whose rate is set from the measured send rate on a throttle and climbs back along a CUBIC
curve; retries back off exponentially with jitter; Retry-After is not read). The 429 share is
the emulator's: 429 answers / write requests it received. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import COLLECTION_URL, ROOT, TOKEN, Emulator, generate, run_child

WORKERS = 32
LATENCY = 0.02
DEADLINE = 240.0  # seconds after which a baseline poster gives up the rows it has not sent
POLL = 0.25  # seconds between two samples of the emulator's counters

POSTER = r"""
import asyncio, csv, json, math, random, sys, time
import aiohttp


class Adaptive:
    # After botocore's ClientRateLimiter + CubicCalculator + RateClocker (our own code).
    C, BETA, MIN_RATE = 0.4, 0.7, 0.5

    def __init__(self):
        self.enabled = False
        self.fill = self.MIN_RATE
        self.tokens = 0.0
        self.stamp = time.monotonic()
        self.w_max, self.k, self.last_fail = 0.0, 0.0, time.monotonic()
        self.measured, self.count, self.bucket = 0.0, 0, math.floor(time.monotonic() * 2) / 2
        self.lock = asyncio.Lock()

    def _refill(self):
        now = time.monotonic()
        self.tokens = min(max(self.fill, 1.0), self.tokens + (now - self.stamp) * self.fill)
        self.stamp = now

    async def acquire(self):
        if not self.enabled:
            return
        async with self.lock:
            self._refill()
            while self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.fill)
                self._refill()
            self.tokens -= 1

    def _clock_rate(self):
        now = time.monotonic()
        bucket = math.floor(now * 2) / 2
        self.count += 1
        if bucket > self.bucket:
            rate = self.count / (bucket - self.bucket)
            self.measured = rate * 0.8 + self.measured * 0.2
            self.count, self.bucket = 0, bucket
        return self.measured

    def answered(self, throttled):
        measured = self._clock_rate()
        now = time.monotonic()
        if throttled:
            use = measured if not self.enabled else min(measured, self.fill)
            self.w_max, self.last_fail = use, now
            self.k = (self.w_max * (1 - self.BETA) / self.C) ** (1 / 3)
            rate = use * self.BETA
            self.enabled = True
        else:
            rate = self.C * (now - self.last_fail - self.k) ** 3 + self.w_max
        self._refill()
        self.fill = max(self.MIN_RATE, min(rate, 2 * measured))


async def main(path, url, token, workers, policy, deadline):
    start = time.monotonic()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    queue = asyncio.Queue()
    for row in rows:
        body = {k: v for k, v in row.items() if v != ""}
        body["certificateKeyUsages"] = int(body["certificateKeyUsages"])
        body["@odata.type"] = "#microsoft.graph.managedAllDeviceCertificateState"
        queue.put_nowait(body)
    limiter = Adaptive() if policy == "adaptive" else None
    headers = {"Authorization": "Bearer " + token}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as s:
        async def worker():
            while not queue.empty() and time.monotonic() - start < deadline:
                body = queue.get_nowait()
                attempt = 0
                while time.monotonic() - start < deadline:  # past it, the row is given up
                    if limiter:
                        await limiter.acquire()
                    async with s.post(url, json=body, headers=headers) as r:
                        await r.read()
                        status, retry_after = r.status, r.headers.get("Retry-After")
                    if limiter:
                        limiter.answered(status == 429)
                    if status != 429:
                        break
                    attempt += 1
                    if limiter:  # botocore's standard backoff: rand * 2^(n-1), at most 20 s
                        await asyncio.sleep(min(20.0, random.random() * 2 ** (attempt - 1)))
                    else:
                        await asyncio.sleep(float(retry_after or 1))
        await asyncio.gather(*(worker() for _ in range(workers)))
    print(json.dumps({"seconds": time.monotonic() - start}))

asyncio.run(
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
)
"""
POLICIES = ("certimport", "aiohttp + Retry-After", "botocore-like adaptive")


@dataclass
class Scenario:
    """A configured rate, the emulator's real limit, and (``halves``) when it changes."""

    name: str
    configured: str
    limit: int
    window: float
    rows: int
    phases: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, new limit)

    def real_rate(self, seconds: float) -> float:
        """The emulator's limit per second, averaged over a run of ``seconds``."""
        changes = [(0.0, self.limit), *self.phases, (seconds, 0)]
        total = sum(
            max(0.0, min(b[0], seconds) - a[0]) * a[1] for a, b in itertools.pairwise(changes)
        )
        return total / self.window / seconds if seconds else 0.0


@dataclass
class Outcome:
    """One policy on one scenario."""

    scenario: Scenario
    policy: str
    seconds: float
    created: int
    posts: int
    throttled: int
    settle: list[float | None] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class Watcher:
    """Samples the emulator's counters every POLL seconds from the first POST, and applies the
    scenario's limit changes at their times."""

    def __init__(self, emulator: Emulator, scenario: Scenario) -> None:
        self.emulator = emulator
        self.scenario = scenario
        self.samples: list[tuple[float, int, int]] = []  # (seconds in, records, 429s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set() and not self.emulator.stats().get("posts"):
            time.sleep(0.01)
        start = time.monotonic()
        phases = list(self.scenario.phases)
        while not self.stop.is_set():
            now = time.monotonic() - start
            if phases and now >= phases[0][0]:
                self.emulator._call("/_config", {"write_limit": phases.pop(0)[1]})
            stats = self.emulator.stats()
            self.samples.append((now, stats["records"], stats["throttled"]))
            time.sleep(POLL)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    def at_time(self, t: float) -> tuple[float, int, int]:
        """The last sample taken at or before ``t`` seconds in."""
        i = bisect.bisect_right([s[0] for s in self.samples], t)
        return self.samples[max(0, i - 1)]

    def settle(self, at: float, share: float, hold: int = 5) -> float | None:
        """Seconds after ``at`` until ``hold`` seconds in a row with no 429 and at least 90%
        of ``share`` (per second) created in every second of them; None if never."""
        end = self.samples[-1][0] if self.samples else 0.0
        t = at
        while t + hold <= end:
            marks = [self.at_time(t + k) for k in range(hold + 1)]
            if all(
                b[2] == a[2] and b[1] - a[1] >= 0.9 * share for a, b in itertools.pairwise(marks)
            ):
                return t - at
            t += POLL
        return None


def run_policy(emulator: Emulator, scenario: Scenario, policy: str, work: Path) -> Outcome:
    """Run one policy on a freshly reset emulator set to the scenario's real limit."""
    path = generate(work / f"{scenario.name}.csv", scenario.rows)
    emulator.setup(write_limit=scenario.limit, write_window=scenario.window, latency=LATENCY)
    watcher = Watcher(emulator, scenario)
    summary: dict[str, Any] = {}
    try:
        if policy == "certimport":
            out = work / "out" / scenario.name
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "CERTIMPORT_STATE_DIR": str(work / "state" / scenario.name),
                "CERTIMPORT_BASE_URL": f"{emulator.root}/beta",
                "CERTIMPORT_AUTH_METHOD": "static",
                "CERTIMPORT_ACCESS_TOKEN": TOKEN,
            }
            args = ["run", str(path), "--rate-limit", scenario.configured]
            args += ["--concurrency", str(WORKERS), "--out", str(out)]
            run_child([sys.executable, "-m", "importer", *args], env)
            summary = json.loads((out / "summary.json").read_text())
            seconds = summary["duration_seconds"]
        else:
            kind = "adaptive" if policy.startswith("botocore") else "retry-after"
            url = COLLECTION_URL.format(root=emulator.root)
            cmd = [sys.executable, "-c", POSTER, str(path), url, TOKEN, str(WORKERS), kind]
            cmd.append(str(DEADLINE))
            _, _, _, stdout, _ = run_child(cmd, dict(os.environ))
            seconds = json.loads(stdout.strip().splitlines()[-1])["seconds"]
    finally:
        watcher.close()
    stats = emulator.stats()
    outcome = Outcome(
        scenario, policy, seconds, stats["records"], stats["posts"], stats["throttled"]
    )
    outcome.summary = summary
    for at, limit in scenario.phases:
        outcome.settle.append(watcher.settle(at, limit / scenario.window))
    return outcome


def scenarios(scale: float) -> dict[str, Scenario]:
    """The scenarios by name; ``scale`` shortens them (``--quick``)."""
    phase = 20.0 * scale
    return {
        "share60": Scenario("share60", "100/1s", 60, 1.0, int(3000 * scale)),
        "intune": Scenario("intune", "100/20s", 50, 20.0, int(250 * scale)),
        "halves": Scenario(
            "halves", "100/1s", 100, 1.0, int(250 * phase), [(phase, 50), (2 * phase, 100)]
        ),
        "alone": Scenario("alone", "2000/20s", 2000, 20.0, int(3000 * scale)),
    }


def row_of(o: Outcome) -> tuple[str, ...]:
    """One line of the table."""
    real = o.scenario.real_rate(o.seconds)
    rate = o.created / o.seconds if o.seconds else 0.0
    real_limits = "→".join(str(n) for n in [o.scenario.limit, *(n for _, n in o.scenario.phases)])
    settle = " / ".join("-" if s is None else f"{s:.1f}" for s in o.settle) or ""
    pace = o.summary.get("pace", {})
    told = ""
    if pace:
        settled, paused = pace.get("settled_per_second", 0), pace.get("paused_share", 0)
        told = f"certimport: settled at {settled:.3g}/s, paused {paused:.1%}"
    if o.created < o.scenario.rows:
        told = (
            f"stopped at the {DEADLINE:g} s deadline: {o.scenario.rows - o.created:,} not created"
        )
    return (
        o.scenario.name,
        f"{o.scenario.configured} vs {real_limits}/{o.scenario.window:g}s",
        o.policy,
        f"{o.created:,}",
        f"{o.seconds:.1f}",
        f"{rate:,.2f}",
        f"{rate / real:.1%}" if real else "-",
        f"{o.posts:,}",
        f"{o.throttled:,}",
        f"{o.throttled / max(o.posts, 1):.2%}",
        settle,
        told,
    )


def table(outcomes: list[Outcome]) -> str:
    head = (
        "scenario",
        "configured vs real",
        "policy",
        "created",
        "s",
        "rows/s",
        "of real",
        "requests",
        "429s",
        "429 share",
        "settle s (drop / rise)",
        "note",
    )
    lines = [head, *(row_of(o) for o in outcomes)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Shorter scenarios (a smoke run).")
    every = list(scenarios(1.0))
    parser.add_argument("--only", action="append", choices=every, help="Repeatable.")
    parser.add_argument("--policy", action="append", choices=POLICIES, help="Repeatable.")
    args = parser.parse_args()
    chosen = scenarios(0.25 if args.quick else 1.0)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="certimport-pacing-") as tmp:
        emulator = Emulator()
        try:
            for name in args.only or every:
                for policy in args.policy or POLICIES:
                    outcome = run_policy(emulator, chosen[name], policy, Path(tmp))
                    outcomes.append(outcome)
                    print(table(outcomes[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        finally:
            emulator.close()
    print(table(outcomes))
    print(
        f"\n{WORKERS} workers, {LATENCY * 1000:g} ms latency; 'of real': rows created per second "
        "over the emulator's limit averaged over the run; 429 share: 429 answers / write "
        "requests at the emulator; settle: 5 s in a row with no 429 and >= 90% of the new share."
    )


if __name__ == "__main__":
    main()
