"""The collection's operations: what happens before the store is touched (`_Admission`: auth,
throttle, faults) and the operations on it (`_Collection`: create, get, list, count, patch,
delete)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from .bodies import _ABSENT, _ERROR_DEFAULTS, _body_problems, _GraphError
from .config import COLLECTION, COLLECTION_PATH, ENTITY_TYPE, MAX_PAGE_SIZE
from .ops import _KIND_STAT, _WRITE_KINDS, _error_result, _guid, _Op, _Prepared, _Result
from .state import _State
from .store import _decode_skiptoken, _encode_skiptoken, _parse_filter, _parse_selection, _select

_NO_OPTIONS: Final[frozenset[str]] = frozenset()
# What the emulator implements, by operation ($skiptoken: the paging of its own nextLinks).
_GET_OPTIONS: Final = frozenset({"$select"})
_LIST_OPTIONS: Final = frozenset({"$top", "$skiptoken", "$filter", "$select", "$count"})
_COUNT_OPTIONS: Final = frozenset({"$filter"})
# What Graph documents for the entity (the beta SDKs' query parameters): the emulator refuses
# the ones it does not implement, saying so, rather than ignoring them.
DOCUMENTED_QUERY_OPTIONS: Final[dict[str, frozenset[str]]] = {
    "list": frozenset(
        {"$count", "$expand", "$filter", "$orderby", "$search", "$select", "$skip", "$top"}
    ),
    "get": frozenset({"$expand", "$select"}),
    "count": frozenset({"$filter", "$search"}),
}
# OData system query options: on the beta endpoint their $ prefix is optional.
_SYSTEM_OPTIONS: Final = frozenset(
    {
        "count",
        "expand",
        "filter",
        "format",
        "orderby",
        "search",
        "select",
        "skip",
        "skiptoken",
        "top",
    }
)
_QUERY_SAFE: Final = "',"


class _Admission:
    """Counts an operation and decides whether it reaches the store: auth, routing problems,
    the forbidden switch, the throttles, then (collection POSTs only) faults."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def prepare(self, op: _Op, auth_problem: _GraphError | None) -> _Prepared:
        """Apply everything that happens before the store is touched: auth, throttle, faults."""
        state = self.state
        if op.kind is not None:
            state.stats[_KIND_STAT[op.kind]] += 1
        if auth_problem is not None:
            return _Prepared(op, _error_result(op, auth_problem))
        if op.problem is not None or op.kind is None:
            problem = op.problem or _GraphError(400, *_ERROR_DEFAULTS[400])
            return _Prepared(op, _error_result(op, problem))
        config = state.config
        if config.forbidden:
            return _Prepared(op, _error_result(op, _GraphError(403, *_ERROR_DEFAULTS[403])))
        throttled = state.throttle.check(op.kind in _WRITE_KINDS, config)
        if throttled is not None:
            return _Prepared(op, _error_result(op, throttled))
        if op.kind != "create":
            return _Prepared(op)
        fault = state.faults.draw(op.body, config)
        if fault is None:
            return _Prepared(op)
        state.stats["faults"] += 1
        if fault.action == "drop":
            return _Prepared(op, drop=True)
        if fault.action == "created_drop":
            return _Prepared(op, drop_after=True)
        if fault.action in ("created", "created_batch"):
            return _Prepared(op, after=fault)
        return _Prepared(op, _error_result(op, fault.error()))


class _Collection:
    """The operations on the records of the collection."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def execute(self, prepared: _Prepared) -> _Result:
        if prepared.early is not None:
            return prepared.early
        op = prepared.op
        try:
            if op.kind == "create":
                return self._create(op)
            if op.kind == "list":
                return self._list(op)
            if op.kind == "count":
                return self._count(op)
            if op.kind == "patch":
                return self._patch(op)
            if op.kind == "delete":
                return self._delete(op)
            return self._get(op)
        except _GraphError as error:
            return _error_result(op, error)

    @staticmethod
    def _require_body(op: _Op) -> Any:
        if op.body_problem is not None:
            raise op.body_problem
        if op.body is _ABSENT:
            raise _GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        problems = _body_problems(op.body)
        if problems:
            raise _GraphError(400, "BadRequest", " ".join(problems))
        return op.body

    def _require_record(self, op: _Op) -> tuple[str, dict[str, Any]]:
        record_id = op.record_id or ""
        record = self.state.store.records.get(record_id)
        if record is None:
            raise _GraphError(
                404, "ResourceNotFound", f"No {ENTITY_TYPE} with id '{record_id}' exists."
            )
        return record_id, record

    @staticmethod
    def _check_query(op: _Op, allowed: frozenset[str]) -> None:
        """Refuse a system query option that `op` does not take, in Graph's error shape; a
        beta option given without its ``$`` (``filter=``) is taken as with it."""
        query: dict[str, str] = {}
        for key, value in op.query.items():
            name = f"${key}" if key in _SYSTEM_OPTIONS else key
            if name in query:
                raise _GraphError(
                    400, "BadRequest", f"The query option '{name}' is given more than once."
                )
            query[name] = value
            if not name.startswith("$") or name in allowed:
                continue
            documented = DOCUMENTED_QUERY_OPTIONS.get(op.kind or "", _NO_OPTIONS)
            offered = ", ".join(sorted(allowed)) or "none"
            if name in documented:
                message = (
                    f"The query option '{name}' is documented for this request but the "
                    f"emulator does not implement it (it implements: {offered})."
                )
            else:
                message = (
                    f"The query option '{name}' is not allowed for this request "
                    f"(allowed: {offered})."
                )
            raise _GraphError(400, "BadRequest", message)
        op.query = query

    def _conditions(self, op: _Op) -> list[tuple[str, str]]:
        raw = op.query.get("$filter")
        if raw is not None and not self.state.config.filter_supported:
            raise _GraphError(400, "BadRequest", "Query option '$filter' is not supported.")
        return [] if raw is None else _parse_filter(raw)

    def _create(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        body = self._require_body(op)
        record = self.store_new(op.root, body)
        self.state.stats["created"] += 1
        location = f"{op.root}/beta{COLLECTION_PATH}/{record['id']}"
        return _Result(201, dict(record), {"Location": location})

    def store_new(self, root: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a valid create payload as a new record (a new id) and return the record."""
        record_id = _guid(self.state.id_rng)
        record: dict[str, Any] = {
            "@odata.context": f"{root}/beta/$metadata#deviceManagement/{COLLECTION}/$entity"
        }
        if "@odata.type" in body:
            record["@odata.type"] = body["@odata.type"]
        record["id"] = record_id
        for name, value in body.items():
            if name != "@odata.type":
                record[name] = value
        self.state.store.add(record_id, record)
        return record

    def _get(self, op: _Op) -> _Result:
        self._check_query(op, _GET_OPTIONS)
        selection = _parse_selection(op.query.get("$select"))
        _, record = self._require_record(op)
        if selection is None:
            return _Result(200, dict(record))
        return _Result(200, _select(record, selection, keep_context=True))

    def _list(self, op: _Op) -> _Result:
        self._check_query(op, _LIST_OPTIONS)
        top = self.state.config.page_size
        raw_top = op.query.get("$top")
        if raw_top is not None:
            if not raw_top.isdigit() or not 1 <= int(raw_top) <= MAX_PAGE_SIZE:
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Invalid $top '{raw_top}': use an integer from 1 to {MAX_PAGE_SIZE}.",
                )
            top = int(raw_top)
        raw_count = op.query.get("$count")
        if raw_count not in (None, "true", "false"):
            raise _GraphError(400, "BadRequest", f"Invalid $count '{raw_count}'.")
        raw_token = op.query.get("$skiptoken")
        after = 0 if raw_token is None else _decode_skiptoken(raw_token)
        conditions = self._conditions(op)
        selection = _parse_selection(op.query.get("$select"))
        store = self.state.store
        records, cursor = store.page(conditions, after, top)
        body: dict[str, Any] = {
            "@odata.context": f"{op.root}/beta/$metadata#deviceManagement/{COLLECTION}"
        }
        if raw_count == "true":
            body["@odata.count"] = store.count(conditions)
        if selection is None:
            body["value"] = [
                {k: v for k, v in record.items() if k != "@odata.context"} for record in records
            ]
        else:
            body["value"] = [_select(r, selection, keep_context=False) for r in records]
        if cursor is not None:
            body["@odata.nextLink"] = _next_link(op, top, cursor)
        return _Result(200, body)

    def _count(self, op: _Op) -> _Result:
        self._check_query(op, _COUNT_OPTIONS)
        return _Result(200, text=str(self.state.store.count(self._conditions(op))))

    def _patch(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        record_id, record = self._require_record(op)
        body = self._require_body(op)
        self.state.store.update(record_id, {k: v for k, v in body.items() if k != "@odata.type"})
        self.state.stats["updated"] += 1
        if "return=representation" in op.prefer.lower():
            return _Result(200, dict(record))
        return _Result(204)

    def _delete(self, op: _Op) -> _Result:
        self._check_query(op, _NO_OPTIONS)
        record_id, _ = self._require_record(op)
        self.state.store.delete(record_id)
        self.state.stats["deleted"] += 1
        return _Result(204)


def _next_link(op: _Op, top: int, cursor: int) -> str:
    """The absolute ``@odata.nextLink`` of the page after `cursor`, with the query of `op`."""
    params = {k: v for k, v in op.query.items() if k != "$skiptoken"}
    params["$top"] = str(top)
    params["$skiptoken"] = _encode_skiptoken(cursor)
    # Spaces as %20, as Graph writes them (yarl would write '+').
    query = "&".join(
        f"{quote(k, safe='$')}={quote(v, safe=_QUERY_SAFE)}" for k, v in params.items()
    )
    return f"{op.root}/beta{COLLECTION_PATH}?{query}"
