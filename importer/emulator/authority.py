"""A sign-in authority on loopback: the OAuth 2.0 client-credentials token endpoint
(``POST /{tenant}/oauth2/v2.0/token``) and the OpenID discovery document, so that the real
``azure.identity`` ClientSecretCredential, CertificateCredential and WorkloadIdentityCredential
get their tokens here when their authority is this emulator (served over TLS: azure-identity
accepts only an https authority).

What is checked, as Microsoft Entra ID answers it (error document with ``error``,
``error_description`` starting ``AADSTSnnnn:``, ``error_codes``, ``trace_id``,
``correlation_id``): the grant type, the client id, one ``.default`` scope, and a client
secret (one of ``client_secrets`` when that is set) or a JWT client assertion: a certificate's
(``aud`` = this token endpoint, ``iss`` = ``sub`` = the client id, not expired) or a federated
token (``aud`` = ``api://AzureADTokenExchange``). Signatures are not verified.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiohttp import web

from .identity import _Identity
from .state import _State

JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATED_AUDIENCE: Final = "api://AzureADTokenExchange"


@dataclass(frozen=True, slots=True)
class Grant:
    """One token the authority issued: to whom, for what, through which host (no secrets)."""

    host: str
    tenant: str
    client_id: str
    scope: str
    credential: str  # client_secret | certificate | federated


class _Refused(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self) -> web.Response:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return web.json_response(
            {
                "error": self.error,
                "error_description": (
                    f"AADSTS{self.code}: {self.description} Trace ID: {trace} "
                    f"Correlation ID: {correlation} Timestamp: {stamp}"
                ),
                "error_codes": [self.code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
            },
            status=self.status,
        )


def _missing(name: str) -> _Refused:
    return _Refused(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _jwt_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWT (not verified), or raise `_Refused`."""
    parts = assertion.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three parts")
        header, claims = (
            orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not objects")
    except (ValueError, binascii.Error) as exc:  # orjson.JSONDecodeError is a ValueError
        raise _Refused(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from exc
    return header, claims


class _Authority:
    """The token endpoint and discovery documents, issuing tokens through `_Identity`."""

    def __init__(self, state: _State, identity: _Identity) -> None:
        self.state = state
        self.identity = identity
        self.grants: list[Grant] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.handle_token)
        app.router.add_get(
            "/{tenant}/v2.0/.well-known/openid-configuration", self.handle_openid_configuration
        )
        app.router.add_get("/adfs/.well-known/openid-configuration", self.handle_openid_adfs)

    @staticmethod
    def _root(request: web.Request) -> str:
        return f"{request.scheme}://{request.headers.get('Host') or request.host}"

    async def handle_openid_configuration(self, request: web.Request) -> web.Response:
        """The document MSAL reads from ``{authority}/{tenant}/v2.0/.well-known/...``."""
        return web.json_response(self._discovery(self._root(request), request.match_info["tenant"]))

    async def handle_openid_adfs(self, request: web.Request) -> web.Response:
        """The ADFS form of the discovery document (``{authority}/adfs/.well-known/...``)."""
        return web.json_response(self._discovery(self._root(request), "adfs"))

    @staticmethod
    def _discovery(root: str, tenant: str) -> dict[str, Any]:
        base = f"{root}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "cloud_instance_name": "emulator.local",
        }

    async def handle_token(self, request: web.Request) -> web.Response:
        """``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant."""
        self.state.stats["token_requests"] += 1
        tenant = request.match_info["tenant"]
        form = await request.post() if request.content_type.endswith("urlencoded") else {}
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            grant = self._grant(fields, tenant, f"{self._root(request)}{request.path}")
        except _Refused as refused:
            return refused.response()
        self.grants.append(replace(grant, host=request.headers.get("Host", "")))
        token = self.identity.issue()
        lifetime = max(0, round(self.identity.tokens[token] - time.time()))
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )

    def _grant(self, fields: dict[str, str], tenant: str, token_url: str) -> Grant:
        """The grant that `fields` ask for, or raise the refusal Entra ID would answer."""
        grant_type = fields.get("grant_type")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "client_credentials":
            raise _Refused(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = fields.get("client_id") or ""
        if not client_id:
            raise _missing("client_id")
        scope = fields.get("scope") or ""
        if not scope:
            raise _missing("scope")
        if " " in scope.strip() or not scope.endswith("/.default"):
            raise _Refused(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        credential = self._credential(fields, client_id, token_url)
        return Grant("", tenant, client_id, scope, credential)

    def _credential(self, fields: dict[str, str], client_id: str, token_url: str) -> str:
        secret = fields.get("client_secret")
        assertion = fields.get("client_assertion")
        if secret:
            accepted = self.state.config.client_secrets
            if accepted and not any(
                hmac.compare_digest(secret.encode(), known.encode()) for known in accepted
            ):
                raise _Refused(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    f"request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{client_id}'.",
                )
            return "client_secret"
        if not assertion:
            raise _Refused(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if fields.get("client_assertion_type") != JWT_BEARER:
            raise _missing("client_assertion_type")
        header, claims = _jwt_parts(assertion)
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires < time.time():
            raise _Refused(401, "invalid_client", 700024, "Client assertion is expired.")
        audience = claims.get("aud")
        if audience == FEDERATED_AUDIENCE:
            return "federated"
        if audience != token_url:
            raise _Refused(
                401,
                "invalid_client",
                50027,
                f"Invalid JWT token: the audience '{audience}' is not this token endpoint.",
            )
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise _Refused(
                401, "invalid_client", 50027, "Invalid JWT token: iss and sub must be the app."
            )
        if not (header.get("x5t#S256") or header.get("x5t")):
            raise _Refused(
                401, "invalid_client", 50027, "Invalid JWT token: no certificate thumbprint."
            )
        return "certificate"
