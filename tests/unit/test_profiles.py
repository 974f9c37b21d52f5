"""Profiles, column mapping and value rules: each source kind, from files written here.

Each test writes a file the way that source writes it (certutil, PowerShell, a European
spreadsheet, Graph-shaped/failed.csv) and asserts the exact bodies that would be sent or the
exact line and reason of each rejection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import ODATA

from importer.config import load_settings
from importer.errors import ConfigError, InputError, UsageError
from importer.input.mapping import build_bodies
from importer.input.profiles import ColumnSetting, fold, load_profiles, parse_profile
from importer.input.rules import eku_value, key_usage_value
from importer.input.schema import Validator
from importer.input.source import CsvSource

ISSUER = ColumnSetting("certificateIssuerName", constant="CN=Contoso Issuing CA 01")
# every built-in profile, in the order auto-detection tries them
PROFILES = "graph, adcs, powershell, pspki, pspkiaudit"


def read(
    path: Path, *, dates: dict[str, Any] | None = None, **source: Any
) -> tuple[CsvSource, list[tuple[int, dict[str, Any]]], list[str]]:
    """(source, [(line, body)] of valid rows, problems as the operator reads them)."""
    src = CsvSource(path, chunk_size=2, **{"encoding": "auto", **source})
    check = Validator(src.header, **(dates or {}))
    sent: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for chunk in src.chunks():
        vc = check.validate(chunk)
        rows = np.flatnonzero(vc.valid)
        sent += list(zip(vc.lines[rows].tolist(), build_bodies(vc.values, rows), strict=True))
        for pos in sorted(vc.problems):
            problems += [p.describe("f") for p in vc.problems[pos]]
    return src, sent, problems


# --- AD CS (certutil -view csv) --------------------------------------------------------------

ADCS_HEADER = (
    '"Request ID","Serial Number","Certificate Hash","Certificate Effective Date",'
    '"Certificate Expiration Date","Issued Common Name","Issued Distinguished Name",'
    '"Request Disposition","Revocation Date"'
)
HASH = "ac a4 ec 7d 63 e9 13 af 7e e1 0c 23 52 c3 47 48 4c cd 78 0b"


def adcs(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "adcs.csv"
    path.write_bytes(("\r\n".join([ADCS_HEADER, *rows]) + "\r\n").encode())
    return path


def test_adcs_export_with_issuer_constant_and_month_first_dates(tmp_path: Path) -> None:
    path = adcs(
        tmp_path,
        f'"12","6100000002a4f8","{HASH}","1/5/2025 10:32 AM","1/5/2027 10:32 AM",'
        '"pc01.contoso.com","CN=pc01.contoso.com","20 -- Issued","EMPTY"',
        f'"13","61000000:03","{HASH.replace("ac", "bb", 1)}","12/31/2024 11:59 PM",'
        '"12/31/2026 11:59 PM","pc02.contoso.com","CN=pc02.contoso.com","21 -- Revoked",'
        '"3/1/2025 9:00 AM"',
        f'"14","6100000004","{HASH.replace("ac", "cc", 1)}","1/5/2025 10:32 AM",'
        '"1/5/2027 10:32 AM","pc03.contoso.com","CN=pc03.contoso.com","12 -- Archived","EMPTY"',
    )
    device = ColumnSetting("managedDeviceDisplayName", headers=("Issued Common Name",))
    src, sent, problems = read(
        path,
        columns=[ISSUER, device],
        dates={"dayfirst": False, "timezone": "America/New_York"},
    )
    assert src.header.chosen == f"profile adcs (auto: best match of {PROFILES})"
    assert src.header.ignored == ("Request ID",)
    assert problems == [
        "f:4: column Request Disposition: '12 -- Archived' is not a status known to profile "
        "adcs (20 -> none, 21 -> revoked)"
    ]
    common = {"@odata.type": ODATA, "certificateIssuerName": "CN=Contoso Issuing CA 01"}
    assert sent == [
        (
            2,
            {
                **common,
                "certificateThumbprint": "ACA4EC7D63E913AF7EE10C2352C347484CCD780B",
                "certificateSerialNumber": "6100000002A4F8",
                "managedDeviceDisplayName": "pc01.contoso.com",
                "certificateSubjectName": "CN=pc01.contoso.com",
                "certificateRevokeStatus": "none",
                "certificateIssuanceDateTime": "2025-01-05T15:32:00Z",
                "certificateExpirationDateTime": "2027-01-05T15:32:00Z",
            },
        ),
        (
            3,
            {
                **common,
                "certificateThumbprint": "BBA4EC7D63E913AF7EE10C2352C347484CCD780B",
                "certificateSerialNumber": "6100000003",
                "managedDeviceDisplayName": "pc02.contoso.com",
                "certificateSubjectName": "CN=pc02.contoso.com",
                "certificateRevokeStatus": "revoked",
                "certificateRevokeStatusLastChangeDateTime": "2025-03-01T14:00:00Z",
                "certificateIssuanceDateTime": "2025-01-01T04:59:00Z",
                "certificateExpirationDateTime": "2027-01-01T04:59:00Z",
            },
        ),
    ]


def test_adcs_without_issuer_lists_what_is_missing_and_how_to_set_it(tmp_path: Path) -> None:
    path = adcs(tmp_path)
    with pytest.raises(InputError) as caught:
        CsvSource(path)
    error = caught.value
    assert error.line == 1
    assert error.reason.startswith("missing required column(s): certificateIssuerName; ")
    assert error.reason.endswith("'Request Disposition', 'Revocation Date'")
    assert error.hint is not None
    assert f"profile adcs (auto: best match of {PROFILES})" in error.hint
    assert 'certificateIssuerName = "Your header" or { value = "..." }' in error.hint


def test_dates_that_are_not_iso_need_an_order(tmp_path: Path) -> None:
    path = adcs(
        tmp_path,
        f'"12","61","{HASH}","1/5/2025 10:32 AM","2027-01-05T10:32:00Z","d","CN=d",'
        '"20 -- Issued","EMPTY"',
    )
    _, sent, problems = read(path, columns=[ISSUER])
    assert sent == []
    assert problems == [
        "f:2: column Certificate Effective Date: '1/5/2025 10:32 AM' is not ISO 8601 and its "
        "day and month order is unknown: pass --dayfirst or --monthfirst, or --date-format"
    ]


# --- PowerShell Export-Csv -------------------------------------------------------------------

PS_TYPE = "#TYPE Selected.System.Security.Cryptography.X509Certificates.X509Certificate2"
PS_HEADER = (
    '"PSComputerName","Thumbprint","SerialNumber","Subject","Issuer","NotBefore","NotAfter",'
    '"KeyUsages","EnhancedKeyUsageList","HasPrivateKey"'
)


def test_powershell_utf16_export_with_names_for_usages(tmp_path: Path) -> None:
    rows = [
        '"WS-MÜNCHEN-03","9419CF4D60597BDC5DBE44096B384309C9A937A6","0bf64e","CN=Jürgen Weiß",'
        '"CN=Contoso User CA","15.01.2025 09:12:44","15.01.2026 09:12:44",'
        '"DigitalSignature, KeyEncipherment",'
        '"Client Authentication (1.3.6.1.5.5.7.3.2), Secure Email (1.3.6.1.5.5.7.3.4)","True"',
        '"WS-02","F453324EF486AB739FABA8272E50BD4EB52FA53C","3e","CN=x","CN=Contoso User CA",'
        '"03.02.2025 14:30:00","03.02.2026 14:30:00","0x80",'
        '"System.Collections.Generic.List`1[Microsoft.PowerShell.Commands.'
        'EnhancedKeyUsageRepresentation]","True"',
    ]
    path = tmp_path / "certs.csv"
    path.write_bytes(("\r\n".join([PS_TYPE, PS_HEADER, *rows]) + "\r\n").encode("utf-16"))
    src, sent, problems = read(path, dates={"dayfirst": True, "timezone": "Europe/Berlin"})
    assert src.header.profile.name == "powershell"
    assert src.header.ignored == ("HasPrivateKey",)
    # a type name instead of the list: sent without EKUs (tests/unit/test_typenames.py)
    assert problems == []
    assert [line for line, _ in sent] == [3, 4]
    assert "certificateExtendedKeyUsages" not in sent[1][1]
    sent = sent[:1]
    assert sent == [
        (
            3,
            {
                "@odata.type": ODATA,
                "certificateThumbprint": "9419CF4D60597BDC5DBE44096B384309C9A937A6",
                "certificateSerialNumber": "0BF64E",
                "managedDeviceDisplayName": "WS-MÜNCHEN-03",
                "certificateIssuerName": "CN=Contoso User CA",
                "certificateSubjectName": "CN=Jürgen Weiß",
                "certificateRevokeStatus": "none",
                "certificateIssuanceDateTime": "2025-01-15T08:12:44Z",
                "certificateExpirationDateTime": "2026-01-15T08:12:44Z",
                "certificateKeyUsages": 160,
                "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2, 1.3.6.1.5.5.7.3.4",
            },
        )
    ]


# --- European spreadsheet --------------------------------------------------------------------

SHEET_HEADER = (
    "certificateThumbprint;certificateSerialNumber;managedDeviceDisplayName;userPrincipalName;"
    "certificateIssuerName;certificateSubjectName;certificateRevokeStatus;"
    "certificateIssuanceDateTime;certificateExpirationDateTime;certificateKeyUsages;"
    "certificateExtendedKeyUsages;;"
)


def sheet_row(thumb: str, issued: str, subject: str = "CN=Zoë Müller") -> str:
    return (
        f"{thumb};00AB;NB-KÖLN-12;zoe@contoso.com;CN=Contoso CA;{subject};None;{issued};"
        "05.01.2027 10:32;Digital Signature, Key Encipherment (a0);Client Authentication;;"
    )


def test_spreadsheet_cp1252_sep_line_dayfirst_and_dst(tmp_path: Path) -> None:
    lines = [
        "sep=;",
        SHEET_HEADER,
        sheet_row(
            "ac:a4:ec:7d:63:e9:13:af:7e:e1:0c:23:52:c3:47:48:4c:cd:78:0b", "05.01.2025 10:32"
        ),
        ";;;;;;;;;;;;",
        sheet_row("B" * 40, "30.03.2025 02:30"),  # spring forward: this time never happens
        sheet_row("C" * 40, "26.10.2025 02:30"),  # fall back: it happens twice
        sheet_row("D" * 40, "26.10.2025 03:30", subject="CN=Ágnes Szabó"),
        "",
    ]
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8"))
    cp1252 = tmp_path / "sheet-1252.csv"
    cp1252.write_bytes("\r\n".join(lines).encode("cp1252"))
    for file in (path, cp1252):
        _, sent, problems = read(file, dates={"dayfirst": True, "timezone": "Europe/Berlin"})
        local = (
            "does not exist or is ambiguous as a local time in Europe/Berlin (clock change); "
            "give the offset explicitly"
        )
        assert problems == [
            f"f:5: column certificateIssuanceDateTime: '30.03.2025 02:30' {local}",
            f"f:6: column certificateIssuanceDateTime: '26.10.2025 02:30' {local}",
        ]
        common = {
            "@odata.type": ODATA,
            "certificateSerialNumber": "00AB",
            "managedDeviceDisplayName": "NB-KÖLN-12",
            "userPrincipalName": "zoe@contoso.com",
            "certificateIssuerName": "CN=Contoso CA",
            "certificateRevokeStatus": "none",
            "certificateExpirationDateTime": "2027-01-05T09:32:00Z",
            "certificateKeyUsages": 160,
            "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2",
        }
        assert sent == [
            (
                3,
                {
                    **common,
                    "certificateThumbprint": "ACA4EC7D63E913AF7EE10C2352C347484CCD780B",
                    "certificateSubjectName": "CN=Zoë Müller",
                    "certificateIssuanceDateTime": "2025-01-05T09:32:00Z",
                },
            ),
            (
                7,
                {
                    **common,
                    "certificateThumbprint": "D" * 40,
                    "certificateSubjectName": "CN=Ágnes Szabó",
                    "certificateIssuanceDateTime": "2025-10-26T02:30:00Z",
                },
            ),
        ]


# --- Graph-shaped: our own failed.csv --------------------------------------------------------


def test_failed_csv_is_read_back_with_its_import_error_column(tmp_path: Path) -> None:
    header = (
        "certificateThumbprint,certificateSerialNumber,managedDeviceDisplayName,"
        "userPrincipalName,certificateIssuerName,certificateSubjectName,certificateRevokeStatus,"
        "certificateIssuanceDateTime,certificateExpirationDateTime,certificateKeyUsages,"
        "certificateExtendedKeyUsages,import_error"
    )
    row = (
        f"{'A' * 40},1F,PC-1,,CN=CA,CN=S,revoked,2025-01-05T10:32:00+01:00,"
        '2026-01-05T10:32:00Z,0x10,,"rejected: BadRequest: nope"'
    )
    path = tmp_path / "failed.csv"
    path.write_text(header + "\r\n" + row + "\r\n", encoding="utf-8")
    src, sent, problems = read(path)
    assert src.header.profile.name == "graph"
    assert (src.header.ignored, src.header.extras) == (("import_error",), ())
    assert problems == []
    assert sent == [
        (
            2,
            {
                "@odata.type": ODATA,
                "certificateThumbprint": "A" * 40,
                "certificateSerialNumber": "1F",
                "managedDeviceDisplayName": "PC-1",
                "certificateIssuerName": "CN=CA",
                "certificateSubjectName": "CN=S",
                "certificateRevokeStatus": "revoked",
                "certificateIssuanceDateTime": "2025-01-05T09:32:00Z",
                "certificateExpirationDateTime": "2026-01-05T10:32:00Z",
                "certificateKeyUsages": 16,
            },
        )
    ]


# --- profiles and the column mapping ---------------------------------------------------------


def test_an_operator_profile_is_data(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "inventory-tool.toml").write_text(
        """
description = "Contoso inventory tool"
empty = ["n/a"]
[columns]
certificateThumbprint = "SHA1"
certificateSerialNumber = "Serial"
certificateIssuerName = "CA"
certificateSubjectName = "Owner"
certificateRevokeStatus = "State"
certificateIssuanceDateTime = "Valid from"
certificateExpirationDateTime = "Valid to"
userPrincipalName = "Mail"
[revoke_status]
active = "none"
"withdrawn (crl)" = "revoked"
""",
        encoding="utf-8",
    )
    path = tmp_path / "tool.csv"
    path.write_text(
        "SHA1|Serial|CA|Owner|State|Valid from|Valid to|Mail\n"
        f"{'E' * 40}|0A|CN=CA|CN=O|Withdrawn   (CRL)|2025-01-05 10:32|2026-01-05 10:32|n/a\n"
        f"{'F' * 40}|0B|CN=CA|CN=O|paused|2025-01-05 10:32|2026-01-05 10:32|x@y\n",
        encoding="utf-8",
    )
    src, sent, problems = read(path, profile_dirs=[profiles])
    assert src.header.chosen == "profile inventory-tool (auto: best match of inventory-tool)"
    assert problems == [
        "f:3: column State: 'paused' is not a status known to profile inventory-tool "
        "(active -> none, withdrawn (crl) -> revoked)"
    ]
    assert sent == [
        (
            2,
            {
                "@odata.type": ODATA,
                "certificateThumbprint": "E" * 40,
                "certificateSerialNumber": "0A",
                "certificateIssuerName": "CN=CA",
                "certificateSubjectName": "CN=O",
                "certificateRevokeStatus": "revoked",
                "certificateIssuanceDateTime": "2025-01-05T10:32:00Z",
                "certificateExpirationDateTime": "2026-01-05T10:32:00Z",
            },
        )
    ]


def test_columns_override_maps_a_header_and_suggests_close_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "Thumbprint,Serial Nr,Subject,Issuer,NotBefore,NotAfter\n"
        f"{'A' * 40},01,CN=S,CN=I,2025-01-05T10:32:00Z,2026-01-05T10:32:00Z\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        CsvSource(path, profile="powershell")
    assert caught.value.reason.startswith("missing required column(s): certificateSerialNumber;")
    assert caught.value.hint is not None
    assert "did you mean 'Serial Nr' for certificateSerialNumber ('SerialNumber')?" in (
        caught.value.hint
    )
    serial = ColumnSetting("certificateSerialNumber", headers=("serial  NR",))
    _, sent, _ = read(path, profile="powershell", columns=[serial])
    assert [b["certificateSerialNumber"] for _, b in sent] == ["01"]


def test_two_headers_for_one_property_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Thumbprint, thumbprint ,SerialNumber\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        CsvSource(path, profile="powershell")
    assert caught.value.reason == (
        "columns 'Thumbprint' and ' thumbprint ' both map to certificateThumbprint"
    )


def test_a_constant_graph_would_refuse_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Thumbprint,SerialNumber,Subject,Issuer,NotBefore,NotAfter\n", "utf-8")
    status = ColumnSetting("certificateRevokeStatus", constant="gone")
    source = CsvSource(path, columns=[status])
    with pytest.raises(ConfigError) as caught:
        Validator(source.header)
    assert caught.value.problems == (
        "[columns] certificateRevokeStatus = { value = 'gone' } is not a revoke status: use one "
        "of none, pending, issued, failed, revoked",
    )


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown profile 'sap'; known profiles: auto, adcs"):
        load_profiles("sap")


def test_headers_are_folded() -> None:
    assert fold("  Certificate   Effective\tDATE ") == "certificate effective date"


def test_columns_and_input_settings_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[input]\nprofile = "adcs"\ndelimiter = "tab"\ndayfirst = true\n'
        '[columns]\ncertificateIssuerName = { value = "CN=CA" }\n'
        'managedDeviceDisplayName = ["Issued Common Name", "Requester Name"]\n',
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"CERTIMPORT_DATE_FORMAT": "%d.%m.%Y"})
    assert (settings.profile, settings.delimiter) == ("adcs", "\t")
    assert (settings.date_format, settings.dayfirst) == ("%d.%m.%Y", None)  # the format wins
    assert settings.columns == (
        ColumnSetting("certificateIssuerName", constant="CN=CA"),
        ColumnSetting("managedDeviceDisplayName", headers=("Issued Common Name", "Requester Name")),
    )


def test_column_and_input_problems_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[input]\nprofile = "sap"\nencoding = "klingon"\ndelimiter = ";;"\n'
        '[columns]\ncertificateThumbprnt = "X"\ncertificateIssuerName = { text = "CN=CA" }\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    problems = caught.value.problems
    assert (
        f"{path}: [columns] certificateThumbprnt is not a Graph property (did you mean "
        "certificateThumbprint?)" in problems
    )
    assert (
        f'{path}: [columns] certificateIssuerName must be {{ value = "text" }}, got '
        "{'text': 'CN=CA'}" in problems
    )
    assert "delimiter must be one character such as , ; tab |, got ';;'" in problems
    assert "encoding must be auto or a codec name such as cp1252, got 'klingon'" in problems
    assert any(
        p.startswith("profile must be one of auto, adcs, graph, powershell") for p in problems
    )


# --- value rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("160", "160"),
        (" -1 ", "-1"),
        ("0xa0", "160"),
        ("0XA0", "160"),
        ("Digital Signature, Key Encipherment", "160"),
        ("Digital Signature, Key Encipherment (a0)", "160"),
        ("DigitalSignature, KeyEncipherment, DataEncipherment", "176"),
        ("digital_signature | non-repudiation", "192"),
        ("Certificate Signing, Off-line CRL Signing, CRL Signing", "6"),
        ("Decipher Only", "32768"),
        ("Digital Signature (80)", "128"),
        ("Digital Signature (a0)", None),  # names and hex disagree
        ("2147483648", None),
        ("0x80000000", None),
        ("Signing", None),
    ],
)
def test_key_usage_values(cell: str, value: str | None) -> None:
    assert key_usage_value(cell) == value


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.2"),
        ("1.3.6.1.5.5.7.3.2;1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.2, 1.3.6.1.5.5.7.3.4"),
        ("Client Authentication, Server Authentication", "1.3.6.1.5.5.7.3.2, 1.3.6.1.5.5.7.3.1"),
        ("clientAuth | emailProtection", "1.3.6.1.5.5.7.3.2, 1.3.6.1.5.5.7.3.4"),
        ("Smart Card Logon (1.3.6.1.4.1.311.20.2.2)", "1.3.6.1.4.1.311.20.2.2"),
        ("Contoso VPN (1.3.6.1.4.1.99999.1)", "1.3.6.1.4.1.99999.1"),
        ("Client Authentication, 1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.2"),
        ("Contoso VPN", "\x00eku"),
        ("System.Object[]", "\x00dotnet"),
    ],
)
def test_eku_values(cell: str, value: str) -> None:
    assert eku_value(cell) == value


@pytest.mark.parametrize(
    ("options", "cell", "sent"),
    [
        ({"date_format": "%d.%m.%Y %H:%M"}, "05.01.2025 10:32", "2025-01-05T09:32:00Z"),
        ({"date_format": "%Y%m%d%H%M%S%z"}, "20250105103200+0300", "2025-01-05T07:32:00Z"),
        ({"dayfirst": True}, "5/1/2025", "2025-01-04T23:00:00Z"),
        ({"dayfirst": False}, "1/5/2025 12:05:07 PM", "2025-01-05T11:05:07Z"),
        ({"dayfirst": False}, "1/5/2025 12:00 AM", "2025-01-04T23:00:00Z"),
        ({"dayfirst": True}, "05-01-2025 10:32:00.25", "2025-01-05T09:32:00.25Z"),
        ({"dayfirst": True}, "2025-01-05T10:32:00+01:00", "2025-01-05T09:32:00Z"),
    ],
)
def test_local_date_formats(tmp_path: Path, options: dict[str, Any], cell: str, sent: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "Thumbprint,SerialNumber,Subject,Issuer,NotBefore,NotAfter\n"
        f'{"A" * 40},01,CN=S,CN=I,"{cell}",2099-01-01T00:00:00Z\n',
        encoding="utf-8",
    )
    _, bodies, problems = read(path, dates={**options, "timezone": "Europe/Berlin"})
    assert problems == []
    assert bodies[0][1]["certificateIssuanceDateTime"] == sent


@pytest.mark.parametrize(
    ("options", "cell", "reason"),
    [
        (
            {"dayfirst": True},
            "31.02.2025",
            "is neither an ISO 8601 date-time nor a day-first date such as 05.01.2025 10:32",
        ),
        (
            {"dayfirst": False},
            "13/1/2025",
            "is neither an ISO 8601 date-time nor a month-first date such as 1/5/2025 10:32 AM",
        ),
        (
            {"date_format": "%d.%m.%Y"},
            "2025/01/05",
            "is neither an ISO 8601 date-time nor in the format '%d.%m.%Y'",
        ),
        ({}, "2025/01/05", "is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z"),
    ],
)
def test_unreadable_local_dates(
    tmp_path: Path, options: dict[str, Any], cell: str, reason: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "Thumbprint,SerialNumber,Subject,Issuer,NotBefore,NotAfter\n"
        f"{'A' * 40},01,CN=S,CN=I,{cell},2099-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    _, _, problems = read(path, dates=options)
    assert problems == [f"f:2: column NotBefore: '{cell}' {reason}"]


def test_adcs_requests_that_are_not_certificates_are_excluded_not_rejected(tmp_path: Path) -> None:
    """Denied, pending and failed requests: excluded with the profile's reason, and they take
    no part in the key checks (their empty hash is no problem, nor a duplicate)."""
    path = adcs(
        tmp_path,
        f'"12","6100000002a4f8","{HASH}","1/5/2025 10:32 AM","1/5/2027 10:32 AM",'
        '"pc01.contoso.com","CN=pc01.contoso.com","20 -- Issued","EMPTY"',
        '"13","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","31 -- Denied","EMPTY"',
        '"14","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","9 -- Pending","EMPTY"',
        f'"15","6100000004","{HASH}","1/5/2025 10:32 AM","1/5/2027 10:32 AM",'
        '"pc01.contoso.com","CN=pc01.contoso.com","30 -- Failed","EMPTY"',
        '"16","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","EMPTY","31 -- Verweigert","EMPTY"',
    )
    src = CsvSource(path, chunk_size=10, encoding="auto", columns=[ISSUER])
    check = Validator(src.header, dayfirst=False, timezone="America/New_York")
    (vc,) = [check.validate(chunk) for chunk in src.chunks()]
    assert vc.valid.tolist() == [True, False, False, False, False]
    assert vc.problems == {}
    assert sorted(vc.excluded) == [1, 2, 3, 4]
    assert vc.excluded[1].startswith("denied request")
    assert vc.excluded[2].startswith("pending request")
    assert vc.excluded[4].startswith("denied request")  # a localized text matches by its code


def test_an_exclusion_table_must_name_a_graph_property(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile(
            {"exclude": {"disposition": {"31": "denied"}, "certificateRevokeStatus": "x"}},
            name="mine",
            origin="mine.toml",
        )
    text = str(caught.value)
    assert "[exclude.disposition]: 'disposition' is not a Graph property" in text
    assert "[exclude.certificateRevokeStatus] must be a table" in text
