"""What every answer from Graph means: the one table the client decides by.

What may be sent again is decided here, once (see ``../shared/GRAPH.md``, "Which failed writes
may be sent again blindly"). A POST (a create, alone or as a ``$batch`` item, or a whole
``$batch`` call) may be re-sent only when Graph refused it before any work: 429, 503, or a
connection that could not be opened. Anything else that is not a clear answer is *ambiguous*:
a 500, 502, 504 or other 5xx (a gateway gave up on a backend that may well have committed), a
timeout, a connection dropped after the request was sent. An ambiguous create is ``unknown``,
and the pipeline looks its key up in Graph before anything is posted again. A PATCH of a known
id and a GET are idempotent: every 5xx and every transport failure may be sent again.

Verdicts for a create:
    201 with an id               created
    2xx without an id            unknown: the object may exist
    429, 503                     retried after Retry-After, else exponential backoff with jitter
    connection not established   retried (the request was never sent)
    401                          token renewed once, then retried; a second 401 aborts the run
    403, 404 on the collection   the run is aborted: every row would fail the same way
    other 4xx                    the row is rejected with Graph's error code and message
    other 5xx, timeout, dropped  unknown: the POST may have been committed, so it is not re-sent

An update (PATCH of a known id) is ``done`` on 2xx and ``rejected`` on 404 (the object is
gone), and only 403 aborts. A lookup (GET) is ``done`` on 2xx with its payload; 403 and 404
do not abort (the lookup is then unavailable). A ``$batch`` call is answered 200 with one
answer per item (each classified as a create); any other answer to the call is every item's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from importer.outcome import CREATED, DELETED, FAILED, REJECTED, UNKNOWN, UPDATED, Outcome
from importer.send.retry import parse_retry_after

Operation = Literal["create", "batch", "update", "lookup", "delete"]
# Refused before any work: safe to send again, whatever the method.
REFUSED_STATUSES = frozenset({429, 503})
IDEMPOTENT: frozenset[Operation] = frozenset({"update", "lookup", "delete"})
ABORT_STATUSES: dict[Operation, frozenset[int]] = {
    "create": frozenset({403, 404}),  # on the collection: wrong target, or no permission
    "batch": frozenset({403, 404}),  # the $batch call itself, as a create
    "update": frozenset({403}),  # 404 on an id: that object is gone, the row is rejected
    "lookup": frozenset(),  # the lookup is then unavailable; the row stays in doubt
    "delete": frozenset({403}),  # 404 on an id: already gone, which is what was asked
}


class Verdict(enum.Enum):
    """What to do with a response."""

    CREATED = "created"  # done: created, updated, or (a lookup) answered
    RETRY = "retry"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    REAUTH = "reauth"
    ABORT = "abort"


@dataclass(frozen=True)
class Classified:
    """A response (or transport failure) reduced to what the importer needs."""

    verdict: Verdict
    status: int | None = None
    retry_after: float | None = None
    error_code: str = ""
    error_message: str = ""
    request_id: str = ""
    created_id: str = ""
    payload: Any = field(default=None, repr=False, compare=False)  # a GET's parsed body
    client_request_id: str = ""  # ours, echoed by Graph; kept for retried answers (logs)


def error_fields(status: int, payload: Any, text: str) -> tuple[str, str]:
    """Graph's error code and message, or ``HTTP<status>`` and the start of a non-JSON body."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        return str(error.get("code") or f"HTTP{status}"), str(error.get("message") or "")
    snippet = " ".join(text.split())[:200]
    return f"HTTP{status}", snippet


def classify(
    status: int,
    headers: Mapping[str, str],
    payload: Any,
    text: str = "",
    operation: Operation = "create",
    object_id: str = "",
) -> Classified:
    """The verdict on one HTTP response to ``operation`` (the single place that decides).

    ``object_id`` is the id an update was sent to.
    """
    request_id = headers.get("request-id", "")
    if 200 <= status < 300:
        return _success(status, payload, request_id, operation, object_id)
    if operation == "delete" and status == 404:
        return Classified(Verdict.CREATED, 404, request_id=request_id, created_id=object_id)
    if operation == "update" and status == 404:
        return Classified(
            Verdict.REJECTED,
            404,
            error_code="NotFound",
            error_message=f"object {object_id} no longer exists in Graph",
            request_id=request_id,
        )
    code, message = error_fields(status, payload, text)
    if status in REFUSED_STATUSES or (status >= 500 and operation in IDEMPOTENT):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return Classified(
            Verdict.RETRY,
            status,
            retry_after,
            code,
            message,
            request_id,
            client_request_id=headers.get("client-request-id", ""),
        )
    if status == 401:
        return Classified(Verdict.REAUTH, status, None, code, message, request_id)
    if status in ABORT_STATUSES[operation]:
        return Classified(Verdict.ABORT, status, None, code, message, request_id)
    if 400 <= status < 500:
        return Classified(Verdict.REJECTED, status, None, code, message, request_id)
    return Classified(Verdict.UNKNOWN, status, None, code, message, request_id)


def _success(
    status: int, payload: Any, request_id: str, operation: Operation, object_id: str
) -> Classified:
    if operation == "lookup" or (operation == "batch" and status == 200):
        return Classified(Verdict.CREATED, status, request_id=request_id, payload=payload)
    if operation in ("update", "delete"):
        return Classified(Verdict.CREATED, status, request_id=request_id, created_id=object_id)
    new_id = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(new_id, str) and new_id:
        return Classified(Verdict.CREATED, status, request_id=request_id, created_id=new_id)
    return Classified(
        Verdict.UNKNOWN,
        status,
        error_code="MissingId",
        error_message=f"HTTP {status} without an id in the body: the object may exist",
        request_id=request_id,
    )


def transport_failure(
    exc: BaseException, operation: Operation, client_request_id: str
) -> Classified:
    """The verdict on a request that got no HTTP answer (aiohttp's exceptions and timeouts).

    A connection that was never established cannot have carried the request: retried. Any other
    failure (a read timeout, a dropped or reset connection, a broken answer) came after the
    request may have been sent: ambiguous for a create, retried for an idempotent operation.
    """
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return connection_failed(str(exc), client_request_id)
    kind = "Timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    if operation in IDEMPOTENT:
        return Classified(
            Verdict.RETRY, None, None, kind, str(exc) or kind, client_request_id=client_request_id
        )
    return no_answer(kind, str(exc))


def connection_failed(message: str, client_request_id: str) -> Classified:
    """The connection was never established: the request cannot have been sent."""
    return Classified(
        Verdict.RETRY,
        None,
        None,
        "ConnectionFailed",
        message,
        client_request_id=client_request_id,
    )


def no_answer(kind: str, message: str) -> Classified:
    """The request was sent but no answer came: a create may have been committed."""
    return Classified(
        Verdict.UNKNOWN,
        None,
        None,
        kind,
        f"request sent but no answer ({message or kind}); the object may exist",
    )


def missing_batch_item(request_id: str) -> Classified:
    """A ``$batch`` answer without a response for one of its items."""
    return Classified(
        Verdict.UNKNOWN,
        200,
        error_code="MissingBatchItem",
        error_message="the $batch answer had no response for this item; it may exist",
        request_id=request_id,
    )


_STATUS_OF = {Verdict.CREATED: CREATED, Verdict.REJECTED: REJECTED}


def outcome_of(result: Classified, attempts: int, operation: Operation = "create") -> Outcome:
    """The row's outcome for a final verdict (``updated`` for a successful update)."""
    status = _STATUS_OF.get(result.verdict, UNKNOWN)
    if status == CREATED and operation in ("update", "delete"):
        status = UPDATED if operation == "update" else DELETED
    return Outcome(
        status,
        id=result.created_id,
        http_status=result.status,
        error_code=result.error_code,
        error_message=result.error_message,
        attempts=attempts,
        request_id=result.request_id,
    )


def gave_up(result: Classified, attempts: int) -> Outcome:
    """The row's outcome when the retries ran out on a retryable answer."""
    return Outcome(
        FAILED,
        http_status=result.status,
        error_code=result.error_code,
        error_message=f"gave up after {attempts} attempt(s): {result.error_message}".strip(),
        attempts=attempts,
        request_id=result.request_id,
    )


__all__ = [
    "ABORT_STATUSES",
    "IDEMPOTENT",
    "REFUSED_STATUSES",
    "Classified",
    "Operation",
    "Verdict",
    "classify",
    "connection_failed",
    "error_fields",
    "gave_up",
    "missing_batch_item",
    "no_answer",
    "outcome_of",
    "transport_failure",
]
