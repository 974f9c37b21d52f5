"""The shared throttle budget: parsing, even pacing, pauses, the measured pace; batching over
the emulator."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from helpers import FakeClock, body, make_client, thumb

from importer.emulator import EmulatorConfig, GraphEmulator
from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN
from importer.send.pacing import HEADROOM, Pacer, RateLimit


@pytest.mark.parametrize(
    ("text", "requests", "window"),
    [("100/20s", 100, 20.0), ("5/s", 5, 1.0), ("300/1m", 300, 60.0), ("10/500ms", 10, 0.5)],
)
def test_rate_limit_parse(text, requests, window):
    limit = RateLimit.parse(text)
    assert (limit.requests, limit.window) == (requests, window)


@pytest.mark.parametrize("text", ["fast", "100", "/20s", "10/0s", "-1/s"])
def test_rate_limit_parse_refuses(text):
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)


async def test_requests_are_spaced_evenly_with_no_initial_burst(clock: FakeClock):
    pacer = Pacer(RateLimit(5, 1.0), clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(10):
        await pacer.wait()
        starts.append(clock.now)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [round(0.2 / HEADROOM, 6)] * 9


async def test_concurrent_waiters_share_one_budget(clock: FakeClock):
    pacer = Pacer(RateLimit(10, 1.0), clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(pacer.wait() for _ in range(20)))
    assert clock.now - 1000.0 >= 1.9 - 1e-9  # 20 requests at 10/s: the last starts at 1.9 s


async def test_batch_items_count_against_the_budget(clock: FakeClock):
    pacer = Pacer(RateLimit(20, 1.0), clock=clock, sleep=clock.sleep)
    await pacer.wait(20)
    await pacer.wait(20)
    assert clock.now - 1000.0 == pytest.approx(1.0 / HEADROOM)


async def test_a_429_pauses_everybody_and_sets_the_pace_from_what_went_through(clock: FakeClock):
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    assert pacer.rate == pytest.approx(5.0 * HEADROOM)
    pacer.succeeded(70)  # 70 in the last 20 s, then the window is full: the share is 3.5/s
    pacer.throttled(3.0)
    assert pacer.remaining == pytest.approx(3.0)
    assert pacer.rate == pytest.approx(3.5 * HEADROOM)
    start = clock.now
    await pacer.wait()
    assert clock.now - start >= 3.0
    clock.now += 20.0 * 20  # no 429 for 20 windows: the climb reaches the configured rate
    assert pacer.rate == pytest.approx(5.0 * HEADROOM)


async def test_repeated_throttling_never_stops_sending(clock: FakeClock):
    pacer = Pacer(RateLimit(100, 20.0), clock=clock, sleep=clock.sleep)
    for _ in range(50):
        clock.now += 0.1  # 50 separate events, nothing going through
        pacer.throttled(None)
    assert pacer.rate == pytest.approx(0.5 * HEADROOM)  # the floor: 10% of the configured rate


async def test_unlimited_pacer_does_not_wait(clock: FakeClock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        await pacer.wait()
    assert clock.sleeps == []


async def test_paced_client_stays_under_the_emulator_throttle():
    config = EmulatorConfig(write_limit=10, write_window=1.0, static_tokens=frozenset({"t"}))
    async with GraphEmulator(config) as emulator:
        clock = FakeClock()
        client = make_client(emulator, clock)
        client.pacer = Pacer(RateLimit(9, 1.0))  # real clock: the emulator counts real time
        async with client:
            outcomes = await asyncio.gather(*(client.create(body(n)) for n in range(25)))
    assert {o.status for o in outcomes} == {CREATED}
    assert emulator.stats["throttled"] == 0


async def test_batch_creates_every_item_in_one_call(emulator, clock):
    async with make_client(emulator, clock) as client:
        outcomes = await client.create_batch([body(n) for n in range(1, 21)])
    assert [o.status for o in outcomes] == [CREATED] * 20
    assert client.stats.requests == 1
    assert client.stats.items == 20
    held = {r["certificateThumbprint"]: i for i, r in emulator.records.items()}
    assert [o.id for o in outcomes] == [held[thumb(n)] for n in range(1, 21)]


async def test_batch_retries_only_throttled_items_with_their_retry_after(emulator, clock):
    emulator.script([{"status": 429, "retry_after": "2.5", "thumbprint": thumb(3)}])
    async with make_client(emulator, clock) as client:
        outcomes = await client.create_batch([body(n) for n in range(1, 6)])
    assert [o.status for o in outcomes] == [CREATED] * 5
    assert [o.attempts for o in outcomes] == [1, 1, 2, 1, 1]
    assert client.stats.requests == 2
    assert client.stats.items == 6
    assert client.stats.throttled == 1
    assert clock.sleeps[0] >= 2.5
    assert emulator.stats["posts"] == 6  # every item sent counts, the throttled one too
    assert len(emulator.records) == 5


async def test_batch_rejects_a_bad_item_and_creates_the_rest(emulator, clock):
    bodies = [body(1), body(2, certificateRevokeStatus="String"), body(3)]
    async with make_client(emulator, clock) as client:
        outcomes = await client.create_batch(bodies)
    assert [o.status for o in outcomes] == [CREATED, REJECTED, CREATED]
    assert outcomes[1].error_code == "BadRequest"


async def test_batch_dropped_after_processing_is_unknown_for_every_item(emulator, clock):
    emulator.script([{"action": "created_drop", "thumbprint": thumb(2)}])
    async with make_client(emulator, clock) as client:
        outcomes = await client.create_batch([body(1), body(2)])
    assert [o.status for o in outcomes] == [UNKNOWN, UNKNOWN]
    assert len(emulator.records) == 2
    assert client.stats.requests == 1


async def test_batch_item_throttled_over_several_rounds_is_created_in_the_end(emulator, clock):
    emulator.script([{"status": 429, "retry_after": "1", "thumbprint": thumb(2), "times": 3}])
    async with make_client(emulator, clock) as client:
        outcomes = await client.create_batch([body(1), body(2), body(3)])
    assert [o.status for o in outcomes] == [CREATED] * 3
    assert [o.attempts for o in outcomes] == [1, 4, 1]
    assert client.stats.requests == 4
    assert len(clock.sleeps) == 3 and all(s >= 1 for s in clock.sleeps)
    assert len(emulator.records) == 3


async def test_batch_item_throttled_every_time_fails_after_the_attempts(emulator, clock):
    emulator.script([{"status": 503, "retry_after": "1", "thumbprint": thumb(2), "times": 50}])
    async with make_client(emulator, clock, attempts=3) as client:
        outcomes = await client.create_batch([body(1), body(2)])
    assert [o.status for o in outcomes] == [CREATED, FAILED]
    assert outcomes[1].attempts == 3
    assert outcomes[1].error_message.startswith("gave up after 3 attempt(s)")
    assert client.stats.requests == 3
