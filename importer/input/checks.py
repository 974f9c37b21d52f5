"""The rules each column is checked by, and the pandera schema built from them once a file.

Also the constants and sentinels the normalisation of cells shares with the checks: a date cell
that could not be read becomes a sentinel, and the check reports the original cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pandera

from importer.input import rules
from importer.input.profiles import Profile
from importer.model import (
    DATE_PROPERTIES,
    EXTENDED_KEY_USAGES,
    INT32_MAX,
    INT32_MIN,
    KEY_USAGES,
    REQUIRED_CELLS,
    REVOKE_STATUS,
    REVOKE_STATUSES,
    SERIAL,
    THUMBPRINT,
)

# Invisible marks that Windows' certificate dialog copies along with a thumbprint.
_HEX_NOISE = r"[\s:\u200e\u200f\ufeff]"
ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?"
    r"(?:Z|z|[+-]\d{2}:?\d{2})?$"
)
CANONICAL_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
OFFSET = r"(?:Z|z|[+-]\d{2}:?\d{2})$"
_CONTROL = r"[\x00-\x1f\x7f]"
BAD_FORMAT = "\x00format"  # sentinels for date cells that could not be parsed;
BAD_ISO = "\x00iso"  # (shaped like ISO 8601 but not a date, such as 2025-02-30)
BAD_LOCAL = "\x00local"  # the reported value is always taken from the original cell
BAD_ORDER = "\x00order"
BAD_STATUS = "\x00status"
_SENTINELS = [BAD_STATUS, rules.BAD_EKU, rules.DOTNET_TYPE]
INTEGER = r"[+-]?\d{1,12}"


# A date normalised to UTC outside years 0001-9999 (a 5-digit or year-0 stamp): Graph refuses it.
OUT_OF_RANGE = r"^(?:0000-|\d{5,}-|-)"
UNSET_DATE = "0001-01-01T00:00:00Z"  # DateTimeOffset.MinValue: what Graph shows for "no date"


def _not_empty(s: pd.Series) -> pd.Series:
    return s != ""


def _empty_or(pattern: str):  # type: ignore[no-untyped-def]
    def check(s: pd.Series) -> pd.Series:
        return (s == "") | s.str.fullmatch(pattern)

    return check


def _int32(s: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(s.where(s.str.fullmatch(r"[+-]?\d{1,12}"), None), errors="coerce")
    in_range = (numbers >= INT32_MIN) & (numbers <= INT32_MAX)
    # a type name (--strict) has its own check
    return (s == "") | (s == rules.DOTNET_TYPE) | in_range.fillna(False).astype(bool)


def _no_control(s: pd.Series) -> pd.Series:
    return ~s.str.contains(_CONTROL, regex=True)


ISO_REASON = "is not an ISO 8601 date-time such as 2025-01-05T10:32:00Z"


@dataclass(frozen=True)
class DateOptions:
    """How dates without an ISO 8601 shape are read (see :func:`rules.parse_local_dates`)."""

    timezone: str = "UTC"
    date_format: str | None = None
    dayfirst: bool | None = None
    inferred_from: int = 0  # the line the order was inferred from (0: given, or none)

    def unreadable(self) -> str:
        """The reason given for a date cell that cannot be read."""
        if self.date_format:
            return f"is neither an ISO 8601 date-time nor in the format {self.date_format!r}"
        if self.dayfirst is None:
            return ISO_REASON
        if self.dayfirst:
            reason = (
                "is neither an ISO 8601 date-time nor a day-first date such as 05.01.2025 10:32"
            )
        else:
            reason = (
                "is neither an ISO 8601 date-time nor a month-first date such as 1/5/2025 10:32 AM"
            )
        if self.inferred_from:
            other = "--monthfirst" if self.dayfirst else "--dayfirst"
            reason += f" (the order was inferred from line {self.inferred_from}; pass {other}"
            reason += " if that is wrong)"
        return reason


def _status_error(profile: Profile | None) -> str:
    if profile is None or not profile.revoke_status:
        return f"is not a revoke status: use one of {', '.join(REVOKE_STATUSES)}"
    table = ", ".join(f"{k} -> {v}" for k, v in profile.revoke_status.items())
    return f"is not a status known to profile {profile.name} ({table})"


def _no_control_but_sentinels(s: pd.Series) -> pd.Series:
    return _no_control(s) | s.isin(_SENTINELS)


@dataclass(frozen=True)
class Check:
    """One rule for the normalised cells of one column: ``passes`` is True where they keep it."""

    reason: str
    passes: Callable[[pd.Series], pd.Series]


def build_checks(
    columns: list[str],
    timezone: str,
    *,
    dates: DateOptions | None = None,
    profile: Profile | None = None,
) -> dict[str, list[Check]]:
    """The checks of each of ``columns`` (normalised records), in the order they are reported."""
    dates = dates or DateOptions(timezone)
    checks: dict[str, list[Check]] = {c: [] for c in columns}

    def add(col: str, check: Check) -> None:
        if col in checks:
            checks[col].append(check)

    for col in REQUIRED_CELLS:
        add(col, Check("is required and empty", _not_empty))
    add(
        THUMBPRINT,
        Check(
            "is not a SHA-1 thumbprint: 40 hex digits after removing spaces and colons",
            _empty_or(r"[0-9A-F]{40}"),
        ),
    )
    add(
        SERIAL,
        Check(
            "is not a serial number: 1 to 40 hex digits after removing spaces and colons",
            _empty_or(r"[0-9A-F]{1,40}"),
        ),
    )
    add(REVOKE_STATUS, Check(_status_error(profile), lambda s: (s == "") | s.isin(REVOKE_STATUSES)))
    add(
        KEY_USAGES,
        Check("is not an integer in Int32 range (-2147483648..2147483647)", _int32),
    )
    add(
        EXTENDED_KEY_USAGES,
        Check(
            "is not a list of EKU OIDs or known EKU names such as Client Authentication",
            lambda s: s != rules.BAD_EKU,
        ),
    )
    add(
        EXTENDED_KEY_USAGES,
        Check(
            "is a .NET type name, not a list of EKUs: in PowerShell export "
            "EnhancedKeyUsageList with -join ', '",
            lambda s: s != rules.DOTNET_TYPE,
        ),
    )
    for col in DATE_PROPERTIES:
        for check in _date_checks(timezone, dates):
            add(col, check)
    for col in columns:
        if col not in DATE_PROPERTIES:  # sentinels (a status, a type name) have their own check
            checks[col].append(Check("contains a control character", _no_control_but_sentinels))
    return checks


def _date_checks(timezone: str, dates: DateOptions) -> list[Check]:
    """The checks of a date column, on cells already parsed and rewritten in UTC."""
    unreadable = dates.unreadable()
    if unreadable == ISO_REASON:  # only ISO 8601 is read: one reason for both sentinels
        readable = [Check(ISO_REASON, lambda s: ~s.isin([BAD_FORMAT, BAD_ISO]))]
    else:
        readable = [
            Check(ISO_REASON, lambda s: s != BAD_ISO),
            Check(unreadable, lambda s: s != BAD_FORMAT),
        ]
    return [
        *readable,
        Check(
            "is not ISO 8601 and its day and month order is unknown: pass --dayfirst "
            "or --monthfirst, or --date-format",
            lambda s: s != BAD_ORDER,
        ),
        Check(
            f"does not exist or is ambiguous as a local time in {timezone} "
            "(clock change); give the offset explicitly",
            lambda s: s != BAD_LOCAL,
        ),
        Check(
            "falls outside Graph's range once in UTC (years 0001 to 9999)",
            lambda s: ~s.str.match(OUT_OF_RANGE, na=False),
        ),
        Check(
            f"is {UNSET_DATE[:10]}, Graph's value for no date, not a real one",
            lambda s: s != UNSET_DATE,
        ),
    ]


def strip_hex(s: pd.Series) -> pd.Series:
    messy = ~s.str.fullmatch(r"[0-9A-Fa-f]*")
    if messy.any():  # most files are clean: strip only the cells that need it
        s = s.copy()
        s[messy] = s[messy].str.replace(_HEX_NOISE, "", regex=True)
    return s.str.upper()


def format_utc(values: pd.Series, fractions: np.ndarray | None = None) -> np.ndarray:
    """ISO 8601 in UTC with a ``Z``: whole seconds, else up to 7 fractional digits.

    ``fractions`` (the digits after the point, as written) carries precision the parsed values
    may lack: offsets are whole minutes, so the fraction is the same in UTC.
    """
    naive = values.dt.tz_localize(None).to_numpy()
    whole = np.char.add(np.datetime_as_string(naive, unit="s"), "Z").astype(object)
    if fractions is not None:
        digits = [f[:7].rstrip("0") for f in fractions]
        return np.array(
            [f"{w[:-1]}.{d}Z" if d else w for w, d in zip(whole, digits, strict=True)],
            dtype=object,
        )
    unit: Any = np.datetime_data(naive.dtype)[0]
    fractional = naive != naive.astype("datetime64[s]")
    if fractional.any():
        full = np.datetime_as_string(naive[fractional], unit=unit)
        whole[fractional] = [f"{t[:19]}.{t[20:27].rstrip('0')}Z" for t in full]
    return whole


ORDER_COLUMN = "_issued_after_expiry"
ORDER_REASON = "issuance date is after the expiration date"


def build_schema(checks: Mapping[str, list[Check]]) -> pandera.DataFrameSchema:
    """The pandera schema of normalised records: each column's checks, and the date order."""
    return pandera.DataFrameSchema(
        {
            col: pandera.Column(
                str,
                [pandera.Check(check.passes, error=check.reason) for check in rules_],
                nullable=False,
            )
            for col, rules_ in checks.items()
        },
        checks=[pandera.Check(lambda df: ~df[ORDER_COLUMN], error=ORDER_REASON, name="order")],
        strict=False,
        coerce=False,
    )
