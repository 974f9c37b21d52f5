"""Faults and throttling: scripted and random faults on collection POSTs, and Intune-style
sliding-window throttles answering 429 with a Retry-After in whole seconds, in fractional
seconds, or (as Intune's backend often does) none at all."""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from .bodies import _ERROR_DEFAULTS, _GraphError
from .config import EmulatorConfig, _is_int

_DEFAULT_RETRY_AFTER: Final[dict[int, str]] = {429: "1", 503: "1"}
_SCRIPT_KEYS: Final = frozenset(
    {"status", "retry_after", "code", "message", "action", "thumbprint", "times"}
)


@dataclass(slots=True)
class _Fault:
    status: int = 0
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    action: str | None = None

    def error(self) -> _GraphError:
        """The error answer of a fault with a status (not a dropped connection)."""
        code, message = _ERROR_DEFAULTS.get(self.status, ("UnknownError", "Injected fault."))
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return _GraphError(self.status, self.code or code, self.message or message, headers)


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
    "created_500": _Fault(500, message="Injected fault after commit.", action="created"),
    "created_502": _Fault(502, message="Injected fault after commit.", action="created"),
    "created_504": _Fault(504, message="Injected fault after commit.", action="created"),
    "created_batch_504": _Fault(
        504, message="Injected fault after commit.", action="created_batch"
    ),
}
# Script actions: a dropped connection, or one of the commit-then-fail faults by name.
_SCRIPT_ACTIONS: Final = (
    "drop",
    "created_drop",
    *(k for k in _RANDOM_FAULTS if k.startswith("created_") and k != "created_drop"),
)


def _script_status_and_action(entry: dict[str, Any]) -> tuple[int | None, str | None]:
    status = entry.get("status")
    action = entry.get("action")
    if (status is None) == (action is None):
        raise ValueError(f"a script entry needs exactly one of 'status' or 'action': {entry!r}")
    if action is not None and action not in _SCRIPT_ACTIONS:
        raise ValueError(
            f"script action must be one of {', '.join(_SCRIPT_ACTIONS)}, got {action!r}"
        )
    if status is not None and (not _is_int(status) or not 400 <= status <= 599):
        raise ValueError(f"script status must be an integer 400-599, got {status!r}")
    return status, action


def _parse_script_entry(entry: Any) -> _ScriptEntry:
    if not isinstance(entry, dict):
        raise ValueError(f"a script entry must be an object, got {entry!r}")
    unknown = set(entry) - _SCRIPT_KEYS
    if unknown:
        raise ValueError(f"unknown script entry keys {sorted(unknown)} in {entry!r}")
    status, action = _script_status_and_action(entry)
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
    if action is not None and action.startswith("created_") and action != "created_drop":
        fault = _RANDOM_FAULTS[action]
    else:
        fault = _Fault(
            status=status or 0,
            code=entry.get("code"),
            message=entry.get("message"),
            retry_after=retry_after,
            action=action,
        )
    return _ScriptEntry(fault, thumbprint.lower() if thumbprint else None, times)


class _Faults:
    """The queue of scripted faults, and the random source of random ones."""

    def __init__(self) -> None:
        self.script: list[_ScriptEntry] = []
        self.rng = random.Random()

    def queue(self, entries: list[dict[str, Any]]) -> None:
        """Parse every entry, then queue them all; nothing is queued when one is malformed."""
        parsed = [_parse_script_entry(entry) for entry in entries]
        self.script.extend(parsed)

    def draw(self, body: Any, config: EmulatorConfig) -> _Fault | None:
        """The fault for a collection POST of `body`: scripted first, else maybe a random one."""
        if self.script:
            thumbprint = body.get("certificateThumbprint") if isinstance(body, dict) else None
            wanted = thumbprint.lower() if isinstance(thumbprint, str) else None
            chosen = None
            if wanted is not None:
                chosen = next((e for e in self.script if e.thumbprint == wanted), None)
            if chosen is None:
                chosen = next((e for e in self.script if e.thumbprint is None), None)
            if chosen is not None:
                chosen.remaining -= 1
                if chosen.remaining == 0:
                    self.script.remove(chosen)
                return chosen.fault
        if config.fault_rate > 0 and self.rng.random() < config.fault_rate:
            return _RANDOM_FAULTS[self.rng.choice(config.faults)]
        return None


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


def _format_retry_after(delay: float, form: str) -> str | None:
    """``Retry-After`` for `delay` seconds in `form`: ``whole`` seconds rounded up (what Graph
    mostly sends, ``41``), ``fractional`` milliseconds (``2.128``), or None for ``absent``."""
    if form == "absent":
        return None
    if form == "fractional":
        return f"{max(math.ceil(delay * 1000) / 1000, 0.001):.3f}"
    return str(max(math.ceil(delay), 1))


def _intune_message(activity_id: str) -> str:
    """The message of a 429 from Intune's backend: itself a JSON document, as a string."""
    document = {
        "_version": 3,
        "Message": (
            "An error has occurred - Operation ID (for customer support): "
            f"00000000-0000-0000-0000-000000000000 - Activity ID: {activity_id} - Url: "
            "https://fef.emulator.manage.microsoft.com/DeviceConfiguration/"
            "StatelessDeviceConfigurationFEService/deviceManagement/"
            "deviceConfigurationsAllManagedDeviceCertificateStates - CustomApiErrorPhrase: "
        ),
        "CustomApiErrorPhrase": "",
        "RetryAfter": None,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    }
    return json.dumps(document, indent=2).replace("\n", "\r\n")


def _throttled(delay: float, form: str) -> _GraphError:
    """The 429 for a request that finds its window full for another `delay` seconds."""
    retry_after = _format_retry_after(delay, form)
    if retry_after is None:
        return _GraphError(429, "TooManyRequests", _intune_message(str(uuid.uuid4())))
    return _GraphError(
        429,
        "TooManyRequests",
        f"Too many requests: retry after {retry_after} seconds.",
        {"Retry-After": retry_after},
    )


class _Throttle:
    """The write window and the window of every request (Intune's "any" limit) of one emulator.

    A write counts in both: Intune's limit on requests of any kind counts POST, PATCH and
    DELETE as well as GET.
    """

    def __init__(self) -> None:
        self.writes = _SlidingWindow()
        self.requests = _SlidingWindow()

    def reset(self) -> None:
        self.writes = _SlidingWindow()
        self.requests = _SlidingWindow()

    def check(self, write: bool, config: EmulatorConfig) -> _GraphError | None:
        """Count a request in its windows: None when admitted, else the 429 to answer."""
        now = time.monotonic()
        counted: list[_SlidingWindow] = []
        delays: list[float] = []
        windows = [(config.read_limit, config.read_window, self.requests)]
        if write:
            windows.append((config.write_limit, config.write_window, self.writes))
        for limit, window, stamps in windows:
            if limit <= 0:
                continue
            delay = stamps.admit(now, limit, window, config.count_throttled)
            if delay is None:
                counted.append(stamps)
            else:
                delays.append(delay)
        if not delays:
            return None
        if not config.count_throttled:  # refused in one window: it counts in none
            for stamps in counted:
                stamps.stamps.pop()
        return _throttled(max(delays), config.retry_after)
