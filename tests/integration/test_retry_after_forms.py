"""The client against the emulator's own throttle in each Retry-After form Graph uses.

GRAPH.md: usually whole seconds (``41``), sometimes fractional (``2.128``), and from Intune's
backend often none, with a ``TooManyRequests`` error whose message is itself a JSON string
(then the client backs off on its own). The waits here are real: the emulator's window is
on the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from helpers import CLIENT_TOKEN, body

from importer.emulator import GraphEmulator
from importer.model import COLLECTION_PATH
from importer.outcome import CREATED
from importer.send.auth import StaticToken
from importer.send.client import GraphClient, Verdict, classify
from importer.send.retry import RetryPolicy


class RealSleeps:
    """Sleeps for real and records every wait the client (and its pacer) asked for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


def client_for(emulator: GraphEmulator, sleeps: RealSleeps, rng: random.Random) -> GraphClient:
    emulator.config.static_tokens = frozenset({CLIENT_TOKEN})
    policy = RetryPolicy(
        max_attempts=8, deadline=60, backoff_base=0.4, backoff_cap=2.0, sleep=sleeps, rng=rng
    )
    return GraphClient(
        emulator.base_url + COLLECTION_PATH, StaticToken(CLIENT_TOKEN), policy=policy
    )


@pytest.mark.parametrize("form", ["whole", "fractional"])
async def test_client_waits_the_throttles_retry_after(emulator: GraphEmulator, form: str) -> None:
    emulator.configure(
        {"write_limit": 1, "write_window": 0.6, "retry_after": form, "count_throttled": True}
    )
    sleeps = RealSleeps()
    async with client_for(emulator, sleeps, random.Random(1)) as client:
        first = await client.create(body(1))
        second = await client.create(body(2))
    assert first.status == second.status == CREATED
    assert second.attempts == 2
    assert emulator.stats["throttled"] == 1
    # whole: 0.6 s rounded up to 1; fractional: the 0.6 s itself, to the millisecond
    expected = 1.0 if form == "whole" else pytest.approx(0.6, abs=0.05)
    assert sleeps.waits[0] == expected
    assert len(emulator.records) == 2


async def test_client_backs_off_on_its_own_when_retry_after_is_absent(
    emulator: GraphEmulator,
) -> None:
    emulator.configure(
        {"write_limit": 1, "write_window": 0.5, "retry_after": "absent", "count_throttled": False}
    )
    sleeps = RealSleeps()
    policy_rng = random.Random(5)
    twin = RetryPolicy(backoff_base=0.4, backoff_cap=2.0, rng=random.Random(5))
    async with client_for(emulator, sleeps, policy_rng) as client:
        await client.create(body(1))
        second = await client.create(body(2))
    assert second.status == CREATED and second.attempts >= 2
    throttled = emulator.stats["throttled"]
    assert throttled == second.attempts - 1
    # every wait is the policy's own exponential backoff with jitter, in order
    assert sleeps.waits == [twin.backoff(n) for n in range(1, throttled + 1)]
    assert client.stats.throttled == throttled


def test_intunes_answer_without_retry_after_is_a_retry_with_no_server_wait() -> None:
    message = json.dumps({"_version": 3, "Message": "An error has occurred", "RetryAfter": None})
    payload = {"error": {"code": "TooManyRequests", "message": message}}
    result = classify(429, {}, payload)
    assert result.verdict is Verdict.RETRY
    assert result.retry_after is None
    assert (result.error_code, result.error_message) == ("TooManyRequests", message)
    policy = RetryPolicy(rng=random.Random(2))
    assert policy.wait_for(1, result.retry_after) == RetryPolicy(rng=random.Random(2)).backoff(1)


@pytest.mark.parametrize(("header", "seconds"), [("41", 41.0), ("2.128", 2.128), (None, None)])
def test_classify_reads_each_retry_after_form(header: str | None, seconds: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert classify(429, headers, None).retry_after == seconds
