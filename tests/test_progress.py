"""What a person watching sees: the timeline, the monitor, the live display in a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from conftest import ROOT, ThreadedEmulator, row, thumb, write_inventory
from rich.console import Console

from importer.cli.progress import render_progress
from importer.reports.timeline import Timeline, format_duration
from importer.run.monitor import RunMonitor
from importer.send.client import ClientStats
from importer.send.pacing import Pacer, RateLimit

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timeline_adds_into_buckets_and_fills_gaps():
    timeline = Timeline()
    timeline.add(0.2, done=3)
    timeline.add(0.9, done=1, throttled=1, requests=5)
    timeline.add(3.5, not_done=2)
    assert timeline.buckets == [[4, 0, 1, 5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]]
    assert timeline.totals() == {"done": 4, "not_done": 2, "throttled": 1, "requests": 5}


@pytest.mark.parametrize("seconds", [10, 720, 721, 3_600, 3 * 86_400])
def test_timeline_stays_bounded_and_keeps_every_count(seconds):
    timeline = Timeline(max_buckets=720)
    for second in range(0, seconds, max(1, seconds // 5000)):
        timeline.add(second + 0.5, done=2, throttled=1, requests=3)
    assert len(timeline.buckets) <= 720
    calls = len(range(0, seconds, max(1, seconds // 5000)))
    assert timeline.totals() == {
        "done": 2 * calls,
        "not_done": 0,
        "throttled": calls,
        "requests": 3 * calls,
    }
    assert timeline.width * len(timeline.buckets) >= seconds


def test_monitor_samples_rate_time_left_and_timeline():
    clock = Clock()
    stats = ClientStats()
    monitor = RunMonitor(clock=clock)
    monitor.begin(100, pacer=None, stats=stats)
    for second in range(1, 6):
        clock.now += 1
        monitor.settled("created", 4)
        monitor.settled("rejected", 1)
        stats.requests += 4
        stats.throttled += 1 if second == 3 else 0
        monitor.sample()
    assert monitor.done == 25
    assert monitor.rate == pytest.approx(5.0)
    assert monitor.eta() == pytest.approx(15.0)
    assert monitor.timeline.totals() == {
        "done": 20,
        "not_done": 5,
        "throttled": 1,
        "requests": 20,
    }
    assert monitor.timeline.buckets[3] == [4, 1, 1, 4]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "?"), (0.42, "0.4 s"), (7, "7.0 s"), (12.4, "12 s"), (61, "1m 01s"), (3_725, "1h 02m")],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


def test_display_shows_counts_rate_limit_time_left_and_the_throttled_state():
    clock = Clock()
    pacer = Pacer(RateLimit(100, 20.0), clock=clock)
    stats = ClientStats(requests=1300, throttled=3)
    monitor = RunMonitor(clock=clock)
    monitor.begin(5000, pacer=pacer, stats=stats)
    monitor.settled("created", 1200)
    monitor.settled("skipped", 20)
    monitor.settled("rejected", 10)
    monitor.settled("failed", 4)
    monitor.rate = 4.9
    pacer.throttled(6.2)
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(monitor))
    text = console.export_text()
    assert "1,234 / 5,000 rows" in text
    assert "created 1,200 · skipped 20 · rejected 10 · failed 4" in text
    assert "4.9 rows/s" in text and "limit 100/20s" in text and "429s 3" in text
    assert "time left 12m 49s" in text  # 3,766 rows left at 4.9/s
    assert "throttled, resuming in 7 s" in text
    clock.now += 7
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_progress(monitor))
    assert "throttled" not in console.export_text()


def test_display_before_sending_shows_the_validation_pass():
    monitor = RunMonitor()
    console = Console(record=True, width=80, force_terminal=True)
    console.print(render_progress(monitor))
    monitor.phase, monitor.scanned = "validating", 150_000
    console.print(render_progress(monitor))
    assert console.export_text().splitlines() == ["starting…", "validating: 150,000 rows read"]


def _read_pty(
    master: int, proc: subprocess.Popen[bytes], timeout: float, *, interrupt_on: bytes
) -> bytes:
    """Everything the child wrote to the terminal; SIGINT once ``interrupt_on`` was seen."""
    received = b""
    interrupted = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            received += data
            if not interrupted and interrupt_on in received:
                proc.send_signal(signal.SIGINT)
                interrupted = True
        elif proc.poll() is not None:
            break
    return received


def test_run_in_a_terminal_shows_live_progress_throttling_and_messages_above_it(
    graph: ThreadedEmulator, tmp_path
):
    """A real pseudo-terminal: the display draws, shows a 429 pause; Ctrl-C's message prints
    above the display (not into it), and the summary follows once the display is gone."""
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(40)])
    throttle = {"status": 429, "retry_after": "3", "thumbprint": thumb(15)}
    graph.call(graph.emulator.script, [throttle])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "120"}
    args = ["run", str(path), "--out", str(tmp_path / "o"), "--rate-limit", "20/1s"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *args, "--concurrency", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        raw = _read_pty(master, proc, timeout=60, interrupt_on=b"throttled, resuming in")
        proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    screen = raw.decode("utf-8", "replace")
    assert proc.returncode == 130, screen
    assert proc.stdout is not None and proc.stdout.read() == b""
    plain = ANSI.sub("", screen)
    assert re.search(r"sending .*\d+ / 40 rows", plain), plain
    assert "created" in plain and "rows/s" in plain and "limit 20/1s" in plain
    assert "throttled, resuming in" in plain
    # the display erased its lines, printed the message, and redrew itself below it
    assert "\x1b[2Kstopping: finishing requests in flight" in screen, screen[-2000:]
    summary = plain.split("stopping: finishing requests in flight")[-1]
    assert "certimport run:" in summary and "stopped    interrupted" in summary


def test_run_without_a_terminal_prints_only_the_summary(graph: ThreadedEmulator, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(n) for n in range(5)])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    proc = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"certimport run: {path}"
    assert all(line.startswith("  ") for line in lines[1:]), proc.stderr
    assert any(line.split() == ["created", "5"] for line in lines)
