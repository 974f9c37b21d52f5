"""``certimport inspect`` and the input options, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SAMPLES, invoke, read_results, row, write_inventory

ADCS = (
    '"Request ID","Serial Number","Certificate Hash","Certificate Effective Date",'
    '"Certificate Expiration Date","Issued Distinguished Name","Request Disposition",'
    '"Revocation Date"\r\n'
    '"7","61000007","ac a4 ec 7d 63 e9 13 af 7e e1 0c 23 52 c3 47 48 4c cd 78 0b",'
    '"1/5/2025 10:32 AM","1/5/2027 10:32 AM","CN=pc07","20 -- Issued","EMPTY"\r\n'
)


# every built-in profile, in the order auto-detection tries them
PROFILES = "graph, adcs, powershell, pspki, pspkiaudit"

pytestmark = pytest.mark.usefixtures("isolated")  # no stray config/certimport.toml


def test_inspect_shows_what_was_detected_and_the_bodies(tmp_path: Path) -> None:
    path = tmp_path / "adcs.csv"
    path.write_text(ADCS, encoding="utf-8")
    config = tmp_path / "adcs.toml"
    config.write_text('[columns]\ncertificateIssuerName = { value = "CN=CA 01" }\n', "utf-8")
    code, out, err = invoke(
        "inspect", str(path), "--config", str(config), "--monthfirst", "--timezone", "UTC"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:4] == [
        f"file       {path}",
        "encoding   utf-8 (valid UTF-8)",
        "delimiter  ',' (detected from the header)",
        f"profile    adcs (auto: best match of {PROFILES})",
    ]
    assert "  'Certificate Hash'            -> certificateThumbprint" in lines
    assert "  constant 'CN=CA 01'           -> certificateIssuerName" in lines
    assert "  'Request ID'                     read, never sent (profile adcs)" in lines
    assert "records    1 (1 valid, 0 rejected)" in lines
    assert lines[-1] == (
        '  line 2: {"@odata.type":"#microsoft.graph.managedAllDeviceCertificateState",'
        '"certificateThumbprint":"ACA4EC7D63E913AF7EE10C2352C347484CCD780B",'
        '"certificateSerialNumber":"61000007","certificateIssuerName":"CN=CA 01",'
        '"certificateSubjectName":"CN=pc07","certificateRevokeStatus":"none",'
        '"certificateIssuanceDateTime":"2025-01-05T10:32:00Z",'
        '"certificateExpirationDateTime":"2027-01-05T10:32:00Z"}'
    )


def test_inspect_exits_2_with_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "adcs.csv"
    path.write_text(ADCS, encoding="utf-8")
    code, out, _ = invoke("inspect", str(path))
    assert code == 2
    assert "  (MISSING)                     -> certificateIssuerName" in out.splitlines()
    assert out.splitlines()[-1].startswith(
        f"cannot import: {path}:1: missing required column(s): certificateIssuerName; "
    )


def test_conflicting_date_options_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(ADCS, encoding="utf-8")
    code, _, err = invoke("validate", str(path), "--dayfirst", "--date-format", "%d.%m.%Y")
    assert code == 2
    assert "--date-format cannot be combined with --dayfirst/--monthfirst" in err


def test_validate_reports_a_ragged_line_and_keeps_the_rest(tmp_path: Path) -> None:
    source = (SAMPLES / "spreadsheet-semicolon.csv").read_bytes().split(b"\r\n")
    source.insert(3, b"AB;CD;EF")  # line 4: three fields instead of thirteen
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"\r\n".join(source))
    out = tmp_path / "out"
    code, _, err = invoke(
        "validate", str(path), "--dayfirst", "--timezone", "Europe/Berlin", "--out", str(out)
    )
    assert code == 1
    assert f"{path}:4: expected 13 fields, saw 3 (a cell or a delimiter is missing)" in err
    assert f"reading {path}: cp1252 (detected), delimiter ';' (sep= line)" in err
    results = [(r["line"], r["status"]) for r in read_results(out)]
    assert results == [
        ("3", "valid"),
        ("4", "rejected"),
        ("5", "valid"),
        ("6", "valid"),
        ("8", "valid"),
        ("9", "valid"),
    ]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("adcs-export.csv", ["--config", str(SAMPLES / "adcs-columns.toml"), "--monthfirst"]),
        ("powershell-export.csv", ["--monthfirst", "--timezone", "Europe/Amsterdam"]),
        ("spreadsheet-semicolon.csv", ["--dayfirst", "--timezone", "Europe/Berlin"]),
    ],
)
def test_every_new_sample_is_valid_as_documented(
    tmp_path: Path, name: str, options: list[str]
) -> None:
    code, _, err = invoke("validate", str(SAMPLES / name), *options, "--out", str(tmp_path / "o"))
    assert code == 0, err
    statuses = {r["status"] for r in read_results(tmp_path / "o")}
    # the AD CS export holds denied, pending and failed requests too: excluded, not rejected
    assert statuses == ({"valid", "excluded"} if name.startswith("adcs") else {"valid"})


# --- a file of which nothing would be sent ------------------------------------------------


def test_inspect_exits_2_when_every_record_is_rejected(tmp_path: Path) -> None:
    rows = [row(n, certificateThumbprint="not-hex") for n in range(3)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    code, out, err = invoke("inspect", str(path), "--rows", "2")
    assert (code, err) == (2, "")
    lines = out.splitlines()
    assert f"profile    graph (auto: best match of {PROFILES})" in lines
    why = (
        "rejected: column certificateThumbprint: 'not-hex' is not a SHA-1 thumbprint: "
        "40 hex digits after removing spaces and colons"
    )
    assert lines[-5:] == [  # what was found is still shown, then why nothing would be sent
        "records    3 (0 valid, 3 rejected)",
        "first 2 record(s) as they would be sent:",
        f"  line 2: {why}",
        f"  line 3: {why}",
        f"cannot import: {path}: no record would be sent: all 3 records are rejected "
        "(certimport validate lists the reason for every row)",
    ]


def test_inspect_exits_2_when_the_only_record_is_rejected(tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", [row(1, certificateSerialNumber="zz")])
    code, out, _ = invoke("inspect", str(path))
    assert code == 2
    assert "records    1 (0 valid, 1 rejected)" in out.splitlines()
    assert out.splitlines()[-1] == (
        f"cannot import: {path}: no record would be sent: the only record is rejected "
        "(certimport validate lists the reason for every row)"
    )


@pytest.mark.parametrize("after_header", ["", "\r\n\r\n,,,,,,,,,,\r\n"])
def test_inspect_exits_2_for_a_header_without_data_rows(tmp_path: Path, after_header: str) -> None:
    path = write_inventory(tmp_path / "inv.csv", [])
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(after_header)  # blank lines, or only delimiters, are not records
    code, out, err = invoke("inspect", str(path))
    assert (code, err) == (2, "")
    lines = out.splitlines()
    assert ["'certificateThumbprint'", "->", "certificateThumbprint"] in [
        line.split() for line in lines
    ]
    assert lines[-2:] == [
        "records    0 (0 valid, 0 rejected)",
        f"cannot import: {path}: no record would be sent: there are no data rows after the header",
    ]


def test_inspect_exits_0_with_one_good_row(tmp_path: Path) -> None:
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, out, err = invoke("inspect", str(path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "records    1 (1 valid, 0 rejected)" in lines
    assert lines[-1].startswith('  line 2: {"@odata.type":"#microsoft.graph.')
    assert not any(line.startswith("cannot import") for line in lines)


def test_one_good_row_after_chunks_of_rejected_ones_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision counts every record of the file, read chunk by chunk, not the sample."""
    monkeypatch.setenv("CERTIMPORT_CHUNK_SIZE", "100")
    rows = [row(n, certificateThumbprint="not-hex") for n in range(250)] + [row(250)]
    path = write_inventory(tmp_path / "inv.csv", rows)
    code, out, _ = invoke("inspect", str(path), "--rows", "1")
    assert code == 0
    assert "records    251 (1 valid, 250 rejected)" in out.splitlines()
    path = write_inventory(tmp_path / "inv.csv", rows[:250])
    code, out, _ = invoke("inspect", str(path), "--rows", "1")
    assert code == 2
    assert out.splitlines()[-1].startswith(
        f"cannot import: {path}: no record would be sent: all 250 records are rejected"
    )
