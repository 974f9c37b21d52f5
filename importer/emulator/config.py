"""How an emulator behaves (`EmulatorConfig` and its checks) and the constants of its collection.

Standard library only: the command line imports this module without aiohttp.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

ENTITY_TYPE: Final = "microsoft.graph.managedAllDeviceCertificateState"
COLLECTION: Final = "deviceConfigurationsAllManagedDeviceCertificateStates"
COLLECTION_PATH: Final = f"/deviceManagement/{COLLECTION}"
"""Path of the emulated collection, relative to the Graph version root (``/beta``)."""

# 503, 504: refused, nothing created; drop: connection dropped before any work; created_*: the
# object is created, then the answer is lost (created_drop), or is a 500, 502 or 504, or (as a
# $batch item) the whole $batch call is answered 504.
FAULT_KINDS: Final = frozenset(
    {
        "503",
        "504",
        "drop",
        "created_drop",
        "created_500",
        "created_502",
        "created_504",
        "created_batch_504",
    }
)
REVOKE_STATUSES: Final = frozenset({"none", "pending", "issued", "failed", "revoked"})
RETRY_AFTER_FORMS: Final = ("whole", "fractional", "absent")
"""How a 429 of the throttle says when to retry: ``Retry-After`` in whole seconds (what Graph
mostly sends), in fractional seconds (the throttling guide's ``2.128``), or no header at all
with Intune's error whose message is itself a JSON string."""
MAX_BATCH_REQUESTS: Final = 20
MAX_PAGE_SIZE: Final = 999
IDENTITY_API_VERSION: Final = "2019-08-01"
EMULATOR_CLIENT_ID: Final = "00000000-0000-0000-0000-00000000e1e1"


@dataclass
class EmulatorConfig:
    """Behaviour of a `GraphEmulator`; every field may be changed while it runs.

    Limits are per sliding window, as Intune counts them; a limit of 0 disables that throttle.
    Construction validates every field and raises one `ValueError` listing all problems
    (assigning to a field later is not checked: use ``POST /_config`` for checked changes).
    """

    write_limit: int = 100
    """POST/PATCH/DELETE requests (each ``$batch`` item counts) allowed per write window."""
    write_window: float = 20.0
    read_limit: int = 1000
    """Requests of any kind (GET, and writes too: Intune's "any" limit) allowed per window."""
    read_window: float = 20.0
    count_throttled: bool = True
    """Requests answered 429 still count in the window, so retrying early prolongs it."""
    retry_after: str = "whole"
    """How a throttled request is told when to retry: one of `RETRY_AFTER_FORMS`."""
    latency: float = 0.0
    """Seconds from taking up a Graph request to its answer, its processing included (once
    per ``$batch``)."""
    fault_rate: float = 0.0
    """Probability that a collection POST (standalone or batch item) gets a random fault."""
    faults: tuple[str, ...] = ("503", "504", "drop", "created_drop")
    seed: int | None = None
    """Seeds random faults, batch-response shuffling and record ids."""
    static_tokens: frozenset[str] = frozenset()
    token_lifetime: int = 3600
    """Seconds a token issued by ``/msi/token`` or ``/{tenant}/oauth2/v2.0/token`` is valid."""
    client_secrets: frozenset[str] = dataclasses.field(default=frozenset(), repr=False)
    """Client secrets the token endpoint accepts; empty: any non-empty secret."""
    identity_header: str = "emulator-identity-header"
    page_size: int = 100
    forbidden: bool = False
    """Answer every collection request with 403 ``Authorization_RequestDenied``."""
    filter_supported: bool = True
    """False: ``$filter`` on the collection answers 400, as a target without that support."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        # A bare string is iterable too: catch it before it becomes a set of characters.
        if isinstance(self.faults, str):
            problems.append(f"faults must be a list of fault kinds, got {self.faults!r}")
        else:
            self.faults = tuple(self.faults)
        if isinstance(self.static_tokens, str):
            problems.append(f"static_tokens must be a list of tokens, got {self.static_tokens!r}")
        else:
            self.static_tokens = frozenset(self.static_tokens)
        if isinstance(self.client_secrets, str):
            problems.append("client_secrets must be a list of secrets, not one string")
        else:
            self.client_secrets = frozenset(self.client_secrets)
        problems = problems or _config_problems(self)
        if problems:
            raise ValueError("invalid emulator config: " + "; ".join(problems))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _config_problems(config: EmulatorConfig) -> list[str]:
    problems: list[str] = []
    for name in ("write_limit", "read_limit", "token_lifetime"):
        value = getattr(config, name)
        if not _is_int(value) or value < 0:
            problems.append(f"{name} must be an integer >= 0, got {value!r}")
    for name in ("write_window", "read_window"):
        value = getattr(config, name)
        if not _is_number(value) or value <= 0:
            problems.append(f"{name} must be a number > 0, got {value!r}")
    if not _is_number(config.latency) or config.latency < 0:
        problems.append(f"latency must be a number >= 0, got {config.latency!r}")
    if not _is_number(config.fault_rate) or not 0 <= config.fault_rate <= 1:
        problems.append(f"fault_rate must be between 0 and 1, got {config.fault_rate!r}")
    unknown = [kind for kind in config.faults if kind not in FAULT_KINDS]
    if unknown or not config.faults:
        problems.append(f"faults must be a non-empty subset of {sorted(FAULT_KINDS)}")
    if config.retry_after not in RETRY_AFTER_FORMS:
        problems.append(
            f"retry_after must be one of {', '.join(RETRY_AFTER_FORMS)}, got {config.retry_after!r}"
        )
    if config.seed is not None and not _is_int(config.seed):
        problems.append(f"seed must be an integer or null, got {config.seed!r}")
    if not all(isinstance(token, str) and token for token in config.static_tokens):
        problems.append("static_tokens must be non-empty strings")
    if not all(isinstance(secret, str) and secret for secret in config.client_secrets):
        problems.append("client_secrets must be non-empty strings")
    if not isinstance(config.identity_header, str) or not config.identity_header:
        problems.append("identity_header must be a non-empty string")
    if not _is_int(config.page_size) or not 1 <= config.page_size <= MAX_PAGE_SIZE:
        problems.append(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    for name in ("count_throttled", "forbidden", "filter_supported"):
        if not isinstance(getattr(config, name), bool):
            problems.append(f"{name} must be a boolean")
    return problems


def _config_as_json(config: EmulatorConfig) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    data["faults"] = list(config.faults)
    data["static_tokens"] = sorted(config.static_tokens)
    data["client_secrets"] = ["[secure]"] * len(config.client_secrets)  # never shown
    return data


def _apply_changes(config: EmulatorConfig, changes: Mapping[str, Any]) -> None:
    """Change fields of `config` in place, all or nothing; raises `ValueError` when invalid."""
    names = {f.name for f in dataclasses.fields(EmulatorConfig)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(unknown)}")
    candidate = dataclasses.replace(config, **changes)
    for name in changes:
        setattr(config, name, getattr(candidate, name))


def _loopback_address(host: str) -> str:
    """Return the address to bind for `host`, refusing anything that is not loopback."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the emulator binds only to loopback "
            "(127.0.0.0/8, ::1 or localhost)"
        )
    return str(address)
