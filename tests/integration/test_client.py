"""The Graph client against the emulator over loopback: verdicts, retries, waits, tokens."""

from __future__ import annotations

import socket

import pytest
from helpers import CLIENT_TOKEN, body, make_client, thumb

from importer.errors import AuthenticationFailed, PermissionDenied
from importer.input.mapping import row_key
from importer.model import COLLECTION_PATH
from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN
from importer.send.auth import CredentialTokens, StaticToken
from importer.send.client import GraphClient, Verdict, classify
from importer.send.retry import RetryPolicy


async def test_created_returns_the_id_the_emulator_holds(emulator, clock):
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == CREATED
    assert outcome.http_status == 201
    assert outcome.attempts == 1
    assert outcome.request_id
    stored = emulator.records[outcome.id]
    assert stored["certificateThumbprint"] == thumb(1)
    assert row_key(stored) == (thumb(1), "PC-1")


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [("1.5", 1.5), ("2.128", 2.128), ("7", 7.0)],
)
async def test_429_waits_retry_after_then_creates(emulator, clock, retry_after, expected_wait):
    emulator.script([{"status": 429, "retry_after": retry_after}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == CREATED
    assert outcome.attempts == 2
    assert clock.sleeps and clock.sleeps[0] >= expected_wait
    assert client.stats.throttled == 1
    assert client.stats.retries == 1
    assert len(emulator.records) == 1


async def test_429_pauses_every_worker(emulator, clock):
    emulator.script([{"status": 429, "retry_after": "3"}])
    async with make_client(emulator, clock) as client:
        first = await client.create(body(1))
        assert client.pacer.remaining == 0  # the throttled worker itself waited it out
        client.pacer.pause(3)
        start = clock.now
        second = await client.create(body(2))
    assert first.status == second.status == CREATED
    assert clock.now - start >= 3


@pytest.mark.parametrize("retry_after", ["0", "abc", None])
async def test_zero_or_unreadable_retry_after_backs_off_instead_of_spinning(
    emulator, clock, retry_after
):
    emulator.script([{"status": 429, "retry_after": retry_after}] * 1)
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == CREATED
    assert clock.sleeps and clock.sleeps[0] > 0


async def test_503_then_201_is_retried(emulator, clock):
    emulator.script([{"status": 503}, {"status": 429, "retry_after": None}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == CREATED
    assert outcome.attempts == 3
    assert clock.sleeps[0] >= 1.0  # the 503 carried Retry-After: 1
    assert clock.sleeps[1] > 0


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_create_answered_5xx_is_unknown_and_not_sent_again(emulator, clock, status):
    # the backend may have committed it: the pipeline looks it up before anything is re-posted
    emulator.script([{"action": f"created_{status}"}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("unknown", status, 1)
    assert len(emulator.records) == 1
    assert emulator.stats["posts"] == 1


async def test_a_retry_after_longer_than_max_retry_after_ends_the_retries_at_once(emulator, clock):
    emulator.script([{"status": 429, "retry_after": "99999999"}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
        assert client.pacer.remaining == 0.0  # nobody waits for it: that row gave up
    assert (outcome.status, outcome.attempts) == ("failed", 1)
    assert "Graph asked to wait 99999999 s, longer than max_retry_after (300 s)" in (
        outcome.error_message
    )
    assert all(s <= 300.0 for s in clock.sleeps)
    assert emulator.records == {}


async def test_retries_exhausted_is_failed_with_last_error(emulator, clock):
    emulator.script([{"status": 503, "times": 10}])
    async with make_client(emulator, clock, attempts=3) as client:
        outcome = await client.create(body())
    assert outcome.status == FAILED
    assert outcome.attempts == 3
    assert outcome.http_status == 503
    assert outcome.error_code == "ServiceUnavailable"
    assert emulator.records == {}


async def test_400_rejects_the_row_with_graphs_code(emulator, clock):
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body(certificateRevokeStatus="String"))
    assert outcome.status == REJECTED
    assert outcome.http_status == 400
    assert outcome.error_code == "BadRequest"
    assert "certificateRevokeStatus" in outcome.error_message
    assert emulator.stats["posts"] == 1


async def test_403_aborts(emulator, clock):
    emulator.config.forbidden = True
    async with make_client(emulator, clock) as client:
        with pytest.raises(PermissionDenied, match="403"):
            await client.create(body())


async def test_401_twice_aborts_with_static_token(emulator, clock):
    async with make_client(emulator, clock, tokens=StaticToken("not-accepted")) as client:
        with pytest.raises(AuthenticationFailed, match="cannot be renewed"):
            await client.create(body())


@pytest.mark.parametrize("action", ["created_drop", "drop"])
async def test_dropped_connection_after_send_is_unknown_and_not_reposted(emulator, clock, action):
    emulator.script([{"action": action}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == UNKNOWN
    assert emulator.stats["posts"] == 1  # never sent twice
    assert len(emulator.records) == (1 if action == "created_drop" else 0)


async def test_500_is_unknown(emulator, clock):
    emulator.script([{"status": 500}])
    async with make_client(emulator, clock) as client:
        outcome = await client.create(body())
    assert outcome.status == UNKNOWN
    assert outcome.http_status == 500
    assert emulator.stats["posts"] == 1


async def test_connection_refused_is_retried_then_failed(clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = RetryPolicy(max_attempts=3, deadline=60, sleep=clock.sleep, clock=clock)
    url = f"http://127.0.0.1:{port}/beta{COLLECTION_PATH}"
    async with GraphClient(url, StaticToken(CLIENT_TOKEN), policy=policy) as client:
        outcome = await client.create(body())
    assert outcome.status == FAILED
    assert outcome.attempts == 3
    assert outcome.error_code == "ConnectionFailed"


async def test_managed_identity_token_from_emulator_and_401_refreshes_once(
    emulator, clock, monkeypatch
):
    from azure.identity.aio import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.config.identity_header)
    tokens = CredentialTokens(
        ManagedIdentityCredential(), f"{emulator.root_url}/.default", "managed_identity"
    )
    try:
        async with make_client(emulator, clock, tokens=tokens) as client:
            first = await client.create(body(1))
            emulator.expire_tokens()  # the cached token is now refused with 401
            second = await client.create(body(2))
    finally:
        await tokens.close()
    assert first.status == second.status == CREATED
    assert client.stats.token_refreshes == 1
    assert emulator.stats["token_requests"] == 2
    assert emulator.stats["unauthorized"] == 1


@pytest.mark.parametrize(
    ("status", "headers", "payload", "verdict"),
    [
        (201, {}, {"id": "x"}, Verdict.CREATED),
        (201, {}, {}, Verdict.UNKNOWN),
        (429, {"Retry-After": "2"}, None, Verdict.RETRY),
        (509, {}, None, Verdict.UNKNOWN),  # not a refusal before work: ambiguous for a POST
        (401, {}, None, Verdict.REAUTH),
        (403, {}, None, Verdict.ABORT),
        (404, {}, None, Verdict.ABORT),
        (409, {}, {"error": {"code": "Conflict", "message": "m"}}, Verdict.REJECTED),
        (502, {}, None, Verdict.UNKNOWN),
    ],
)
def test_classify_table(status, headers, payload, verdict):
    result = classify(status, headers, payload)
    assert result.verdict is verdict
    if status == 429:
        assert result.retry_after == 2.0
    if status == 409:
        assert (result.error_code, result.error_message) == ("Conflict", "m")


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.2:{port}/beta" + COLLECTION_PATH,  # another loopback host
        "http://127.0.0.1:1/beta" + COLLECTION_PATH,  # another port
        "https://127.0.0.1:{port}/beta" + COLLECTION_PATH,  # another scheme
        "https://evil.example/beta" + COLLECTION_PATH,
    ],
)
async def test_a_link_to_another_origin_is_not_followed_with_the_token(emulator, clock, link):
    async with make_client(emulator, clock) as client:
        result = await client.get_page(link.format(port=emulator.port))
        same = await client.get_page(client.collection_url + "?$top=1")
    assert (result.verdict, result.error_code) == (Verdict.UNKNOWN, "ForeignLink")
    assert "tokens go only to the Graph root" in result.error_message
    assert same.verdict is Verdict.CREATED
    assert emulator.stats["requests"] == 1  # only the link on the collection's own origin


async def test_a_short_lived_token_is_fetched_once_not_on_every_request(
    emulator, clock, monkeypatch
):
    """A token that lives less than twice the renewal margin (120 s against 300 s) is kept
    for half its life: 20 creates take one token, not one each."""
    from azure.identity.aio import ManagedIdentityCredential

    emulator.config.token_lifetime = 120
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.config.identity_header)
    tokens = CredentialTokens(
        ManagedIdentityCredential(), f"{emulator.root_url}/.default", "managed_identity"
    )
    try:
        async with make_client(emulator, clock, tokens=tokens) as client:
            outcomes = [await client.create(body(n)) for n in range(1, 21)]
    finally:
        await tokens.close()
    assert {o.status for o in outcomes} == {CREATED}
    assert tokens.fetches == 1
    assert emulator.stats["token_requests"] == 1
