"""A local stand-in for Microsoft Graph's managed device certificate state collection.

`GraphEmulator` is an aiohttp server on loopback that behaves like the beta collection
``/beta/deviceManagement/deviceConfigurationsAllManagedDeviceCertificateStates``: bearer-token
auth, strict body validation, paging, ``$filter``, JSON batching, Intune-style sliding-window
throttling, scripted and random faults (including connections dropped before or after the
object was created) and an App Service style managed-identity token endpoint that the real
``azure.identity`` credential accepts. Operators rehearse migrations against it; tests and
benchmarks drive it over real HTTP.

It deliberately imports nothing from the rest of ``importer``: it must not share assumptions
with the client it is used to test.

Admin endpoints (no auth, loopback only) let another process drive it: ``GET /_stats``,
``GET /_records``, ``POST /_script``, ``POST /_reset``, ``POST /_config``,
``POST /_expire_tokens``.

Run one from a shell with ``python -m importer.emulator --port 8080 --static-token dev``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import math
import random
import re
import secrets
import socket
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import orjson
from aiohttp import web
from yarl import URL

__all__ = [
    "COLLECTION_PATH",
    "ENTITY_TYPE",
    "EmulatorConfig",
    "GraphEmulator",
    "main",
    "serve",
]

ENTITY_TYPE: Final = "microsoft.graph.managedAllDeviceCertificateState"
COLLECTION: Final = "deviceConfigurationsAllManagedDeviceCertificateStates"
COLLECTION_PATH: Final = f"/deviceManagement/{COLLECTION}"
"""Path of the emulated collection, relative to the Graph version root (``/beta``)."""

FAULT_KINDS: Final = frozenset({"503", "504", "drop", "created_drop"})
REVOKE_STATUSES: Final = frozenset({"none", "pending", "issued", "failed", "revoked"})
MAX_BATCH_REQUESTS: Final = 20
MAX_PAGE_SIZE: Final = 999
IDENTITY_API_VERSION: Final = "2019-08-01"
EMULATOR_CLIENT_ID: Final = "00000000-0000-0000-0000-00000000e1e1"

_ODATA_TYPE: Final = f"#{ENTITY_TYPE}"
_JSON_CONTENT_TYPE: Final = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
_DIAGNOSTIC: Final = (
    '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"0",'
    '"ScaleUnit":"000","RoleInstance":"graph-emulator"}}'
)
_STAT_KEYS: Final = (
    "requests",
    "gets",
    "posts",
    "patches",
    "deletes",
    "batches",
    "batch_items",
    "created",
    "updated",
    "deleted",
    "throttled",
    "faults",
    "unauthorized",
    "forbidden",
    "not_found",
    "bad_requests",
    "drops",
    "token_requests",
)
_STRING: Final = "string"
_DATETIME: Final = "datetime"
_ENUM: Final = "enum"
_INT32: Final = "int32"
_PROPERTY_KINDS: Final[dict[str, str]] = {
    "certificateRevokeStatus": _ENUM,
    "certificateRevokeStatusLastChangeDateTime": _DATETIME,
    "managedDeviceDisplayName": _STRING,
    "userPrincipalName": _STRING,
    "certificateExpirationDateTime": _DATETIME,
    "certificateIssuerName": _STRING,
    "certificateThumbprint": _STRING,
    "certificateSerialNumber": _STRING,
    "certificateSubjectName": _STRING,
    "certificateKeyUsages": _INT32,
    "certificateExtendedKeyUsages": _STRING,
    "certificateIssuanceDateTime": _DATETIME,
}
# Graph's metadata makes value types (enums, Int32) non-nullable; strings and dates may be null.
_NULLABLE_KINDS: Final = frozenset({_STRING, _DATETIME})
_FILTERABLE: Final = frozenset({"certificateThumbprint", "managedDeviceDisplayName"})
_SELECTABLE: Final = frozenset({"id", *_PROPERTY_KINDS})
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,7})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_FILTER_CLAUSE_RE: Final = re.compile(r"\s*([A-Za-z@.]+)\s+eq\s+'((?:[^']|'')*)'\s*")
_FILTER_AND_RE: Final = re.compile(r"and\b")
_QUERY_SAFE: Final = "',"

_ERROR_DEFAULTS: Final[dict[int, tuple[str, str]]] = {
    400: ("BadRequest", "The request is invalid."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("ResourceNotFound", "The requested resource does not exist."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: ("TooManyRequests", "Too many requests, retry after the indicated delay."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
    504: ("GatewayTimeout", "The gateway timed out waiting for the service."),
}
_WWW_AUTHENTICATE: Final = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)
_DEFAULT_RETRY_AFTER: Final[dict[int, str]] = {429: "1", 503: "1"}
_SCRIPT_KEYS: Final = frozenset(
    {"status", "retry_after", "code", "message", "action", "thumbprint", "times"}
)


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
    read_window: float = 20.0
    count_throttled: bool = True
    """Requests answered 429 still count in the window, so retrying early prolongs it."""
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
    if config.seed is not None and not _is_int(config.seed):
        problems.append(f"seed must be an integer or null, got {config.seed!r}")
    if not all(isinstance(token, str) and token for token in config.static_tokens):
        problems.append("static_tokens must be non-empty strings")
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
    return data


class _GraphError(Exception):
    """A Graph error answer, raised inside request processing and turned into a response."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(slots=True)
class _Result:
    """The answer to one request (standalone or batch item) before it is serialised."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None


@dataclass(slots=True)
class _Fault:
    status: int = 0
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    action: str | None = None


@dataclass(slots=True)
class _ScriptEntry:
    fault: _Fault
    thumbprint: str | None
    remaining: int


_RANDOM_FAULTS: Final[dict[str, _Fault]] = {
    "503": _Fault(503, message="Injected fault: service unavailable.", retry_after="1"),
    "504": _Fault(504, message="Injected fault: gateway timeout."),
    "drop": _Fault(action="drop"),
    "created_drop": _Fault(action="created_drop"),
}

_ABSENT: Final = object()


@dataclass(slots=True)
class _Op:
    """One Graph operation, parsed from a standalone request or from a batch item."""

    method: str
    kind: str | None
    record_id: str | None
    query: Mapping[str, str]
    body: Any
    body_problem: _GraphError | None
    problem: _GraphError | None
    root: str
    request_id: str
    client_request_id: str | None
    prefer: str


@dataclass(slots=True)
class _Prepared:
    op: _Op
    early: _Result | None = None
    drop: bool = False
    drop_after: bool = False


_KIND_STAT: Final[dict[str, str]] = {
    "list": "gets",
    "count": "gets",
    "get": "gets",
    "create": "posts",
    "patch": "patches",
    "delete": "deletes",
}
_WRITE_KINDS: Final = frozenset({"create", "patch", "delete"})
_NO_OPTIONS: Final[frozenset[str]] = frozenset()
_GET_OPTIONS: Final = frozenset({"$select"})
_LIST_OPTIONS: Final = frozenset({"$top", "$skiptoken", "$filter", "$select", "$count"})
_COUNT_OPTIONS: Final = frozenset({"$filter"})


class _SlidingWindow:
    """Timestamps of counted requests; O(1) amortised per admission."""

    __slots__ = ("stamps",)

    def __init__(self) -> None:
        self.stamps: deque[float] = deque()

    def admit(self, now: float, limit: int, window: float, count_rejected: bool) -> float | None:
        """Record a request; return None if admitted, else the seconds until there is room."""
        stamps = self.stamps
        horizon = now - window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if len(stamps) < limit:
            stamps.append(now)
            return None
        if count_rejected:
            stamps.append(now)
        # Room appears once all but limit-1 of the stamps have left the window.
        return stamps[len(stamps) - limit] + window - now


def _format_retry_after(delay: float) -> str:
    return f"{max(math.ceil(delay * 1000) / 1000, 0.001):.3f}"


class _Store:
    """Records in creation order, with a thumbprint index and cursor-stable paging."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self._seq_of: dict[str, int] = {}
        self._seqs: list[int] = []
        self._ids: list[str] = []
        self._next_seq = 1
        self._dead = 0
        self._by_thumbprint: dict[str, dict[str, None]] = {}

    def clear(self) -> None:
        self.records.clear()
        self._seq_of.clear()
        self._seqs.clear()
        self._ids.clear()
        self._dead = 0
        self._by_thumbprint.clear()

    def add(self, record_id: str, record: dict[str, Any]) -> None:
        seq = self._next_seq
        self._next_seq += 1
        self.records[record_id] = record
        self._seq_of[record_id] = seq
        self._seqs.append(seq)
        self._ids.append(record_id)
        self._index(record_id, record.get("certificateThumbprint"))

    def update(self, record_id: str, changes: Mapping[str, Any]) -> None:
        record = self.records[record_id]
        old = record.get("certificateThumbprint")
        record.update(changes)
        new = record.get("certificateThumbprint")
        if new != old:
            self._unindex(record_id, old)
            self._index(record_id, new)

    def delete(self, record_id: str) -> None:
        record = self.records.pop(record_id)
        self._unindex(record_id, record.get("certificateThumbprint"))
        del self._seq_of[record_id]
        self._dead += 1
        if self._dead > 1024 and self._dead * 2 > len(self._ids):
            alive = [
                (s, i) for s, i in zip(self._seqs, self._ids, strict=True) if i in self.records
            ]
            self._seqs = [s for s, _ in alive]
            self._ids = [i for _, i in alive]
            self._dead = 0

    def _index(self, record_id: str, thumbprint: Any) -> None:
        if not isinstance(thumbprint, str):
            return
        bucket = self._by_thumbprint.setdefault(thumbprint, {})
        seq_of = self._seq_of
        # Buckets stay in creation order so that paging by cursor works; only a PATCH that
        # moves an older record into a bucket can break the order.
        misplaced = bool(bucket) and seq_of[next(reversed(bucket))] > seq_of[record_id]
        bucket[record_id] = None
        if misplaced:
            self._by_thumbprint[thumbprint] = dict.fromkeys(sorted(bucket, key=seq_of.__getitem__))

    def _unindex(self, record_id: str, thumbprint: Any) -> None:
        if not isinstance(thumbprint, str):
            return
        bucket = self._by_thumbprint.get(thumbprint)
        if bucket is not None:
            bucket.pop(record_id, None)
            if not bucket:
                del self._by_thumbprint[thumbprint]

    def _candidates(
        self, conditions: Sequence[tuple[str, str]], after: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        thumbprint = next((v for p, v in conditions if p == "certificateThumbprint"), None)
        if thumbprint is not None:
            for record_id in self._by_thumbprint.get(thumbprint, ()):
                seq = self._seq_of[record_id]
                if seq > after:
                    yield seq, self.records[record_id]
            return
        seqs, ids, records = self._seqs, self._ids, self.records
        for position in range(bisect.bisect_right(seqs, after), len(seqs)):
            record = records.get(ids[position])
            if record is not None:
                yield seqs[position], record

    def _matching(
        self, conditions: Sequence[tuple[str, str]], after: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        for seq, record in self._candidates(conditions, after):
            if all(record.get(name) == value for name, value in conditions):
                yield seq, record

    def page(
        self, conditions: Sequence[tuple[str, str]], after: int, top: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Return up to `top` matching records after cursor `after`, and the next cursor."""
        found: list[dict[str, Any]] = []
        last = after
        for seq, record in self._matching(conditions, after):
            if len(found) == top:
                return found, last
            found.append(record)
            last = seq
        return found, None

    def count(self, conditions: Sequence[tuple[str, str]]) -> int:
        if not conditions:
            return len(self.records)
        return sum(1 for _ in self._matching(conditions, 0))


def _encode_skiptoken(seq: int) -> str:
    return base64.urlsafe_b64encode(f"emulator-cursor:{seq}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "emulator-cursor" and number.isdigit():
            return int(number)
    raise _GraphError(400, "BadRequest", f"The $skiptoken '{token}' is invalid.")


def _parse_filter(text: str) -> list[tuple[str, str]]:
    """Parse ``prop eq 'literal' [and prop eq 'literal' ...]`` on the supported properties."""
    conditions: list[tuple[str, str]] = []
    position = 0
    while True:
        match = _FILTER_CLAUSE_RE.match(text, position)
        if match is None:
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid filter clause: the emulator supports only \"<property> eq '<text>'\" "
                f"joined by 'and', got {text!r}.",
            )
        name = match.group(1)
        if name not in _FILTERABLE:
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid filter clause: filtering on property '{name}' is not supported "
                f"(supported: {', '.join(sorted(_FILTERABLE))}).",
            )
        conditions.append((name, match.group(2).replace("''", "'")))
        position = match.end()
        if position == len(text):
            return conditions
        joiner = _FILTER_AND_RE.match(text, position)
        if joiner is None:
            raise _GraphError(400, "BadRequest", f"Invalid filter clause: {text!r}.")
        position = joiner.end()


@functools.lru_cache(maxsize=4096)  # inventories repeat their dates; the check is pure
def _datetime_problem(name: str, value: str) -> str | None:
    if _DATETIME_RE.fullmatch(value) is None:
        return (
            f"Cannot convert the literal '{value}' of property '{name}' to the expected type "
            "'Edm.DateTimeOffset': use ISO 8601 with an offset (Z or ±hh:mm) and at most "
            "7 fractional digits."
        )
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        return f"The value '{value}' of property '{name}' is not a valid date and time: {exc}."
    return None


def _body_problems(body: Any) -> list[str]:
    """Every reason why `body` is not a valid create or update payload (empty when valid).

    Each message names the offending property. Property names are case-sensitive.
    """
    if not isinstance(body, dict):
        return ["The request body must be a JSON object."]
    problems: list[str] = []
    for name, value in body.items():
        kind = _PROPERTY_KINDS.get(name)
        if kind is None:
            if name == "@odata.type":
                if value != _ODATA_TYPE:
                    problems.append(
                        f"The property '@odata.type' must be '{_ODATA_TYPE}', got {value!r}."
                    )
            elif name == "id":
                problems.append("The property 'id' is read-only: the service assigns it.")
            else:
                problems.append(
                    f"The property '{name}' does not exist on type '{ENTITY_TYPE}'. Make sure "
                    "to only use property names that are defined by the type."
                )
            continue
        if value is None:
            if kind not in _NULLABLE_KINDS:
                problems.append(f"The property '{name}' cannot be null.")
            continue
        if kind == _STRING:
            if not isinstance(value, str):
                problems.append(f"The property '{name}' must be a string, got {value!r}.")
        elif kind == _DATETIME:
            if not isinstance(value, str):
                problems.append(f"The property '{name}' must be a date-time string.")
            else:
                problem = _datetime_problem(name, value)
                if problem is not None:
                    problems.append(problem)
        elif kind == _ENUM:
            if not isinstance(value, str) or value not in REVOKE_STATUSES:
                problems.append(
                    f"The value {value!r} of property '{name}' is not a valid "
                    "'microsoft.graph.certificateRevocationStatus' (none, pending, issued, "
                    "failed, revoked)."
                )
        elif not _is_int(value) or not _INT32_MIN <= value <= _INT32_MAX:
            problems.append(f"The value {value!r} of property '{name}' is not a valid Edm.Int32.")
    return problems


_GUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))  # version and variant bits
_GUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def _guid(rng: random.Random) -> str:
    """A version-4 GUID from ``rng``: ``str(uuid.UUID(int=..., version=4))``, at half the CPU
    (two of these per request were a tenth of the emulator's work)."""
    h = f"{rng.getrandbits(128) & _GUID_CLEAR | _GUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=256)
def _relative_url(url: str) -> URL:
    """A batch item's URL, parsed once per distinct text (every item of an import has one)."""
    return URL(url if url.startswith("/") else f"/{url}")


def _decode_json_body(raw: bytes, content_type: str | None) -> tuple[Any, _GraphError | None]:
    if not raw:
        return _ABSENT, None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != "application/json":
        return _ABSENT, _GraphError(
            415,
            "UnsupportedMediaType",
            f"Content-Type must be application/json, got {content_type or 'none'}.",
        )
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return _ABSENT, _GraphError(
            400, "BadRequest", f"Unable to read JSON request payload: {exc}."
        )


@functools.lru_cache(maxsize=1024)  # pure; an import sends every row to one path
def _route(method: str, path: str) -> tuple[str, str | None]:
    """Map a version-relative path to an operation kind and record id, or raise."""
    segments = path.strip("/").split("/")
    expected = ("devicemanagement", COLLECTION.lower())
    for position, name in enumerate(expected):
        if position >= len(segments) or segments[position].lower() != name:
            found = segments[min(position, len(segments) - 1)]
            raise _GraphError(
                400,
                "BadRequest",
                f"Resource not found for the segment '{found}'. The emulator serves only "
                f"{COLLECTION_PATH} and /$batch.",
            )
    record_id = None
    if len(segments) == 2:
        allowed = {"GET": "list", "POST": "create"}
    elif len(segments) == 3 and segments[2] == "$count":
        allowed = {"GET": "count"}
    elif len(segments) == 3:
        allowed = {"GET": "get", "PATCH": "patch", "DELETE": "delete"}
        record_id = segments[2]
    else:
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{segments[3]}'.")
    kind = allowed.get(method)
    if kind is None:
        raise _GraphError(
            405,
            "MethodNotAllowed",
            f"The HTTP method '{method}' is not allowed on this resource "
            f"(allowed: {', '.join(allowed)}).",
        )
    return kind, record_id


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


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse_script_entry(entry: Any) -> _ScriptEntry:
    if not isinstance(entry, dict):
        raise ValueError(f"a script entry must be an object, got {entry!r}")
    unknown = set(entry) - _SCRIPT_KEYS
    if unknown:
        raise ValueError(f"unknown script entry keys {sorted(unknown)} in {entry!r}")
    status = entry.get("status")
    action = entry.get("action")
    if (status is None) == (action is None):
        raise ValueError(f"a script entry needs exactly one of 'status' or 'action': {entry!r}")
    if action is not None and action not in ("drop", "created_drop"):
        raise ValueError(f"script action must be 'drop' or 'created_drop', got {action!r}")
    if status is not None and (not _is_int(status) or not 400 <= status <= 599):
        raise ValueError(f"script status must be an integer 400-599, got {status!r}")
    times = entry.get("times", 1)
    if not _is_int(times) or times < 1:
        raise ValueError(f"script 'times' must be a positive integer, got {times!r}")
    thumbprint = entry.get("thumbprint")
    if thumbprint is not None and not isinstance(thumbprint, str):
        raise ValueError(f"script 'thumbprint' must be a string, got {thumbprint!r}")
    for key in ("code", "message"):
        if key in entry and not isinstance(entry[key], str):
            raise ValueError(f"script '{key}' must be a string, got {entry[key]!r}")
    if "retry_after" in entry:
        value = entry["retry_after"]
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(f"script 'retry_after' must be a string or null, got {value!r}")
        retry_after = None if value is None else str(value)
    else:
        retry_after = _DEFAULT_RETRY_AFTER.get(status) if status is not None else None
    fault = _Fault(
        status=status or 0,
        code=entry.get("code"),
        message=entry.get("message"),
        retry_after=retry_after,
        action=action,
    )
    return _ScriptEntry(fault, thumbprint.lower() if thumbprint else None, times)


class GraphEmulator:
    """An in-process Microsoft Graph stand-in serving one certificate-state collection.

    Use it as an async context manager (``async with GraphEmulator(config) as emulator``) or
    call `start` and `close`. ``records`` (id -> object as GET returns it) and ``stats`` are
    live views for inspection: change records only through HTTP or `reset`.

    ``stats`` counts Graph HTTP requests (``requests``, a ``$batch`` counting once),
    operations received (``gets``, ``posts``, ``patches``, ``deletes``, batch items included),
    ``batches`` and ``batch_items``, effects (``created``, ``updated``, ``deleted``), answers
    by kind (``throttled`` = 429s, ``unauthorized`` = 401s, ``forbidden`` = 403s,
    ``not_found`` = 404s, ``bad_requests`` = 400s and 415s), ``faults`` injected (scripted or
    random), ``drops`` (connections closed without an answer) and ``token_requests``.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self._store = _Store()
        self.records: dict[str, dict[str, Any]] = self._store.records
        self.stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)
        self.port = 0
        self._url_host: str | None = None
        self._runner: web.AppRunner | None = None
        self._started = False
        self._tokens: dict[str, float] = {}
        self._script: list[_ScriptEntry] = []
        self._writes = _SlidingWindow()
        self._reads = _SlidingWindow()
        self._fault_rng = random.Random()
        self._batch_rng = random.Random()
        self._id_rng = random.Random()
        self._request_rng = random.Random()
        self._seed_rngs()
        self.app = web.Application()
        self.app.router.add_route("*", "/beta/{tail:.*}", self._handle_graph)
        self.app.router.add_get("/msi/token", self._handle_token)
        self.app.router.add_get("/_stats", self._handle_stats)
        self.app.router.add_get("/_records", self._handle_records)
        self.app.router.add_post("/_script", self._handle_script)
        self.app.router.add_post("/_reset", self._handle_reset)
        self.app.router.add_post("/_config", self._handle_config)
        self.app.router.add_post("/_expire_tokens", self._handle_expire_tokens)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0 picks a free port). Only loopback hosts are accepted."""
        address = _loopback_address(host)
        if self._started:
            raise RuntimeError("an emulator can be started only once")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._started = True
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner
        self.port = sock.getsockname()[1]
        self._url_host = f"[{address}]" if family == socket.AF_INET6 else address

    async def close(self) -> None:
        """Stop listening and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> GraphEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``, the stand-in for ``https://graph.microsoft.com``."""
        if self._url_host is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self._url_host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/beta``: the Graph version root to point a client at."""
        return f"{self.root_url}/beta"

    @property
    def identity_endpoint(self) -> str:
        """Value for ``IDENTITY_ENDPOINT`` so that azure-identity fetches tokens from here."""
        return f"{self.root_url}/msi/token"

    # -- control ---------------------------------------------------------------------------

    def issue_token(self, lifetime: int | None = None) -> str:
        """Mint a bearer token valid for `lifetime` seconds (default ``config.token_lifetime``)."""
        seconds = self.config.token_lifetime if lifetime is None else lifetime
        if len(self._tokens) > 1024:
            now = time.time()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        token = f"emu.{secrets.token_urlsafe(32)}"
        self._tokens[token] = time.time() + seconds
        return token

    def expire_tokens(self) -> None:
        """Revoke every issued token (static tokens stay valid): clients then get 401."""
        self._tokens.clear()

    def script(self, entries: list[dict[str, Any]]) -> None:
        """Queue scripted faults for upcoming collection POSTs (standalone or batch items).

        Entries: ``{"status": 429, "retry_after": "1.5"}``, ``{"status": 503}``,
        ``{"status": 400, "code": "BadRequest", "message": "..."}``, ``{"action": "drop"}``,
        ``{"action": "created_drop"}``; optional ``"thumbprint"`` (matched case-insensitively
        against the body's certificateThumbprint, and preferred over generic entries) and
        ``"times"`` (default 1). ``retry_after`` is sent verbatim; omitted, 429 and 503 send
        ``"1"``; ``null`` sends no Retry-After. Raises `ValueError` on a malformed entry, in
        which case nothing is queued.
        """
        parsed = [_parse_script_entry(entry) for entry in entries]
        self._script.extend(parsed)

    def reset(self) -> None:
        """Forget records, stats, scripted faults and throttle windows; re-seed the RNGs.

        Issued tokens stay valid (use `expire_tokens` to revoke them).
        """
        self._store.clear()
        for key in self.stats:
            self.stats[key] = 0
        self._script.clear()
        self._writes = _SlidingWindow()
        self._reads = _SlidingWindow()
        self._seed_rngs()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change config fields at runtime, all or nothing; raises `ValueError` when invalid."""
        names = {f.name for f in dataclasses.fields(EmulatorConfig)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        candidate = dataclasses.replace(self.config, **changes)
        for name in changes:
            setattr(self.config, name, getattr(candidate, name))
        if "seed" in changes:
            self._seed_rngs()

    def _seed_rngs(self) -> None:
        seed = self.config.seed
        self._fault_rng.seed(seed)
        self._batch_rng.seed(None if seed is None else f"batch:{seed}")
        # Ids need not be secret, only unique: uuid4() reads the OS random source every time,
        # a fifth of the emulator's CPU per request.
        self._id_rng = random.Random(None if seed is None else f"ids:{seed}")
        self._request_rng = random.Random()

    # -- request processing ------------------------------------------------------------------

    def _auth_problem(self, authorization: str | None) -> _GraphError | None:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            message = "Access token is empty."
        elif token in self.config.static_tokens:
            return None
        else:
            expires_at = self._tokens.get(token)
            if expires_at is not None and expires_at > time.time():
                return None
            message = (
                "Access token validation failure. Invalid audience."
                if expires_at is None
                else "Lifetime validation failed, the token is expired."
            )
        return _GraphError(
            401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": _WWW_AUTHENTICATE}
        )

    def _error(self, op: _Op, error: _GraphError) -> _Result:
        body = {
            "error": {
                "code": error.code,
                "message": error.message,
                "innerError": {
                    "date": _now_iso(),
                    "request-id": op.request_id,
                    "client-request-id": op.client_request_id or op.request_id,
                },
            }
        }
        return _Result(error.status, body, dict(error.headers))

    def _tally(self, status: int) -> None:
        stats = self.stats
        if status == 429:
            stats["throttled"] += 1
        elif status == 401:
            stats["unauthorized"] += 1
        elif status == 403:
            stats["forbidden"] += 1
        elif status == 404:
            stats["not_found"] += 1
        elif status in (400, 415):
            stats["bad_requests"] += 1

    def _draw_fault(self, op: _Op) -> _Fault | None:
        if self._script:
            thumbprint = op.body.get("certificateThumbprint") if isinstance(op.body, dict) else None
            wanted = thumbprint.lower() if isinstance(thumbprint, str) else None
            chosen = None
            if wanted is not None:
                chosen = next((e for e in self._script if e.thumbprint == wanted), None)
            if chosen is None:
                chosen = next((e for e in self._script if e.thumbprint is None), None)
            if chosen is not None:
                chosen.remaining -= 1
                if chosen.remaining == 0:
                    self._script.remove(chosen)
                return chosen.fault
        config = self.config
        if config.fault_rate > 0 and self._fault_rng.random() < config.fault_rate:
            return _RANDOM_FAULTS[self._fault_rng.choice(config.faults)]
        return None

    def _prepare(self, op: _Op, auth_problem: _GraphError | None) -> _Prepared:
        """Apply everything that happens before the store is touched: auth, throttle, faults."""
        if op.kind is not None:
            self.stats[_KIND_STAT[op.kind]] += 1
        if auth_problem is not None:
            return _Prepared(op, self._error(op, auth_problem))
        if op.problem is not None or op.kind is None:
            problem = op.problem or _GraphError(400, *_ERROR_DEFAULTS[400])
            return _Prepared(op, self._error(op, problem))
        config = self.config
        if config.forbidden:
            return _Prepared(op, self._error(op, _GraphError(403, *_ERROR_DEFAULTS[403])))
        if op.kind in _WRITE_KINDS:
            limit, window, stamps = config.write_limit, config.write_window, self._writes
        else:
            limit, window, stamps = config.read_limit, config.read_window, self._reads
        if limit > 0:
            delay = stamps.admit(time.monotonic(), limit, window, config.count_throttled)
            if delay is not None:
                retry_after = _format_retry_after(delay)
                error = _GraphError(
                    429,
                    "TooManyRequests",
                    f"Too many requests: retry after {retry_after} seconds.",
                    {"Retry-After": retry_after},
                )
                return _Prepared(op, self._error(op, error))
        if op.kind != "create":
            return _Prepared(op)
        fault = self._draw_fault(op)
        if fault is None:
            return _Prepared(op)
        self.stats["faults"] += 1
        if fault.action == "drop":
            return _Prepared(op, drop=True)
        if fault.action == "created_drop":
            return _Prepared(op, drop_after=True)
        code, message = _ERROR_DEFAULTS.get(fault.status, ("UnknownError", "Injected fault."))
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        error = _GraphError(fault.status, fault.code or code, fault.message or message, headers)
        return _Prepared(op, self._error(op, error))

    def _execute(self, prepared: _Prepared) -> _Result:
        if prepared.early is not None:
            return prepared.early
        op = prepared.op
        try:
            if op.kind == "create":
                return self._create(op)
            if op.kind == "list":
                return self._list(op)
            if op.kind == "count":
                return self._count(op)
            if op.kind == "patch":
                return self._patch(op)
            if op.kind == "delete":
                return self._delete(op)
            return self._get(op)
        except _GraphError as error:
            return self._error(op, error)

    def _require_body(self, op: _Op) -> Any:
        if op.body_problem is not None:
            raise op.body_problem
        if op.body is _ABSENT:
            raise _GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        problems = _body_problems(op.body)
        if problems:
            raise _GraphError(400, "BadRequest", " ".join(problems))
        return op.body

    def _require_record(self, op: _Op) -> tuple[str, dict[str, Any]]:
        record_id = op.record_id or ""
        record = self.records.get(record_id)
        if record is None:
            raise _GraphError(
                404, "ResourceNotFound", f"No {ENTITY_TYPE} with id '{record_id}' exists."
            )
        return record_id, record

    @staticmethod
    def _check_query(op: _Op, allowed: frozenset[str]) -> None:
        for key in op.query:
            if key.startswith("$") and key not in allowed:
                raise _GraphError(
                    400, "BadRequest", f"The query option '{key}' is not supported here."
                )

    @staticmethod
    def _selection(op: _Op) -> list[str] | None:
        raw = op.query.get("$select")
        if raw is None:
            return None
        names = [name.strip() for name in raw.split(",")]
        unknown = [name for name in names if name not in _SELECTABLE]
        if unknown:
            raise _GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{unknown[0]}' on type '{ENTITY_TYPE}'.",
            )
        return names

    def _conditions(self, op: _Op) -> list[tuple[str, str]]:
        raw = op.query.get("$filter")
        if raw is not None and not self.config.filter_supported:
            raise _GraphError(400, "BadRequest", "Query option '$filter' is not supported.")
        return [] if raw is None else _parse_filter(raw)

    def _new_id(self) -> str:
        return _guid(self._id_rng)

    def _create(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        body = self._require_body(op)
        record_id = self._new_id()
        record: dict[str, Any] = {
            "@odata.context": f"{op.root}/beta/$metadata#deviceManagement/{COLLECTION}/$entity"
        }
        if "@odata.type" in body:
            record["@odata.type"] = body["@odata.type"]
        record["id"] = record_id
        for name, value in body.items():
            if name != "@odata.type":
                record[name] = value
        self._store.add(record_id, record)
        self.stats["created"] += 1
        location = f"{op.root}/beta{COLLECTION_PATH}/{record_id}"
        return _Result(201, dict(record), {"Location": location})

    def _get(self, op: _Op) -> _Result:
        self._check_query(op, _GET_OPTIONS)
        selection = self._selection(op)
        _, record = self._require_record(op)
        if selection is None:
            return _Result(200, dict(record))
        return _Result(200, _select(record, selection, keep_context=True))

    def _list(self, op: _Op) -> _Result:
        self._check_query(op, _LIST_OPTIONS)
        top = self.config.page_size
        raw_top = op.query.get("$top")
        if raw_top is not None:
            if not raw_top.isdigit() or not 1 <= int(raw_top) <= MAX_PAGE_SIZE:
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Invalid $top '{raw_top}': use an integer from 1 to {MAX_PAGE_SIZE}.",
                )
            top = int(raw_top)
        raw_count = op.query.get("$count")
        if raw_count not in (None, "true", "false"):
            raise _GraphError(400, "BadRequest", f"Invalid $count '{raw_count}'.")
        raw_token = op.query.get("$skiptoken")
        after = 0 if raw_token is None else _decode_skiptoken(raw_token)
        conditions = self._conditions(op)
        selection = self._selection(op)
        records, cursor = self._store.page(conditions, after, top)
        body: dict[str, Any] = {
            "@odata.context": f"{op.root}/beta/$metadata#deviceManagement/{COLLECTION}"
        }
        if raw_count == "true":
            body["@odata.count"] = self._store.count(conditions)
        if selection is None:
            body["value"] = [
                {k: v for k, v in record.items() if k != "@odata.context"} for record in records
            ]
        else:
            body["value"] = [_select(r, selection, keep_context=False) for r in records]
        if cursor is not None:
            params = {k: v for k, v in op.query.items() if k != "$skiptoken"}
            params["$top"] = str(top)
            params["$skiptoken"] = _encode_skiptoken(cursor)
            # Spaces as %20, as Graph writes them (yarl would write '+').
            query = "&".join(
                f"{quote(k, safe='$')}={quote(v, safe=_QUERY_SAFE)}" for k, v in params.items()
            )
            body["@odata.nextLink"] = f"{op.root}/beta{COLLECTION_PATH}?{query}"
        return _Result(200, body)

    def _count(self, op: _Op) -> _Result:
        self._check_query(op, _COUNT_OPTIONS)
        return _Result(200, text=str(self._store.count(self._conditions(op))))

    def _patch(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        record_id, record = self._require_record(op)
        body = self._require_body(op)
        self._store.update(record_id, {k: v for k, v in body.items() if k != "@odata.type"})
        self.stats["updated"] += 1
        if "return=representation" in op.prefer.lower():
            return _Result(200, dict(record))
        return _Result(204)

    def _delete(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        record_id, _ = self._require_record(op)
        self._store.delete(record_id)
        self.stats["deleted"] += 1
        return _Result(204)

    # -- HTTP handlers ---------------------------------------------------------------------

    def _http_response(self, result: _Result, request_id: str, crid: str | None) -> web.Response:
        headers = {"request-id": request_id, "x-ms-ags-diagnostic": _DIAGNOSTIC}
        if crid is not None:
            headers["client-request-id"] = crid
        headers.update(result.headers)
        payload: bytes | None = None
        if result.text is not None:
            headers["Content-Type"] = "text/plain;charset=utf-8"
            payload = result.text.encode()
        elif result.body is not None:
            headers["Content-Type"] = _JSON_CONTENT_TYPE
            payload = orjson.dumps(result.body)
        return web.Response(status=result.status, body=payload, headers=headers)

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection so that the client gets no response at all."""
        self.stats["drops"] += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        # aiohttp fails to write this to the closed transport and treats it as a client
        # disconnect, so nothing of it reaches the wire.
        return web.Response(status=204)

    async def _handle_graph(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await self._answer_graph(request)
        # The answer (or the dropped connection) comes `latency` seconds after the request was
        # taken up, the emulator's own work included: under load that work would otherwise be
        # added to the latency of every request queued behind it.
        latency = self.config.latency
        if latency > 0:
            await asyncio.sleep(latency - (time.monotonic() - started))
        return self._drop(request) if response is None else response

    async def _answer_graph(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a Graph request, or None when its connection is to be dropped."""
        self.stats["requests"] += 1
        request_id = _guid(self._request_rng)
        headers = request.headers
        crid = headers.get("client-request-id")
        auth_problem = self._auth_problem(headers.get("Authorization"))
        # request.host would fall back to a slow getfqdn() when there is no Host header.
        root = f"http://{headers.get('Host') or f'{self._url_host}:{self.port}'}"
        tail = request.match_info["tail"]
        if tail == "$batch":
            return await self._handle_batch(request, request_id, crid, auth_problem, root)
        raw = await request.read()
        body, body_problem = _decode_json_body(raw, headers.get("Content-Type"))
        op = _Op(
            method=request.method,
            kind=None,
            record_id=None,
            query=request.query,
            body=body,
            body_problem=body_problem,
            problem=None,
            root=root,
            request_id=request_id,
            client_request_id=crid,
            prefer=headers.get("Prefer", ""),
        )
        try:
            op.kind, op.record_id = _route(request.method, tail)
        except _GraphError as error:
            op.problem = error
        prepared = self._prepare(op, auth_problem)
        if prepared.drop:
            return None
        result = self._execute(prepared)
        self._tally(result.status)
        if prepared.drop_after:
            return None
        return self._http_response(result, request_id, crid)

    def _item_op(self, item: dict[str, Any], root: str) -> _Op:
        headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        crid = headers.get("client-request-id")
        method = item["method"].upper()
        url: str = item["url"]
        op = _Op(
            method=method,
            kind=None,
            record_id=None,
            query={},
            body=_ABSENT,
            body_problem=None,
            problem=None,
            root=root,
            request_id=_guid(self._request_rng),
            client_request_id=crid,
            prefer=headers.get("prefer", ""),
        )
        if "://" in url or url.startswith("//"):
            op.problem = _GraphError(
                400,
                "BadRequest",
                f"Batch request URLs must be relative to the version root, e.g. "
                f"'{COLLECTION_PATH}', got '{url}'.",
            )
            return op
        try:
            relative = _relative_url(url)
        except ValueError as exc:
            op.problem = _GraphError(400, "BadRequest", f"Invalid batch request URL '{url}': {exc}")
            return op
        if relative.path.strip("/").lower() == "$batch":
            op.problem = _GraphError(400, "BadRequest", "A batch cannot contain a $batch request.")
            return op
        op.query = relative.query
        if item.get("body") is not None:
            content_type = headers.get("content-type")
            if content_type is None:
                op.body_problem = _GraphError(
                    400, "BadRequest", "A batch request with a body needs a Content-Type header."
                )
            elif content_type.split(";", 1)[0].strip().lower() != "application/json":
                op.body_problem = _GraphError(
                    415,
                    "UnsupportedMediaType",
                    f"Content-Type must be application/json, got {content_type}.",
                )
            else:
                op.body = item["body"]
        try:
            op.kind, op.record_id = _route(method, relative.path)
        except _GraphError as error:
            op.problem = error
        return op

    @staticmethod
    def _batch_items(payload: Any) -> list[dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
            raise _GraphError(400, "BadRequest", 'A batch body must be {"requests": [...]}.')
        items: list[Any] = payload["requests"]
        if not items:
            raise _GraphError(400, "BadRequest", "A batch must contain at least one request.")
        if len(items) > MAX_BATCH_REQUESTS:
            raise _GraphError(
                400,
                "BadRequest",
                f"A batch may contain at most {MAX_BATCH_REQUESTS} requests, got {len(items)}.",
            )
        seen: set[str] = set()
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise _GraphError(400, "BadRequest", f"Batch request #{index} is not an object.")
            item_id = item.get("id")
            if not isinstance(item_id, str) or not item_id:
                raise _GraphError(400, "BadRequest", f"Batch request #{index} has no string id.")
            if item_id in seen:
                raise _GraphError(400, "BadRequest", f"Batch request id '{item_id}' is repeated.")
            for key in ("method", "url"):
                if not isinstance(item.get(key), str) or not item[key]:
                    raise _GraphError(
                        400, "BadRequest", f"Batch request '{item_id}' has no string '{key}'."
                    )
            headers = item.get("headers")
            if headers is not None and (
                not isinstance(headers, dict)
                or not all(isinstance(v, str) for v in headers.values())
            ):
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Batch request '{item_id}' headers must be an object of strings.",
                )
            depends = item.get("dependsOn")
            if depends is not None and (
                not isinstance(depends, list)
                or not all(isinstance(d, str) and d in seen for d in depends)
            ):
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Batch request '{item_id}' dependsOn must list ids of earlier requests.",
                )
            seen.add(item_id)
        return items

    async def _handle_batch(
        self,
        request: web.Request,
        request_id: str,
        crid: str | None,
        auth_problem: _GraphError | None,
        root: str,
    ) -> web.StreamResponse | None:
        self.stats["batches"] += 1
        envelope = _Op("POST", None, None, {}, _ABSENT, None, None, root, request_id, crid, "")
        if request.method != "POST":
            error = _GraphError(405, "MethodNotAllowed", "$batch accepts only POST.")
            return self._http_response(self._error(envelope, error), request_id, crid)
        try:
            if auth_problem is not None:
                raise auth_problem
            raw = await request.read()
            payload, problem = _decode_json_body(raw, request.headers.get("Content-Type"))
            if problem is not None:
                raise problem
            items = self._batch_items(payload)
        except _GraphError as error:
            result = self._error(envelope, error)
            self._tally(result.status)
            return self._http_response(result, request_id, crid)
        self.stats["batch_items"] += len(items)
        prepared = [self._prepare(self._item_op(item, root), None) for item in items]
        if any(p.drop for p in prepared):
            return None
        statuses: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        for item, prep in zip(items, prepared, strict=True):
            failed = [d for d in item.get("dependsOn") or () if not 200 <= statuses[d] < 300]
            if failed:
                dependency = _GraphError(
                    424, "FailedDependency", f"Depends on failed request(s) {', '.join(failed)}."
                )
                result = self._error(prep.op, dependency)
            else:
                result = self._execute(prep)
            self._tally(result.status)
            statuses[item["id"]] = result.status
            responses.append(_batch_response(item["id"], result))
        self._batch_rng.shuffle(responses)
        if any(p.drop_after for p in prepared):
            return None
        ok = _Result(200, {"responses": responses})
        return self._http_response(ok, request_id, crid)

    async def _handle_token(self, request: web.Request) -> web.Response:
        self.stats["token_requests"] += 1
        secret = request.headers.get("X-IDENTITY-HEADER")
        query = request.query
        if secret is None:
            return _identity_error(400, "The X-IDENTITY-HEADER header is required.")
        if not hmac.compare_digest(secret.encode(), self.config.identity_header.encode()):
            return _identity_error(401, "The X-IDENTITY-HEADER header is invalid.")
        if query.get("api-version") != IDENTITY_API_VERSION:
            return _identity_error(
                400, f"api-version must be {IDENTITY_API_VERSION}, got {query.get('api-version')}."
            )
        resource = query.get("resource")
        if not resource:
            return _identity_error(400, "The resource parameter is required.")
        token = self.issue_token()
        expires_on = int(self._tokens[token])
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": query.get("client_id") or EMULATOR_CLIENT_ID,
            }
        )

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "records": len(self.records)})

    async def _handle_records(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(list(self.records.values())), content_type="application/json"
        )

    async def _handle_script(self, request: web.Request) -> web.Response:
        try:
            entries = orjson.loads(await request.read())
            if not isinstance(entries, list):
                raise ValueError("the body must be a JSON list of script entries")
            self.script(entries)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return _admin_error(str(exc))
        return web.json_response({"queued": len(entries), "pending": len(self._script)})

    async def _handle_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _handle_config(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of config fields")
            self.configure(changes)
        except (ValueError, TypeError) as exc:
            return _admin_error(str(exc))
        return web.json_response(_config_as_json(self.config))

    async def _handle_expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"expired": True})


def _select(
    record: Mapping[str, Any], names: Iterable[str], *, keep_context: bool
) -> dict[str, Any]:
    selected: dict[str, Any] = {}
    if keep_context:
        selected["@odata.context"] = record["@odata.context"]
    selected["id"] = record["id"]
    for name in names:
        if name in record:
            selected[name] = record[name]
    return selected


def _batch_response(item_id: str, result: _Result) -> dict[str, Any]:
    headers = dict(result.headers)
    response: dict[str, Any] = {"id": item_id, "status": result.status, "headers": headers}
    if result.text is not None:
        headers["Content-Type"] = "text/plain"
        response["body"] = result.text
    elif result.body is not None:
        headers["Content-Type"] = "application/json"
        response["body"] = result.body
    return response


def _identity_error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())},
        status=status,
    )


def _admin_error(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


async def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run an emulator until cancelled (Ctrl-C under `asyncio.run`), announcing it on stderr."""
    emulator = GraphEmulator(config)
    await emulator.start(host, port)
    print(
        f"emulator listening on {emulator.base_url} (identity endpoint "
        f"{emulator.identity_endpoint}, identity header {config.identity_header})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m importer.emulator --port 8080 --static-token dev``."""
    parser = argparse.ArgumentParser(
        prog="python -m importer.emulator",
        description="Run a local Microsoft Graph stand-in for rehearsals and benchmarks.",
        epilog="example: python -m importer.emulator --port 8080 --static-token dev --seed 1",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--static-token", action="append", default=[], help="bearer token always accepted"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--write-limit", type=int, default=EmulatorConfig.write_limit)
    parser.add_argument("--read-limit", type=int, default=EmulatorConfig.read_limit)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--identity-header", default=EmulatorConfig.identity_header)
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(
            write_limit=args.write_limit,
            read_limit=args.read_limit,
            fault_rate=args.fault_rate,
            latency=args.latency,
            seed=args.seed,
            static_tokens=frozenset(args.static_token),
            identity_header=args.identity_header,
        )
        asyncio.run(serve(config, args.host, args.port))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how an operator stops the emulator
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
