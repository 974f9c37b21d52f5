"""Value rules: key usages, extended key usages, revoke-status tables and local date formats.

Each rule works on a pandas Series. Key usages, EKUs and statuses have few distinct values per
file, so they are parsed once per distinct value (``pd.factorize``) and mapped back; dates in a
local format are split into their parts with one regular expression and assembled by pandas.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from importer.model import INT32_MAX, INT32_MIN

# X509KeyUsageFlags: the first byte of the KeyUsage bit string, decipherOnly in the second.
KEY_USAGE_FLAGS: dict[str, int] = {
    "digitalsignature": 0x80,
    "nonrepudiation": 0x40,
    "contentcommitment": 0x40,
    "keyencipherment": 0x20,
    "dataencipherment": 0x10,
    "keyagreement": 0x08,
    "keycertsign": 0x04,
    "certificatesigning": 0x04,
    "crlsign": 0x02,
    "crlsigning": 0x02,
    "offlinecrlsigning": 0x02,
    "encipheronly": 0x01,
    "decipheronly": 0x8000,
    "none": 0,
}
# Extended key usages by the names Windows, .NET and OpenSSL show for them.
EKU_OIDS: dict[str, str] = {
    "serverauthentication": "1.3.6.1.5.5.7.3.1",
    "serverauth": "1.3.6.1.5.5.7.3.1",
    "clientauthentication": "1.3.6.1.5.5.7.3.2",
    "clientauth": "1.3.6.1.5.5.7.3.2",
    "codesigning": "1.3.6.1.5.5.7.3.3",
    "secureemail": "1.3.6.1.5.5.7.3.4",
    "emailprotection": "1.3.6.1.5.5.7.3.4",
    "ipsecurityendsystem": "1.3.6.1.5.5.7.3.5",
    "ipsecuritytunneltermination": "1.3.6.1.5.5.7.3.6",
    "ipsecurityuser": "1.3.6.1.5.5.7.3.7",
    "timestamping": "1.3.6.1.5.5.7.3.8",
    "ocspsigning": "1.3.6.1.5.5.7.3.9",
    "ipsecurityikeintermediate": "1.3.6.1.5.5.8.2.2",
    "kdcauthentication": "1.3.6.1.5.2.3.5",
    "encryptingfilesystem": "1.3.6.1.4.1.311.10.3.4",
    "filerecovery": "1.3.6.1.4.1.311.10.3.4.1",
    "documentsigning": "1.3.6.1.4.1.311.10.3.12",
    "smartcardlogon": "1.3.6.1.4.1.311.20.2.2",
    "smartcardlogin": "1.3.6.1.4.1.311.20.2.2",
    "certificaterequestagent": "1.3.6.1.4.1.311.20.2.1",
    "privatekeyarchival": "1.3.6.1.4.1.311.21.5",
    "keyrecoveryagent": "1.3.6.1.4.1.311.21.6",
    "directoryserviceemailreplication": "1.3.6.1.4.1.311.21.19",
    "microsofttrustlistsigning": "1.3.6.1.4.1.311.10.3.1",
    "anypurpose": "2.5.29.37.0",
}
BAD_EKU = "\x00eku"  # sentinels: the reported value is always the original cell
DOTNET_TYPE = "\x00dotnet"
OID_LIST = r"\d+(?:\.\d+)+(?:, \d+(?:\.\d+)+)*"  # the canonical form: OIDs joined with ", "
_OID = re.compile(r"^\d+(?:\.\d+)+$")
_NAMED_OID = re.compile(r"^(.*?)\s*\((\d+(?:\.\d+)+)\)$")
_KEY_HEX = re.compile(r"^0x([0-9a-f]{1,8})$")
_KEY_TRAILING_HEX = re.compile(r"^(.*?)\s*\(([0-9a-f]{1,8})\)$", re.DOTALL)
# List cells (EKUs, key-usage names) separate their items with commas, semicolons, "|" or line
# breaks (one usage per line, as certutil and spreadsheet users write them).
_LIST_SPLIT = re.compile(r"\s*[,;|\r\n]\s*")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_INTEGER = r"[+-]?\d{1,12}"
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")  # line breaks separate items


def _squash(name: str) -> str:
    return _NOT_ALNUM.sub("", name.casefold())


def key_usage_value(cell: str) -> str | None:
    """A key-usage cell as a decimal Int32 string: integer, ``0xa0``, or flag names.

    Names may be separated by commas, semicolons, ``|`` or line breaks and followed by
    Windows' ``(a0)``; returns None when the cell is none of these (or names and hex disagree).
    """
    if _CONTROL.search(cell):
        return None
    text = cell.strip().casefold()
    if re.fullmatch(_INTEGER, text):
        number = int(text)
        return str(number) if INT32_MIN <= number <= INT32_MAX else None
    hex_match = _KEY_HEX.match(text)
    if hex_match:
        number = int(hex_match.group(1), 16)
        return str(number) if number <= INT32_MAX else None
    shown_hex = None
    trailing = _KEY_TRAILING_HEX.match(text)
    if trailing:
        text, shown_hex = trailing.group(1), int(trailing.group(2), 16)
    flags = 0
    for name in _LIST_SPLIT.split(text):
        flag = KEY_USAGE_FLAGS.get(_squash(name))
        if flag is None:
            return None
        flags |= flag
    if shown_hex is not None and shown_hex != flags:
        return None
    return str(flags)


def eku_value(cell: str) -> str | None:
    """EKUs as OIDs joined with ``", "``; names and ``Name (OID)`` become OIDs.

    Items are separated by commas, semicolons, ``|`` or line breaks. Returns :data:`BAD_EKU`
    for an unknown name and :data:`DOTNET_TYPE` for a .NET type name (a PowerShell list
    exported without ``-join``); None for a cell with another control character (left as it is,
    for the control-character check).
    """
    if _CONTROL.search(cell):
        return None
    text = cell.strip()
    if text.startswith("System.") or text.startswith("Microsoft."):
        return DOTNET_TYPE
    oids: list[str] = []
    for token in _LIST_SPLIT.split(text):
        if not token:
            continue
        named = _NAMED_OID.match(token)
        if _OID.match(token):
            oid = token
        elif named:
            oid = named.group(2)
        else:
            found = EKU_OIDS.get(_squash(token))
            if found is None:
                return BAD_EKU
            oid = found
        if oid not in oids:
            oids.append(oid)
    return ", ".join(oids)


def map_distinct(s: pd.Series, rule: Callable[[str], str | None], fallback: str) -> pd.Series:
    """Apply ``rule`` once per distinct value of ``s``; None results become ``fallback``."""
    codes, uniques = pd.factorize(s)
    mapped = [rule(u) for u in uniques]
    table = np.array([fallback if m is None else m for m in mapped], dtype=object)
    return pd.Series(table[codes], index=s.index, dtype=s.dtype)


def apply_where(s: pd.Series, clean: pd.Series, rule: Callable[[str], str | None]) -> pd.Series:
    """``s`` with every cell where ``clean`` is False replaced by ``rule(cell)`` (or kept)."""
    todo = ~clean.to_numpy(dtype=bool)
    if not todo.any():
        return s
    s = s.copy()
    subset = s[todo]
    s[todo] = map_distinct(subset, rule, "\x00").where(
        lambda v: v != "\x00", subset
    )  # a cell the rule cannot read stays as written, and fails its check
    return s


# ---- dates in a local format ------------------------------------------------------------------

_LOCAL_DATE = (
    r"^(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})"
    r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*([AaPp])?\.?[Mm]?\.?)?$"
)


def parse_local_dates(
    cells: pd.Series, *, dayfirst: bool | None, date_format: str | None
) -> tuple[pd.Series, np.ndarray]:
    """Parse dates that are not ISO 8601: ``(datetimes, order_unknown)``.

    With ``date_format`` the cells are read with it (strptime codes; ``%z`` gives aware values,
    converted to UTC). Otherwise ``d.m.Y``, ``m/d/Y``, ``Y-m-d`` and the like, with an optional
    ``H:M[:S[.f]]`` and AM/PM, are read with day or month first as ``dayfirst`` says. When
    ``dayfirst`` is None nothing is read and ``order_unknown`` marks the cells that would be
    readable with an order. Unreadable cells are NaT.
    """
    unknown = np.zeros(len(cells), dtype=bool)
    if date_format:
        aware = "%z" in date_format
        parsed = pd.to_datetime(cells, format=date_format, errors="coerce", utc=aware)
        return parsed, unknown
    parts = cells.str.extract(_LOCAL_DATE)
    first, second, third = (pd.to_numeric(parts[i], errors="coerce") for i in (0, 1, 2))
    year_first = (parts[0].str.len() == 4).fillna(False).to_numpy(dtype=bool)
    year_last = (parts[2].str.len() == 4).fillna(False).to_numpy(dtype=bool) & ~year_first
    if dayfirst is None:
        unknown = year_last.copy()
        day, month = second, first  # unused for year-last cells: they are left NaT below
    elif dayfirst:
        day, month = first, second
    else:
        day, month = second, first
    year = np.where(year_first, first, third)
    month_ = np.where(year_first, second, month)
    day_ = np.where(year_first, third, day)
    hour = pd.to_numeric(parts[3], errors="coerce").fillna(0).to_numpy()
    minute = pd.to_numeric(parts[4], errors="coerce").fillna(0).to_numpy()
    second_ = pd.to_numeric(parts[5], errors="coerce").fillna(0).to_numpy()
    fraction = parts[6].fillna("").str.ljust(9, "0").str[:9]
    nanos = pd.to_numeric(fraction.where(fraction != "000000000", "0"), errors="coerce")
    meridiem = parts[7].fillna("").str.upper().to_numpy(dtype=object)
    has_meridiem = meridiem != ""
    bad = (has_meridiem & ((hour < 1) | (hour > 12))) | ~(year_first | year_last)
    bad |= (hour > 23) | (minute > 59) | (second_ > 59)
    if dayfirst is None:
        bad |= year_last | year_first  # without an order, only ISO 8601 is read
    hour = np.where(has_meridiem & (hour == 12), 0, hour)
    hour = np.where(meridiem == "P", hour + 12, hour)
    frame = pd.DataFrame(
        {
            "year": np.where(bad, 2000, year),
            "month": np.where(bad, 1, month_),
            "day": np.where(bad, 1, day_),
            "hour": hour,
            "minute": minute,
            "second": second_,
            "ns": nanos.fillna(0).to_numpy(),
        },
        index=cells.index,
    )
    frame = frame.fillna(-1).astype("int64")
    parsed = pd.to_datetime(frame, errors="coerce")
    return parsed.mask(pd.Series(bad, index=cells.index)), unknown
