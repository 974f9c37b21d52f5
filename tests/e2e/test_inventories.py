"""Real inventories through the CLI: each sample export with its documented command, against
the emulator, and what ``inspect`` says of it (samples/README.md says where each comes from)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import SAMPLES, ThreadedEmulator, invoke, read_results, thumb, write_csv

# (sample, the options README documents for it, profile, records)
EXPORTS = [
    ("pspki-issued.csv", ["--monthfirst", "--timezone", "America/New_York"], "pspki", 22),
    ("pspki-revoked.csv", ["--dayfirst", "--timezone", "Europe/Berlin"], "pspki", 20),
    ("pspkiaudit.csv", ["--monthfirst", "--timezone", "America/Chicago"], "pspkiaudit", 21),
    ("powershell-plain.csv", ["--monthfirst", "--timezone", "Europe/Amsterdam"], "powershell", 20),
]


def data_rows(name: str) -> list[dict[str, str]]:
    """The sample's records as the csv module reads them (preamble skipped)."""
    text = (SAMPLES / name).read_text(encoding="utf-8-sig")
    lines = text.splitlines(keepends=True)
    if lines[0].startswith("#TYPE"):
        lines = lines[1:]
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    return list(csv.DictReader(lines, delimiter=delimiter))


@pytest.mark.parametrize(("name", "options", "profile", "records"), EXPORTS)
def test_each_export_lands_whole_with_its_documented_command(
    graph: ThreadedEmulator, tmp_path: Path, name: str, options: list[str], profile: str,
    records: int,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(SAMPLES / name), *options, "--out", str(out))
    assert code == 0, stderr
    assert f"profile {profile} (auto: " in stderr
    results = read_results(out)
    assert [r["status"] for r in results] == ["created"] * records
    stored = {r["certificateThumbprint"]: r for r in graph.records()}
    assert len(stored) == records == graph.stats()["posts"]
    rows = data_rows(name)
    hashes = [r.get("CertificateHash") or r["Thumbprint"] for r in rows]
    assert sorted(stored) == sorted(h.replace(" ", "").upper() for h in hashes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["created"] == records


def test_pspki_rows_keep_their_names_dates_and_revocations(graph: ThreadedEmulator, tmp_path):
    for name, options, _, _ in EXPORTS[:2]:
        code, _, stderr = invoke(
            "run", str(SAMPLES / name), *options, "--out", str(tmp_path / name)
        )
        assert code == 0, stderr
    stored = list(graph.records())
    revoked = [r for r in stored if r["certificateRevokeStatus"] == "revoked"]
    assert len(revoked) == 20 and len(stored) == 42
    assert all(r["certificateRevokeStatusLastChangeDateTime"].endswith("Z") for r in revoked)
    subjects = {r["certificateSubjectName"] for r in stored}
    assert 'CN="Müller, Jürgen", OU=Staff, DC=contoso, DC=com' in subjects  # issued: the DN
    assert "CN=Müller, Jürgen" in subjects  # revoked: no DN exported, made from CommonName
    assert {r["certificateIssuerName"] for r in stored} == {"CN=Contoso Issuing CA 01"}
    first = next(r for r in stored if r["certificateSerialNumber"].endswith("126C"))
    # 9/5/2025 4:17:46 PM in New York (EDT, UTC-4)
    assert first["certificateIssuanceDateTime"] == "2025-09-05T20:17:46Z"


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(("name", "options", "profile", "records"), EXPORTS)
def test_inspect_names_the_profile_of_each_export(
    name: str, options: list[str], profile: str, records: int
) -> None:
    code, out, err = invoke("inspect", str(SAMPLES / name), *options)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert any(line.startswith(f"profile    {profile} (auto: best match of ") for line in lines)
    assert f"records    {records} ({records} valid, 0 rejected)" in lines


@pytest.mark.usefixtures("isolated")
def test_inspect_shows_what_is_derived_and_from_which_column() -> None:
    code, out, _ = invoke("inspect", str(SAMPLES / "pspki-revoked.csv"), "--dayfirst")
    assert code == 0
    lines = out.splitlines()
    assert any(
        line.split() == ["'CommonName'", "as", "'CN={}'", "->", "certificateSubjectName"]
        for line in lines
    )
    assert any(
        "'Request.RevokedWhen' as 'revoked' (empty: 'none')" in line
        and line.endswith("-> certificateRevokeStatus")
        for line in lines
    )
    code, out, _ = invoke("inspect", str(SAMPLES / "pspki-issued.csv"), "--monthfirst")
    assert any(
        line.split() == ["constant", "'none'", "->", "certificateRevokeStatus"]
        for line in out.splitlines()
    )


@pytest.mark.usefixtures("isolated")
def test_an_adcs_export_with_common_name_and_email_imports(tmp_path: Path) -> None:
    path = tmp_path / "adcs.csv"
    path.write_text(
        '"Request ID","Serial Number","Certificate Hash","Certificate Effective Date",'
        '"Certificate Expiration Date","Issued Common Name","Issued Email Address",'
        '"Request Disposition"\r\n'
        '"7","61000007","ac a4 ec 7d 63 e9 13 af 7e e1 0c 23 52 c3 47 48 4c cd 78 0b",'
        '"1/5/2025 10:32 AM","1/5/2027 10:32 AM","Zoë Ørsted","zoe.orsted@contoso.com",'
        '"20 -- Issued"\r\n',
        encoding="utf-8",
    )
    config = tmp_path / "adcs.toml"
    config.write_text('[columns]\ncertificateIssuerName = { value = "CN=CA 01" }\n', "utf-8")
    code, out, _ = invoke("inspect", str(path), "--config", str(config), "--monthfirst")
    assert code == 0, out
    assert '"certificateSubjectName":"CN=Zoë Ørsted"' in out
    assert '"userPrincipalName":"zoe.orsted@contoso.com"' in out
    lines = out.splitlines()
    assert any(
        line.endswith("-> userPrincipalName") and "'Issued Email Address'" in line for line in lines
    )


def test_an_adcs_night_with_denied_pending_and_failed_requests_exits_0(
    graph: ThreadedEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = str(SAMPLES / "adcs-columns.toml")
    code, _, stderr = invoke(
        "run", str(SAMPLES / "adcs-export.csv"), "--config", config, "--monthfirst",
        "--timezone", "America/New_York", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert "excluded" in stderr and "rejected" not in stderr
    results = read_results(out)
    assert [r["status"] for r in results] == ["created"] * 6 + ["excluded"] * 3
    assert [r["error_code"] for r in results[6:]] == ["NotACertificate"] * 3
    assert "denied request (31 -- Denied)" in results[6]["error_message"]
    assert read_results(out, "failed.csv") == []
    assert graph.stats()["posts"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["excluded"] == 3 and summary["exit_code"] == 0
    # the next night: the issued certificates are skipped, the requests excluded again
    code, _, stderr = invoke(
        "run", str(SAMPLES / "adcs-export.csv"), "--config", config, "--monthfirst",
        "--timezone", "America/New_York", "--out", str(tmp_path / "again"),
    )  # fmt: skip
    assert code == 0, stderr
    statuses = [r["status"] for r in read_results(tmp_path / "again")]
    assert statuses == ["skipped"] * 6 + ["excluded"] * 3
    assert graph.stats()["posts"] == 6


MONTH_FIRST = [
    ["certificateThumbprint", "managedDeviceDisplayName", "userPrincipalName",
     "certificateKeyUsages", "certificateExtendedKeyUsages", "certificateSerialNumber",
     "certificateIssuerName", "certificateSubjectName", "certificateRevokeStatus",
     "certificateIssuanceDateTime", "certificateExpirationDateTime"],
]  # fmt: skip


def month_first_file(path: Path, decisive: bool) -> Path:
    """Rows with dates like 3/4/2025 (both orders read); with ``decisive``, line 5 has 3/14."""
    rows = [list(r) for r in MONTH_FIRST]
    for n in range(8):
        day = 14 if decisive and n == 3 else n % 12 + 1
        rows.append([
            thumb(n), f"PC-{n:04d}", f"zoë.ørsted{n}@contoso.com", "digitalSignature",
            "1.3.6.1.5.5.7.3.2, 1.3.6.1.5.5.7.3.1", f"61{n:06X}", "CN=Contoso CA",
            f"CN=Zoë Ørsted {n}", "none",
            f"{n % 12 + 1}/{day}/2025 {n + 1}:{n * 7 % 60:02d}:0{n} PM", f"{n % 12 + 1}/{day}/2027",
        ])  # fmt: skip
    return write_csv(path, rows)


def test_the_file_decides_the_date_order_and_says_so_once(
    graph: ThreadedEmulator, tmp_path: Path
) -> None:
    path = month_first_file(tmp_path / "inv.csv", decisive=True)
    out = tmp_path / "out"
    code, _, stderr = invoke("run", str(path), "--out", str(out))
    assert code == 0, stderr
    said = [line for line in stderr.splitlines() if "dates are read month-first" in line]
    assert len(said) == 1 and f"{path}:5:" in said[0]
    stored = {r["managedDeviceDisplayName"]: r for r in graph.records()}
    assert stored["PC-0001"]["certificateIssuanceDateTime"] == "2025-02-02T14:07:01Z"
    assert stored["PC-0003"]["certificateIssuanceDateTime"] == "2025-04-14T16:21:03Z"
    # recorded as if given, so that retry and the next steps read the file the same way
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reading"]["dayfirst"] is False
    code, text, _ = invoke("inspect", str(path))
    assert "dates      month-first, inferred from line 5 (certificateIssuanceDateTime" in text


@pytest.mark.usefixtures("isolated")
def test_a_file_whose_dates_never_decide_is_asked_about_once(tmp_path: Path) -> None:
    path = month_first_file(tmp_path / "inv.csv", decisive=False)
    code, _, stderr = invoke("validate", str(path), "--out", str(tmp_path / "out"))
    assert code == 1
    lines = stderr.splitlines()
    asks = [line for line in lines if "none of them tells the day from the month" in line]
    assert len(asks) == 1
    per_column = [line for line in lines if "column certificateIssuanceDateTime:" in line]
    assert len(per_column) == 3  # the first three lines, then a count
    assert (
        f"{path}: 5 more line(s) where column certificateIssuanceDateTime is not ISO 8601" in stderr
    )
    assert len(read_results(tmp_path / "out")) == 8  # every row is still in results.csv
