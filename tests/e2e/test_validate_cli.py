"""``certimport validate``: exit codes, messages on stderr, reports, and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ALL_COLUMNS, SAMPLES, invoke, read_results, record

COLUMNS = list(ALL_COLUMNS)
HEADER = ",".join(COLUMNS)
R_THUMB = "is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons"
R_SERIAL = "is not a serial number: 1 to 40 hex digits after removing spaces and colons"
R_STATUS = "is not a revoke status: use one of none, pending, issued, failed, revoked"
R_DATE = "is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z"
R_INT = "is not an integer in Int32 range (-2147483648..2147483647)"
R_REQUIRED = "is required and empty"
R_CONTROL = "contains a control character"
R_ORDER = "issuance date is after the expiration date"
R_DUPE = "duplicates line {}: the same certificate on the same device"
R_BERLIN = (
    "does not exist or is ambiguous as a local time in Europe/Berlin (clock change); "
    "give the offset explicitly"
)
MISSING_HINT = "(header names are matched to Graph property names, ignoring case and spaces)"


# Run from an empty directory with no CERTIMPORT_* settings.
pytestmark = pytest.mark.usefixtures("isolated")


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert 'File "' not in stderr


# --- exit codes and messages -----------------------------------------------------------------

CASES = [
    pytest.param([HEADER, record(1), record(2), record(3)], 0, [], id="all-valid"),
    pytest.param(
        [HEADER, record(1), record(2, certificateSerialNumber="xx"), "", record(3)],
        1,
        [f"{{path}}:3: column certificateSerialNumber: 'xx' {R_SERIAL}"],
        id="one-rejected",
    ),
    pytest.param(
        [
            HEADER,
            record(1, certificateSubjectName="CN=a\nb"),
            record(2, certificateThumbprint="abc", certificateKeyUsages="1.5"),
            record(1),
        ],
        1,
        [
            f"{{path}}:2: column certificateSubjectName: 'CN=a\\nb' {R_CONTROL}",
            f"{{path}}:4: column certificateKeyUsages: '1.5' {R_INT}",
            f"{{path}}:4: column certificateThumbprint: 'abc' {R_THUMB}",
            f"{{path}}:5: column certificateThumbprint: {R_DUPE.format(2)}",
        ],
        id="several-problems",
    ),
    pytest.param(
        [HEADER.replace("certificateSerialNumber,", "").replace(",certificateKeyUsages", "")],
        2,
        [
            "error: {path}:1: missing required column(s): certificateSerialNumber, "
            "certificateKeyUsages; columns found: "
            + ", ".join(
                repr(c)
                for c in COLUMNS
                if c not in ("certificateSerialNumber", "certificateKeyUsages")
            )
            + f" {MISSING_HINT}"
        ],
        id="missing-columns",
    ),
    pytest.param([""], 2, ["error: {path}:1: file is empty: no header row"], id="empty"),
    pytest.param(
        [HEADER, ""], 2, ["error: {path}: no data rows after the header"], id="header-only"
    ),
    pytest.param(
        [HEADER, record(1), record(2) + ",surplus", record(3)],
        1,
        ["{path}:3: expected 12 fields, saw 13 (a delimiter inside a cell needs quotes)"],
        id="ragged",
    ),
    pytest.param(
        [HEADER, record(1), record(2), HEADER + ",Notes", record(3)],
        1,
        ["{path}:4: expected 12 fields, saw 13 (a delimiter inside a cell needs quotes)"],
        id="pasted-header",
    ),
]


@pytest.mark.parametrize(("lines", "code", "stderr"), CASES)
def test_validate_exit_code_and_messages(
    tmp_path: Path, lines: list[str], code: int, stderr: list[str]
) -> None:
    path = tmp_path / "inventory.csv"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    result = invoke("validate", str(path), "--out", "out")
    assert result.exit_code == code, result.stdout + result.stderr
    assert result.stderr.splitlines() == [s.format(path=path) for s in stderr]
    assert_clean_stderr(result.stderr)
    if code == 2:
        assert result.stdout == ""
        assert not (tmp_path / "out" / "results.csv").exists()
    else:
        assert result.stdout.startswith(f"certimport validate: {path}\n")


def test_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    text = "\r\n".join([HEADER, record(1), record(2, certificateSubjectName="CN=José"), ""])
    path.write_bytes(text.encode("cp1252"))
    column = text.split("\r\n")[2].index("é") + 1
    result = invoke("validate", str(path), "--out", "out", "--encoding", "utf-8")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}:3: byte 0xe9 at column {column} is not valid utf-8 "
        "(save the file as UTF-8)\n"
    )


def test_missing_file_and_bad_settings_exit_2(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "nope.csv"), "--out", "out")
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {tmp_path / 'nope.csv'}: file not found\n",
    )

    path = tmp_path / "inventory.csv"
    path.write_text(HEADER + "\n" + record(1) + "\n")
    result = invoke("validate", str(path), "--out", "out", "--timezone", "Mars/Base")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid configuration:\n  - timezone must be an IANA time zone name such as UTC "
        "or Europe/Berlin, got 'Mars/Base'\n"
    )
    assert_clean_stderr(result.stderr)


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", "x.csv", "--bogus")
    assert result.exit_code == 2
    assert "No such option '--bogus'" in result.stderr


# --- reports ---------------------------------------------------------------------------------


def test_results_csv_rows_in_input_order_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTIMPORT_CHUNK_SIZE", "100")
    lines = [HEADER]
    expected: list[tuple[int, str, str]] = []
    problems = 0
    line = 2
    for n in range(1, 251):
        if n % 10 == 0:
            lines.append("")
            line += 1
        bad = n % 3 == 0
        subject = "CN=x\nOU=y" if n % 17 == 0 else f"CN=user{n}"
        lines.append(
            record(
                n, certificateSerialNumber="zz" if bad else f"{n:X}", certificateSubjectName=subject
            )
        )
        problems += bad + ("\n" in subject)
        ok = not bad and "\n" not in subject
        expected.append((line, "valid" if ok else "rejected", f"{n:040X}"))
        line += 1 + subject.count("\n")
    path = tmp_path / "inventory.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = invoke("validate", str(path), "--out", "out", "--show-errors", "0")
    assert result.exit_code == 1
    rows = read_results(tmp_path / "out")
    assert [(int(r["line"]), r["status"], r["certificateThumbprint"]) for r in rows] == expected
    rejected = [e for e in expected if e[1] == "rejected"]
    failed = read_results(tmp_path / "out", "failed.csv")
    assert [r["certificateThumbprint"] for r in failed] == [e[2] for e in rejected]
    assert len(result.stderr.splitlines()) == problems  # --show-errors 0: every one
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["records"] == 250
    assert summary["counts"]["valid"] == 250 - len(rejected)
    assert summary["counts"]["rejected"] == len(rejected)
    assert summary["mode"] == "validate"
    assert summary["exit_code"] == 1
    assert summary["requests"] == 0


def test_show_errors_limits_the_echo_not_the_reports(tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    bad = [record(n, certificateRevokeStatus="gone") for n in range(1, 6)]
    path.write_text("\n".join([HEADER, *bad]) + "\n")
    result = invoke("validate", str(path), "--out", "out", "--show-errors", "2")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:2: column certificateRevokeStatus: 'gone' {R_STATUS}",
        f"{path}:3: column certificateRevokeStatus: 'gone' {R_STATUS}",
        f"{path}: 3 more line(s) where column certificateRevokeStatus {R_STATUS}",
        f"every problem is in {Path('out') / 'results.csv'}",
    ]
    assert len(read_results(tmp_path / "out")) == 5


# --- the samples, as samples/README.md describes them ----------------------------------------

SAMPLE_CASES = [
    ("certificates.csv", [], 0, [], {"valid": 48, "rejected": 0}),
    (
        "bad-values.csv",
        [],
        1,
        [
            "{path}:3: column certificateThumbprint: "
            f"'7A1F0C9D3E5B8264AF10C7D93E2B5A8C4F6D1E0' {R_THUMB}",
            f"{{path}}:4: column certificateSerialNumber: '0x4B1D9E3A7C2F5086' {R_SERIAL}",
            f"{{path}}:5: column certificateRevokeStatus: 'active' {R_STATUS}",
            f"{{path}}:6: column certificateIssuanceDateTime: '2025-02-30T08:00:00Z' {R_DATE}",
            f"{{path}}:7: column certificateIssuanceDateTime: {R_ORDER}",
            f"{{path}}:8: column certificateKeyUsages: '4294967295' {R_INT}",
            "{path}:9: column certificateSubjectName: "
            f"'CN=Dora Smith\\nOU=Staff, O=Contoso Ltd' {R_CONTROL}",
            f"{{path}}:11: column certificateIssuerName: '' {R_REQUIRED}",
            "{path}:12: column certificateExpirationDateTime: '05/06/2026' is not ISO 8601 and "
            "its day and month order is unknown: pass --dayfirst or --monthfirst, or --date-format",
            f"{{path}}:12: column certificateRevokeStatus: 'unknown' {R_STATUS}",
            f"{{path}}:12: column certificateThumbprint: '' {R_REQUIRED}",
            # said once for the file, after its rows
            "warning: {path}:12: dates are not ISO 8601 and none of them tells the day from the "
            "month (no field above 12): rows with such dates are rejected: pass --dayfirst or "
            "--monthfirst, or --date-format",
        ],
        {"valid": 3, "rejected": 9},
    ),
    (
        "bad-values.csv",
        ["--timezone", "Europe/Berlin"],
        1,
        [f"{{path}}:13: column certificateIssuanceDateTime: '2025-03-30T02:30:00' {R_BERLIN}"],
        {"valid": 2, "rejected": 10},
    ),
    (
        "duplicates.csv",
        [],
        1,
        [
            f"{{path}}:4: column certificateThumbprint: {R_DUPE.format(2)}",
            f"{{path}}:6: column certificateThumbprint: {R_DUPE.format(5)}",
            f"{{path}}:7: column certificateThumbprint: {R_DUPE.format(2)}",
        ],
        {"valid": 3, "rejected": 3},
    ),
    (
        "with-bom-and-extras.csv",
        [],
        0,
        [
            "warning: {path}:1: column(s) Notes, Owner are not Graph properties: they are "
            "ignored and not sent"
        ],
        {"valid": 3, "rejected": 0},
    ),
    (
        "missing-columns.csv",
        [],
        2,
        [
            "error: {path}:1: missing required column(s): certificateSerialNumber, "
            "certificateRevokeStatus; columns found: "
            + ", ".join(
                repr(c)
                for c in COLUMNS
                if c not in ("certificateSerialNumber", "certificateRevokeStatus")
            )
            + f" {MISSING_HINT}"
        ],
        None,
    ),
    (
        "not-utf8.csv",
        ["--encoding", "utf-8"],
        2,
        ["error: {path}:3: byte 0xe9 at column 145 is not valid utf-8 (save the file as UTF-8)"],
        None,
    ),
    ("empty.csv", [], 2, ["error: {path}:1: file is empty: no header row"], None),
]


@pytest.mark.parametrize(("name", "options", "code", "stderr", "counts"), SAMPLE_CASES)
def test_samples_give_the_documented_outcome(
    tmp_path: Path,
    name: str,
    options: list[str],
    code: int,
    stderr: list[str],
    counts: dict[str, int] | None,
) -> None:
    path = SAMPLES / name
    result = invoke("validate", str(path), "--out", "out", *options)
    assert result.exit_code == code, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    expected = [s.format(path=path) for s in stderr]
    if options:  # only the lines the option adds are listed
        assert set(expected) <= set(lines)
    else:
        assert lines == expected
    assert_clean_stderr(result.stderr)
    if counts is not None:
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert {k: summary["counts"][k] for k in counts} == counts


def test_samples_readme_mentions_every_sample() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for path in SAMPLES.glob("*.csv"):
        assert f"`{path.name}`" in readme


# --- one real process ------------------------------------------------------------------------


def test_real_subprocess(tmp_path: Path) -> None:
    """The installed entry point: exit code, stderr lines, no traceback, reports written."""
    path = tmp_path / "inventory.csv"
    path.write_text(
        "\n".join([HEADER, record(1), record(2, certificateIssuanceDateTime="2025-02-30"), ""])
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTIMPORT_")}
    done = subprocess.run(
        [sys.executable, "-m", "importer", "validate", str(path), "--out", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"{path}:3: column certificateIssuanceDateTime: '2025-02-30' {R_DATE}"
    ]
    assert_clean_stderr(done.stderr)
    assert done.stdout.startswith(f"certimport validate: {path}\n")
    rows = read_results(tmp_path / "out")
    assert [(r["line"], r["status"]) for r in rows] == [("2", "valid"), ("3", "rejected")]

    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "importer", "validate", str(broken), "--out", "out2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        f"error: {broken}:1: file is empty: no header row\n",
    )
    assert done.stdout == ""
