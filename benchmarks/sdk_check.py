"""The official Graph SDK (msgraph-beta-sdk, the ``bench`` extra) as a second client of the
emulator: what the SDK sends must be accepted and answered as Graph would answer it.

The SDK is generated from Graph's metadata by people who are not us, so it is a check on the
emulator that certimport's own client cannot be: a POST with ``@odata.type``, a list with
``$filter``, ``$top`` and ``$count`` (and the SDK following ``@odata.nextLink``), ``/$count``,
GET, PATCH and DELETE by id, and an error the SDK must parse as an ``ODataError``.

The SDK is pointed at the emulator over loopback (plain http: kiota allows it for loopback
hosts) with a static token credential::

    python benchmarks/sdk_check.py                       # an emulator of its own
    python benchmarks/sdk_check.py --base-url http://127.0.0.1:8080/beta --token dev-token

It prints one line per step and exits 1 when any step fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

THUMBPRINTS = ("5DA0" * 10, "5DB0" * 10)
ENTITY_TYPE = "microsoft.graph.managedAllDeviceCertificateState"


@dataclass(frozen=True)
class Step:
    """One check: what was done through the SDK, and whether the answer was Graph's."""

    name: str
    ok: bool
    detail: str = ""


class StaticTokenCredential:
    """An async azure-core token credential that hands out one token (an emulator's)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenCredential('[secure]')"

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def sdk_client(base_url: str, token: str) -> Any:
    """A ``GraphServiceClient`` whose requests go to ``base_url`` (``http://HOST:PORT/beta``)."""
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph_beta import GraphRequestAdapter, GraphServiceClient

    parts = urlsplit(base_url)
    auth = AzureIdentityAuthenticationProvider(
        StaticTokenCredential(token),
        scopes=[f"{parts.scheme}://{parts.netloc}/.default"],
        allowed_hosts=[parts.hostname or ""],
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = base_url.rstrip("/")
    return GraphServiceClient(request_adapter=adapter)


def certificate_state(thumbprint: str, device: str, *, odata_type: bool = True) -> Any:
    """A create body as the SDK's model holds it; with ``@odata.type`` as Graph's Python
    snippet for the create page sets it (the model leaves it unset)."""
    from msgraph_beta.generated.models.certificate_revocation_status import (
        CertificateRevocationStatus,
    )
    from msgraph_beta.generated.models.managed_all_device_certificate_state import (
        ManagedAllDeviceCertificateState,
    )

    return ManagedAllDeviceCertificateState(
        odata_type=f"#{ENTITY_TYPE}" if odata_type else None,
        certificate_thumbprint=thumbprint,
        certificate_serial_number="0A1B2C",
        managed_device_display_name=device,
        user_principal_name="ada@contoso.example",
        certificate_issuer_name="CN=Contoso Issuing CA",
        certificate_subject_name=f"CN={device}",
        certificate_revoke_status=CertificateRevocationStatus.Issued,
        certificate_revoke_status_last_change_date_time=datetime(2025, 2, 1, 8, 0, tzinfo=UTC),
        certificate_issuance_date_time=datetime(2025, 1, 5, 10, 32, tzinfo=UTC),
        certificate_expiration_date_time=datetime(2026, 1, 5, 10, 32, tzinfo=UTC),
        certificate_key_usages=160,
        certificate_extended_key_usages="1.3.6.1.5.5.7.3.2",
    )


class _Checks:
    """The steps, in order, on one SDK client; each records a `Step`."""

    def __init__(self, client: Any) -> None:
        self.collection = (
            client.device_management.device_configurations_all_managed_device_certificate_states
        )
        self.steps: list[Step] = []
        self.ids: list[str] = []

    async def step(self, name: str, action: Callable[[], Awaitable[str]]) -> None:
        try:
            detail = await action()
        except Exception as exc:  # a failed step is reported, and the others still run
            self.steps.append(Step(name, False, f"{type(exc).__name__}: {exc}"[:300]))
        else:
            self.steps.append(Step(name, True, detail))

    async def create(self) -> str:
        for n, thumbprint in enumerate(THUMBPRINTS):  # the second without @odata.type
            body = certificate_state(thumbprint, f"laptop-{n}", odata_type=n == 0)
            created = await self.collection.post(body)
            assert created is not None and created.id, "201 without an id"
            assert created.certificate_thumbprint == thumbprint
            assert created.certificate_key_usages == 160
            self.ids.append(created.id)
        return f"ids {', '.join(self.ids)}"

    async def sent_odata_type(self, records: Callable[[], Awaitable[list[dict[str, Any]]]]) -> str:
        held = {r["id"]: r.get("@odata.type") for r in await records()}
        assert held == {self.ids[0]: f"#{ENTITY_TYPE}", self.ids[1]: None}, held
        return "the first body carried @odata.type, the second none: both created"

    async def list_filtered(self) -> str:
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        builder = type(self.collection)
        query = builder.DeviceConfigurationsAllManagedDeviceCertificateStatesRequestBuilderGetQueryParameters(  # noqa: E501
            filter=f"certificateThumbprint eq '{THUMBPRINTS[1]}'", top=5, count=True
        )
        page = await self.collection.get(RequestConfiguration(query_parameters=query))
        assert page is not None and [v.id for v in page.value] == self.ids[1:]
        assert page.odata_count == 1, f"@odata.count {page.odata_count}"
        return "$filter, $top, $count: 1 of 1"

    async def list_paged(self) -> str:
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        builder = type(self.collection)
        query = builder.DeviceConfigurationsAllManagedDeviceCertificateStatesRequestBuilderGetQueryParameters(  # noqa: E501
            top=1, count=True
        )
        page = await self.collection.get(RequestConfiguration(query_parameters=query))
        seen = [v.id for v in page.value]
        assert page.odata_count == 2 and page.odata_next_link, "no @odata.nextLink"
        following = await self.collection.with_url(page.odata_next_link).get()
        seen += [v.id for v in following.value]
        assert sorted(seen) == sorted(self.ids), seen
        count = await self.collection.count.get()
        assert count == 2, f"/$count answered {count!r}"
        return "$top=1 then @odata.nextLink; /$count 2"

    async def get_patch_delete(self) -> str:
        from msgraph_beta.generated.models.managed_all_device_certificate_state import (
            ManagedAllDeviceCertificateState,
        )

        item = self.collection.by_managed_all_device_certificate_state_id(self.ids[0])
        got = await item.get()
        assert got.certificate_thumbprint == THUMBPRINTS[0]
        assert got.certificate_issuance_date_time == datetime(2025, 1, 5, 10, 32, tzinfo=UTC)
        await item.patch(ManagedAllDeviceCertificateState(managed_device_display_name="renamed"))
        assert (await item.get()).managed_device_display_name == "renamed"
        await item.delete()
        return "GET, PATCH (204), GET, DELETE (204)"

    async def errors(self) -> str:
        from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

        gone = self.collection.by_managed_all_device_certificate_state_id(self.ids[0])
        codes = []
        for action in (gone.get, lambda: self.collection.post(_bad_body())):
            try:
                await action()
            except ODataError as error:
                codes.append((error.response_status_code, error.error.code))
            else:
                raise AssertionError("no error")
        assert codes == [(404, "ResourceNotFound"), (400, "BadRequest")], codes
        return "404 ResourceNotFound, 400 BadRequest as ODataError"


def _bad_body() -> Any:
    body = certificate_state("5DC0" * 10, "laptop-bad")
    body.additional_data = {"colour": "red"}  # not a property of the entity: Graph says 400
    return body


async def _admin_records(base_url: str) -> list[dict[str, Any]]:
    """What the emulator holds (``GET /_records``, its admin endpoint next to ``/beta``)."""
    import aiohttp

    root = base_url.rstrip("/").removesuffix("/beta")
    async with aiohttp.ClientSession() as session, session.get(f"{root}/_records") as answer:
        records: list[dict[str, Any]] = await answer.json()
        return records


async def check(base_url: str, token: str) -> list[Step]:
    """Run every step through the SDK against the emulator at ``base_url``."""
    checks = _Checks(sdk_client(base_url, token))
    await checks.step("POST, with and without @odata.type", checks.create)
    if checks.ids:
        await checks.step(
            "what the POSTs sent", lambda: checks.sent_odata_type(lambda: _admin_records(base_url))
        )
        await checks.step("list with $filter, $top, $count", checks.list_filtered)
        await checks.step("list paged, /$count", checks.list_paged)
        await checks.step("GET, PATCH, DELETE by id", checks.get_patch_delete)
        await checks.step("errors", checks.errors)
    return checks.steps


async def _against_own_emulator() -> list[Step]:
    from importer.emulator import EmulatorConfig, GraphEmulator

    token = "sdk-check-token"
    config = EmulatorConfig(static_tokens=frozenset({token}), write_limit=0, read_limit=0)
    async with GraphEmulator(config) as emulator:
        return await check(emulator.base_url, token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="an emulator's /beta root (default: start one)")
    parser.add_argument("--token", default="", help="a token that emulator accepts")
    args = parser.parse_args(argv)
    try:
        import msgraph_beta  # noqa: F401
    except ImportError:
        print("msgraph-beta-sdk is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if args.base_url:
        steps = asyncio.run(check(args.base_url, args.token))
    else:
        steps = asyncio.run(_against_own_emulator())
    for step in steps:
        print(f"{'ok  ' if step.ok else 'FAIL'} {step.name}: {step.detail}")
    return 0 if steps and all(s.ok for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
