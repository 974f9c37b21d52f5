"""How a run read its input: recorded in ``summary.json``, replayed by ``certimport retry``.

``failed.csv`` keeps the input's own header and cells, so its rows are read again with the same
profile, ``[columns]`` mapping, date order or format, time zone and config file as the run
used. Encoding and delimiter are recorded to say what the original file was, and not replayed:
certimport writes ``failed.csv`` as UTF-8 with commas whatever the input was. The same record
gives the flags printed in the next steps (``certimport run failed.csv --profile adcs ...``).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from importer.config import Settings
from importer.errors import ConfigError, UsageError
from importer.input.profiles import BUILTIN_DIR, ColumnSetting, Profile, parse_columns
from importer.input.source import file_sha256


def _columns_table(columns: tuple[ColumnSetting, ...]) -> dict[str, Any]:
    """``[columns]`` settings as the TOML table they were read from."""
    table: dict[str, Any] = {}
    for setting in columns:
        if setting.constant is not None:
            table[setting.prop] = {"value": setting.constant}
        else:
            table[setting.prop] = list(setting.headers)
    return table


@dataclass(frozen=True)
class Reading:
    """How one run read its input file."""

    profile: str = "auto"  # the profile used: a built-in name, or "" when read from a file
    profile_file: str = ""  # absolute path of a profile file (the operator's own)
    profile_sha256: str = ""
    profile_auto: bool = True  # chosen from the header (--profile auto), not given
    config_file: str = ""  # absolute path of the settings file, if one was read
    config_sha256: str = ""
    columns: dict[str, Any] = field(default_factory=dict)  # the [columns] mapping
    timezone: str = "UTC"
    dayfirst: bool | None = None
    date_format: str = ""
    encoding: str = ""  # of the original file (failed.csv is always UTF-8)
    delimiter: str = ""  # of the original file (failed.csv always uses commas)
    state_dir: str = ""  # directory of the journal the run used
    target: str = ""  # the collection the run sent to
    emulator: bool = False  # the run went to the built-in emulator

    @classmethod
    def of_run(
        cls,
        settings: Settings,
        profile: Profile,
        *,
        encoding: str,
        delimiter: str,
        config: Path | None,
        journal: Path | None,
        emulator: bool,
    ) -> Reading:
        """The record of a run that read its input with ``settings`` and ``profile``."""
        builtin = profile.source.startswith(str(BUILTIN_DIR))
        profile_file = "" if builtin else str(Path(profile.source).resolve())
        config_path = str(config.resolve()) if config is not None and config.is_file() else ""
        return cls(
            profile=profile.name if builtin else "",
            profile_file=profile_file,
            profile_sha256=file_sha256(profile_file) if profile_file else "",
            profile_auto=settings.profile == "auto",
            config_file=config_path,
            config_sha256=file_sha256(config_path) if config_path else "",
            columns=_columns_table(settings.columns),
            timezone=settings.timezone,
            dayfirst=settings.dayfirst,
            date_format=settings.date_format,
            encoding=encoding,
            delimiter=delimiter,
            state_dir=str(journal.parent.resolve()) if journal is not None else "",
            target=settings.collection_url,
            emulator=emulator,
        )

    @classmethod
    def from_dict(cls, data: Any, origin: str) -> Reading:
        """Read the record back from ``summary.json``; raises :class:`UsageError` if malformed."""
        if not isinstance(data, dict):
            raise UsageError(f"{origin}: 'reading' is not an object; the file was edited?")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue  # written by a newer certimport: not needed to read the file again
            default = getattr(cls(), name)
            ok = (
                value is None or isinstance(value, bool)
                if name == "dayfirst"
                else isinstance(value, type(default))
            )
            if not ok:
                raise UsageError(f"{origin}: reading.{name} has the wrong type: {value!r}")
            values[name] = value
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form kept in ``summary.json``."""
        return asdict(self)

    def column_settings(self, origin: str) -> tuple[ColumnSetting, ...]:
        """The recorded ``[columns]`` mapping as settings."""
        problems: list[str] = []
        settings = parse_columns(self.columns, origin, problems)
        if problems:
            raise ConfigError(problems)
        return tuple(settings)

    def profile_spec(self) -> str:
        """What ``--profile`` reproduces the profile: a built-in name or the file."""
        return self.profile_file or self.profile or "auto"

    def check_files(self, *, profile: bool = True, config: bool = True) -> list[str]:
        """Warnings about the recorded files that will be read again (changed since the run);
        raises :class:`UsageError` when one is gone."""
        warnings = []
        for what, path, digest in (
            ("profile", self.profile_file if profile else "", self.profile_sha256),
            ("config file", self.config_file if config else "", self.config_sha256),
        ):
            if not path:
                continue
            if not os.path.isfile(path):
                flag = "--profile" if what == "profile" else "--config"
                raise UsageError(
                    f"the run read its input with the {what} {path}, which is gone; "
                    f"pass {flag} to say what to read failed.csv with"
                )
            if digest and file_sha256(path) != digest:
                warnings.append(f"the {what} {path} has changed since the run; reading with it")
        return warnings

    def flags(self) -> list[str]:
        """The command-line flags that read a file as this run did (for printed advice)."""
        out: list[str] = []
        if not self.profile_auto:  # auto finds the same profile again
            out += ["--profile", self.profile_spec()]
        if self.config_file:
            out += ["--config", self.config_file]
        if self.date_format:
            out += ["--date-format", self.date_format]
        elif self.dayfirst is not None:
            out.append("--dayfirst" if self.dayfirst else "--monthfirst")
        if self.timezone != "UTC":
            out += ["--timezone", self.timezone]
        return out

    def command_tail(self) -> str:
        """:meth:`flags` quoted for a shell, with a leading space (or nothing)."""
        flags = self.flags()
        return (" " + shlex.join(flags)) if flags else ""


__all__ = ["Reading"]
