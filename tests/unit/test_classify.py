"""send.classify: the one table every answer from Graph is decided by."""

from __future__ import annotations

import aiohttp
import pytest

from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN, UPDATED
from importer.send.classify import (
    Verdict,
    classify,
    connection_failed,
    gave_up,
    missing_batch_item,
    no_answer,
    outcome_of,
    transport_failure,
)

ERROR = {"error": {"code": "Code", "message": "said no"}}
V = Verdict


@pytest.mark.parametrize(
    ("status", "payload", "create", "batch", "update", "lookup", "delete"),
    [
        (200, {"id": "x"}, V.CREATED, V.CREATED, V.CREATED, V.CREATED, V.CREATED),
        (201, {"id": "x"}, V.CREATED, V.CREATED, V.CREATED, V.CREATED, V.CREATED),
        (201, {}, V.UNKNOWN, V.UNKNOWN, V.CREATED, V.CREATED, V.CREATED),
        (204, None, V.UNKNOWN, V.UNKNOWN, V.CREATED, V.CREATED, V.CREATED),
        (400, ERROR, V.REJECTED, V.REJECTED, V.REJECTED, V.REJECTED, V.REJECTED),
        (401, ERROR, V.REAUTH, V.REAUTH, V.REAUTH, V.REAUTH, V.REAUTH),
        (403, ERROR, V.ABORT, V.ABORT, V.ABORT, V.REJECTED, V.ABORT),
        (404, ERROR, V.ABORT, V.ABORT, V.REJECTED, V.REJECTED, V.CREATED),
        (409, ERROR, V.REJECTED, V.REJECTED, V.REJECTED, V.REJECTED, V.REJECTED),
        (429, ERROR, V.RETRY, V.RETRY, V.RETRY, V.RETRY, V.RETRY),
        # refused before any work: sent again, whatever the method
        (503, ERROR, V.RETRY, V.RETRY, V.RETRY, V.RETRY, V.RETRY),
        # ambiguous for a POST (the backend may have committed): looked up, never re-sent
        # blindly; a PATCH or DELETE by id and a GET are idempotent and go again
        # (a DELETE answered 404 found the object gone: what it asked for)
        (500, ERROR, V.UNKNOWN, V.UNKNOWN, V.RETRY, V.RETRY, V.RETRY),
        (502, ERROR, V.UNKNOWN, V.UNKNOWN, V.RETRY, V.RETRY, V.RETRY),
        (504, ERROR, V.UNKNOWN, V.UNKNOWN, V.RETRY, V.RETRY, V.RETRY),
        (507, ERROR, V.UNKNOWN, V.UNKNOWN, V.RETRY, V.RETRY, V.RETRY),
        (509, ERROR, V.UNKNOWN, V.UNKNOWN, V.RETRY, V.RETRY, V.RETRY),
    ],
)
def test_every_status_for_every_operation(status, payload, create, batch, update, lookup, delete):
    for operation, expected in (
        ("create", create),
        ("batch", batch),
        ("update", update),
        ("lookup", lookup),
        ("delete", delete),
    ):
        result = classify(status, {"request-id": "r-1"}, payload, "", operation, "obj-1")
        assert result.verdict is expected, (status, operation)
        assert result.status == status
        assert result.request_id == "r-1"


def test_errors_keep_graphs_code_and_message_and_a_non_json_body_its_text():
    assert classify(400, {}, ERROR).error_code == "Code"
    assert classify(400, {}, ERROR).error_message == "said no"
    page = classify(502, {}, None, "<html>\n  Bad   gateway </html>")
    assert (page.error_code, page.error_message) == ("HTTP502", "<html> Bad gateway </html>")


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("2.128", 2.128), (None, None), ("soon", None)]
)
def test_retry_after_is_read_from_a_throttled_answer(header, seconds):
    headers = {"Retry-After": header} if header is not None else {}
    assert classify(429, headers, ERROR).retry_after == seconds


def test_update_of_a_gone_object_is_rejected_naming_it():
    result = classify(404, {}, ERROR, operation="update", object_id="obj-9")
    assert (result.verdict, result.error_code) == (V.REJECTED, "NotFound")
    assert "obj-9" in result.error_message


def test_transport_failures_and_missing_batch_items():
    assert connection_failed("refused", "c-1").verdict is V.RETRY
    assert connection_failed("refused", "c-1").client_request_id == "c-1"
    lost = no_answer("Timeout", "")
    assert (lost.verdict, lost.error_code) == (V.UNKNOWN, "Timeout")
    assert "may exist" in lost.error_message
    assert missing_batch_item("r-2").verdict is V.UNKNOWN


def test_outcomes_of_final_verdicts():
    created = classify(201, {}, {"id": "new"})
    assert (outcome_of(created, 2).status, outcome_of(created, 2).id) == (CREATED, "new")
    updated = classify(204, {}, None, operation="update", object_id="o")
    assert outcome_of(updated, 1, "update").status == UPDATED
    assert outcome_of(classify(400, {}, ERROR), 1).status == REJECTED
    assert outcome_of(classify(500, {}, ERROR), 1).status == UNKNOWN
    failed = gave_up(classify(503, {}, ERROR), 8)
    assert (failed.status, failed.attempts) == (FAILED, 8)
    assert failed.error_message.startswith("gave up after 8 attempt(s)")


class _Key:
    ssl = False
    host = "graph.example"
    port = 443


CONNECTOR = aiohttp.ClientConnectorError(_Key(), OSError(111, "Connection refused"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "create", "idempotent", "code"),
    [
        (CONNECTOR, V.RETRY, V.RETRY, "ConnectionFailed"),
        (aiohttp.ConnectionTimeoutError("connect"), V.RETRY, V.RETRY, "ConnectionFailed"),
        (aiohttp.SocketTimeoutError("read"), V.UNKNOWN, V.RETRY, "Timeout"),
        (TimeoutError(), V.UNKNOWN, V.RETRY, "Timeout"),
        (aiohttp.ServerDisconnectedError(), V.UNKNOWN, V.RETRY, "ServerDisconnectedError"),
        (aiohttp.ClientOSError(104, "reset"), V.UNKNOWN, V.RETRY, "ClientOSError"),
        (aiohttp.ClientPayloadError("cut"), V.UNKNOWN, V.RETRY, "ClientPayloadError"),
    ],
    ids=[
        "refused",
        "connect-timeout",
        "read-timeout",
        "timeout",
        "disconnected",
        "reset",
        "payload",
    ],
)
def test_every_transport_failure(exc, create, idempotent, code):
    for operation in ("create", "batch"):
        result = transport_failure(exc, operation, "c-1")
        assert (result.verdict, result.error_code) == (create, code), operation
    for operation in ("update", "lookup", "delete"):
        assert transport_failure(exc, operation, "c-1").verdict is idempotent, operation


def test_a_batch_item_is_classified_as_a_create():
    assert classify(504, {}, ERROR, operation="create").verdict is V.UNKNOWN
    assert classify(429, {"Retry-After": "3"}, ERROR, operation="create").retry_after == 3.0
    whole = classify(200, {}, {"responses": []}, operation="batch")
    assert whole.verdict is V.CREATED and whole.payload == {"responses": []}
    assert classify(202, {}, None, operation="batch").verdict is V.UNKNOWN
