"""A local stand-in for Microsoft Graph's managed device certificate state collection.

`GraphEmulator` is an aiohttp server on loopback that behaves like the beta collection
``/beta/deviceManagement/deviceConfigurationsAllManagedDeviceCertificateStates``: bearer-token
auth, strict body validation, paging, ``$filter``, JSON batching, Intune-style sliding-window
throttling, scripted and random faults (including connections dropped before or after the
object was created), an App Service style managed-identity token endpoint and (served over TLS)
a sign-in authority's OAuth 2.0 token endpoint, which the real ``azure.identity`` credentials
accept. Operators rehearse migrations against it; tests and
benchmarks drive it over real HTTP.

It deliberately imports nothing from the rest of ``importer`` (but the event loop of
``importer.aio``, in its command line): it must not share assumptions with the client it is
used to test.

Admin endpoints (no auth, loopback only) let another process drive it: ``GET /_stats``,
``GET /_records``, ``POST /_script``, ``POST /_reset``, ``POST /_config``,
``POST /_expire_tokens``.

Run one from a shell with ``certimport emulator --port 8080 --token dev`` or, the same command,
``python -m importer.emulator --port 8080 --token dev``.

Modules, each importing only those above it: ``config`` (standard library only), ``bodies``,
``store``, ``faults``, ``state``, ``ops``, ``collection``, ``batch``, ``identity``,
``authority``, ``admin``, ``server``, ``command`` (click; the server only when it runs). The
names below are imported from ``server`` and ``command`` on first use, so that importing the
command line does not import aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
    COLLECTION,
    COLLECTION_PATH,
    EMULATOR_CLIENT_ID,
    ENTITY_TYPE,
    FAULT_KINDS,
    IDENTITY_API_VERSION,
    MAX_BATCH_REQUESTS,
    MAX_PAGE_SIZE,
    RETRY_AFTER_FORMS,
    REVOKE_STATUSES,
    EmulatorConfig,
)

if TYPE_CHECKING:
    from .command import emulator_command as emulator_command
    from .command import main as main
    from .ops import _guid as _guid
    from .server import GraphEmulator as GraphEmulator
    from .server import serve as serve

_LAZY: dict[str, str] = {
    "GraphEmulator": "server",
    "serve": "server",
    "emulator_command": "command",
    "main": "command",
    "_guid": "ops",
}

__all__ = [
    "COLLECTION",
    "COLLECTION_PATH",
    "EMULATOR_CLIENT_ID",
    "ENTITY_TYPE",
    "FAULT_KINDS",
    "IDENTITY_API_VERSION",
    "MAX_BATCH_REQUESTS",
    "MAX_PAGE_SIZE",
    "RETRY_AFTER_FORMS",
    "REVOKE_STATUSES",
    "EmulatorConfig",
    "GraphEmulator",
    "emulator_command",
    "main",
    "serve",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name of ``server``, ``command`` or ``ops`` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
