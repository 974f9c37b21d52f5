"""Request bodies and error answers: the entity's properties and their checks, JSON decoding,
and the shape of Graph's error documents."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from .config import ENTITY_TYPE, REVOKE_STATUSES, _is_int

_ODATA_TYPE: Final = f"#{ENTITY_TYPE}"
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
# Nullability as the beta CSDL declares it: ``Nullable="false"`` on the enum and the three
# DateTimeOffset properties; strings and certificateKeyUsages (Int32) may be null.
_NOT_NULLABLE: Final = frozenset(
    {
        "certificateRevokeStatus",
        "certificateRevokeStatusLastChangeDateTime",
        "certificateExpirationDateTime",
        "certificateIssuanceDateTime",
    }
)
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,7})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)

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

_ABSENT: Final = object()
"""The body of a request that sent none."""


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


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _error_document(
    error: _GraphError, request_id: str, client_request_id: str | None
) -> dict[str, Any]:
    """The JSON body of a Graph error answer."""
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": _now_iso(),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


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


def _unknown_property_problem(name: str, value: Any) -> str | None:
    """The problem with a body property that is not one of the entity's writable ones."""
    if name == "@odata.type":
        if value != _ODATA_TYPE:
            return f"The property '@odata.type' must be '{_ODATA_TYPE}', got {value!r}."
        return None
    if name == "id":
        return "The property 'id' is read-only: the service assigns it."
    return (
        f"The property '{name}' does not exist on type '{ENTITY_TYPE}'. Make sure "
        "to only use property names that are defined by the type."
    )


def _value_problem(name: str, kind: str, value: Any) -> str | None:
    """The problem with the value of property `name` (of `kind`), or None."""
    if value is None:
        return f"The property '{name}' cannot be null." if name in _NOT_NULLABLE else None
    if kind == _STRING:
        if not isinstance(value, str):
            return f"The property '{name}' must be a string, got {value!r}."
    elif kind == _DATETIME:
        if not isinstance(value, str):
            return f"The property '{name}' must be a date-time string."
        return _datetime_problem(name, value)
    elif kind == _ENUM:
        if not isinstance(value, str) or value not in REVOKE_STATUSES:
            return (
                f"The value {value!r} of property '{name}' is not a valid "
                "'microsoft.graph.certificateRevocationStatus' (none, pending, issued, "
                "failed, revoked)."
            )
    elif not _is_int(value) or not _INT32_MIN <= value <= _INT32_MAX:
        return f"The value {value!r} of property '{name}' is not a valid Edm.Int32."
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
            problem = _unknown_property_problem(name, value)
        else:
            problem = _value_problem(name, kind, value)
        if problem is not None:
            problems.append(problem)
    return problems


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
