"""One Graph operation: parsed (`_Op`), routed (`_route`), answered (`_Result`) and written
as an HTTP response."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web

from .bodies import _error_document, _GraphError
from .config import COLLECTION, COLLECTION_PATH

_JSON_CONTENT_TYPE: Final = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
_DIAGNOSTIC: Final = (
    '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"0",'
    '"ScaleUnit":"000","RoleInstance":"graph-emulator"}}'
)
_KIND_STAT: Final[dict[str, str]] = {
    "list": "gets",
    "count": "gets",
    "get": "gets",
    "create": "posts",
    "patch": "patches",
    "delete": "deletes",
}
_WRITE_KINDS: Final = frozenset({"create", "patch", "delete"})
_GUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))  # version and variant bits
_GUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


@dataclass(slots=True)
class _Result:
    """The answer to one request (standalone or batch item) before it is serialised."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None


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
    after: Any = None  # a commit-then-fail fault: its error answers once the object exists


def _guid(rng: random.Random) -> str:
    """A version-4 GUID from ``rng``: ``str(uuid.UUID(int=..., version=4))``, at half the CPU
    (two of these per request were a tenth of the emulator's work)."""
    h = f"{rng.getrandbits(128) & _GUID_CLEAR | _GUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


def _error_result(op: _Op, error: _GraphError) -> _Result:
    """The answer to `op` that `error` makes."""
    body = _error_document(error, op.request_id, op.client_request_id)
    return _Result(error.status, body, dict(error.headers))


def _http_response(result: _Result, request_id: str, crid: str | None) -> web.Response:
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
