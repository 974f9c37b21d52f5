"""JSON batching (``POST /beta/$batch``): the envelope's rules, each item as an operation, and
the answers, shuffled as Graph may return them."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from yarl import URL

from .bodies import _ABSENT, _decode_json_body, _GraphError
from .collection import _Admission, _Collection
from .config import COLLECTION_PATH, MAX_BATCH_REQUESTS
from .ops import _error_result, _guid, _http_response, _Op, _Result, _route
from .state import _State


@functools.lru_cache(maxsize=256)
def _relative_url(url: str) -> URL:
    """A batch item's URL, parsed once per distinct text (every item of an import has one)."""
    return URL(url if url.startswith("/") else f"/{url}")


def _check_item(index: int, item: Any, seen: set[str]) -> str:
    """Check one item of the envelope against the ids seen before it (case-folded: Graph
    compares batch ids ignoring case); return its id."""
    if not isinstance(item, dict):
        raise _GraphError(400, "BadRequest", f"Batch request #{index} is not an object.")
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise _GraphError(400, "BadRequest", f"Batch request #{index} has no string id.")
    if item_id.casefold() in seen:
        raise _GraphError(
            400,
            "BadRequest",
            f"Batch request id '{item_id}' is repeated (ids are compared ignoring case).",
        )
    for key in ("method", "url"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise _GraphError(
                400, "BadRequest", f"Batch request '{item_id}' has no string '{key}'."
            )
    headers = item.get("headers")
    if headers is not None and (
        not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
    ):
        raise _GraphError(
            400,
            "BadRequest",
            f"Batch request '{item_id}' headers must be an object of strings.",
        )
    depends = item.get("dependsOn")
    if depends is not None and (
        not isinstance(depends, list)
        or not all(isinstance(d, str) and d.casefold() in seen for d in depends)
    ):
        raise _GraphError(
            400,
            "BadRequest",
            f"Batch request '{item_id}' dependsOn must list ids of earlier requests.",
        )
    return item_id


def _batch_items(payload: Any) -> list[dict[str, Any]]:
    """The items of a batch envelope, or raise the 400 that the envelope deserves."""
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _GraphError(400, "BadRequest", 'A batch body must be {"requests": [...]}.')
    items: list[Any] = payload["requests"]
    if not items:
        raise _GraphError(400, "BadRequest", "A batch must contain at least one request.")
    if len(items) > MAX_BATCH_REQUESTS:
        raise _GraphError(
            400,
            "BadRequest",
            f"A batch may contain at most {MAX_BATCH_REQUESTS} requests, got {len(items)}.",
        )
    seen: set[str] = set()
    for index, item in enumerate(items):
        seen.add(_check_item(index, item, seen).casefold())
    return items


def _item_body_problem(content_type: str | None) -> _GraphError | None:
    """The problem with the Content-Type of an item that has a body, or None."""
    if content_type is None:
        return _GraphError(
            400, "BadRequest", "A batch request with a body needs a Content-Type header."
        )
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return _GraphError(
            415,
            "UnsupportedMediaType",
            f"Content-Type must be application/json, got {content_type}.",
        )
    return None


def _batch_response(item_id: str, result: _Result) -> dict[str, Any]:
    headers = dict(result.headers)
    response: dict[str, Any] = {"id": item_id, "status": result.status, "headers": headers}
    if result.text is not None:
        headers["Content-Type"] = "text/plain"
        response["body"] = result.text
    elif result.body is not None:
        headers["Content-Type"] = "application/json"
        response["body"] = result.body
    return response


class _Batch:
    """Answers ``$batch`` requests with the collection's own admission and operations."""

    def __init__(self, state: _State, admission: _Admission, collection: _Collection) -> None:
        self.state = state
        self.admission = admission
        self.collection = collection

    def _item_op(self, item: dict[str, Any], root: str) -> _Op:
        headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        method = item["method"].upper()
        url: str = item["url"]
        op = _Op(
            method=method,
            kind=None,
            record_id=None,
            query={},
            body=_ABSENT,
            body_problem=None,
            problem=None,
            root=root,
            request_id=_guid(self.state.request_rng),
            client_request_id=headers.get("client-request-id"),
            prefer=headers.get("prefer", ""),
        )
        if "://" in url or url.startswith("//"):
            op.problem = _GraphError(
                400,
                "BadRequest",
                f"Batch request URLs must be relative to the version root, e.g. "
                f"'{COLLECTION_PATH}', got '{url}'.",
            )
            return op
        try:
            relative = _relative_url(url)
        except ValueError as exc:
            op.problem = _GraphError(400, "BadRequest", f"Invalid batch request URL '{url}': {exc}")
            return op
        if relative.path.strip("/").lower() == "$batch":
            op.problem = _GraphError(400, "BadRequest", "A batch cannot contain a $batch request.")
            return op
        op.query = relative.query
        if item.get("body") is not None:
            op.body_problem = _item_body_problem(headers.get("content-type"))
            if op.body_problem is None:
                op.body = item["body"]
        try:
            op.kind, op.record_id = _route(method, relative.path)
        except _GraphError as error:
            op.problem = error
        return op

    async def _read_items(
        self, request: web.Request, auth_problem: _GraphError | None
    ) -> list[dict[str, Any]]:
        """The checked items of the batch, or raise the error that answers the whole batch."""
        if auth_problem is not None:
            raise auth_problem
        raw = await request.read()
        payload, problem = _decode_json_body(raw, request.headers.get("Content-Type"))
        if problem is not None:
            raise problem
        return _batch_items(payload)

    async def handle(
        self,
        request: web.Request,
        request_id: str,
        crid: str | None,
        auth_problem: _GraphError | None,
        root: str,
    ) -> web.StreamResponse | None:
        """The answer to a ``$batch`` request, or None when its connection is to be dropped."""
        state = self.state
        state.stats["batches"] += 1
        envelope = _Op("POST", None, None, {}, _ABSENT, None, None, root, request_id, crid, "")
        if request.method != "POST":
            error = _GraphError(405, "MethodNotAllowed", "$batch accepts only POST.")
            return _http_response(_error_result(envelope, error), request_id, crid)
        try:
            items = await self._read_items(request, auth_problem)
        except _GraphError as error:
            result = _error_result(envelope, error)
            state.tally(result.status)
            return _http_response(result, request_id, crid)
        state.stats["batch_items"] += len(items)
        prepared = [self.admission.prepare(self._item_op(item, root), None) for item in items]
        if any(p.drop for p in prepared):
            return None
        statuses: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        for item, prep in zip(items, prepared, strict=True):
            failed = [
                d for d in item.get("dependsOn") or () if not 200 <= statuses[d.casefold()] < 300
            ]
            if failed:
                dependency = _GraphError(
                    424, "FailedDependency", f"Depends on failed request(s) {', '.join(failed)}."
                )
                result = _error_result(prep.op, dependency)
            else:
                result = self.collection.execute(prep)
                if prep.after is not None and result.status < 300:  # created, then it fails
                    result = _error_result(prep.op, prep.after.error())
            state.tally(result.status)
            statuses[item["id"].casefold()] = result.status
            responses.append(_batch_response(item["id"], result))
        state.batch_rng.shuffle(responses)
        if any(p.drop_after for p in prepared):
            return None
        whole = next(
            (p.after for p in prepared if p.after and p.after.action == "created_batch"), None
        )
        if whole is not None:  # every item was handled; the gateway's answer to the call is lost
            return _http_response(_error_result(envelope, whole.error()), request_id, crid)
        return _http_response(_Result(200, {"responses": responses}), request_id, crid)
