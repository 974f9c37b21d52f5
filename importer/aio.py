"""The event loop every command runs on: uvloop where it is installed, else asyncio's own.

uvloop's loop and transports are written in C; an aiohttp client spends about a third less CPU
per request on it, which is what a run against a fast Graph (or the emulator) is bound by.
``CERTIMPORT_EVENT_LOOP=asyncio`` chooses the standard loop (to rule uvloop out, say).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from importer.errors import UsageError

T = TypeVar("T")
EVENT_LOOP_ENV = "CERTIMPORT_EVENT_LOOP"
LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the chosen loop (None: asyncio's default); raises UsageError."""
    choice = (choice if choice is not None else os.environ.get(EVENT_LOOP_ENV, "auto")).strip()
    if choice not in LOOPS:
        raise UsageError(f"{EVENT_LOOP_ENV} must be one of {', '.join(LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise UsageError(f"{EVENT_LOOP_ENV}=uvloop but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def loop_name(choice: str | None = None) -> str:
    """``uvloop`` or ``asyncio``: the loop :func:`run` would use."""
    return "asyncio" if loop_factory(choice) is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        factory = loop_factory()
    except UsageError:
        main.close()  # never started: close it so that it is not reported as never awaited
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
