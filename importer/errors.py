"""The exceptions certimport raises, and the exit code each one means.

    CertImportError                 base; ``exit_code`` says how the CLI ends
    ├── UsageError                  bad arguments or configuration (exit 2)
    │   ├── ConfigError             every configuration problem, gathered (exit 2)
    │   ├── LockHeld                another run holds the target's journal (exit 2)
    │   └── JournalError            SQLite failed reading or writing the journal (exit 2)
    ├── InputError                  a file that cannot be read as an inventory (exit 2)
    ├── NothingToRetry              retry of a run with no failed or unknown rows (exit 0)
    └── RunAborted                  the run cannot go on; nothing more is sent (exit 3)
        ├── AuthenticationFailed    no token could be obtained, or Graph keeps refusing it
        └── PermissionDenied        Graph answered 403 on the collection

Third-party exceptions are translated into these at the one module that calls the library
(pandera in ``input.schema``, aiohttp in ``send.client``, azure-identity in ``send.auth``,
sqlite3 in ``run.journal``), chained with ``from``; the CLI turns them into one-line messages.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INTERNAL = 70  # a bug in certimport (EX_SOFTWARE): please report it with -vv output
EXIT_INTERRUPTED = 130


class CertImportError(Exception):
    """Base class of every error certimport reports to the operator."""

    exit_code = EXIT_USAGE


class UsageError(CertImportError):
    """Arguments or settings that make no sense together."""


class ConfigError(UsageError):
    """One or more configuration problems, reported together."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class InputError(CertImportError):
    """A file that cannot be read as an inventory at all (nothing is posted)."""

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        self.hint = hint
        where = path if line is None else f"{path}:{line}"
        if column:
            where += f": column {column}"
        text = f"{where}: {reason}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class NothingToRetry(CertImportError):
    """``retry`` found no row to send again: not an error (cron runs it every night)."""

    exit_code = EXIT_OK


class RunAborted(CertImportError):
    """Something every remaining row would also hit: the run stops sending."""

    exit_code = EXIT_ABORTED


class AuthenticationFailed(RunAborted):
    """No usable token: the credential failed, or Graph rejected a freshly obtained token."""


class PermissionDenied(RunAborted):
    """Graph refused access to the collection (403): the app lacks the permission or licence."""


class LockHeld(UsageError):
    """Another run holds the journal of this target."""


class JournalError(UsageError):
    """SQLite failed on the journal (a full disk, a damaged file)."""

    def __init__(self, path: object, exc: BaseException) -> None:
        self.path = path
        super().__init__(
            f"the journal failed: {path}: {exc}. Nothing more was sent. If the file is damaged, "
            "restore a backup of it; moving it aside starts afresh, and the next run then "
            "posts every row again (Graph would hold a duplicate of every row already created)"
        )
