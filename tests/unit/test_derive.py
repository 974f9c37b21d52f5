"""Derived properties (a profile's ``[derive]`` table) and the hints for a header that lacks one.

Each test writes the file as its tool writes it (certutil with another ``-out`` list, PSPKI,
PSPKIAudit) and reads it through the real source and validator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import validated

from importer.errors import ConfigError, InputError
from importer.input.derive import Derivation
from importer.input.profiles import ColumnSetting, load_profiles, match_header, parse_profile
from importer.input.schema import Validator
from importer.input.source import CsvSource

HASH = "ac a4 ec 7d 63 e9 13 af 7e e1 0c 23 52 c3 47 48 4c cd 78 0b"
ISSUER = ColumnSetting("certificateIssuerName", constant="CN=Contoso Issuing CA 01")


def bodies(path: Path, **source: Any) -> tuple[CsvSource, list[dict[str, Any]], list[str]]:
    """(source, bodies of the valid rows, problems as the operator reads them)."""
    src = CsvSource(path, chunk_size=2, encoding="auto", **source)
    check = Validator(src.header, dayfirst=False)
    sent, problems = validated(src, check)
    return src, sent, problems


@pytest.mark.parametrize(
    ("rule", "cells", "derived"),
    [
        (
            Derivation("s", ("c",), template="CN={}"),
            [" pc07 ", "", "José"],
            ["CN=pc07", "", "CN=José"],
        ),
        (
            Derivation("i", ("c",), after="\\", template="CN={}"),
            ["ca01.contoso.com\\Contoso CA 01", "no separator", "a\\b\\c"],
            ["CN=Contoso CA 01", "CN=no separator", "CN=c"],
        ),
        (
            Derivation("r", ("c",), template="revoked", empty="none"),
            ["14.03.2025 09:20:00", "", " "],
            ["revoked", "none", "none"],
        ),
        (Derivation("u", ("c",)), ["ana@contoso.com", ""], ["ana@contoso.com", ""]),
    ],
)
def test_a_rule_makes_each_cell_from_its_source(
    rule: Derivation, cells: list[str], derived: list[str]
) -> None:
    assert rule.apply(pd.Series(cells, dtype="str")).tolist() == derived


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"derive": {"certificateSubject": {"from": "CN"}}}, "is not a Graph property"),
        ({"derive": {"certificateSubjectName": {"from": "CN", "prefix": "x"}}}, "unknown key"),
        ({"derive": {"certificateSubjectName": {"template": "CN={}"}}}, "from must name"),
        ({"derive": {"certificateSubjectName": {"from": "CN", "template": "{}{}"}}}, "once"),
        (
            {"derive": {"certificateRevokeStatus": [{"value": "none"}, {"from": "X"}]}},
            "it can only come last",
        ),
        (
            {
                "columns": {"certificateSubjectName": {"value": "CN=x"}},
                "derive": {"certificateSubjectName": {"from": "CN"}},
            },
            "gives it a constant, which always applies",
        ),
        ({"hints": {"thumbprint": "x"}}, "[hints] thumbprint is not a Graph property"),
        ({"type_names": {"Extensions": 1}}, "Extensions must be text"),
    ],
)
def test_a_wrong_table_is_refused_with_where_and_why(table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile(table, name="p", origin="p.toml")
    assert any(problem in p and p.startswith("p.toml: ") for p in caught.value.problems)


def adcs_profile() -> Any:
    return next(p for p in load_profiles() if p.name == "adcs")


def test_a_derived_property_yields_to_its_own_column_and_to_the_settings() -> None:
    profile = adcs_profile()
    without_dn = ["Certificate Hash", "Issued Common Name", "Issued Email Address"]
    match = match_header(profile, without_dn)
    assert match.columns["certificateSubjectName"] == "Issued Common Name"
    assert match.columns["userPrincipalName"] == "Issued Email Address"
    assert set(match.derived) == {"certificateSubjectName", "userPrincipalName"}
    assert "Issued Common Name" not in match.ignored + match.extras
    with_dn = match_header(profile, [*without_dn, "Issued Distinguished Name"])
    assert with_dn.columns["certificateSubjectName"] == "Issued Distinguished Name"
    assert "certificateSubjectName" not in with_dn.derived
    assert "Issued Common Name" in with_dn.ignored
    mapped = profile.with_columns([ColumnSetting("userPrincipalName", ("Issued Common Name",))])
    assert "userPrincipalName" not in match_header(mapped, without_dn).derived


def test_an_adcs_export_without_a_distinguished_name_sends_the_common_name(tmp_path: Path) -> None:
    path = tmp_path / "adcs.csv"
    path.write_text(
        '"Request ID","Serial Number","Certificate Hash","Certificate Effective Date",'
        '"Certificate Expiration Date","Issued Common Name","Issued Email Address",'
        '"Request Disposition"\r\n'
        f'"7","61000007","{HASH}","1/5/2025 10:32 AM","1/5/2027 10:32 AM","José Müller",'
        '"jose.mueller@contoso.com","20 -- Issued"\r\n'
        f'"8","61000008","{HASH.replace("ac", "bd")}","1/5/2025 10:32 AM","1/5/2027 10:32 AM",'
        '"pc07.contoso.com","EMPTY","21 -- Revoked"\r\n',
        encoding="utf-8",
    )
    src, sent, problems = bodies(path, columns=[ISSUER])
    assert src.header.profile.name == "adcs"
    assert problems == []
    assert [b["certificateSubjectName"] for b in sent] == ["CN=José Müller", "CN=pc07.contoso.com"]
    assert sent[0]["userPrincipalName"] == "jose.mueller@contoso.com"
    assert "userPrincipalName" not in sent[1]  # EMPTY is empty: nothing to derive


def test_pspki_derives_issuer_subject_and_status(tmp_path: Path) -> None:
    path = tmp_path / "revoked.csv"
    path.write_text(
        '"RequestID";"Request.RevokedWhen";"CommonName";"SerialNumber";"CertificateHash";'
        '"NotBefore";"NotAfter";"ConfigString"\r\n'
        f'"9";"3/14/2025 9:20:00 AM";"Zoë Ørsted";"55000009";"{HASH}";"1/5/2025 10:32:00 AM";'
        '"1/5/2026 10:32:00 AM";"ca01.contoso.com\\Contoso Issuing CA 01"\r\n',
        encoding="utf-8",
    )
    src, sent, problems = bodies(path)
    assert (src.header.profile.name, problems) == ("pspki", [])
    assert sent[0]["certificateIssuerName"] == "CN=Contoso Issuing CA 01"
    assert sent[0]["certificateSubjectName"] == "CN=Zoë Ørsted"
    assert sent[0]["certificateRevokeStatus"] == "revoked"
    assert sent[0]["certificateRevokeStatusLastChangeDateTime"] == "2025-03-14T09:20:00Z"


def test_a_derived_status_that_is_no_status_is_rejected_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[columns]\ncertificateThumbprint = "T"\ncertificateSerialNumber = "S"\n'
        'certificateIssuerName = "I"\ncertificateSubjectName = "N"\n'
        'certificateIssuanceDateTime = "A"\ncertificateExpirationDateTime = "B"\n'
        '[derive]\ncertificateRevokeStatus = { from = "Gone", template = "gone" }\n',
        encoding="utf-8",
    )
    inventory = tmp_path / "i.csv"
    inventory.write_text(
        f"T,S,I,N,A,B,Gone\n{'A' * 40},1,CN=I,CN=N,2025-01-01,2026-01-01,yes\n", encoding="utf-8"
    )
    _, sent, problems = bodies(inventory, profile=str(path))
    assert sent == []
    assert problems == [
        "f:2: column Gone: 'yes' is not a revoke status: use one of none, pending, issued, "
        "failed, revoked"
    ]


# --- what is said when a property is missing ---------------------------------------------------

AUDIT_HEADER = (
    '"CA","RequestID","RequesterName","RequesterMachineName","RequesterProcessName",'
    '"SubjectAltNamesExtension","SubjectAltNamesAttrib","SerialNumber","CertificateTemplate",'
    '"RequestDate","StartDate","EndDate"'
)


def test_pspkiaudit_without_hash_names_what_to_add_and_proposes_no_template(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.csv"
    path.write_text(
        AUDIT_HEADER + "\r\n"
        '"dc.theshire.local\\theshire-DC-CA","4602","THESHIRE\\cody","dev.theshire.local",'
        '"Certify.exe","","Administrator","55000011faef0fab5ffd7f75b30000000011fa",'
        '"ESC1 Template (1.3.6.1.4.1.311.21.8.10395027)","6/3/2021 5:54:51 PM",'
        '"6/3/2021 5:44:51 PM","6/3/2022 5:44:51 PM"\r\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        CsvSource(path)
    error = caught.value
    assert error.reason.startswith(
        "missing required column(s): certificateThumbprint, certificateSubjectName; "
    )
    assert error.hint is not None
    assert error.hint.startswith("Get-CertRequest does not export the certificate's hash")
    assert "Get-CertRequest does not export the certificate's subject" in error.hint
    assert "CertificateTemplate" not in error.hint.replace("profile pspkiaudit", "")
    assert "profile pspkiaudit (auto: " in error.hint


def test_a_close_match_is_proposed_only_when_nothing_says_it_is_another_property(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.csv"
    header = [
        "certificateThumbprnt", "CertificateTemplate", "certificateSerialNumber",
        "managedDeviceDisplayName", "userPrincipalName", "certificateIssuerName",
        "certificateSubjectName", "certificateRevokeStatus", "certificateIssuanceDateTime",
        "certificateExpirationDateTime", "certificateKeyUsages", "certificateExtendedKeyUsages",
    ]  # fmt: skip
    path.write_text(",".join(header) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        CsvSource(path, profile="graph")
    hint = caught.value.hint or ""
    assert "did you mean 'certificateThumbprnt' for certificateThumbprint" in hint
    assert "'CertificateTemplate'" not in hint
    path.write_text(",".join(["CertificateTemplate", *header[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        CsvSource(path, profile="graph")
    assert "did you mean" not in (caught.value.hint or "")
