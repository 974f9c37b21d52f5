"""The event loop choice: uvloop where installed, asyncio on request, a clear error otherwise."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from importer import aio
from importer.errors import UsageError
from importer.send.client import RequestIds

uvloop = pytest.importorskip("uvloop")


def test_uvloop_is_the_default_where_installed(monkeypatch):
    monkeypatch.delenv(aio.EVENT_LOOP_ENV, raising=False)
    assert aio.loop_name() == "uvloop"

    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert aio.run(kind()).startswith("uvloop")


def test_asyncio_can_be_chosen(monkeypatch):
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, "asyncio")

    async def kind() -> type:
        return type(asyncio.get_running_loop())

    assert not aio.run(kind()).__module__.startswith("uvloop")


def test_an_unknown_loop_is_a_usage_error(monkeypatch):
    with pytest.raises(UsageError, match="CERTIMPORT_EVENT_LOOP must be one of"):
        aio.loop_factory("tokio")


def test_client_request_ids_are_distinct_version_4_guids():
    import uuid

    first, second = RequestIds(), RequestIds()
    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:3] + ids[-3:]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
@pytest.mark.parametrize(("setting", "threads"), [(None, 1), ("2", 2)])
def test_numpy_starts_no_blas_threads_unless_the_operator_asks(monkeypatch, setting, threads):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    if setting is not None:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", setting)
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importer, numpy, os; print(len(os.listdir('/proc/self/task')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if threads == 1:
        assert int(count) == 1
    elif (os.cpu_count() or 1) > 1:
        assert int(count) > 1
