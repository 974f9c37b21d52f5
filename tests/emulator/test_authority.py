"""The emulator as a sign-in authority over TLS: the token endpoint's grants and refusals (in
Entra ID's error shape) and the OpenID discovery document."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import trustme

from importer.emulator import COLLECTION_PATH, EmulatorConfig, GraphEmulator

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def authority(ca: trustme.CA) -> AsyncIterator[GraphEmulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    emulator = GraphEmulator(EmulatorConfig(client_secrets=frozenset({"right"}), seed=2))
    await emulator.start(ssl_context=context)
    try:
        yield emulator
    finally:
        await emulator.close()


@pytest.fixture
async def session(ca: trustme.CA) -> AsyncIterator[aiohttp.ClientSession]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client:
        yield client


def jwt(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part(header or {'alg': 'PS256', 'x5t#S256': 'abc'})}.{part(claims)}.c2ln"


async def token(
    session: aiohttp.ClientSession, emulator: GraphEmulator, form: dict[str, str]
) -> tuple[int, Any]:
    url = f"{emulator.root_url}/tenant-1/oauth2/v2.0/token"
    async with session.post(url, data=form) as answer:
        return answer.status, await answer.json()


BASE = {"grant_type": "client_credentials", "client_id": "app", "scope": "https://g/.default"}


async def test_a_secret_grant_gives_a_token_graph_accepts(
    authority: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    assert authority.root_url.startswith("https://127.0.0.1:")
    status, body = await token(session, authority, {**BASE, "client_secret": "right"})
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    async with session.get(authority.base_url + COLLECTION_PATH, headers=headers) as answer:
        assert answer.status == 200
    (grant,) = authority.grants
    assert (grant.tenant, grant.client_id, grant.credential) == ("tenant-1", "app", "client_secret")
    assert "right" not in repr(grant) and "right" not in repr(authority.config)


def certificate_claims(emulator: GraphEmulator, **changes: Any) -> dict[str, Any]:
    claims = {
        "aud": f"{emulator.root_url}/tenant-1/oauth2/v2.0/token",
        "iss": "app",
        "sub": "app",
        "exp": int(time.time()) + 600,
    }
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({**BASE, "grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({k: v for k, v in BASE.items() if k != "grant_type"}, 400, "invalid_request", 900144),
        ({k: v for k, v in BASE.items() if k != "client_id"}, 400, "invalid_request", 900144),
        ({**BASE, "scope": "https://g/User.Read"}, 400, "invalid_scope", 1002012),
        (BASE, 401, "invalid_client", 7000218),
        ({**BASE, "client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({**BASE, "client_assertion": "a.b.c"}, 400, "invalid_request", 900144),
        (
            {**BASE, "client_assertion": "not-a-jwt", "client_assertion_type": JWT_BEARER},
            401,
            "invalid_client",
            50027,
        ),
    ],
)
async def test_refusals_in_entra_ids_error_shape(
    authority: GraphEmulator,
    session: aiohttp.ClientSession,
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    answer_status, body = await token(session, authority, form)
    assert (answer_status, body["error"], body["error_codes"]) == (status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"trace_id", "correlation_id", "timestamp"} <= set(body)
    assert authority.grants == []


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({}, True),
        ({"aud": "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"}, False),
        ({"iss": "someone-else"}, False),
        ({"exp": int(time.time()) - 10}, False),
    ],
)
async def test_certificate_assertions(
    authority: GraphEmulator,
    session: aiohttp.ClientSession,
    changes: dict[str, Any],
    accepted: bool,
) -> None:
    assertion = jwt(certificate_claims(authority, **changes))
    form = {**BASE, "client_assertion": assertion, "client_assertion_type": JWT_BEARER}
    status, body = await token(session, authority, form)
    assert (status == 200) is accepted, body
    if accepted:
        assert authority.grants[0].credential == "certificate"


async def test_a_federated_assertion_is_a_workload_identity_grant(
    authority: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    assertion = jwt({"aud": "api://AzureADTokenExchange", "sub": "system:serviceaccount:x:y"})
    form = {**BASE, "client_assertion": assertion, "client_assertion_type": JWT_BEARER}
    status, _ = await token(session, authority, form)
    assert status == 200
    assert authority.grants[0].credential == "federated"


@pytest.mark.parametrize("path", ["/tenant-1/v2.0/.well-known/openid-configuration"])
async def test_openid_discovery_names_this_token_endpoint(
    authority: GraphEmulator, session: aiohttp.ClientSession, path: str
) -> None:
    async with session.get(authority.root_url + path) as answer:
        document = await answer.json()
    assert document["token_endpoint"] == f"{authority.root_url}/tenant-1/oauth2/v2.0/token"
    assert document["issuer"] == f"{authority.root_url}/tenant-1/v2.0"
    async with session.get(f"{authority.root_url}/adfs/.well-known/openid-configuration") as a:
        adfs = await a.json()
    assert adfs["token_endpoint"] == f"{authority.root_url}/adfs/oauth2/v2.0/token"


async def test_over_tls_graphs_links_are_https(
    authority: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    authority.config.static_tokens = frozenset({"t"})
    headers = {"Authorization": "Bearer t"}
    async with session.get(authority.base_url + COLLECTION_PATH, headers=headers) as answer:
        body = await answer.json()
    assert body["@odata.context"].startswith(f"{authority.root_url}/beta/$metadata")
