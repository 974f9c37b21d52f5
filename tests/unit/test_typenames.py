"""Cells holding a .NET type name (a plain Export-Csv of X509Certificate2): empty, said once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import validated

from importer.input.schema import Validator
from importer.input.source import CsvSource
from importer.input.typenames import is_type_name

EKU_LIST = "System.Collections.Generic.List`1[Microsoft.PowerShell.Commands.EnhancedKeyUsage"
EKU_LIST += "Representation]"
EXTENSIONS = "System.Security.Cryptography.X509Certificates.X509ExtensionCollection"
HEADER = (
    '"PSPath","EnhancedKeyUsageList","Extensions","NotAfter","NotBefore","SerialNumber",'
    '"Thumbprint","Issuer","Subject"'
)


@pytest.mark.parametrize(
    ("cell", "named"),
    [
        (EKU_LIST, True),
        (EXTENSIONS, True),
        ("System.Byte[]", True),
        ("System.Security.Cryptography.Oid", True),
        ("Microsoft.CertificateServices.Commands.EnrollmentEndPointProperty", True),
        ("System.Test", False),  # could be a device's name
        ("Microsoft.Surface", False),
        ("CN=System.Security.Cryptography", False),
        ("1.3.6.1.5.5.7.3.2", False),
        ("System.Security.Cryptography.Oid, 1.3.6", False),
    ],
)
def test_what_is_a_type_name(cell: str, named: bool) -> None:
    assert is_type_name(cell) is named


def plain_export(tmp_path: Path, rows: int = 5) -> Path:
    lines = ["#TYPE System.Security.Cryptography.X509Certificates.X509Certificate2", HEADER]
    for n in range(1, rows + 1):
        eku = "Client Authentication (1.3.6.1.5.5.7.3.2)" if n == 4 else EKU_LIST
        lines.append(
            f'"Microsoft.PowerShell.Security\\Certificate::LocalMachine\\My\\{n:040X}",'
            f'"{eku}","{EXTENSIONS}","1/15/2026 9:12:44 AM","1/15/2025 9:12:44 AM",'
            f'"{n:032X}","{n:040X}","CN=Contoso Issuing CA 01, DC=contoso, DC=com","CN=PC-{n}"'
        )
    path = tmp_path / "certs.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
    return path


def run(path: Path, **options: Any) -> tuple[Validator, list[dict[str, Any]], list[str]]:
    src = CsvSource(path, chunk_size=2)
    check = Validator(src.header, dayfirst=False, **options)
    sent, problems = validated(src, check)
    return check, sent, problems


def test_type_names_are_sent_as_empty_with_one_warning_per_column(tmp_path: Path) -> None:
    check, sent, problems = run(plain_export(tmp_path))
    assert problems == []
    assert len(sent) == 5
    assert "certificateExtendedKeyUsages" not in sent[0]
    assert "certificateKeyUsages" not in sent[0]
    assert sent[3]["certificateExtendedKeyUsages"] == "1.3.6.1.5.5.7.3.2"
    notes = [n.describe("f") for n in check.notes]  # three chunks, one note per column
    assert notes == [
        f"warning: f:3: column Extensions holds .NET type names such as {EXTENSIONS!r} instead "
        "of values (Export-Csv writes what it cannot flatten so): such cells are sent as empty; "
        "to send the values, export Extensions with Select-Object ..., @{n='KeyUsages'; "
        "e={($_.Extensions | Where-Object KeyUsages).KeyUsages}} (the key usages are in it)",
        f"warning: f:3: column EnhancedKeyUsageList holds .NET type names such as {EKU_LIST!r} "
        "instead of values (Export-Csv writes what it cannot flatten so): such cells are sent "
        "as empty; to send the values, export EnhancedKeyUsageList with Select-Object ..., "
        "@{n='EnhancedKeyUsageList'; e={$_.EnhancedKeyUsageList -join ', '}}",
    ]


def test_strict_rejects_the_rows_that_hold_type_names(tmp_path: Path) -> None:
    check, sent, problems = run(plain_export(tmp_path, rows=2), strict=True)
    assert sent == []
    assert problems[:2] == [
        f"f:3: column EnhancedKeyUsageList: '{EKU_LIST[:57]}...' is a .NET type name, not a "
        "list of EKUs: in PowerShell export EnhancedKeyUsageList with -join ', '",
        f"f:3: column Extensions: '{EXTENSIONS[:57]}...' is a .NET type name, not a value: "
        "export Extensions with Select-Object ..., @{n='KeyUsages'; "
        "e={($_.Extensions | Where-Object KeyUsages).KeyUsages}} (the key usages are in it)",
    ]
    assert len(problems) == 4
    assert "rejected (--strict)" in check.notes[0].message


def test_a_required_column_is_never_emptied(tmp_path: Path) -> None:
    path = tmp_path / "certs.csv"
    path.write_text(
        HEADER.replace('"PSPath",', "") + "\r\n"
        f'"","","1/15/2026 9:12 AM","1/15/2025 9:12 AM","01","{"A" * 40}","CN=I",'
        '"System.Security.Cryptography.X509Certificates.X500DistinguishedName"\r\n',
        encoding="ascii",
    )
    check, sent, problems = run(path)
    assert sent == []
    assert problems == [
        "f:2: column Subject: 'System.Security.Cryptography.X509Certificates.X500Disting...' "
        "is a .NET type name, not a value: export Subject with a calculated property that "
        "turns it into text (for a list: @{n='Subject'; e={$_.Subject -join ', '}})"
    ]
    assert "such cells are rejected;" in check.notes[0].message
