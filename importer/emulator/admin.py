"""The admin endpoints (no auth, loopback only) that let another process drive an emulator:
``GET /_stats``, ``GET /_records``, ``POST /_script``, ``POST /_reset``, ``POST /_config``,
``POST /_expire_tokens``, ``POST /_seed`` (a JSON list of create bodies stored as existing
objects: what a tenant already holds)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from .config import _config_as_json
from .identity import _Identity
from .state import _State


def _admin_error(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


class _Admin:
    """The admin handlers, on the state (and issued tokens) of one emulator."""

    def __init__(
        self,
        state: _State,
        identity: _Identity,
        seed: Callable[[Iterable[Mapping[str, Any]]], list[str]],
    ) -> None:
        self.state = state
        self.identity = identity
        self.seed = seed

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_stats", self.handle_stats)
        app.router.add_get("/_records", self.handle_records)
        app.router.add_post("/_script", self.handle_script)
        app.router.add_post("/_reset", self.handle_reset)
        app.router.add_post("/_config", self.handle_config)
        app.router.add_post("/_expire_tokens", self.handle_expire_tokens)
        app.router.add_post("/_seed", self.handle_seed)

    async def handle_stats(self, request: web.Request) -> web.Response:
        state = self.state
        return web.json_response({**state.stats, "records": len(state.store.records)})

    async def handle_records(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(list(self.state.store.records.values())),
            content_type="application/json",
        )

    async def handle_script(self, request: web.Request) -> web.Response:
        faults = self.state.faults
        try:
            entries = orjson.loads(await request.read())
            if not isinstance(entries, list):
                raise ValueError("the body must be a JSON list of script entries")
            faults.queue(entries)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return _admin_error(str(exc))
        return web.json_response({"queued": len(entries), "pending": len(faults.script)})

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"reset": True})

    async def handle_config(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of config fields")
            self.state.configure(changes)
        except (ValueError, TypeError) as exc:
            return _admin_error(str(exc))
        return web.json_response(_config_as_json(self.state.config))

    async def handle_expire_tokens(self, request: web.Request) -> web.Response:
        self.identity.expire()
        return web.json_response({"expired": True})

    async def handle_seed(self, request: web.Request) -> web.Response:
        try:
            bodies = orjson.loads(await request.read())
            if not isinstance(bodies, list) or not all(isinstance(b, dict) for b in bodies):
                raise ValueError("the body must be a JSON list of create bodies")
            ids = self.seed(bodies)
        except ValueError as exc:
            return _admin_error(str(exc))
        return web.json_response({"seeded": len(ids), "records": len(self.state.store.records)})
