"""`GraphEmulator`, the aiohttp server on loopback, and `serve`, which runs one until cancelled.

The server composes the parts that answer: `_Identity` (tokens, ``/msi/token``), `_Authority`
(the OAuth 2.0 token endpoint and OpenID discovery of a sign-in authority), `_Admission`
and `_Collection` (the collection's operations), `_Batch` (``$batch``) and `_Admin` (the
admin endpoints), all on one `_State`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from .admin import _Admin
from .authority import Grant, _Authority
from .batch import _Batch
from .bodies import _body_problems, _decode_json_body, _GraphError
from .collection import _Admission, _Collection
from .config import EmulatorConfig, _loopback_address
from .identity import _Identity
from .ops import _error_result, _guid, _http_response, _Op, _route
from .state import _State


class GraphEmulator:
    """An in-process Microsoft Graph stand-in serving one certificate-state collection.

    Use it as an async context manager (``async with GraphEmulator(config) as emulator``) or
    call `start` and `close`. ``records`` (id -> object as GET returns it) and ``stats`` are
    live views for inspection: change records only through HTTP or `reset`.

    ``stats`` counts Graph HTTP requests (``requests``, a ``$batch`` counting once),
    operations received (``gets``, ``posts``, ``patches``, ``deletes``, batch items included),
    ``batches`` and ``batch_items``, effects (``created``, ``updated``, ``deleted``), answers
    by kind (``throttled`` = 429s, ``unauthorized`` = 401s, ``forbidden`` = 403s,
    ``not_found`` = 404s, ``bad_requests`` = 400s and 415s), ``faults`` injected (scripted or
    random), ``drops`` (connections closed without an answer) and ``token_requests``.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        state = _State(config if config is not None else EmulatorConfig())
        self._state = state
        self.records: dict[str, dict[str, Any]] = state.store.records
        self.stats: dict[str, int] = state.stats
        self.port = 0
        self._url_host: str | None = None
        self._scheme = "http"
        self._runner: web.AppRunner | None = None
        self._started = False
        self._identity = _Identity(state)
        self._admission = _Admission(state)
        self._collection = _Collection(state)
        self._batch = _Batch(state, self._admission, self._collection)
        self.app = web.Application()
        self.app.router.add_route("*", "/beta/{tail:.*}", self._handle_graph)
        self.app.router.add_get("/msi/token", self._identity.handle_token)
        self._authority = _Authority(state, self._identity)
        self._authority.add_routes(self.app)
        _Admin(state, self._identity, self.seed).add_routes(self.app)

    @property
    def config(self) -> EmulatorConfig:
        """The live config: change fields directly (unchecked) or with `configure` (checked)."""
        return self._state.config

    @config.setter
    def config(self, config: EmulatorConfig) -> None:
        self._state.config = config

    @property
    def _tokens(self) -> dict[str, float]:
        """Issued tokens and when they expire (epoch seconds), for tests to inspect."""
        return self._identity.tokens

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def grants(self) -> list[Grant]:
        """Tokens issued by the OAuth token endpoint, oldest first (who, for what, via which
        host; never a secret)."""
        return self._authority.grants

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Listen on `host`:`port` (0 picks a free port). Only loopback hosts are accepted.

        With `ssl_context` every route is served over TLS (``https://``): what a sign-in
        authority must be for azure-identity, and a Graph root in the https scheme.
        """
        address = _loopback_address(host)
        if self._started:
            raise RuntimeError("an emulator can be started only once")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._started = True
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024, ssl_context=ssl_context).start()
        self._runner = runner
        self._scheme = "http" if ssl_context is None else "https"
        self.port = sock.getsockname()[1]
        self._url_host = f"[{address}]" if family == socket.AF_INET6 else address

    async def close(self) -> None:
        """Stop listening and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> GraphEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (``https`` over TLS), the stand-in for
        ``https://graph.microsoft.com`` and, over TLS, for ``https://login.microsoftonline.com``."""
        if self._url_host is None:
            raise RuntimeError("the emulator is not started")
        return f"{self._scheme}://{self._url_host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/beta``: the Graph version root to point a client at."""
        return f"{self.root_url}/beta"

    @property
    def identity_endpoint(self) -> str:
        """Value for ``IDENTITY_ENDPOINT`` so that azure-identity fetches tokens from here."""
        return f"{self.root_url}/msi/token"

    # -- control ---------------------------------------------------------------------------

    def issue_token(self, lifetime: int | None = None) -> str:
        """Mint a bearer token valid for `lifetime` seconds (default ``config.token_lifetime``)."""
        return self._identity.issue(lifetime)

    def expire_tokens(self) -> None:
        """Revoke every issued token (static tokens stay valid): clients then get 401."""
        self._identity.expire()

    def script(self, entries: list[dict[str, Any]]) -> None:
        """Queue scripted faults for upcoming collection POSTs (standalone or batch items).

        Entries: ``{"status": 429, "retry_after": "1.5"}``, ``{"status": 503}``,
        ``{"status": 400, "code": "BadRequest", "message": "..."}``, ``{"action": "drop"}``,
        ``{"action": "created_drop"}``; optional ``"thumbprint"`` (matched case-insensitively
        against the body's certificateThumbprint, and preferred over generic entries) and
        ``"times"`` (default 1). ``retry_after`` is sent verbatim; omitted, 429 and 503 send
        ``"1"``; ``null`` sends no Retry-After. Raises `ValueError` on a malformed entry, in
        which case nothing is queued.
        """
        self._state.faults.queue(entries)

    def seed(self, bodies: Iterable[Mapping[str, Any]]) -> list[str]:
        """Store objects as a POST would (validated, each with a new id), without throttle,
        faults or stats: what a tenant already holds before a run. Returns their ids.

        Raises `ValueError` naming the first invalid body; the bodies before it are stored.
        """
        ids = []
        for n, body in enumerate(bodies):
            problems = _body_problems(body)
            if problems:
                raise ValueError(f"body {n}: {' '.join(problems)}")
            ids.append(self._collection.store_new(self.root_url, dict(body))["id"])
        return ids

    def reset(self) -> None:
        """Forget records, stats, scripted faults and throttle windows; re-seed the RNGs.

        Issued tokens stay valid (use `expire_tokens` to revoke them).
        """
        self._state.reset()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change config fields at runtime, all or nothing; raises `ValueError` when invalid."""
        self._state.configure(changes)

    # -- HTTP handlers ---------------------------------------------------------------------

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection so that the client gets no response at all."""
        self.stats["drops"] += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        # aiohttp fails to write this to the closed transport and treats it as a client
        # disconnect, so nothing of it reaches the wire.
        return web.Response(status=204)

    async def _handle_graph(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await self._answer_graph(request)
        # The answer (or the dropped connection) comes `latency` seconds after the request was
        # taken up, the emulator's own work included: under load that work would otherwise be
        # added to the latency of every request queued behind it.
        latency = self.config.latency
        if latency > 0:
            await asyncio.sleep(latency - (time.monotonic() - started))
        return self._drop(request) if response is None else response

    async def _answer_graph(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a Graph request, or None when its connection is to be dropped."""
        state = self._state
        state.stats["requests"] += 1
        request_id = _guid(state.request_rng)
        headers = request.headers
        crid = headers.get("client-request-id")
        auth_problem = self._identity.auth_problem(headers.get("Authorization"))
        # request.host would fall back to a slow getfqdn() when there is no Host header.
        root = f"{self._scheme}://{headers.get('Host') or f'{self._url_host}:{self.port}'}"
        tail = request.match_info["tail"]
        if tail == "$batch":
            return await self._batch.handle(request, request_id, crid, auth_problem, root)
        raw = await request.read()
        body, body_problem = _decode_json_body(raw, headers.get("Content-Type"))
        op = _Op(
            method=request.method,
            kind=None,
            record_id=None,
            query=request.query,
            body=body,
            body_problem=body_problem,
            problem=None,
            root=root,
            request_id=request_id,
            client_request_id=crid,
            prefer=headers.get("Prefer", ""),
        )
        try:
            op.kind, op.record_id = _route(request.method, tail)
        except _GraphError as error:
            op.problem = error
        prepared = self._admission.prepare(op, auth_problem)
        if prepared.drop:
            return None
        result = self._collection.execute(prepared)
        if prepared.after is not None and result.status < 300:  # created, then the answer fails
            result = _error_result(op, prepared.after.error())
        state.tally(result.status)
        if prepared.drop_after:
            return None
        return _http_response(result, request_id, crid)


async def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Run an emulator until cancelled (Ctrl-C under `asyncio.run`), announcing it on stderr."""
    emulator = GraphEmulator(config)
    await emulator.start(host, port, ssl_context=ssl_context)
    authority = f", authority host {emulator.root_url}" if ssl_context is not None else ""
    print(
        f"emulator listening on {emulator.base_url} (identity endpoint "
        f"{emulator.identity_endpoint}, identity header {config.identity_header}{authority})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.close()
