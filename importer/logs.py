"""Logging: the ``importer`` logger's handlers, text or JSON lines, and a redacting filter.

Levels: the console shows warnings (``-v`` adds retries and throttling at INFO, ``-vv`` one
line per row outcome at DEBUG, ``-q`` errors only); ``--log-file`` appends INFO (DEBUG with
``-vv``) whatever the console shows, so that a nightly job keeps an audit trail. In JSON mode
every record is one JSON object per line, with the ``extra=`` fields of the call (such as
``client_request_id`` and ``request_id``) as top-level keys.

Secrets never reach a log: code never logs tokens or headers, and every handler also carries a
:class:`RedactingFilter` (defence in depth) that masks bearer tokens, JWTs, ``Authorization``
values, ``secret=``-style pairs and every value registered with :func:`register_secret` (the
static token, ``AZURE_CLIENT_SECRET``, the tokens the client obtains, ...).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
REDACTED = "[secure]"
# Environment variables whose values are secrets, whichever auth method is in use.
SECRET_VARIABLES = (
    "CERTIMPORT_ACCESS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    "IDENTITY_HEADER",
    "MSI_SECRET",
)
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(run_id)s]: %(message)s"
# Loggers whose records our handlers take: ours, and azure-identity's (its warnings would
# otherwise reach stderr through logging's last-resort handler, outside JSON mode).
_OWN = "importer"
_AZURE = "azure"
# LogRecord attributes that are not ``extra=`` fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_PATTERNS = (
    # "Authorization: Bearer x", "authorization=x", "'Authorization': 'x'"
    (
        re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer\s+)?[^\s'\",}]+"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + REDACTED),
    # JSON Web Tokens (Entra ID access tokens, federated assertions): header.payload.signature
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # client_secret=x, "access_token": "x", password: x, x-identity-header: x, ...
    (
        re.compile(
            r"(?i)\b((?:client_secret|client_assertion|access_token|refresh_token|password|"
            r"secret|x-identity-header|identity_header)['\"]?\s*[:=]\s*['\"]?)[^\s'\"&,}]+"
        ),
        r"\1" + REDACTED,
    ),
)
# Replaced, never mutated: log records are also formatted on the chunk-reading thread.
_secrets: frozenset[str] = frozenset()
_run_id = "-"  # the command's run id, on every record (set_run_id)


def new_run_id() -> str:
    """A run id: the UTC start time to the microsecond, ``2026-12-02T151500.123456Z``.

    One per command: the journal, summary.json, report.html, the metrics and every log record
    carry the same one.
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S.%fZ")


def set_run_id(run_id: str) -> None:
    """Stamp every log record from now on with ``run_id``."""
    global _run_id
    _run_id = run_id or "-"


def run_id() -> str:
    """The run id records are stamped with ("-" before a command sets one)."""
    return _run_id


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log record from now on."""
    global _secrets
    if value and len(value) >= MIN_SECRET_LENGTH and value not in _secrets:
        _secrets = _secrets | {value}


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register the values of the secret-bearing variables (:data:`SECRET_VARIABLES`)."""
    env = os.environ if environ is None else environ
    for name in SECRET_VARIABLES:
        register_secret(env.get(name))


def redact(text: str) -> str:
    """``text`` with every secret it may contain replaced by ``[secure]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, its ``extra=`` strings and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RunIdFilter(logging.Filter):
    """Gives every record the command's ``run_id`` (unless the call gave its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = _run_id
        return True


class _SkipEchoed(logging.Filter):
    """Drops records the CLI has already shown on the console (``extra={"echoed": True}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "echoed", False)


def _utc(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "echoed" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def json_line(logger: logging.Logger, level: int, message: str, **fields: Any) -> str:
    """One record of ``logger`` as the JSON console writes it (stamped and redacted)."""
    record = logger.makeRecord(logger.name, level, "", 0, message, (), None, extra=fields)
    RunIdFilter().filter(record)
    RedactingFilter().filter(record)
    return JsonFormatter().format(record)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (the progress display redirects it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        return None


def _open_log_file(path: Path) -> logging.FileHandler:
    """Append to ``path`` (created mode 0600: rows name devices and users)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    return logging.FileHandler(path, mode="a", encoding="utf-8")


def _formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT)


def console_level(verbose: int, quiet: bool) -> int:
    """The console's level for ``-v`` count and ``-q``."""
    if quiet:
        return logging.ERROR
    return logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG


def configure_logging(
    *,
    verbose: int = 0,
    quiet: bool = False,
    log_format: LogFormat = "text",
    log_file: str | os.PathLike[str] | None = None,
    file_format: LogFormat | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Install the console (and file) handlers on the ``importer`` and ``azure`` loggers.

    Replaces the handlers of a previous call (tests run many commands in one process). Raises
    OSError when the log file cannot be opened.
    """
    register_environment_secrets()
    for value in secrets:
        register_secret(value)
    file_handler = _open_log_file(Path(log_file)) if log_file else None
    redacting = RedactingFilter()
    stamping = RunIdFilter()
    console = _StderrHandler()
    console.setLevel(console_level(verbose, quiet))
    console.setFormatter(_formatter(log_format))
    console.addFilter(stamping)
    console.addFilter(redacting)
    console.addFilter(_SkipEchoed())
    handlers: list[logging.Handler] = [console]
    if file_handler is not None:
        file_handler.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
        file_handler.setFormatter(_formatter(file_format or log_format))
        file_handler.addFilter(stamping)
        file_handler.addFilter(redacting)
        handlers.append(file_handler)
    levels = {
        _OWN: min(h.level for h in handlers),
        # azure-identity's INFO (every token request) only at -vv; its warnings always
        _AZURE: logging.INFO if verbose >= 2 else logging.WARNING,
    }
    for name, level in levels.items():
        logger = logging.getLogger(name)
        for old in logger.handlers:
            old.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = False


__all__ = [
    "LOG_FORMATS",
    "REDACTED",
    "JsonFormatter",
    "LogFormat",
    "RedactingFilter",
    "RunIdFilter",
    "configure_logging",
    "console_level",
    "json_line",
    "new_run_id",
    "redact",
    "register_environment_secrets",
    "register_secret",
    "run_id",
    "set_run_id",
]
