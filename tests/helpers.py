"""What tests of every layer share: paths, valid rows and bodies, files, the CLI, clocks, emulators.

Fixtures live in ``conftest.py`` (``clock``, ``emulator``, ``graph``, ``isolated``); this module
holds the plain functions and classes, imported as ``from helpers import ...`` (``pythonpath``
in pyproject.toml puts ``tests/`` on the path).

``importer.cli`` and ``importer.send`` are imported inside the functions that use them, so that a
module of theirs being moved breaks only the tests that call those functions, not every layer.
"""

from __future__ import annotations

import asyncio
import csv
import ssl
import threading
from collections.abc import Callable, Collection
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from click.testing import CliRunner

from importer.emulator import EmulatorConfig, GraphEmulator

if TYPE_CHECKING:
    from importer.send.client import GraphClient

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# --- columns and valid rows ------------------------------------------------------------------

ODATA = "#microsoft.graph.managedAllDeviceCertificateState"
HEADER = [
    "certificateThumbprint",
    "certificateSerialNumber",
    "managedDeviceDisplayName",
    "userPrincipalName",
    "certificateIssuerName",
    "certificateSubjectName",
    "certificateRevokeStatus",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateKeyUsages",
    "certificateExtendedKeyUsages",
]
# Every writable property, in Graph's order (HEADER lacks the optional last-change date).
ALL_COLUMNS = [*HEADER[:7], "certificateRevokeStatusLastChangeDateTime", *HEADER[7:]]


def thumb(n: int) -> str:
    """A distinct valid thumbprint for row ``n``."""
    return f"{n:040X}"


def row(n: int = 1, **changes: str) -> dict[str, str]:
    """A valid inventory row ``n``, by column (HEADER, in order); keyword arguments replace cells.

    No cell holds a comma, a quote or a line break, so a row joined with commas is a faithful
    CSV record; its device name is ``PC-n``.
    """
    values = {
        "certificateThumbprint": thumb(n),
        "certificateSerialNumber": f"{n:X}",
        "managedDeviceDisplayName": f"PC-{n}",
        "userPrincipalName": f"user{n}@contoso.com",
        "certificateIssuerName": "CN=Contoso CA",
        "certificateSubjectName": f"CN=user{n}",
        "certificateRevokeStatus": "none",
        "certificateIssuanceDateTime": "2025-01-05T10:32:00Z",
        "certificateExpirationDateTime": "2026-01-05T10:32:00Z",
        "certificateKeyUsages": "160",
        "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2",
    }
    values.update(changes)
    return values


def cells(n: int = 1, **changes: str) -> list[str]:
    """The cells of :func:`row` ``n``, in HEADER order."""
    return list(row(n, **changes).values())


def report_cells(n: int) -> list[str]:
    """:func:`cells` ``n`` with an issuer holding a comma, so that every CSV written of it
    quotes a Graph column: the rows the report tests take through failed.csv."""
    return cells(n, certificateIssuerName="CN=Contoso CA, O=Contoso")


def record(n: int = 1, *, quote: Collection[str] = (), **changes: str) -> str:
    """:func:`row` ``n`` as one CSV record (no line ending) of ALL_COLUMNS (the last-change date
    empty unless given). A cell is quoted when it holds a comma, a quote or a line break, or
    when its column is in ``quote``."""
    values = row(n, **changes)
    out = []
    for column in ALL_COLUMNS:
        value = values.get(column, "")
        if column in quote or any(c in value for c in ',"\n'):
            value = '"' + value.replace('"', '""') + '"'
        out.append(value)
    return ",".join(out)


def body(n: int = 1, **changes: Any) -> dict[str, Any]:
    """The Graph body :func:`row` ``n`` is sent as; keyword arguments replace properties, and a
    change to None drops the property."""
    sent: dict[str, Any] = {"@odata.type": ODATA, **row(n)}
    sent["certificateKeyUsages"] = int(sent["certificateKeyUsages"])
    sent.update(changes)
    return {k: v for k, v in sent.items() if v is not None}


# --- files -----------------------------------------------------------------------------------

# Cells a spreadsheet would run, padding, quotes and newlines: failed.csv must keep them all.
TRICKY = [
    '=HYPERLINK("http://x")',
    "-1",
    "+cmd",
    "@SUM(A1)",
    "  spaced  ",
    'say "hi", twice',
    "two\nlines",
    "crlf\r\ninside",
    "007",
    "NA",
    "",
]


def write_inventory(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows as a Graph-shaped inventory CSV (HEADER)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_results(out_dir: Path, name: str = "results.csv") -> list[dict[str, str]]:
    """The rows of a report CSV, by column."""
    with (out_dir / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    """Write rows of cells (the first one the header) with the csv module's quoting."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def read_csv(path: Path) -> list[list[str]]:
    """Every row of a CSV file, header included, as lists of cells."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- the command line ------------------------------------------------------------------------


class Invoked(NamedTuple):
    """What a command-line run gave: ``code, stdout, stderr = invoke(...)``."""

    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str, stdin: bytes | None = None, catch_exceptions: bool = False) -> Invoked:
    """Run ``certimport ARGS`` in this process (click's CliRunner), ``stdin`` as its input.

    An exception the CLI does not handle propagates, unless ``catch_exceptions`` (then it is
    exit code 1, as click's runner reports it).
    """
    from importer.cli import cli

    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=catch_exceptions)
    return Invoked(result.exit_code, result.stdout, result.stderr)


# --- secrets ---------------------------------------------------------------------------------

CONFIG_SECRET = "eyJ0eXAi.secret-token-value.4f2a"  # a token that must never show
SECRET_REFUSED = (
    "{path}: {where} is a secret and is not read from a config file; remove it and set the "
    "environment variable {variable} instead"
)

# --- a test clock and emulators --------------------------------------------------------------

STATIC_TOKEN = "static-secret-7f3a9c1e"  # the token the `graph` emulator accepts
CLIENT_TOKEN = "test-token"  # the token make_client's emulator accepts


class FakeClock:
    """A monotonic clock that moves only when something sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class ThreadedEmulator:
    """An emulator in a background thread, for tests that run the CLI (its own event loop)."""

    def __init__(self, config: EmulatorConfig, ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emulator = GraphEmulator(config)
        self.call(lambda: self.emulator.start(ssl_context=ssl_context))

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` (sync or async) in the emulator's loop and return its result."""

        async def run() -> Any:
            result = func(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def records(self) -> list[dict[str, Any]]:
        return self.call(lambda: list(self.emulator.records.values()))

    def stats(self) -> dict[str, int]:
        return self.call(lambda: dict(self.emulator.stats))

    def close(self) -> None:
        self.call(self.emulator.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def make_client(
    emulator: GraphEmulator, clock: FakeClock, *, tokens: Any = None, attempts: int = 5
) -> GraphClient:
    """A GraphClient for ``emulator`` (which then accepts CLIENT_TOKEN), sleeping on ``clock``."""
    from importer.model import COLLECTION_PATH
    from importer.send.auth import StaticToken
    from importer.send.client import GraphClient
    from importer.send.retry import RetryPolicy

    emulator.config.static_tokens = frozenset({CLIENT_TOKEN})
    policy = RetryPolicy(max_attempts=attempts, deadline=3600, sleep=clock.sleep, clock=clock)
    return GraphClient(
        emulator.base_url + COLLECTION_PATH,
        tokens or StaticToken(CLIENT_TOKEN),
        policy=policy,
        concurrency=4,
        request_timeout=5,
    )


# --- report.html -----------------------------------------------------------------------------


class Page(HTMLParser):
    """What the tests read off a page: counts, error codes, links, resources, scripts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.codes: list[str] = []
        self.links: list[str] = []
        self.fetches: list[str] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        if "data-count" in found and found.get("id", "").startswith("count-"):
            self.counts[found["id"].removeprefix("count-")] = int(found["data-count"] or 0)
        if tag == "tr" and "data-code" in found:
            self.codes.append(found["data-code"] or "")
        if tag == "a":
            self.links.append(found.get("href") or "")
        for name in ("src", "srcset", "data", "poster"):
            if name in found:
                self.fetches.append(f"{tag} {name}={found[name]}")
        if tag == "link":
            self.fetches.append(f"link {found.get('href')}")


def validated(src: Any, check: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every chunk of ``src`` through the validator ``check``: (bodies of the valid rows,
    problems as the operator reads them, with ``f`` as the file's name)."""
    import numpy as np

    from importer.input.mapping import build_bodies

    sent: list[dict[str, Any]] = []
    problems: list[str] = []
    for chunk in src.chunks():
        vc = check.validate(chunk)
        sent += build_bodies(vc.values, np.flatnonzero(vc.valid))
        problems += [p.describe("f") for pos in sorted(vc.problems) for p in vc.problems[pos]]
    return sent, problems
