"""Settings, loaded once: TOML file, then ``CERTIMPORT_*`` environment variables, then flags.

Every problem is gathered and reported together as one :class:`ConfigError`. The Graph root is
checked so that a token is never sent to an arbitrary host: https only to a known Graph cloud
(unless ``allow_custom_host``, or ``cloud = "custom"``, which names its own), https or plain
http to a loopback address. The sign-in authority is the cloud's, or ``authority_host``
(``AZURE_AUTHORITY_HOST`` when certimport's own setting is not given): https only, as
azure-identity requires, host and port only.
"""

from __future__ import annotations

import codecs
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from importer.errors import ConfigError
from importer.input.dialect import parse_delimiter
from importer.input.profiles import ColumnSetting, parse_columns, profile_files
from importer.model import COLLECTION_PATH
from importer.send.pacing import RateLimit

DEFAULT_CONFIG_PATH = Path("config/certimport.toml")

CLOUDS: dict[str, tuple[str, str]] = {
    # name: (Graph root, sign-in authority host)
    "global": ("https://graph.microsoft.com", "login.microsoftonline.com"),
    "usgov": ("https://graph.microsoft.us", "login.microsoftonline.us"),
    "dod": ("https://dod-graph.microsoft.us", "login.microsoftonline.us"),
    "china": ("https://microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
}
CUSTOM_CLOUD = "custom"  # Graph root, authority host and scope all given in the settings
CLOUD_NAMES = (*CLOUDS, CUSTOM_CLOUD)
GRAPH_HOSTS = frozenset(urlsplit(root).hostname for root, _ in CLOUDS.values())
AUTH_METHODS = (
    "default",
    "client_secret",
    "certificate",
    "managed_identity",
    "workload_identity",
    "azure_cli",
    "static",
)


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('[secure]')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Settings:
    """Every setting of a run. Built by :func:`load_settings`; immutable afterwards."""

    cloud: str = "global"  # a name of CLOUDS, or "custom"
    base_url: str = ""  # derived from cloud unless set; always ends with /beta
    tenant_id: str = ""
    allow_custom_host: bool = False
    token_scope: str = ""  # [graph] scope: only with cloud "custom"; else the Graph root's
    authority_host: str = ""  # https://host[:port]; "" = the cloud's sign-in authority
    auth_method: str = "default"
    client_id: str = ""
    certificate_path: str = ""
    access_token: Secret | None = field(default=None, repr=False)
    concurrency: int = 4
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 20.0))
    read_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(1000, 20.0))
    batch: int = 1
    max_attempts: int = 8
    retry_deadline: float = 600.0
    max_retry_after: float = 300.0  # a longer Retry-After ends that row's retries
    breaker_requests: int = 50  # consecutive target failures (no answer, 5xx) that stop a run
    breaker_seconds: float = 300.0  # ... or this long with nothing but target failures
    request_timeout: float = 60.0
    chunk_size: int = 50_000
    timezone: str = "UTC"
    profile: str = "auto"  # auto | graph | adcs | powershell | a profile .toml
    encoding: str = "auto"  # auto, or a codec name such as cp1252
    delimiter: str = ""  # "" = detected from the header
    date_format: str = ""  # strptime codes for dates that are not ISO 8601
    dayfirst: bool | None = None  # True day-first, False month-first, None: ISO 8601 only
    columns: tuple[ColumnSetting, ...] = ()  # [columns]: property -> header(s) or constant
    out_dir: str = ""
    state_dir: str = ""  # journal directory; default ~/.local/state/certimport
    update: bool = False  # PATCH rows whose body changed since they were created
    resend_rejected: bool = False  # send rows Graph refused again, even with the same body
    adopt: bool = True  # a journal new to its target first reads what Graph holds
    reconcile: str = "lookup"  # lookup | repost: what to do when a lookup is not possible
    reconcile_delay: float = 2.0  # seconds before looking up a row whose answer was lost
    shrink_guard: float = 0.5  # refuse an input smaller than this share of the last run

    @property
    def graph_root(self) -> str:
        """``scheme://host[:port]`` of the Graph service (no version path)."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def scope(self) -> str:
        """The app-only scope: ``[graph] scope`` of a custom cloud, else the Graph root's, e.g.
        ``https://graph.microsoft.com/.default``."""
        return self.token_scope or f"{self.graph_root}/.default"

    @property
    def authority(self) -> str:
        """The sign-in authority every credential that takes one is given, as an https URL:
        ``authority_host``, else the configured cloud's (``https://login.microsoftonline.com``)."""
        if self.authority_host:
            return self.authority_host
        return "https://" + CLOUDS.get(self.cloud, CLOUDS["global"])[1]

    @property
    def collection_url(self) -> str:
        """Absolute URL of the certificate-state collection."""
        return self.base_url + COLLECTION_PATH


# (section in TOML, key, type); the environment name is CERTIMPORT_<KEY upper-cased>.
_KEYS: dict[str, tuple[str, type]] = {
    "cloud": ("graph", str),
    "base_url": ("graph", str),
    "tenant_id": ("graph", str),
    "allow_custom_host": ("graph", bool),
    "token_scope": ("graph", str),
    "authority_host": ("auth", str),
    "auth_method": ("auth", str),
    "client_id": ("auth", str),
    "certificate_path": ("auth", str),
    "access_token": ("auth", str),
    "concurrency": ("run", int),
    "rate_limit": ("run", str),
    "read_rate_limit": ("run", str),
    "batch": ("run", int),
    "max_attempts": ("run", int),
    "retry_deadline": ("run", float),
    "max_retry_after": ("run", float),
    "breaker_requests": ("run", int),
    "breaker_seconds": ("run", float),
    "request_timeout": ("run", float),
    "chunk_size": ("run", int),
    "out_dir": ("run", str),
    "state_dir": ("journal", str),
    "update": ("journal", bool),
    "resend_rejected": ("journal", bool),
    "adopt": ("journal", bool),
    "reconcile": ("journal", str),
    "reconcile_delay": ("journal", float),
    "shrink_guard": ("journal", float),
    "timezone": ("input", str),
    "profile": ("input", str),
    "encoding": ("input", str),
    "delimiter": ("input", str),
    "date_format": ("input", str),
    "dayfirst": ("input", bool),
}
# The TOML key where it differs from the setting's name.
_TOML_NAMES = {"auth_method": "method", "token_scope": "scope"}
# Keys refused in a config file, in any section, and the environment variable to use instead:
# a file is copied, committed and backed up, so secrets come from the environment only.
_SECRET_KEYS = {
    "access_token": "CERTIMPORT_ACCESS_TOKEN",
    "client_secret": "AZURE_CLIENT_SECRET",
    "certificate_password": "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "client_certificate_password": "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "password": "AZURE_CLIENT_CERTIFICATE_PASSWORD",
}
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def env_name(key: str) -> str:
    """The environment variable that sets ``key``."""
    return f"CERTIMPORT_{key.upper()}"


def _coerce(key: str, kind: type, value: Any, origin: str, problems: list[str]) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        problems.append(f"{origin}: {key} must be true or false, got {value!r}")
        return None
    if kind is int:
        return _coerce_int(key, value, origin, problems)
    if kind is float:
        return _coerce_float(key, value, origin, problems)
    if not isinstance(value, str):
        problems.append(f"{origin}: {key} must be a string, got {value!r}")
        return None
    return value.strip()


def _coerce_int(key: str, value: Any, origin: str, problems: list[str]) -> int | None:
    """An int, a whole finite float (TOML ``8.0``) or a string of digits; nothing rounded."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    problems.append(f"{origin}: {key} must be a whole number, got {value!r}")
    return None


def _coerce_float(key: str, value: Any, origin: str, problems: list[str]) -> float | None:
    """A finite number: inf and nan would slip through every range check."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"{origin}: {key} must be a number, got {value!r}")
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append(f"{origin}: {key} must be a number, got {value!r}")
        return None
    if not math.isfinite(number):
        problems.append(f"{origin}: {key} must be a finite number, got {value!r}")
        return None
    return number


def _secret_problem(path: Path, where: str, name: str) -> str | None:
    """The problem for a secret written in the file (never its value), or None."""
    variable = _SECRET_KEYS.get(name.lower())
    if variable is None:
        return None
    return (
        f"{path}: {where}{name} is a secret and is not read from a config file; "
        f"remove it and set the environment variable {variable} instead"
    )


def _from_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        problems.append(f"{path}: config file not found")
        return {}
    except OSError as exc:
        problems.append(f"{path}: cannot read config file: {exc.strerror}")
        return {}
    except UnicodeDecodeError as exc:  # tomllib decodes the whole file as UTF-8 first
        problems.append(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return {}
    toml_to_key = {
        (section, _TOML_NAMES.get(k, k)): k
        for k, (section, _) in _KEYS.items()
        if k not in _SECRET_KEYS
    }
    values: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            secret = _secret_problem(path, "", section)
            problems.append(secret or f"{path}: top-level key {section!r} must be a [section]")
            continue
        secrets = [_secret_problem(path, f"[{section}] ", name) for name in table]
        problems.extend(p for p in secrets if p is not None)
        table = {name: v for name, v in table.items() if name.lower() not in _SECRET_KEYS}
        if section == "columns":  # property = "Header" | ["A", "B"] | { value = "constant" }
            values["columns"] = tuple(parse_columns(table, str(path), problems))
            continue
        for name, value in table.items():
            key = toml_to_key.get((section, name))
            if key is None:
                known = sorted(n for s, n in toml_to_key if s == section)
                hint = f"; known keys in [{section}]: {', '.join(known)}" if known else ""
                problems.append(f"{path}: unknown setting [{section}] {name}{hint}")
                continue
            coerced = _coerce(f"[{section}] {name}", _KEYS[key][1], value, str(path), problems)
            if coerced is not None:
                values[key] = coerced
    return values


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_cloud(values: dict[str, Any], problems: list[str]) -> None:
    """The cloud, its Graph root (``base_url``), sign-in authority and token scope."""
    cloud = values.get("cloud", "global")
    custom = cloud == CUSTOM_CLOUD
    if cloud not in CLOUD_NAMES:
        problems.append(f"cloud must be one of {', '.join(CLOUD_NAMES)}, got {cloud!r}")
        cloud = "global"
    if custom and not values.get("base_url"):
        problems.append(
            'cloud "custom" needs base_url: its Graph root with the API version, '
            "e.g. https://graph.contoso.example/beta"
        )
        values["base_url"] = ""
    else:
        base_url = values.get("base_url") or f"{CLOUDS.get(cloud, CLOUDS['global'])[0]}/beta"
        values["base_url"] = base_url.rstrip("/")
        _check_base_url(
            values["base_url"], custom or bool(values.get("allow_custom_host")), problems
        )
    _check_authority(values, custom, problems)
    scope = values.get("token_scope", "")
    if scope and not custom:
        problems.append(
            f'[graph] scope ({env_name("token_scope")}) is set only with cloud = "custom": '
            f"the {cloud} cloud's scope is its Graph root's /.default"
        )
    elif scope and (not scope.endswith("/.default") or any(c.isspace() for c in scope)):
        problems.append(
            f"[graph] scope must be one app-only scope ending in /.default, "
            f"e.g. https://graph.contoso.example/.default, got {scope!r}"
        )


def _check_base_url(base_url: str, custom_host: bool, problems: list[str]) -> None:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        problems.append(f"base_url must be an http(s) URL, got {base_url!r}")
    elif not parts.path.endswith("/beta"):
        problems.append(f"base_url must end with /beta (the API version), got {base_url!r}")
    elif parts.scheme == "http" and not _is_loopback(host):
        problems.append(
            f"base_url {base_url!r}: plain http is allowed only for loopback hosts "
            "(127.0.0.1, ::1, localhost); tokens are never sent unencrypted"
        )
    elif (
        parts.scheme == "https"
        and host not in GRAPH_HOSTS
        and not _is_loopback(host)
        and not custom_host
    ):
        problems.append(
            f"base_url host {host!r} is not a Microsoft Graph host; set allow_custom_host = true "
            f'(or {env_name("allow_custom_host")}=1), or cloud = "custom", if you really mean '
            "to send tokens there"
        )


def _check_authority(values: dict[str, Any], custom: bool, problems: list[str]) -> None:
    """``authority_host``: normalised to ``https://host[:port]``, or a problem naming it."""
    origin = values.pop("_authority_origin", "[auth] authority_host")
    raw = values.get("authority_host", "")
    if not raw:
        if custom:
            problems.append(
                'cloud "custom" needs authority_host ([auth] authority_host, '
                f"{env_name('authority_host')} or AZURE_AUTHORITY_HOST): its sign-in "
                "authority, e.g. https://login.contoso.example"
            )
        return
    text = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        problems.append(f"{origin} {raw!r}: the port is not a number")
        return
    if parts.scheme != "https":
        problems.append(
            f"{origin} {raw!r}: the sign-in authority must be https (azure-identity sends "
            "credentials only over TLS); for a local test authority serve TLS on loopback and "
            "trust its CA with SSL_CERT_FILE"
        )
    elif not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        problems.append(f"{origin} {raw!r}: give it as https://host[:port]")
    elif parts.path.strip("/"):
        problems.append(
            f"{origin} {raw!r}: give the host only, without a path: the credential adds "
            '/<tenant_id>/oauth2/v2.0/token itself (tenant_id = "adfs" for ADFS)'
        )
    else:
        values["authority_host"] = f"https://{parts.netloc}"


def _check(values: dict[str, Any], problems: list[str]) -> None:
    _check_cloud(values, problems)
    method = values.get("auth_method", "default")
    if method not in AUTH_METHODS:
        problems.append(f"auth method must be one of {', '.join(AUTH_METHODS)}, got {method!r}")
    if method == "static" and not values.get("access_token"):
        problems.append(f"auth method 'static' needs a token in {env_name('access_token')}")
    for key, low, high in (
        ("concurrency", 1, 1024),
        ("max_attempts", 1, 1000),
        ("batch", 1, 20),
        ("chunk_size", 100, 10_000_000),
        ("breaker_requests", 1, 1_000_000),
    ):
        if key in values and not low <= values[key] <= high:
            problems.append(f"{key} must be between {low} and {high}, got {values[key]}")
    for key in ("rate_limit", "read_rate_limit"):
        if isinstance(values.get(key), str):
            try:
                values[key] = RateLimit.parse(values[key])
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    if values.get("reconcile", "lookup") not in ("lookup", "repost"):
        problems.append(f"reconcile must be lookup or repost, got {values['reconcile']!r}")
    if not 0 <= values.get("shrink_guard", 0.5) <= 1:
        problems.append(f"shrink_guard must be between 0 and 1, got {values['shrink_guard']}")
    if values.get("reconcile_delay", 0) < 0:
        problems.append("reconcile_delay must not be negative")
    for key in ("retry_deadline", "request_timeout", "max_retry_after", "breaker_seconds"):
        if key in values and not values[key] > 0:
            problems.append(f"{key} must be a positive number of seconds, got {values[key]}")
    _check_input(values, problems)
    tz = values.get("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"timezone must be an IANA time zone name such as UTC or Europe/Berlin, got {tz!r}"
        )


def _check_input(values: dict[str, Any], problems: list[str]) -> None:
    """The [input] settings: profile, delimiter, encoding; date_format wins over dayfirst."""
    if values.get("delimiter"):
        try:
            values["delimiter"] = parse_delimiter(values["delimiter"])
        except ValueError as exc:
            problems.append(str(exc))
    profile = values.get("profile") or "auto"
    known = profile_files()
    if profile != "auto" and not profile.endswith(".toml") and profile not in known:
        names = ", ".join(["auto", *sorted(known)])
        problems.append(f"profile must be one of {names} or a .toml file, got {profile!r}")
    encoding = values.get("encoding") or "auto"
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            problems.append(
                f"encoding must be auto or a codec name such as cp1252, got {encoding!r}"
            )
    if values.get("date_format"):
        values["dayfirst"] = None  # a format already says where the day is


def config_file(
    config_path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The settings file a command reads: ``config_path``, else ``$CERTIMPORT_CONFIG``, else
    ``config/certimport.toml`` when it exists; None when there is none."""
    env = os.environ if environ is None else environ
    if config_path is None and env.get("CERTIMPORT_CONFIG"):
        config_path = env["CERTIMPORT_CONFIG"]
    if config_path is not None:
        return Path(config_path)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the run's settings: TOML file, then environment, then ``overrides`` (flags).

    The file is ``config_path``, else ``$CERTIMPORT_CONFIG``, else ``config/certimport.toml``
    when it exists. Raises :class:`ConfigError` listing every problem found.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    values: dict[str, Any] = {}
    path = config_file(config_path, env)
    if path is not None:
        values.update(_from_toml(path, problems))
    for key, (_, kind) in _KEYS.items():
        name = env_name(key)
        if name in env and env[name] != "":
            coerced = _coerce(name, kind, env[name], "environment", problems)
            if coerced is not None:
                values[key] = coerced
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    if not values.get("authority_host") and env.get("AZURE_AUTHORITY_HOST", "").strip():
        # azure-identity's own variable, honoured when certimport's setting is not given
        values["authority_host"] = env["AZURE_AUTHORITY_HOST"].strip()
        values["_authority_origin"] = "AZURE_AUTHORITY_HOST"
    _check(values, problems)
    if problems:
        raise ConfigError(problems)
    token = values.pop("access_token", None)
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in values.items() if k in known})
    if token:
        settings = replace(settings, access_token=Secret(token))
    return settings


def tenant_of(settings: Settings) -> str:
    """The tenant a journal belongs to: the setting, else AZURE_TENANT_ID (as auth uses it)."""
    return settings.tenant_id or os.environ.get("AZURE_TENANT_ID", "")
