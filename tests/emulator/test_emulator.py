"""The Graph emulator over real loopback HTTP, driven by aiohttp and by the real azure-identity."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential
from multidict import CIMultiDictProxy

from importer.emulator import (
    COLLECTION_PATH,
    EmulatorConfig,
    GraphEmulator,
    _guid,
    main,
    serve,
)

TOKEN = "static-test-token"
THUMB_A = "A" * 40
THUMB_B = "B" * 40
DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def cert(thumbprint: str = THUMB_A, **overrides: Any) -> dict[str, Any]:
    """A valid create body, as the Graph documentation's example sends it."""
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.managedAllDeviceCertificateState",
        "certificateRevokeStatus": "issued",
        "certificateRevokeStatusLastChangeDateTime": "2016-12-31T23:59:34.9547208-08:00",
        "managedDeviceDisplayName": "laptop-01",
        "userPrincipalName": "ada@contoso.example",
        "certificateExpirationDateTime": "2027-01-01T00:00:00Z",
        "certificateIssuerName": "CN=Contoso Issuing CA",
        "certificateThumbprint": thumbprint,
        "certificateSerialNumber": "0A1B2C",
        "certificateSubjectName": "CN=laptop-01",
        "certificateKeyUsages": 160,
        "certificateExtendedKeyUsages": "1.3.6.1.5.5.7.3.2",
        "certificateIssuanceDateTime": "2025-01-01T00:00:00+00:00",
    }
    body.update(overrides)
    return body


@pytest.fixture
async def emulator() -> AsyncIterator[GraphEmulator]:
    config = EmulatorConfig(static_tokens=frozenset({TOKEN}), write_limit=0, read_limit=0, seed=1)
    async with GraphEmulator(config) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def collection(emu: GraphEmulator) -> str:
    return emu.base_url + COLLECTION_PATH


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with session.request(method, url, **kwargs) as response:
        raw = await response.read()
        body: Any = None
        if raw:
            body = json.loads(raw) if response.content_type == "application/json" else raw.decode()
        return response.status, body, response.headers


async def create(
    session: aiohttp.ClientSession, emu: GraphEmulator, body: dict[str, Any]
) -> tuple[int, Any]:
    status, payload, _ = await call(session, "POST", collection(emu), json=body)
    return status, payload


async def batch(
    session: aiohttp.ClientSession, emu: GraphEmulator, requests: list[dict[str, Any]]
) -> tuple[int, Any]:
    status, payload, _ = await call(
        session, "POST", f"{emu.base_url}/$batch", json={"requests": requests}
    )
    return status, payload


def create_item(item_id: str, thumbprint: str = THUMB_A) -> dict[str, Any]:
    return {
        "id": item_id,
        "method": "POST",
        "url": COLLECTION_PATH,
        "headers": {"Content-Type": "application/json"},
        "body": cert(thumbprint),
    }


# -- auth and headers --------------------------------------------------------------------------


async def test_requests_without_a_valid_token_get_401(emulator: GraphEmulator) -> None:
    async with aiohttp.ClientSession() as anonymous:
        cases: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": f"Basic {TOKEN}"},
        ]
        for headers in cases:
            status, body, response_headers = await call(
                anonymous,
                "GET",
                collection(emulator),
                headers={**headers, "client-request-id": "abc-123"},
            )
            assert status == 401
            error = body["error"]
            assert error["code"] == "InvalidAuthenticationToken"
            assert error["innerError"]["client-request-id"] == "abc-123"
            assert error["innerError"]["request-id"] == response_headers["request-id"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", error["innerError"]["date"])
            assert response_headers["WWW-Authenticate"].startswith("Bearer ")
        status, _, _ = await call(anonymous, "POST", f"{emulator.base_url}/$batch", json={})
        assert status == 401
    assert emulator.stats["unauthorized"] == 4
    assert emulator.records == {}


async def test_every_response_carries_graph_headers(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    status, _, headers = await call(
        session, "GET", collection(emulator), headers={"client-request-id": "trace-me"}
    )
    assert status == 200
    uuid.UUID(headers["request-id"])
    assert headers["client-request-id"] == "trace-me"
    assert "ServerInfo" in json.loads(headers["x-ms-ags-diagnostic"])
    _, _, headers = await call(session, "GET", collection(emulator))
    assert "client-request-id" not in headers


async def test_issued_tokens_expire_and_can_be_revoked(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    issued = emulator.issue_token()
    async with aiohttp.ClientSession() as client:
        url = collection(emulator)
        status, _, _ = await call(client, "GET", url, headers={"Authorization": f"Bearer {issued}"})
        assert status == 200
        emulator.expire_tokens()
        status, body, _ = await call(
            client, "GET", url, headers={"Authorization": f"Bearer {issued}"}
        )
        assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")
        stale = emulator.issue_token(lifetime=0)
        status, body, _ = await call(
            client, "GET", url, headers={"Authorization": f"Bearer {stale}"}
        )
        assert status == 401
        assert "expired" in body["error"]["message"]
    status, _, _ = await call(session, "GET", collection(emulator))
    assert status == 200, "static tokens survive expire_tokens()"


# -- CRUD, filter, paging ----------------------------------------------------------------------


async def test_create_then_read_back(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    status, created = await create(session, emulator, cert())
    assert status == 201
    record_id = created["id"]
    uuid.UUID(record_id)
    assert created["@odata.context"].endswith("/$entity")
    assert created["certificateThumbprint"] == THUMB_A
    assert emulator.records[record_id] == created
    assert emulator.stats["created"] == 1

    status, fetched, _ = await call(session, "GET", f"{collection(emulator)}/{record_id}")
    assert (status, fetched) == (200, created)

    status, listing, _ = await call(session, "GET", collection(emulator))
    assert status == 200
    assert [item["id"] for item in listing["value"]] == [record_id]
    assert "@odata.context" not in listing["value"][0]
    assert "@odata.nextLink" not in listing

    async with session.get(f"{collection(emulator)}/$count") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == "1"

    status, selected, _ = await call(
        session, "GET", f"{collection(emulator)}/{record_id}?$select=certificateThumbprint"
    )
    assert status == 200
    assert {k for k in selected if not k.startswith("@")} == {"id", "certificateThumbprint"}


async def test_filter_on_thumbprint_and_display_name(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    await create(session, emulator, cert(THUMB_A, managedDeviceDisplayName="O'Brien's PC"))
    await create(session, emulator, cert(THUMB_A, managedDeviceDisplayName="other"))
    await create(session, emulator, cert(THUMB_B))
    url = collection(emulator)

    async def matches(expression: str) -> list[str]:
        status, body, _ = await call(session, "GET", url, params={"$filter": expression})
        assert status == 200, body
        return [item["managedDeviceDisplayName"] for item in body["value"]]

    assert len(await matches(f"certificateThumbprint eq '{THUMB_A}'")) == 2
    assert await matches(f"certificateThumbprint eq '{THUMB_B}'") == ["laptop-01"]
    assert await matches("certificateThumbprint eq 'NOPE'") == []
    both = f"certificateThumbprint eq '{THUMB_A}' and managedDeviceDisplayName eq 'O''Brien''s PC'"
    assert await matches(both) == ["O'Brien's PC"]

    async with session.get(
        f"{url}/$count", params={"$filter": f"certificateThumbprint eq '{THUMB_A}'"}
    ) as r:
        assert await r.text() == "2"

    for unsupported in (
        f"CertificateThumbprint eq '{THUMB_A}'",
        f"certificateThumbprint ne '{THUMB_A}'",
        "startswith(certificateThumbprint, 'A')",
        f"userPrincipalName eq '{THUMB_A}'",
        f"certificateThumbprint eq '{THUMB_A}' or certificateThumbprint eq 'B'",
    ):
        status, body, _ = await call(session, "GET", url, params={"$filter": unsupported})
        assert (status, body["error"]["code"]) == (400, "BadRequest"), unsupported
    status, _, _ = await call(session, "GET", url, params={"$orderby": "id"})
    assert status == 400


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        # documented for the entity, not implemented by the emulator: refused, saying so
        ("", {"$orderby": "id"}, "documented"),
        ("", {"$skip": "2"}, "documented"),
        ("", {"$search": '"laptop"'}, "documented"),
        ("", {"$expand": "*"}, "documented"),
        ("/{id}", {"$expand": "*"}, "documented"),
        ("/$count", {"$search": '"x"'}, "documented"),
        # not an option of this request at all
        ("", {"$format": "json"}, "not allowed"),
        ("/{id}", {"$top": "1"}, "not allowed"),
        ("/$count", {"$top": "1"}, "not allowed"),
        ("", {"$bogus": "1"}, "not allowed"),
        ("", {"$top": "1", "top": "2"}, "more than once"),
    ],
)
async def test_query_options_the_emulator_lacks_are_refused_in_graphs_error_shape(
    emulator: GraphEmulator,
    session: aiohttp.ClientSession,
    path: str,
    params: dict[str, str],
    says: str,
) -> None:
    _, created = await create(session, emulator, cert())
    url = collection(emulator) + path.replace("{id}", created["id"])
    status, body, _ = await call(session, "GET", url, params=params)
    assert status == 400
    assert set(body) == {"error"} and body["error"]["code"] == "BadRequest"
    assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    assert says in body["error"]["message"]
    assert next(iter(params)).lstrip("$") in body["error"]["message"]


async def test_beta_takes_system_query_options_without_their_dollar(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    for n in range(3):
        await create(session, emulator, cert(f"{n:040X}"))
    status, body, _ = await call(
        session, "GET", collection(emulator), params={"top": "2", "count": "true"}
    )
    assert status == 200
    assert (len(body["value"]), body["@odata.count"]) == (2, 3)
    assert "$top=2" in body["@odata.nextLink"]
    status, body, _ = await call(
        session,
        "GET",
        collection(emulator),
        params={"filter": f"certificateThumbprint eq '{0:040X}'"},
    )
    assert (status, len(body["value"])) == (200, 1)
    status, _, _ = await call(
        session, "POST", collection(emulator), params={"select": "id"}, json=cert()
    )
    assert status == 400, "query options are for GET only"


async def test_paging_follows_absolute_next_links(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    created = []
    for index in range(25):
        name = "even" if index % 2 == 0 else "odd"
        _, body = await create(
            session, emulator, cert(f"{index:040X}", managedDeviceDisplayName=name)
        )
        created.append(body["id"])

    status, page, _ = await call(session, "GET", collection(emulator), params={"$top": "10"})
    assert status == 200
    seen = [item["id"] for item in page["value"]]
    assert seen == created[:10]
    # Deleting an already-listed record must not shift the following pages.
    status, _, _ = await call(session, "DELETE", f"{collection(emulator)}/{created[0]}")
    assert status == 204
    while "@odata.nextLink" in page:
        link = page["@odata.nextLink"]
        assert link.startswith(collection(emulator) + "?")
        assert "$skiptoken=" in link
        status, page, _ = await call(session, "GET", link)
        assert status == 200
        seen += [item["id"] for item in page["value"]]
    assert seen == created

    url: str | None = f"{collection(emulator)}?$top=5&$filter=managedDeviceDisplayName%20eq%20'odd'"
    odd: list[str] = []
    pages = 0
    while url is not None:
        status, page, _ = await call(session, "GET", url)
        assert status == 200
        pages += 1
        odd += [item["id"] for item in page["value"]]
        url = page.get("@odata.nextLink")
    assert (pages, odd) == (3, created[1::2])

    for bad in ("0", "1000", "ten"):
        status, _, _ = await call(session, "GET", collection(emulator), params={"$top": bad})
        assert status == 400
    status, _, _ = await call(session, "GET", collection(emulator), params={"$skiptoken": "x"})
    assert status == 400


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (cert(colour="red"), "colour"),
        (cert(id="00000000-0000-0000-0000-000000000001"), "'id'"),
        (cert(certificateRevokeStatus="Revoked"), "certificateRevokeStatus"),
        (cert(certificateRevokeStatus="String"), "certificateRevokeStatus"),
        (cert(certificateRevokeStatus=None), "certificateRevokeStatus"),
        # Nullable="false" in the beta CSDL: the three DateTimeOffset properties
        (cert(certificateExpirationDateTime=None), "certificateExpirationDateTime"),
        (cert(certificateIssuanceDateTime=None), "certificateIssuanceDateTime"),
        (
            cert(certificateRevokeStatusLastChangeDateTime=None),
            "certificateRevokeStatusLastChangeDateTime",
        ),
        (
            cert(certificateExpirationDateTime="2027-01-01T00:00:00"),
            "certificateExpirationDateTime",
        ),
        (cert(certificateIssuanceDateTime="2027-01-01"), "certificateIssuanceDateTime"),
        (
            cert(certificateIssuanceDateTime="2027-01-01T00:00:00.12345678Z"),
            "certificateIssuanceDateTime",
        ),
        (
            cert(certificateRevokeStatusLastChangeDateTime="2027-02-30T00:00:00Z"),
            "certificateRevokeStatusLastChangeDateTime",
        ),
        (cert(certificateKeyUsages=2**31), "certificateKeyUsages"),
        (cert(certificateKeyUsages=-(2**31) - 1), "certificateKeyUsages"),
        (cert(certificateKeyUsages=True), "certificateKeyUsages"),
        (cert(certificateKeyUsages="160"), "certificateKeyUsages"),
        (cert(certificateKeyUsages=1.5), "certificateKeyUsages"),
        (cert(certificateThumbprint=42), "certificateThumbprint"),
        (cert(**{"@odata.type": "#microsoft.graph.entity"}), "@odata.type"),
        ([cert()], "JSON object"),
    ],
)
async def test_invalid_bodies_get_400_naming_the_property(
    emulator: GraphEmulator, session: aiohttp.ClientSession, body: Any, named: str
) -> None:
    status, payload, _ = await call(session, "POST", collection(emulator), json=body)
    assert status == 400
    assert payload["error"]["code"] == "BadRequest"
    assert named in payload["error"]["message"]
    assert emulator.records == {}


@pytest.mark.parametrize(
    "body",
    [
        cert(),
        {"certificateThumbprint": THUMB_A},
        # nullable in the beta CSDL: strings and certificateKeyUsages (Int32)
        cert(certificateIssuerName=None, certificateKeyUsages=None),
        cert(certificateExpirationDateTime="2016-12-31T23:59:01.3955648+03:00"),
        cert(certificateExpirationDateTime="2016-12-31T23:59-05:00"),
        cert(certificateKeyUsages=2**31 - 1, certificateRevokeStatus="none"),
        {k: v for k, v in cert().items() if k != "@odata.type"},
    ],
)
async def test_valid_bodies_are_created(
    emulator: GraphEmulator, session: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    status, payload = await create(session, emulator, body)
    assert status == 201, payload
    assert {k: payload[k] for k in body} == body


async def test_bad_payload_encodings(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    url = collection(emulator)
    status, body, _ = await call(
        session, "POST", url, data=json.dumps(cert()), headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]["code"]) == (415, "UnsupportedMediaType")
    status, _, _ = await call(
        session, "POST", url, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    status, _, _ = await call(session, "POST", url, headers={"Content-Type": "application/json"})
    assert status == 400
    assert emulator.stats["bad_requests"] == 3


async def test_patch_and_delete(emulator: GraphEmulator, session: aiohttp.ClientSession) -> None:
    _, created = await create(session, emulator, cert())
    item = f"{collection(emulator)}/{created['id']}"

    status, body, _ = await call(
        session, "PATCH", item, json={"certificateRevokeStatus": "revoked"}
    )
    assert (status, body) == (204, None)
    assert emulator.records[created["id"]]["certificateRevokeStatus"] == "revoked"

    status, body, _ = await call(
        session,
        "PATCH",
        item,
        json={"certificateThumbprint": THUMB_B},
        headers={"Prefer": "return=representation"},
    )
    assert status == 200
    assert body["certificateThumbprint"] == THUMB_B
    _, found, _ = await call(
        session,
        "GET",
        collection(emulator),
        params={"$filter": f"certificateThumbprint eq '{THUMB_B}'"},
    )
    assert [r["id"] for r in found["value"]] == [created["id"]]
    _, found, _ = await call(
        session,
        "GET",
        collection(emulator),
        params={"$filter": f"certificateThumbprint eq '{THUMB_A}'"},
    )
    assert found["value"] == []

    for invalid in ({"certificateKeyUsages": "x"}, {"id": created["id"]}, {"nope": 1}):
        status, body, _ = await call(session, "PATCH", item, json=invalid)
        assert status == 400
    missing = f"{collection(emulator)}/{uuid.uuid4()}"
    status, body, _ = await call(session, "PATCH", missing, json={"certificateKeyUsages": 1})
    assert (status, body["error"]["code"]) == (404, "ResourceNotFound")

    status, _, _ = await call(session, "DELETE", item)
    assert status == 204
    assert emulator.records == {}
    for method in ("GET", "DELETE"):
        status, body, _ = await call(session, method, item)
        assert (status, body["error"]["code"]) == (404, "ResourceNotFound")
    assert emulator.stats["patches"] == 6
    assert emulator.stats["deletes"] == 2


async def test_unknown_paths_and_methods(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(session, "GET", f"{emulator.base_url}/deviceManagement/nope")
    assert (status, body["error"]["code"]) == (400, "BadRequest")
    assert "nope" in body["error"]["message"]
    status, _, _ = await call(session, "PUT", collection(emulator), json=cert())
    assert status == 405


# -- batching ----------------------------------------------------------------------------------


async def test_batch_answers_every_item_out_of_order(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    items = [create_item(str(n), f"{n:040X}") for n in range(1, 9)]
    items.append({"id": "list", "method": "GET", "url": COLLECTION_PATH.lstrip("/")})
    items.append(
        {
            "id": "lower-case-header",
            "method": "post",
            "url": COLLECTION_PATH,
            "headers": {"content-type": "application/json; charset=utf-8"},
            "body": cert("C" * 40),
        }
    )
    status, payload = await batch(session, emulator, items)
    assert status == 200
    responses = payload["responses"]
    order = [r["id"] for r in responses]
    assert sorted(order) == sorted(item["id"] for item in items)
    assert order != [item["id"] for item in items], "responses must come back shuffled"
    by_id = {r["id"]: r for r in responses}
    assert by_id["list"]["status"] == 200
    assert by_id["lower-case-header"]["status"] == 201
    for n in range(1, 9):
        answer = by_id[str(n)]
        assert answer["status"] == 201
        assert answer["body"]["certificateThumbprint"] == f"{n:040X}"
        assert answer["headers"]["Content-Type"].startswith("application/json")
    assert len(emulator.records) == 9
    assert emulator.stats["batches"] == 1
    assert emulator.stats["batch_items"] == 10


async def test_batch_envelope_rules(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    status, payload = await batch(session, emulator, [create_item(str(n)) for n in range(21)])
    assert (status, payload["error"]["code"]) == (400, "BadRequest")
    status, _ = await batch(session, emulator, [create_item("1"), create_item("1")])
    assert status == 400
    status, _ = await batch(session, emulator, [])
    assert status == 400
    status, _ = await batch(session, emulator, [{"id": "1", "method": "GET"}])
    assert status == 400
    assert emulator.records == {}


async def test_batch_ids_are_unique_ignoring_case(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    # Graph compares $batch ids ignoring case: "a" and "A" are the same id.
    status, payload = await batch(session, emulator, [create_item("a"), create_item("A")])
    assert (status, payload["error"]["code"]) == (400, "BadRequest")
    assert "'A' is repeated" in payload["error"]["message"]
    assert emulator.records == {}
    dependent = create_item("second", THUMB_B)
    dependent["dependsOn"] = ["FIRST"]  # refers to "first" ignoring case, as the ids compare
    status, payload = await batch(session, emulator, [create_item("first"), dependent])
    assert status == 200
    assert sorted(r["status"] for r in payload["responses"]) == [201, 201]


async def test_batch_item_rules(emulator: GraphEmulator, session: aiohttp.ClientSession) -> None:
    no_content_type = create_item("no-content-type")
    del no_content_type["headers"]
    absolute = create_item("absolute")
    absolute["url"] = emulator.base_url + COLLECTION_PATH
    versioned = create_item("versioned")
    versioned["url"] = "/beta" + COLLECTION_PATH
    garbage = create_item("garbage")
    garbage["url"] = "[::1"
    invalid = create_item("invalid")
    invalid["body"]["certificateRevokeStatus"] = "REVOKED"
    dependent = create_item("dependent")
    dependent["dependsOn"] = ["invalid"]
    ok = create_item("ok")
    status, payload = await batch(
        session,
        emulator,
        [no_content_type, absolute, versioned, garbage, invalid, dependent, ok],
    )
    assert status == 200
    statuses = {r["id"]: r["status"] for r in payload["responses"]}
    assert statuses == {
        "no-content-type": 400,
        "absolute": 400,
        "versioned": 400,
        "garbage": 400,
        "invalid": 400,
        "dependent": 424,
        "ok": 201,
    }
    errors = {r["id"]: r["body"]["error"] for r in payload["responses"] if r["status"] != 201}
    assert "certificateRevokeStatus" in errors["invalid"]["message"]
    assert len(emulator.records) == 1


async def test_batch_items_are_throttled_one_by_one(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.config.write_limit = 2
    status, payload = await batch(session, emulator, [create_item(str(n)) for n in range(4)])
    assert status == 200
    responses = payload["responses"]
    assert sorted(r["status"] for r in responses) == [201, 201, 429, 429]
    for response in responses:
        if response["status"] == 429:
            assert response["body"]["error"]["code"] == "TooManyRequests"
            assert 0 < float(response["headers"]["Retry-After"]) <= 20
    assert emulator.stats["throttled"] == 2
    assert len(emulator.records) == 2


# -- throttling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "pattern"),
    [("whole", r"[1-9][0-9]*"), ("fractional", r"[0-9]+\.[0-9]{3}")],
)
async def test_write_throttle_answers_retry_after_in_whole_or_fractional_seconds(
    emulator: GraphEmulator, session: aiohttp.ClientSession, form: str, pattern: str
) -> None:
    # GRAPH.md: Graph usually sends whole seconds (41), sometimes fractions (2.128).
    assert EmulatorConfig().retry_after == "whole"
    emulator.configure({"write_limit": 3, "write_window": 1.0, "retry_after": form})
    for _ in range(3):
        status, _ = await create(session, emulator, cert())
        assert status == 201
    status, body, headers = await call(session, "POST", collection(emulator), json=cert())
    assert (status, body["error"]["code"]) == (429, "TooManyRequests")
    retry_after = headers["Retry-After"]
    assert re.fullmatch(pattern, retry_after)
    assert 0.001 <= float(retry_after) <= 1.0
    await asyncio.sleep(float(retry_after))
    status, _ = await create(session, emulator, cert())
    assert status == 201, "the window has room once Retry-After has passed"
    assert emulator.stats["throttled"] == 1


async def test_throttle_without_retry_after_answers_intunes_json_in_message(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.configure({"write_limit": 1, "retry_after": "absent"})
    assert (await create(session, emulator, cert()))[0] == 201
    status, body, headers = await call(session, "POST", collection(emulator), json=cert())
    assert status == 429 and "Retry-After" not in headers
    error = body["error"]
    assert error["code"] == "TooManyRequests"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    inner = json.loads(error["message"])  # the message is itself a JSON document
    assert inner["RetryAfter"] is None and "Activity ID" in inner["Message"]
    status, payload = await batch(session, emulator, [create_item("1")])
    (item,) = payload["responses"]
    assert item["status"] == 429 and "Retry-After" not in item["headers"]


@pytest.mark.parametrize(("count_throttled", "expected"), [(True, 429), (False, 201)])
async def test_throttled_requests_count_in_the_window(
    emulator: GraphEmulator,
    session: aiohttp.ClientSession,
    count_throttled: bool,
    expected: int,
) -> None:
    emulator.config.write_limit = 1
    emulator.config.write_window = 1.0
    emulator.config.count_throttled = count_throttled
    assert (await create(session, emulator, cert()))[0] == 201
    await asyncio.sleep(0.4)
    assert (await create(session, emulator, cert()))[0] == 429
    await asyncio.sleep(0.8)
    # The first write has left the window; the early retry at 0.4 s is still in it if counted.
    assert (await create(session, emulator, cert()))[0] == expected


async def test_read_limit_counts_every_request_writes_too(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    # Intune's "any" limit (1000 per 20 s per app) counts POST, PATCH and DELETE as well.
    emulator.config.read_limit = 3
    assert (await create(session, emulator, cert()))[0] == 201
    assert (await create(session, emulator, cert(THUMB_B)))[0] == 201
    statuses = [(await call(session, "GET", collection(emulator)))[0] for _ in range(2)]
    assert statuses == [200, 429]
    assert (await create(session, emulator, cert()))[0] == 429
    assert emulator.stats["throttled"] == 2


async def test_a_write_refused_by_the_write_window_still_counts_as_a_request(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.configure({"read_limit": 3, "write_limit": 1})
    assert (await create(session, emulator, cert()))[0] == 201
    assert (await create(session, emulator, cert()))[0] == 429  # write window full
    assert (await call(session, "GET", collection(emulator)))[0] == 200
    assert (await call(session, "GET", collection(emulator)))[0] == 429  # 3 requests made


# -- faults ------------------------------------------------------------------------------------


async def test_scripted_faults_in_order(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.script(
        [
            {"status": 503},
            {"status": 429, "retry_after": "abc"},
            {"status": 429, "retry_after": None},
            {"status": 504, "times": 2},
            {"status": 400, "code": "Custom", "message": "scripted"},
            {"status": 401},
            {"status": 403},
            {"status": 500},
        ]
    )
    seen = []
    for _ in range(9):
        status, body, headers = await call(session, "POST", collection(emulator), json=cert())
        code = body["error"]["code"] if status >= 400 else None
        seen.append((status, code, headers.get("Retry-After")))
    assert seen == [
        (503, "ServiceUnavailable", "1"),
        (429, "TooManyRequests", "abc"),
        (429, "TooManyRequests", None),
        (504, "GatewayTimeout", None),
        (504, "GatewayTimeout", None),
        (400, "Custom", None),
        (401, "InvalidAuthenticationToken", None),
        (403, "Authorization_RequestDenied", None),
        (500, "InternalServerError", None),
    ]
    assert (await create(session, emulator, cert()))[0] == 201
    assert len(emulator.records) == 1
    assert emulator.stats["faults"] == 9


async def test_thumbprint_specific_script_entries_take_precedence(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.script(
        [
            {"status": 503},
            {"status": 400, "code": "RowRejected", "thumbprint": THUMB_B.lower()},
        ]
    )
    status, body = await create(session, emulator, cert(THUMB_B))
    assert (status, body["error"]["code"]) == (400, "RowRejected")
    status, _ = await create(session, emulator, cert(THUMB_B))
    assert status == 503, "the generic entry is still queued"
    assert (await create(session, emulator, cert(THUMB_B)))[0] == 201


def test_malformed_script_entries_are_refused() -> None:
    emulator = GraphEmulator()
    for entry in ({"status": 200}, {"action": "explode"}, {}, {"status": 503, "tiems": 2}):
        with pytest.raises(ValueError):
            emulator.script([entry])


async def test_drop_creates_nothing_and_created_drop_creates(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.script([{"action": "drop"}, {"action": "created_drop"}])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(session, emulator, cert())
    assert emulator.records == {}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await create(session, emulator, cert(THUMB_B))
    assert [r["certificateThumbprint"] for r in emulator.records.values()] == [THUMB_B]
    assert emulator.stats["drops"] == 2
    assert (await create(session, emulator, cert()))[0] == 201, "the server keeps serving"


async def test_drops_inside_a_batch_drop_the_whole_connection(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    items = [create_item("1", THUMB_A), create_item("2", THUMB_B)]
    emulator.script([{"action": "drop", "thumbprint": THUMB_B}])
    with pytest.raises(DISCONNECTED):
        await batch(session, emulator, items)
    assert emulator.records == {}, "nothing is processed when the batch is dropped"
    emulator.script([{"action": "created_drop", "thumbprint": THUMB_B}])
    with pytest.raises(DISCONNECTED):
        await batch(session, emulator, items)
    assert len(emulator.records) == 2, "every item is processed before the drop"


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_created_then_failed_creates_the_object_and_answers_the_error(
    emulator: GraphEmulator, session: aiohttp.ClientSession, status: int
) -> None:
    emulator.script([{"action": f"created_{status}"}])
    answer, body = await create(session, emulator, cert())
    assert answer == status
    assert body["error"]["code"]
    assert [r["certificateThumbprint"] for r in emulator.records.values()] == [THUMB_A]


async def test_created_then_failed_inside_a_batch_fails_the_item_or_the_whole_call(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    items = [create_item("1", THUMB_A), create_item("2", THUMB_B)]
    emulator.script([{"action": "created_502", "thumbprint": THUMB_B}])
    status, body = await batch(session, emulator, items)
    assert status == 200
    assert {r["id"]: r["status"] for r in body["responses"]} == {"1": 201, "2": 502}
    assert len(emulator.records) == 2, "the failed item was created too"
    emulator.reset()
    emulator.script([{"action": "created_batch_504", "thumbprint": THUMB_A}])
    status, body = await batch(session, emulator, items)
    assert status == 504 and body["error"]["code"]
    assert len(emulator.records) == 2, "every item was created before the call failed"


async def test_commit_then_fail_faults_come_at_random_with_a_seed_too(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.configure({"seed": 3, "fault_rate": 1.0, "faults": ["created_504"]})
    statuses = [(await create(session, emulator, cert(f"{n:040X}")))[0] for n in range(5)]
    assert statuses == [504] * 5
    assert len(emulator.records) == 5


async def run_random_faults(emulator: GraphEmulator, session: aiohttp.ClientSession) -> list[Any]:
    outcomes: list[Any] = []
    for _ in range(20):
        try:
            status, body = await create(session, emulator, cert())
            outcomes.append((status, body.get("id")))
        except DISCONNECTED:
            outcomes.append("disconnected")
    return outcomes


async def test_random_faults_are_reproducible_with_a_seed(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.configure({"seed": 7, "fault_rate": 0.5})
    first = await run_random_faults(emulator, session)
    assert {o[0] for o in first if o != "disconnected"} >= {201, 503, 504}
    assert "disconnected" in first
    emulator.reset()
    assert emulator.stats["faults"] == 0
    assert await run_random_faults(emulator, session) == first

    async with GraphEmulator(EmulatorConfig(static_tokens=frozenset({TOKEN}), seed=7)) as other:
        other.config.fault_rate = 0.5
        assert await run_random_faults(other, session) == first


# -- admin endpoints and config ----------------------------------------------------------------


async def test_admin_endpoints_drive_the_emulator(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    root = emulator.root_url
    async with aiohttp.ClientSession() as admin:
        status, config, _ = await call(admin, "POST", f"{root}/_config", json={"forbidden": True})
        assert (status, config["forbidden"]) == (200, True)
        status, body, _ = await call(session, "GET", collection(emulator))
        assert (status, body["error"]["code"]) == (403, "Authorization_RequestDenied")
        status, _, _ = await call(session, "POST", collection(emulator), json=cert())
        assert status == 403
        for bad in ({"nope": 1}, {"fault_rate": 2}, {"write_limit": "5"}, {"faults": ["boom"]}):
            status, _, _ = await call(admin, "POST", f"{root}/_config", json=bad)
            assert status == 400, bad
        assert emulator.config.fault_rate == 0
        await call(admin, "POST", f"{root}/_config", json={"forbidden": False})

        status, _, _ = await call(admin, "POST", f"{root}/_script", json=[{"status": 503}])
        assert status == 200
        assert (await create(session, emulator, cert()))[0] == 503
        status, _, _ = await call(admin, "POST", f"{root}/_script", json={"status": 503})
        assert status == 400
        assert (await create(session, emulator, cert()))[0] == 201

        status, stats, _ = await call(admin, "GET", f"{root}/_stats")
        assert status == 200
        assert stats["records"] == 1
        assert stats["posts"] == 3
        assert stats["forbidden"] == 2
        status, records, _ = await call(admin, "GET", f"{root}/_records")
        assert [r["id"] for r in records] == list(emulator.records)

        issued = emulator.issue_token()
        await call(admin, "POST", f"{root}/_expire_tokens")
        status, _, _ = await call(
            admin, "GET", collection(emulator), headers={"Authorization": f"Bearer {issued}"}
        )
        assert status == 401

        status, _, _ = await call(admin, "POST", f"{root}/_reset")
        assert status == 200
        _, stats, _ = await call(admin, "GET", f"{root}/_stats")
        assert stats["records"] == 0
        assert stats["posts"] == 0


def test_config_is_validated() -> None:
    for bad in (
        {"fault_rate": 1.5},
        {"write_window": 0},
        {"faults": ("503", "boom")},
        {"faults": "drop"},
        {"static_tokens": "token"},
        {"page_size": 1000},
    ):
        with pytest.raises(ValueError):
            EmulatorConfig(**bad)


async def test_default_page_size_and_forbidden_switch(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.config.page_size = 2
    for _ in range(3):
        await create(session, emulator, cert())
    _, page, _ = await call(session, "GET", collection(emulator))
    assert len(page["value"]) == 2
    assert "$top=2" in page["@odata.nextLink"]
    emulator.config.forbidden = True
    status, payload = await batch(session, emulator, [create_item("1")])
    assert status == 200
    assert payload["responses"][0]["status"] == 403


# -- managed identity --------------------------------------------------------------------------


@pytest.fixture
def identity_env(isolated: Path, emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-identity sees the emulator's managed identity endpoint, and nothing else: no other
    AZURE_*/IDENTITY_* variable (``isolated``), MSI or IMDS endpoint, or proxy."""
    for name in (
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IMDS_ENDPOINT",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.config.identity_header)


@pytest.mark.usefixtures("identity_env")
async def test_real_managed_identity_credential_gets_an_accepted_token(
    emulator: GraphEmulator,
) -> None:
    async with ManagedIdentityCredential() as credential:
        token = await credential.get_token("https://graph.microsoft.com/.default")
    assert token.expires_on > time.time() + 3000
    assert emulator.stats["token_requests"] == 1
    async with aiohttp.ClientSession() as client:
        status, _, _ = await call(
            client, "GET", collection(emulator), headers={"Authorization": f"Bearer {token.token}"}
        )
        assert status == 200
        emulator.expire_tokens()
        status, _, _ = await call(
            client, "GET", collection(emulator), headers={"Authorization": f"Bearer {token.token}"}
        )
        assert status == 401


@pytest.mark.usefixtures("identity_env")
async def test_managed_identity_credential_with_a_wrong_secret_fails(
    emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    async with ManagedIdentityCredential(client_id="11111111-2222-3333-4444-555555555555") as cred:
        with pytest.raises(ClientAuthenticationError):
            await cred.get_token("https://graph.microsoft.com/.default")


async def test_token_endpoint_contract(emulator: GraphEmulator) -> None:
    secret = {"X-IDENTITY-HEADER": emulator.config.identity_header}
    params = {"api-version": "2019-08-01", "resource": "https://graph.microsoft.com"}
    async with aiohttp.ClientSession() as client:
        status, body, _ = await call(
            client,
            "GET",
            emulator.identity_endpoint,
            headers=secret,
            params={**params, "client_id": "abc", "mi_res_id": "/subscriptions/x"},
        )
        assert status == 200
        assert body["token_type"] == "Bearer"
        assert body["resource"] == "https://graph.microsoft.com"
        assert body["client_id"] == "abc"
        assert int(body["expires_on"]) == pytest.approx(time.time() + 3600, abs=5)
        cases = [
            ({}, params, 400),
            ({"X-IDENTITY-HEADER": "wrong"}, params, 401),
            (secret, {"api-version": "2019-08-01"}, 400),
            (secret, {**params, "api-version": "2017-09-01"}, 400),
        ]
        for headers, query, expected in cases:
            status, body, _ = await call(
                client, "GET", emulator.identity_endpoint, headers=headers, params=query
            )
            assert status == expected
            assert body["statusCode"] == expected
    assert emulator.stats["token_requests"] == 5


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
async def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        await GraphEmulator().start(host)


async def test_localhost_binds_loopback() -> None:
    async with aiohttp.ClientSession() as client:
        emulator = GraphEmulator()
        await emulator.start("localhost")
        try:
            assert emulator.root_url == f"http://127.0.0.1:{emulator.port}"
            status, _, _ = await call(client, "GET", f"{emulator.root_url}/_stats")
            assert status == 200
        finally:
            await emulator.close()


async def test_serve_announces_itself_and_stops_when_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(serve(EmulatorConfig(), port=0))
    line = ""
    for _ in range(100):
        await asyncio.sleep(0.01)
        line += capsys.readouterr().err
        if line:
            break
    match = re.fullmatch(
        r"emulator listening on (http://127\.0\.0\.1:\d+)/beta \(identity endpoint "
        r"http://127\.0\.0\.1:\d+/msi/token, identity header emulator-identity-header\)\n",
        line,
    )
    assert match, line
    async with aiohttp.ClientSession() as client:
        status, _, _ = await call(client, "GET", f"{match.group(1)}/_stats")
        assert status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_main_refuses_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err


async def test_module_runs_as_a_subprocess_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "importer.emulator",
        "--port",
        "0",
        "--static-token",
        "sub-token",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        match = re.match(r"emulator listening on (\S+) ", line)
        assert match, line
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sub-token"}) as client:
            status, _, _ = await call(client, "GET", match.group(1) + COLLECTION_PATH)
            assert status == 200
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_guids_are_the_version_4_uuids_of_the_same_random_bits() -> None:
    drawn, expected = random.Random(7), random.Random(7)
    for _ in range(2000):
        value = _guid(drawn)
        assert value == str(uuid.UUID(int=expected.getrandbits(128), version=4))
        assert uuid.UUID(value).version == 4


async def test_latency_delays_answers_and_dropped_connections_alike(
    emulator: GraphEmulator, session: aiohttp.ClientSession
) -> None:
    emulator.configure({"latency": 0.3})
    started = time.monotonic()
    status, body = await create(session, emulator, cert())
    assert status == 201 and body["id"]
    assert time.monotonic() - started >= 0.3
    emulator.script([{"action": "created_drop"}])
    started = time.monotonic()
    with pytest.raises(DISCONNECTED):
        await create(session, emulator, cert(THUMB_B))
    assert time.monotonic() - started >= 0.3
    assert {r["certificateThumbprint"] for r in emulator.records.values()} == {THUMB_A, THUMB_B}
    started = time.monotonic()
    assert (await batch(session, emulator, [create_item("1", "C" * 40)]))[0] == 200
    assert time.monotonic() - started >= 0.3  # once per $batch
