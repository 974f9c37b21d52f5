"""certimport benchmark: speed, pacing and footprint against the emulator, with baselines.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench.py [--quick] [--only CASE]``).
The emulator runs in its own process so that CPU and memory are the importer's alone. Each
case runs certimport as a subprocess and reads its rusage (CPU seconds, peak RSS) from wait4.
Prints one table; nothing here asserts: the targets are read off the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COLLECTION_URL = (
    "{root}/beta/deviceManagement/deviceConfigurationsAllManagedDeviceCertificateStates"
)
# The plain baseline runs on asyncio's own loop (as the baseline) and on uvloop, the
# loop certimport runs on where it is installed: the second shows what our extra work costs.
LOOPS = ("asyncio", "uvloop")
ROUNDS = 3  # interleaved runs of each CPU-bound case and plain baseline; the median is shown
TOKEN = "bench-token"
HEADER = [
    "certificateThumbprint",
    "certificateSerialNumber",
    "managedDeviceDisplayName",
    "userPrincipalName",
    "certificateIssuerName",
    "certificateSubjectName",
    "certificateRevokeStatus",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateKeyUsages",
    "certificateExtendedKeyUsages",
]


def generate(path: Path, rows: int, offset: int = 0) -> Path:
    """A Graph-shaped inventory of ``rows`` distinct, valid certificates."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(offset, offset + rows):
            writer.writerow(
                (
                    f"{n:040X}",
                    f"{n:X}",
                    f"PC-{n % 50000:05d}",
                    f"user{n}@contoso.com",
                    "CN=Contoso Issuing CA 01, DC=contoso, DC=com",
                    f"CN=user{n}, OU=Staff, O=Contoso",
                    "none" if n % 10 else "revoked",
                    "2025-01-05T10:32:00Z",
                    "2026-01-05T10:32:00Z",
                    "160",
                    "1.3.6.1.5.5.7.3.2",
                )
            )
    return path


@dataclass
class Result:
    """One row of the table."""

    case: str
    rows: int
    seconds: float
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    cpu: float = 0.0
    rss_mb: float = 0.0
    lost: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class Emulator:
    """``certimport emulator`` in a subprocess, driven through its admin endpoints."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "importer",
                "emulator",
                "--port",
                str(self.port),
                "--token",
                TOKEN,
                "--write-limit",
                "0",
                "--read-limit",  # it counts every request, writes too: off unless a case sets it
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the emulator did not start")

    def _call(self, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method="POST" if data else "GET"
        )
        if data:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def stats(self) -> dict[str, int]:
        return self._call("/_stats")

    def records(self) -> list[dict[str, Any]]:
        return self._call("/_records")

    def setup(self, **config: Any) -> None:
        self._call("/_reset", {})
        defaults = {
            "write_limit": 0,
            "write_window": 20.0,
            "read_limit": 0,  # the emulator's read limit counts writes too (Intune's "any")
            "latency": 0.0,
            "fault_rate": 0.0,
        }
        self._call("/_config", {**defaults, **config})

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str, str]:
    """Run ``cmd`` and measure it alone: (wall, CPU seconds, peak RSS MB, stdout, stderr)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:5])} exited {proc.returncode}: {stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, stdout, stderr


def certimport(
    name: str,
    args: list[str],
    rows: int,
    work: Path,
    emulator: Emulator | None,
    env_extra: dict[str, str] | None = None,
    run: int = 0,
) -> Result:
    """Run one certimport case (its ``run``-th time) and read its summary."""
    slug = f"{name.replace(' ', '-')}-{run}"
    out = work / "out" / slug
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # every run starts from an empty journal unless it asks for a shared one
        "CERTIMPORT_STATE_DIR": str(work / "state" / slug),
        **(env_extra or {}),
    }
    if emulator is not None:
        env.update(
            CERTIMPORT_BASE_URL=f"{emulator.root}/beta",
            CERTIMPORT_AUTH_METHOD="static",
            CERTIMPORT_ACCESS_TOKEN=TOKEN,
        )
    cmd = [sys.executable, "-m", "importer", *args, "--out", str(out)]
    _, cpu, rss, _, _ = run_child(cmd, env)
    summary = json.loads((out / "summary.json").read_text())
    result = Result(
        name,
        rows,
        summary["duration_seconds"],
        requests=summary.get("requests", 0),
        throttled=summary.get("throttled", 0),
        retries=summary.get("retries", 0),
        cpu=cpu,
        rss_mb=rss,
    )
    if emulator is not None and args[0] == "run":
        held = {r["certificateThumbprint"] for r in emulator.records()}
        result.lost = rows - len(held)
        result.extra["emulator"] = emulator.stats()
    return result


BASELINE = r"""
import asyncio, csv, json, sys, time
import aiohttp

async def main(path, url, token, concurrency):
    start = time.monotonic()  # like certimport's duration: from before reading the file
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    queue = asyncio.Queue()
    for row in rows:
        body = {k: v for k, v in row.items() if v != ""}
        body["certificateKeyUsages"] = int(body["certificateKeyUsages"])
        body["@odata.type"] = "#microsoft.graph.managedAllDeviceCertificateState"
        queue.put_nowait(body)
    created = 0
    posting = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            nonlocal created
            while not queue.empty():
                body = queue.get_nowait()
                async with s.post(url, json=body, headers={"Authorization": "Bearer " + token}) as r:
                    await r.read()
                    created += r.status == 201
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = time.monotonic()
    print(json.dumps({"seconds": end - start, "posting": end - posting, "created": created}))

if sys.argv[5] == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""

SDK = r"""
import asyncio, csv, json, sys, time
from datetime import datetime
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.models.managed_all_device_certificate_state import (
    ManagedAllDeviceCertificateState,
)
from msgraph_beta.generated.models.certificate_revocation_status import CertificateRevocationStatus

class Static(AccessTokenProvider):
    def __init__(self, token): self.token = token
    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self.token
    def get_allowed_hosts_validator(self): return AllowedHostsValidator([])

async def main(path, base, token, concurrency):
    start = time.monotonic()  # like certimport's duration: from before reading the file
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Static(token)))
    adapter.base_url = base
    client = GraphServiceClient(request_adapter=adapter)
    collection = client.device_management.device_configurations_all_managed_device_certificate_states
    queue = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)
    created = 0
    posting = time.monotonic()
    async def worker():
        nonlocal created
        while not queue.empty():
            row = queue.get_nowait()
            body = ManagedAllDeviceCertificateState(
                certificate_thumbprint=row["certificateThumbprint"],
                certificate_serial_number=row["certificateSerialNumber"],
                managed_device_display_name=row["managedDeviceDisplayName"],
                user_principal_name=row["userPrincipalName"],
                certificate_issuer_name=row["certificateIssuerName"],
                certificate_subject_name=row["certificateSubjectName"],
                certificate_revoke_status=CertificateRevocationStatus(row["certificateRevokeStatus"]),
                certificate_issuance_date_time=datetime.fromisoformat(row["certificateIssuanceDateTime"]),
                certificate_expiration_date_time=datetime.fromisoformat(row["certificateExpirationDateTime"]),
                certificate_key_usages=int(row["certificateKeyUsages"]),
                certificate_extended_key_usages=row["certificateExtendedKeyUsages"],
            )
            made = await collection.post(body)
            created += bool(made and made.id)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = time.monotonic()
    print(json.dumps({"seconds": end - start, "posting": end - posting, "created": created}))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def baseline(
    name: str,
    script: str,
    path: Path,
    rows: int,
    emulator: Emulator,
    concurrency: int,
    target: str,
    python: str = sys.executable,
    loop: str = "asyncio",
) -> Result:
    """Run a baseline poster (plain aiohttp, or the official SDK) against the emulator."""
    _, cpu, rss, stdout, _ = run_child(
        [python, "-c", script, str(path), target, TOKEN, str(concurrency), loop],
        dict(os.environ),
    )
    report = json.loads(stdout.strip().splitlines()[-1])
    held = len(emulator.records())
    return Result(
        name,
        rows,
        report["seconds"],
        requests=emulator.stats()["requests"],
        cpu=cpu,
        rss_mb=rss,
        lost=rows - held,
        extra={"posting": report["posting"], "loop": loop},
    )


def median_run(runs: list[Result]) -> Result:
    """The run with the median time (the lower middle one of an even count); its ``lost`` is
    the most any run lost."""
    chosen = sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]
    losses = [r.lost for r in runs if r.lost is not None]
    chosen.lost = max(losses) if losses else None
    return chosen


def versus(result: Result, plains: list[Result]) -> str:
    """``result``'s rate as a multiple of each plain-aiohttp baseline's, timed like certimport
    (file read included), and in brackets of its posting alone (file read left out)."""
    return ", ".join(
        f"{result.rate / p.rate:.2f}x plain aiohttp on {p.extra['loop']} "
        f"({result.rate * p.extra['posting'] / p.rows:.2f}x its posting alone)"
        for p in plains
    )


def sdk_python() -> str | None:
    """A Python that can import msgraph_beta (the ``bench`` extra), if any."""
    for python in (sys.executable, os.environ.get("CERTIMPORT_SDK_PYTHON", "")):
        if (
            python
            and subprocess.run(
                [python, "-c", "import msgraph_beta"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return python
    return None


def startup(runs: int = 5) -> str:
    """``certimport --version`` as a whole process: median wall time and peak RSS of ``runs``."""
    command = [str(Path(sys.executable).with_name("certimport")), "--version"]
    run_child(command, dict(os.environ))  # warm the file cache
    walls, rss = [], []
    for _ in range(runs):
        wall, _, peak, _, _ = run_child(command, dict(os.environ))
        walls.append(wall)
        rss.append(peak)
    walls.sort()
    rss.sort()
    middle = runs // 2
    return (
        f"start-up: `certimport --version` {walls[middle]:.3f} s, peak RSS {rss[middle]:.0f} MB "
        f"(median of {runs}; range {walls[0]:.3f}-{walls[-1]:.3f} s)"
    )


def table(results: list[Result], notes: list[str]) -> str:
    head = (
        "case",
        "rows",
        "s",
        "rows/s",
        "requests",
        "429s",
        "retries",
        "CPU s/1k rows",
        "peak RSS MB",
        "lost",
        "note",
    )
    lines = [head]
    for r in results:
        lines.append(
            (
                r.case,
                f"{r.rows:,}",
                f"{r.seconds:.1f}",
                f"{r.rate:,.0f}",
                f"{r.requests:,}",
                f"{r.throttled:,}",
                f"{r.retries:,}",
                f"{r.cpu / r.rows * 1000:.3f}",
                f"{r.rss_mb:.0f}",
                "-" if r.lost is None else str(r.lost),
                r.note,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*text, "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Smaller inputs (a smoke run).")
    parser.add_argument(
        "--only",
        action="append",
        help="Run only these cases (repeatable).",
        choices=["startup", "throttled", "latency", "cpu", "scale", "baselines", "rerun"],
    )
    args = parser.parse_args()
    every = ["startup", "throttled", "latency", "cpu", "scale", "baselines", "rerun"]
    cases = set(args.only or every)
    scale = 0.1 if args.quick else 1.0
    results: list[Result] = []
    notes: list[str] = []
    if "startup" in cases:
        notes.append(startup())
    with tempfile.TemporaryDirectory(prefix="certimport-bench-") as tmp:
        work = Path(tmp)
        emulator = Emulator()
        try:
            if "throttled" in cases:
                rows = int(6000 * scale)
                path = generate(work / "throttled.csv", rows)
                emulator.setup(write_limit=2000, write_window=20.0)
                r = certimport(
                    "throttled 2000/20s",
                    ["run", str(path), "--rate-limit", "2000/20s", "--concurrency", "16"],
                    rows,
                    work,
                    emulator,
                )
                share = r.rate / 100.0
                r.note = (
                    f"{share:.1%} of the limit, 429 share {r.throttled / max(r.requests, 1):.2%}"
                )
                results.append(r)
            if "latency" in cases:
                rows = int(6000 * scale)
                path = generate(work / "latency.csv", rows)
                emulator.setup(latency=0.05)
                r = certimport(
                    "latency 50ms c=64",
                    ["run", str(path), "--rate-limit", "0", "--concurrency", "64"],
                    rows,
                    work,
                    emulator,
                )
                results.append(r)
                plains = []
                for loop in LOOPS:
                    emulator.setup(latency=0.05)
                    plain = baseline(
                        f"latency baseline plain aiohttp ({loop}) c=64",
                        BASELINE,
                        path,
                        rows,
                        emulator,
                        64,
                        COLLECTION_URL.format(root=emulator.root),
                        loop=loop,
                    )
                    plain.note = f"{plain.rate / (64 / 0.05):.1%} of concurrency/latency"
                    plains.append(plain)
                results.extend(plains)
                r.note = f"{r.rate / (64 / 0.05):.1%} of concurrency/latency (1,280/s); " + versus(
                    r, plains
                )
            cpu_rows = int(20000 * scale)
            cpu_path = generate(work / "cpu.csv", cpu_rows)
            # The CPU-bound cases and the plain baselines run interleaved, ROUNDS times each,
            # and the median run of each is shown: a shared machine drifts by 10% in a minute,
            # which would otherwise land on whichever case ran at the wrong moment.
            runs: dict[str, Callable[[int], Result]] = {}  # each called with its round
            if "cpu" in cases:
                single = ["--concurrency", "16"]
                for name, options in (
                    ("cpu-bound single c=16", single),
                    # batched at the baseline's concurrency (16), and at 4 for comparison
                    ("cpu-bound batch=20 c=16", ["--concurrency", "16", "--batch", "20"]),
                    ("cpu-bound batch=20 c=4", ["--concurrency", "4", "--batch", "20"]),
                ):
                    args = ["run", str(cpu_path), "--rate-limit", "0", *options]
                    runs[name] = partial(certimport, name, args, cpu_rows, work, emulator, None)
            if "baselines" in cases:
                for loop in LOOPS:
                    name = f"baseline plain aiohttp ({loop}) c=16"
                    plain_run = partial(
                        baseline,
                        name,
                        BASELINE,
                        cpu_path,
                        cpu_rows,
                        emulator,
                        16,
                        COLLECTION_URL.format(root=emulator.root),
                        loop=loop,
                    )
                    runs[name] = lambda _round, job=plain_run: job()  # keeps no per-run state
            measured: dict[str, list[Result]] = {name: [] for name in runs}
            for round_ in range(ROUNDS if runs else 0):
                for name, run in runs.items():
                    emulator.setup()
                    measured[name].append(run(round_))
            chosen = {name: median_run(results_of) for name, results_of in measured.items()}
            results.extend(chosen.values())
            if runs:
                notes.append(
                    f"CPU-bound cases and plain baselines: median of {ROUNDS} interleaved runs."
                )
            if "baselines" in cases:
                plains = [r for name, r in chosen.items() if name.startswith("baseline plain")]
                notes.append(
                    "Baselines are timed like certimport's duration_seconds: from before reading "
                    "the file to the last answer (process start-up left out of both); "
                    '"posting alone" leaves their file reading out.'
                )
                for r in results:
                    if r.case.startswith("cpu-bound"):
                        r.note = versus(r, plains)
                python = sdk_python()
                if python is None:
                    notes.append(
                        "official SDK baseline skipped: install the bench extra "
                        "(pip install -e '.[bench]') or set CERTIMPORT_SDK_PYTHON"
                    )
                else:
                    sdk_rows = min(cpu_rows, 5000)
                    sdk_path = generate(work / "sdk.csv", sdk_rows)
                    emulator.setup()
                    sdk = baseline(
                        "baseline msgraph-beta-sdk c=16",
                        SDK,
                        sdk_path,
                        sdk_rows,
                        emulator,
                        16,
                        f"{emulator.root}/beta",
                        python,
                    )
                    single_rate = next((r.rate for r in results if "single" in r.case), 0.0)
                    sdk.note = (
                        f"certimport single is {single_rate / sdk.rate:.1f}x faster"
                        if single_rate
                        else ""
                    )
                    results.append(sdk)
            if "rerun" in cases:
                rows = int(100_000 * scale)
                path = generate(work / "rerun.csv", rows)
                emulator.setup()
                state = {"CERTIMPORT_STATE_DIR": str(work / "rerun-state")}
                fast = ["--rate-limit", "0", "--batch", "20", "--concurrency", "8"]
                certimport(
                    "rerun: first import", ["run", str(path), *fast], rows, work, emulator, state
                )
                posts = emulator.stats()["posts"]
                again = certimport(
                    "rerun unchanged (journal)",
                    ["run", str(path), *fast],
                    rows,
                    work,
                    emulator,
                    state,
                )
                again.lost = None
                again.requests = emulator.stats()["posts"] - posts
                again.note = f"{again.requests} POSTs on the rerun"
                results.append(again)
        finally:
            emulator.close()
        if "scale" in cases:
            rows = int(1_000_000 * scale)
            path = generate(work / "scale.csv", rows)
            results.append(
                certimport("scale validate-only", ["validate", str(path)], rows, work, None)
            )
            results.append(
                certimport("scale dry-run", ["run", str(path), "--dry-run"], rows, work, None)
            )
    from importer.aio import loop_name

    notes.append(f"certimport ran on the {loop_name()} event loop ({sys.platform}).")
    print(table(results, notes))


if __name__ == "__main__":
    main()
