"""Log records: secrets redacted wherever they appear, one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from importer.logs import JsonFormatter, RedactingFilter, redact, register_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: [secure]"),
        ("{'Authorization': 'Bearer abc'}", "{'Authorization': '[secure]'}"),
        ("sent bearer abcdef123== to graph", "sent bearer [secure] to graph"),
        (f"token {JWT} expired", "token [secure] expired"),
        ("client_secret=s3cr3t&grant_type=x", "client_secret=[secure]&grant_type=x"),
        (
            '{"access_token": "tok123", "expires_in": 5}',
            '{"access_token": "[secure]", "expires_in": 5}',
        ),
        ("X-IDENTITY-HEADER: hdr-value", "X-IDENTITY-HEADER: [secure]"),
        ("nothing secret here: 429 after 2 s", "nothing secret here: 429 after 2 s"),
    ],
)
def test_redact(text, shown):
    assert redact(text) == shown


def test_registered_secret_is_masked_in_message_args_extras_and_traceback():
    register_secret("registered-secret-9d8e")
    record = logging.LogRecord("importer.x", logging.INFO, __file__, 1, "got %s", None, None)
    record.args = ("registered-secret-9d8e",)
    record.detail = "value registered-secret-9d8e"
    try:
        raise ValueError("boom registered-secret-9d8e")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "registered-secret-9d8e" not in line
    entry = json.loads(line)
    assert entry["message"] == "got [secure]"
    assert entry["detail"] == "value [secure]"
    assert "boom [secure]" in entry["exception"]


def test_json_formatter_writes_one_object_with_the_extra_fields():
    record = logging.LogRecord("importer.client", logging.INFO, __file__, 1, "429 %s", ("x",), None)
    record.client_request_id = "c-1"
    record.request_id = "r-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO" and entry["logger"] == "importer.client"
    assert entry["message"] == "429 x"
    assert (entry["client_request_id"], entry["request_id"]) == ("c-1", "r-1")
    assert entry["time"].endswith("Z")
