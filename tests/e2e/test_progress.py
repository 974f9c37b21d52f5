"""What a person watching sees: the live display in a real terminal, and none without one."""

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

from helpers import ROOT, ThreadedEmulator, row, thumb, write_inventory

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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
