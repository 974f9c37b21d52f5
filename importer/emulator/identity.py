"""Bearer tokens: minted, checked and revoked, and the App Service style managed-identity
endpoint (``GET /msi/token``) that the real ``azure.identity`` credential accepts."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from typing import Final

from aiohttp import web

from .bodies import _GraphError
from .config import EMULATOR_CLIENT_ID, IDENTITY_API_VERSION
from .state import _State

_WWW_AUTHENTICATE: Final = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


def _identity_error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())},
        status=status,
    )


class _Identity:
    """Issued tokens (token -> expiry, epoch seconds) and the identity endpoint."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.tokens: dict[str, float] = {}

    def issue(self, lifetime: int | None = None) -> str:
        """Mint a bearer token valid for `lifetime` seconds (default ``config.token_lifetime``)."""
        seconds = self.state.config.token_lifetime if lifetime is None else lifetime
        if len(self.tokens) > 1024:
            now = time.time()
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
        token = f"emu.{secrets.token_urlsafe(32)}"
        self.tokens[token] = time.time() + seconds
        return token

    def expire(self) -> None:
        """Revoke every issued token (static tokens stay valid)."""
        self.tokens.clear()

    def auth_problem(self, authorization: str | None) -> _GraphError | None:
        """The 401 that an ``Authorization`` header deserves, or None when it is accepted."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            message = "Access token is empty."
        elif token in self.state.config.static_tokens:
            return None
        else:
            expires_at = self.tokens.get(token)
            if expires_at is not None and expires_at > time.time():
                return None
            message = (
                "Access token validation failure. Invalid audience."
                if expires_at is None
                else "Lifetime validation failed, the token is expired."
            )
        return _GraphError(
            401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": _WWW_AUTHENTICATE}
        )

    async def handle_token(self, request: web.Request) -> web.Response:
        """``GET /msi/token``: a token for the ``X-IDENTITY-HEADER`` secret."""
        self.state.stats["token_requests"] += 1
        secret = request.headers.get("X-IDENTITY-HEADER")
        query = request.query
        if secret is None:
            return _identity_error(400, "The X-IDENTITY-HEADER header is required.")
        if not hmac.compare_digest(secret.encode(), self.state.config.identity_header.encode()):
            return _identity_error(401, "The X-IDENTITY-HEADER header is invalid.")
        if query.get("api-version") != IDENTITY_API_VERSION:
            return _identity_error(
                400, f"api-version must be {IDENTITY_API_VERSION}, got {query.get('api-version')}."
            )
        resource = query.get("resource")
        if not resource:
            return _identity_error(400, "The resource parameter is required.")
        token = self.issue()
        expires_on = int(self.tokens[token])
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": query.get("client_id") or EMULATOR_CLIENT_ID,
            }
        )
