"""Tokens for Graph: azure-identity's async credentials, or a ready token; one shared token.

All workers share one token; it is refreshed a few minutes before it expires, or once after
Graph answers 401, behind a lock so concurrent workers cause a single refresh.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError

from importer.errors import AuthenticationFailed, ConfigError

REFRESH_MARGIN = 300.0  # seconds before expiry at which a token is renewed


class _Secret(Protocol):
    def reveal(self) -> str: ...


class AuthSettings(Protocol):
    """What the token source is built from (:class:`importer.config.Settings` has it all)."""

    @property
    def auth_method(self) -> str: ...
    @property
    def access_token(self) -> _Secret | None: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def certificate_path(self) -> str: ...
    @property
    def authority(self) -> str:
        """The sign-in authority, ``https://host[:port]``."""
        ...

    @property
    def scope(self) -> str: ...


class TokenSource(Protocol):
    """Anything that can hand out a bearer token for Graph."""

    async def token(self) -> str:
        """A valid token (cached, renewed before expiry)."""
        ...

    async def refresh(self, rejected: str) -> str:
        """A new token after Graph rejected ``rejected`` (401)."""
        ...

    async def close(self) -> None:
        """Release the credential's resources."""
        ...


class StaticToken:
    """A token handed over ready-made (``CERTIMPORT_ACCESS_TOKEN``); it cannot be renewed."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "StaticToken('[secure]')"

    async def token(self) -> str:
        return self._value

    async def refresh(self, rejected: str) -> str:
        raise AuthenticationFailed(
            "Graph rejected the token from CERTIMPORT_ACCESS_TOKEN (401) and a static token "
            "cannot be renewed; get a fresh token or use another auth method"
        )

    async def close(self) -> None:
        return None


class CredentialTokens:
    """Tokens from an azure-identity async credential, shared by all workers."""

    def __init__(self, credential: AsyncTokenCredential, scope: str, method: str) -> None:
        self._credential = credential
        self._scope = scope
        self._method = method
        self._lock = asyncio.Lock()
        self._value: str | None = None
        self._refresh_at = 0.0  # when the token is renewed: REFRESH_MARGIN before it expires
        self.fetches = 0

    def __repr__(self) -> str:
        return f"CredentialTokens(method={self._method!r}, scope={self._scope!r})"

    async def _fetch(self, *, bypass_cache: bool = False) -> str:
        # azure-identity caches tokens inside the credential; claims make it skip that cache,
        # which is what a token Graph has just refused needs.
        extra: dict[str, Any] = {"claims": "{}"} if bypass_cache else {}
        try:
            access = await self._credential.get_token(self._scope, **extra)
        except ClientAuthenticationError as exc:
            raise AuthenticationFailed(
                f"auth method {self._method!r} could not get a token for {self._scope}: "
                f"{_first_line(exc)}"
            ) from None
        except AzureError as exc:
            message = _first_line(exc)
            if "CERTIFICATE_VERIFY_FAILED" in message:
                message += (
                    "; the sign-in authority's certificate is not trusted: for a private CA, "
                    "set SSL_CERT_FILE to a bundle holding it before certimport starts"
                )
            raise AuthenticationFailed(f"auth method {self._method!r} failed: {message}") from None
        self.fetches += 1
        self._value = access.token
        # A token that lives less than twice the margin (a test authority, a short-lived
        # federated token) is renewed halfway through its life instead: with the margin alone
        # it would be "due" from the start, and every request would wait on the lock.
        left = float(access.expires_on) - time.time()
        self._refresh_at = float(access.expires_on) - min(REFRESH_MARGIN, max(left, 0.0) / 2)
        return access.token

    async def token(self) -> str:
        value = self._value
        if value is not None and time.time() < self._refresh_at:
            return value
        async with self._lock:
            if self._value is not None and time.time() < self._refresh_at:
                return self._value
            return await self._fetch()

    async def refresh(self, rejected: str) -> str:
        async with self._lock:
            if self._value is not None and self._value != rejected:
                return self._value  # another worker already renewed it
            fresh = await self._fetch()
            if fresh == rejected:
                fresh = await self._fetch(bypass_cache=True)
            return fresh

    async def close(self) -> None:
        await self._credential.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def build_token_source(
    settings: AuthSettings, environ: Mapping[str, str] | None = None
) -> TokenSource:
    """The token source for ``settings.auth_method``; raises ConfigError when it lacks inputs.

    Every credential that takes an authority gets ``settings.authority`` (the cloud's, or
    ``authority_host``): client secret, certificate, workload identity and the default chain.
    Managed identity and the Azure CLI take none: they get tokens from their own endpoint.
    """
    try:
        return _build_token_source(settings, os.environ if environ is None else environ)
    except ValueError as exc:  # azure-identity refusing an argument (a malformed tenant id...)
        raise ConfigError([f"auth method {settings.auth_method!r}: {_first_line(exc)}"]) from None


def _build_token_source(settings: AuthSettings, env: Mapping[str, str]) -> TokenSource:
    method = settings.auth_method
    if method == "static":
        if settings.access_token is None:
            raise ConfigError(["auth method 'static' needs CERTIMPORT_ACCESS_TOKEN"])
        return StaticToken(settings.access_token.reveal())
    tenant = settings.tenant_id or env.get("AZURE_TENANT_ID", "")
    client = settings.client_id or env.get("AZURE_CLIENT_ID", "")
    authority: dict[str, Any] = {"authority": settings.authority}
    problems: list[str] = []

    def need(value: str, what: str) -> None:
        if not value:
            problems.append(f"auth method {method!r} needs {what}")

    from azure.identity import aio as identity

    credential: AsyncTokenCredential
    if method == "default":
        credential = identity.DefaultAzureCredential(
            **authority, managed_identity_client_id=client or None
        )
    elif method == "client_secret":
        secret = env.get("AZURE_CLIENT_SECRET", "")
        need(tenant, "a tenant id ([graph] tenant_id or AZURE_TENANT_ID)")
        need(client, "a client id ([auth] client_id or AZURE_CLIENT_ID)")
        need(secret, "a client secret in AZURE_CLIENT_SECRET")
        if problems:
            raise ConfigError(problems)
        credential = identity.ClientSecretCredential(tenant, client, secret, **authority)
    elif method == "certificate":
        path = settings.certificate_path or env.get("AZURE_CLIENT_CERTIFICATE_PATH", "")
        need(tenant, "a tenant id ([graph] tenant_id or AZURE_TENANT_ID)")
        need(client, "a client id ([auth] client_id or AZURE_CLIENT_ID)")
        need(path, "a certificate ([auth] certificate_path or AZURE_CLIENT_CERTIFICATE_PATH)")
        if path and not os.path.isfile(path):
            problems.append(f"certificate file {path!r} not found")
        if problems:
            raise ConfigError(problems)
        password = env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None
        credential = identity.CertificateCredential(
            tenant, client, certificate_path=path, password=password, **authority
        )
    elif method == "managed_identity":
        credential = identity.ManagedIdentityCredential(client_id=client or None)
    elif method == "workload_identity":
        need(tenant, "a tenant id ([graph] tenant_id or AZURE_TENANT_ID)")
        need(client, "a client id ([auth] client_id or AZURE_CLIENT_ID)")
        token_file = env.get("AZURE_FEDERATED_TOKEN_FILE", "")
        need(token_file, "a federated token file in AZURE_FEDERATED_TOKEN_FILE")
        if token_file and not os.path.isfile(token_file):
            problems.append(f"federated token file {token_file!r} not found")
        if problems:
            raise ConfigError(problems)
        credential = identity.WorkloadIdentityCredential(
            tenant_id=tenant, client_id=client, token_file_path=token_file, **authority
        )
    elif method == "azure_cli":
        credential = identity.AzureCliCredential(tenant_id=tenant)
    else:
        raise ConfigError([f"unknown auth method {method!r}"])
    return CredentialTokens(credential, settings.scope, method)
