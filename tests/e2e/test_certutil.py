"""A ``certutil -view`` text dump (no ``csv`` word) imported end to end against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import SAMPLES, ThreadedEmulator, invoke, read_results

DUMP = SAMPLES / "certutil-view.txt"
FLAGS = [
    "--config",
    str(SAMPLES / "adcs-columns.toml"),
    "--monthfirst",
    "--timezone",
    "America/New_York",
]


def dump_rows(path: Path = DUMP) -> list[dict[str, object]]:
    """The sample's rows as the dump shows them: their ``Row N:`` line and a few values."""
    text = path.read_bytes().decode("utf-16")
    rows: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if re.fullmatch(r"Row \d+:", line):
            rows.append({"line": number})
        elif rows and (found := re.fullmatch(r"  ([^:]+): (.*)", line)):
            rows[-1][found.group(1)] = found.group(2)
    return rows


def test_the_certutil_sample_imports_every_row(graph: ThreadedEmulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(DUMP), *FLAGS, "--out", str(out))
    assert code == 0, stderr
    assert "certutil -view text" in stderr  # the detected form is said
    assert "Traceback" not in stderr
    rows = dump_rows()
    assert len(rows) == 22
    results = read_results(out)
    # a denied and a pending request: not certificates, excluded, and still exit 0
    assert [r["status"] for r in results] == ["created"] * 20 + ["excluded"] * 2
    assert "denied request" in results[20]["error_message"]
    assert "pending request" in results[21]["error_message"]
    assert not (out / "failed.csv").exists() or len(read_results(out, "failed.csv")) == 0
    # each record's line is the line of its "Row N:" in the dump
    assert [int(r["line"]) for r in results] == [row["line"] for row in rows]
    stored = {r["certificateThumbprint"]: r for r in graph.records()}
    assert graph.stats()["posts"] == 20
    for row in rows[:20]:
        thumbprint = str(row["Certificate Hash"]).strip('"').replace(" ", "").upper()
        record = stored[thumbprint]
        assert record["certificateSerialNumber"] == str(row["Serial Number"]).strip('"').upper()
        assert record["certificateSubjectName"] == str(row["Issued Distinguished Name"]).strip('"')
        revoked = "(21)" in str(row["Request Disposition"])
        assert record["certificateRevokeStatus"] == ("revoked" if revoked else "none")
        assert ("certificateRevokeStatusLastChangeDateTime" in record) == revoked
    subjects = {r["certificateSubjectName"] for r in stored.values()}
    assert "CN=José Müller, OU=Vertrieb, OU=Users, DC=contoso, DC=com" in subjects
    assert sum(r["certificateRevokeStatus"] == "revoked" for r in stored.values()) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == 0
    assert summary["counts"]["created"] == 20
    assert summary["counts"]["excluded"] == 2


def test_a_utf8_dump_with_a_bad_row_rejects_that_row_at_its_row_line(
    graph: ThreadedEmulator, tmp_path: Path
) -> None:
    text = DUMP.read_bytes().decode("utf-16")
    # row 3 loses its certificate hash: the message points at its "Row 3:" line
    broken = re.sub(
        r'(Row 3:\r\n(?:  .*\r\n)*?)  Certificate Hash: "[^"]*"',
        r'\1  Certificate Hash: "zz"',
        text,
    )
    path = tmp_path / "dump.txt"
    path.write_bytes(broken.encode("utf-8"))
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(path), *FLAGS, "--out", str(out))
    assert code == 1, stderr
    line = dump_rows()[2]["line"]
    assert f"{path}:{line}: column Certificate Hash: 'zz' is not a SHA-1 thumbprint" in stderr
    statuses = [r["status"] for r in read_results(out)]
    assert statuses == ["created"] * 2 + ["rejected"] + ["created"] * 17 + ["excluded"] * 2
    assert graph.stats()["posts"] == 19
