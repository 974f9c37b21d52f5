"""What happened to one input record: the value every report line is made from."""

from __future__ import annotations

from dataclasses import dataclass

CREATED = "created"  # Graph answered 201; ``id`` is the new object's id
REJECTED = "rejected"  # invalid in the file, or refused by Graph with a 4xx: fix the row
FAILED = "failed"  # not created: retries exhausted, or never sent (run aborted/interrupted)
UNKNOWN = "unknown"  # sent, but no answer: it may or may not exist in Graph
VALID = "valid"  # validate / dry-run / plan: would be sent
SKIPPED = "skipped"  # already created with the same body (journal): not sent
CHANGED = "changed"  # already created with another body: not sent (``--update`` PATCHes it)
UPDATED = "updated"  # PATCHed to the id the journal knows
EXCLUDED = "excluded"  # not a certificate (a denied or pending request): never sent
DELETED = "deleted"  # verify --delete-duplicates removed this extra copy (not a row status)
INVALID_ROW = "InvalidRow"  # the error code of a row rejected by validation
NOT_SENT = "NotSent"  # the error code of a failed row that was never sent (the run stopped)
STATUSES = (CREATED, UPDATED, SKIPPED, CHANGED, EXCLUDED, REJECTED, FAILED, UNKNOWN, VALID)
DONE = frozenset({CREATED, UPDATED, SKIPPED})  # the row is in Graph: nothing left to do
SETTLED = DONE | {EXCLUDED}  # nothing left to do, in Graph or not meant for it
RETRY_STATUSES = (FAILED, UNKNOWN)  # what ``retry`` sends again from a run's failed.csv


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one record."""

    status: str
    id: str = ""
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    attempts: int = 0
    request_id: str = ""

    @property
    def done(self) -> bool:
        """True when the record is in Graph (nothing left to do for it)."""
        return self.status in DONE

    def journal_error(self) -> str:
        """The error the journal keeps for the row: ``code: message``, or "" without one.

        :func:`parse_journal_error` reads it back.
        """
        return f"{self.error_code}: {self.error_message}" if self.error_code else ""

    def import_error(self) -> str:
        """The ``import_error`` cell of failed.csv: ``status: code: message``.

        :func:`import_error_prefixes` gives the starts ``retry`` selects rows by.
        """
        return f"{self.status}: {self.error_code}: {self.error_message}"


def import_error_prefixes(statuses: tuple[str, ...]) -> tuple[str, ...]:
    """The starts of the ``import_error`` cells of rows with one of ``statuses``."""
    return tuple(f"{status}:" for status in statuses)


def parse_journal_error(text: str) -> tuple[str, str]:
    """The (code, message) of an error written by :meth:`Outcome.journal_error`."""
    code, _, message = text.partition(": ")
    return code, message
