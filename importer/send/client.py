"""The Graph client: one aiohttp session, every response classified in one place, retries.

Verdicts for a create (POST):
    201                          created (id from the body)
    429, 503, 504, 509           retried after Retry-After, else exponential backoff with jitter
    connection not established   retried (the request was never sent)
    401                          token renewed once, then retried; a second 401 aborts the run
    403, 404 on the collection   the run is aborted: every row would fail the same way
    other 4xx                    the row is rejected with Graph's error code and message
    other 5xx, timeout, dropped  unknown: the POST may have been committed, so it is not re-sent

With ``batch`` > 1 the bodies go through ``$batch`` (up to 20 per call): each item is classified
the same way, throttled items are retried with their own ``Retry-After``, and the pacer counts
items, not calls (Graph's throttle does).
"""

from __future__ import annotations

import enum
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDict
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from importer.errors import AuthenticationFailed, PermissionDenied, RunAborted
from importer.logs import register_secret
from importer.model import COLLECTION_PATH
from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN, UPDATED, Outcome
from importer.send.auth import TokenSource
from importer.send.pacing import Pacer
from importer.send.retry import RetryPolicy, parse_retry_after

log = logging.getLogger("importer.client")

RETRYABLE_STATUSES = frozenset({429, 503, 504, 509})
ABORT_STATUSES = frozenset({403, 404})


class Verdict(enum.Enum):
    """What to do with a response."""

    CREATED = "created"
    RETRY = "retry"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    REAUTH = "reauth"
    ABORT = "abort"


@dataclass(frozen=True)
class Classified:
    """A response (or transport failure) reduced to what the importer needs."""

    verdict: Verdict
    status: int | None = None
    retry_after: float | None = None
    error_code: str = ""
    error_message: str = ""
    request_id: str = ""
    created_id: str = ""
    payload: Any = field(default=None, repr=False, compare=False)  # a GET's parsed body
    client_request_id: str = ""  # ours, echoed by Graph; kept for retried answers (logs)


def _error_fields(status: int, payload: Any, text: str) -> tuple[str, str]:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        return str(error.get("code") or f"HTTP{status}"), str(error.get("message") or "")
    snippet = " ".join(text.split())[:200]
    return f"HTTP{status}", snippet


def classify(status: int, headers: Mapping[str, str], payload: Any, text: str = "") -> Classified:
    """The verdict on one HTTP response to a create (the single place that decides)."""
    request_id = headers.get("request-id", "")
    if 200 <= status < 300:
        new_id = payload.get("id") if isinstance(payload, dict) else None
        if isinstance(new_id, str) and new_id:
            return Classified(Verdict.CREATED, status, request_id=request_id, created_id=new_id)
        return Classified(
            Verdict.UNKNOWN,
            status,
            error_code="MissingId",
            error_message=f"HTTP {status} without an id in the body: the object may exist",
            request_id=request_id,
        )
    code, message = _error_fields(status, payload, text)
    if status in RETRYABLE_STATUSES:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return Classified(
            Verdict.RETRY,
            status,
            retry_after,
            code,
            message,
            request_id,
            client_request_id=headers.get("client-request-id", ""),
        )
    if status == 401:
        return Classified(Verdict.REAUTH, status, None, code, message, request_id)
    if status in ABORT_STATUSES:
        return Classified(Verdict.ABORT, status, None, code, message, request_id)
    if 400 <= status < 500:
        return Classified(Verdict.REJECTED, status, None, code, message, request_id)
    return Classified(Verdict.UNKNOWN, status, None, code, message, request_id)


def _log_retry(result: Classified, wait: float, attempt: int) -> None:
    """One INFO line per retry, with the ids of the answer that caused it."""
    log.info(
        "retrying after %s in %.3f s (attempt %d)",
        result.error_code or "?",
        wait,
        attempt,
        extra={
            "event": "retry",
            "error_code": result.error_code,
            "http_status": result.status,
            "wait_seconds": round(wait, 3),
            "attempt": attempt,
            "client_request_id": result.client_request_id,
            "request_id": result.request_id,
        },
    )


class RequestIds:
    """``client-request-id`` values: GUIDs (as Graph expects), random per client, then counted.

    Unique within a run and across runs, and cheap: ``uuid4()`` reads the OS's random source
    on every call, a measurable share of a request's CPU at thousands of requests a second.
    """

    def __init__(self) -> None:
        r = secrets.token_hex(10)
        variant = "89ab"[int(r[15], 16) & 3]
        self._prefix = f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{variant}{r[16:19]}-"
        self._count = itertools.count(secrets.randbits(40))

    def next(self) -> str:
        """The next id."""
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


class _Retryable(Exception):
    def __init__(self, result: Classified) -> None:
        super().__init__(result.error_code)
        self.result = result


@dataclass
class ClientStats:
    """Counters of the traffic a client sent."""

    requests: int = 0  # HTTP requests (a $batch call counts once)
    items: int = 0  # create operations sent, batched or not (what Graph's throttle counts)
    throttled: int = 0  # operations answered 429
    retries: int = 0  # operations sent again
    token_refreshes: int = 0


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    payload: Any
    text: str


_STATUS_OF = {Verdict.CREATED: CREATED, Verdict.REJECTED: REJECTED}


def _outcome(result: Classified, attempts: int) -> Outcome:
    status = _STATUS_OF.get(result.verdict, UNKNOWN)
    return Outcome(
        status,
        id=result.created_id,
        http_status=result.status,
        error_code=result.error_code,
        error_message=result.error_message,
        attempts=attempts,
        request_id=result.request_id,
    )


def _gave_up(result: Classified, attempts: int) -> Outcome:
    return Outcome(
        FAILED,
        http_status=result.status,
        error_code=result.error_code,
        error_message=f"gave up after {attempts} attempt(s): {result.error_message}".strip(),
        attempts=attempts,
        request_id=result.request_id,
    )


class GraphClient:
    """Creates certificate-state objects; use as ``async with GraphClient(...) as client``."""

    def __init__(
        self,
        collection_url: str,
        tokens: TokenSource,
        *,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        read_pacer: Pacer | None = None,
        concurrency: int = 4,
        request_timeout: float = 60.0,
    ) -> None:
        self.collection_url = collection_url
        self.batch_url = collection_url.removesuffix(COLLECTION_PATH) + "/$batch"
        self.tokens = tokens
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer(clock=self.policy.clock, sleep=self.policy.sleep)
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.read_pacer = read_pacer or Pacer(clock=self.policy.clock, sleep=self.policy.sleep)
        self.stats = ClientStats()
        self._last_token: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ids = RequestIds()

    def __repr__(self) -> str:
        return f"GraphClient({self.collection_url!r}, concurrency={self.concurrency})"

    async def __aenter__(self) -> GraphClient:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            # Close idle connections before a server would, so that a POST is not written to a
            # connection the server has just dropped (that would make its outcome unknown).
            keepalive_timeout=15,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(30.0, self.request_timeout), sock_read=self.request_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"return-client-request-id": "true"},
            cookie_jar=aiohttp.DummyCookieJar(),  # Graph uses none: no jar to filter per request
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _exchange(
        self, url: str, data: bytes | None, token: str, method: str = "POST"
    ) -> _Answer | Classified:
        """Send one request; an answer, or the verdict on a transport failure."""
        assert self._session is not None, "use GraphClient as an async context manager"
        client_request_id = self._ids.next()
        headers = {"Authorization": f"Bearer {token}", "client-request-id": client_request_id}
        if data is not None:
            headers["Content-Type"] = "application/json"
        self.stats.requests += 1
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.read()
                text = ""
                try:
                    payload = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    payload = None
                    # not JSON (a proxy's HTML page, say): keep its text for the error message
                    text = raw.decode(response.get_encoding(), errors="replace")
                if response.status >= 300:
                    request_id = response.headers.get("request-id", "")
                    log.info(
                        "%s answered %s (client-request-id %s, request-id %s, diag %s)",
                        method,
                        response.status,
                        client_request_id,
                        request_id,
                        response.headers.get("x-ms-ags-diagnostic", ""),
                        extra={
                            "event": "throttled" if response.status == 429 else "http_error",
                            "method": method,
                            "http_status": response.status,
                            "client_request_id": client_request_id,
                            "request_id": request_id,
                            "retry_after": response.headers.get("Retry-After", ""),
                            "diagnostic": response.headers.get("x-ms-ags-diagnostic", ""),
                        },
                    )
                return _Answer(response.status, response.headers, payload, text)
        except aiohttp.ClientSSLError as exc:
            raise RunAborted(f"TLS failure talking to {url}: {exc}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never established: the request cannot have been sent.
            log.info(
                "connection failed (client-request-id %s): %s",
                client_request_id,
                exc,
                extra={"event": "connection_failed", "client_request_id": client_request_id},
            )
            return Classified(
                Verdict.RETRY,
                None,
                None,
                "ConnectionFailed",
                str(exc),
                client_request_id=client_request_id,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            kind = "Timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.info(
                "no answer to %s (client-request-id %s): %s",
                method,
                client_request_id,
                kind,
                extra={"event": "no_answer", "client_request_id": client_request_id},
            )
            return Classified(
                Verdict.UNKNOWN,
                None,
                None,
                kind,
                f"request sent but no answer ({exc or kind}); the object may exist",
            )

    async def _authorised(
        self,
        url: str,
        data: bytes | None,
        method: str = "POST",
        abort_on: frozenset[int] = ABORT_STATUSES,
    ) -> _Answer | Classified:
        """One exchange, with the single token renewal a 401 allows; aborts on 403/404."""
        token = await self.tokens.token()
        if token is not self._last_token:  # a new token: mask it in every log from now on
            register_secret(token)
            self._last_token = token
        answer = await self._exchange(url, data, token, method)
        if isinstance(answer, _Answer) and answer.status == 401:
            self.stats.token_refreshes += 1
            token = await self.tokens.refresh(token)
            register_secret(token)
            answer = await self._exchange(url, data, token, method)
            if isinstance(answer, _Answer) and answer.status == 401:
                code, message = _error_fields(401, answer.payload, answer.text)
                raise AuthenticationFailed(
                    f"Graph rejected a freshly obtained token (401 {code}: {message})"
                )
        if isinstance(answer, _Answer) and answer.status in abort_on:
            self._abort(classify(answer.status, answer.headers, answer.payload, answer.text))
        return answer

    def _abort(self, result: Classified) -> None:
        if result.status == 403:
            raise PermissionDenied(
                f"Graph refused access to the collection (403 {result.error_code}: "
                f"{result.error_message}); the app needs "
                "DeviceManagementConfiguration.ReadWrite.All and the tenant an Intune licence"
            )
        raise RunAborted(
            f"the collection {self.collection_url} answered {result.status} "
            f"{result.error_code}: check base_url / cloud"
        )

    def _note(self, results: Sequence[Classified]) -> float | None:
        """Feed the pacer; the longest Retry-After among throttled results."""
        if len(results) == 1 and results[0].verdict is not Verdict.RETRY:  # the common case
            self.pacer.succeeded(1)
            return None
        throttled = [r for r in results if r.verdict is Verdict.RETRY and r.status == 429]
        self.stats.throttled += len(throttled)
        waits = [r.retry_after for r in results if r.verdict is Verdict.RETRY and r.retry_after]
        longest = max(waits) if waits else None
        if throttled:
            self.pacer.throttled(longest)
        elif longest:
            self.pacer.pause(longest)
        ok = sum(1 for r in results if r.verdict is not Verdict.RETRY)
        if ok:
            self.pacer.succeeded(ok)
        return longest

    def _retrying(
        self, attempts: int | None = None, deadline: float | None = None
    ) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(attempts or self.policy.max_attempts)
            | stop_before_delay(self.policy.deadline if deadline is None else deadline),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self.policy.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.result.retry_after if isinstance(exc, _Retryable) else None
        return self.policy.wait_for(state.attempt_number, retry_after)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        result = exc.result if isinstance(exc, _Retryable) else Classified(Verdict.RETRY)
        wait = state.next_action.sleep if state.next_action else 0.0
        _log_retry(result, wait, state.attempt_number + 1)

    async def _post_once(self, data: bytes) -> Classified:
        await self.pacer.wait()
        self.stats.items += 1
        answer = await self._authorised(self.collection_url, data)
        if isinstance(answer, _Answer):
            result = classify(answer.status, answer.headers, answer.payload, answer.text)
        else:
            result = answer
        self._note([result])
        return result

    async def _retry_after(
        self, first: Classified, started: float, again: Callable[[], Awaitable[None]]
    ) -> None:
        """After a first answer to retry: wait as the policy says, then call ``again`` (which
        raises _Retryable while it must be retried) until it passes or the policy gives up
        (_Retryable is raised). The common case, no retry, never builds this loop."""
        wait = self.policy.wait_for(1, first.retry_after)
        if self.policy.max_attempts <= 1 or wait >= self.policy.deadline:
            raise _Retryable(first)
        _log_retry(first, wait, 2)
        await self.policy.sleep(wait)
        remaining = self.policy.deadline - (self.policy.clock() - started)
        async for attempt in self._retrying(self.policy.max_attempts - 1, remaining):
            with attempt:
                await again()

    async def create(self, body: Mapping[str, Any]) -> Outcome:
        """POST one body; returns its outcome (raises RunAborted when the run must stop)."""
        data = orjson.dumps(body)
        started = self.policy.clock()
        result = await self._post_once(data)
        if result.verdict is not Verdict.RETRY:
            return _outcome(result, 1)
        attempts = 1

        async def again() -> None:
            nonlocal attempts, result
            self.stats.retries += 1
            attempts += 1
            result = await self._post_once(data)
            if result.verdict is Verdict.RETRY:
                raise _Retryable(result)

        try:
            await self._retry_after(result, started, again)
        except _Retryable as exc:
            return _gave_up(exc.result, attempts)
        return _outcome(result, attempts)

    async def create_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Create up to 20 bodies through one ``$batch`` call per round; outcomes in order."""
        if len(bodies) == 1:
            return [await self.create(bodies[0])]
        outcomes: list[Outcome | None] = [None] * len(bodies)
        attempts = [0] * len(bodies)
        pending = list(range(len(bodies)))
        last: dict[int, Classified] = {}

        async def round_() -> None:
            """Send the pending items once; raise _Retryable when some must go again."""
            nonlocal pending
            if any(attempts[i] for i in pending):
                self.stats.retries += len(pending)
            for i in pending:
                attempts[i] += 1
            await self.pacer.wait(len(pending))
            self.stats.items += len(pending)
            results = await self._send_batch({i: bodies[i] for i in pending})
            longest = self._note(list(results.values()))
            retry = []
            for i in pending:
                if results[i].verdict is Verdict.RETRY:
                    retry.append(i)
                    last[i] = results[i]
                else:
                    outcomes[i] = _outcome(results[i], attempts[i])
            pending = retry
            if pending:
                raise _Retryable(replace(last[pending[0]], retry_after=longest))

        started = self.policy.clock()
        try:
            try:
                await round_()
            except _Retryable as first:
                await self._retry_after(first.result, started, round_)
        except _Retryable:
            for i in pending:
                outcomes[i] = _gave_up(last[i], attempts[i])
        return [o for o in outcomes if o is not None]

    async def _send_batch(self, items: Mapping[int, Mapping[str, Any]]) -> dict[int, Classified]:
        requests = [
            {
                "id": str(i),
                "method": "POST",
                "url": COLLECTION_PATH,
                "headers": {"Content-Type": "application/json"},
                "body": body,
            }
            for i, body in items.items()
        ]
        answer = await self._authorised(self.batch_url, orjson.dumps({"requests": requests}))
        if not isinstance(answer, _Answer):
            return dict.fromkeys(items, answer)
        if answer.status != 200:
            whole = classify(answer.status, answer.headers, answer.payload, answer.text)
            return dict.fromkeys(items, whole)
        request_id = answer.headers.get("request-id", "")
        results: dict[int, Classified] = {}
        responses = answer.payload.get("responses") if isinstance(answer.payload, dict) else None
        for item in responses if isinstance(responses, list) else []:
            try:
                key = int(item["id"])
            except (KeyError, TypeError, ValueError):
                continue
            if key not in items:
                continue
            raw_headers = item.get("headers")
            headers = CIMultiDict(
                {str(k): str(v) for k, v in raw_headers.items()}
                if isinstance(raw_headers, dict)
                else {}
            )
            headers.setdefault("request-id", request_id)
            status = item.get("status")
            results[key] = classify(
                status if isinstance(status, int) else 0, headers, item.get("body")
            )
        missing = Classified(
            Verdict.UNKNOWN,
            200,
            error_code="MissingBatchItem",
            error_message="the $batch answer had no response for this item; it may exist",
            request_id=request_id,
        )
        return {i: results.get(i, missing) for i in items}

    async def _with_retries(
        self, once: Callable[[], Awaitable[Classified]]
    ) -> tuple[Classified, int, bool]:
        """Call ``once`` until it is not retryable: (last result, attempts, gave up)."""
        attempts = 0
        try:
            async for attempt in self._retrying():
                with attempt:
                    if attempts:
                        self.stats.retries += 1
                    attempts += 1
                    result = await once()
                    if result.verdict is Verdict.RETRY:
                        raise _Retryable(result)
        except _Retryable as exc:
            return exc.result, attempts, True
        return result, attempts, False

    async def update(self, object_id: str, body: Mapping[str, Any]) -> Outcome:
        """PATCH a known object with ``body``; ``updated`` on 200/204."""
        url = f"{self.collection_url}/{quote(object_id, safe='')}"
        data = orjson.dumps(body)

        async def once() -> Classified:
            await self.pacer.wait()
            self.stats.items += 1
            answer = await self._authorised(url, data, "PATCH", frozenset({403}))
            if not isinstance(answer, _Answer):
                self._note([answer])
                return answer
            if answer.status in (200, 204):
                result = Classified(
                    Verdict.CREATED,
                    answer.status,
                    request_id=answer.headers.get("request-id", ""),
                    created_id=object_id,
                )
            elif answer.status == 404:
                result = Classified(
                    Verdict.REJECTED,
                    404,
                    error_code="NotFound",
                    error_message=f"object {object_id} no longer exists in Graph",
                    request_id=answer.headers.get("request-id", ""),
                )
            else:
                result = classify(answer.status, answer.headers, answer.payload, answer.text)
            self._note([result])
            return result

        result, attempts, gave_up = await self._with_retries(once)
        if gave_up:
            return _gave_up(result, attempts)
        outcome = _outcome(result, attempts)
        return replace(outcome, status=UPDATED) if outcome.status == CREATED else outcome

    async def find(self, thumbprint: str, device: str) -> Lookup:
        """Look a row key up in Graph (``$filter`` on the thumbprint, every page)."""
        literal = thumbprint.replace("'", "''")
        url: str | None = f"{self.collection_url}?$filter=" + quote(
            f"certificateThumbprint eq '{literal}'", safe=""
        )
        while url is not None:

            async def once(page_url: str = url) -> Classified:
                await self.read_pacer.wait()
                answer = await self._authorised(page_url, None, "GET", frozenset())
                if not isinstance(answer, _Answer):
                    return answer
                if answer.status == 200:
                    return Classified(Verdict.CREATED, 200, payload=answer.payload)
                result = classify(answer.status, answer.headers, answer.payload, answer.text)
                if result.verdict is Verdict.RETRY and result.status == 429:
                    self.stats.throttled += 1
                    self.read_pacer.throttled(result.retry_after)
                return result

            result, _, gave_up = await self._with_retries(once)
            payload = result.payload
            if gave_up or result.verdict is not Verdict.CREATED or not isinstance(payload, dict):
                reason = f"{result.status or ''} {result.error_code}: {result.error_message}"
                return Lookup(found=False, supported=False, reason=reason.strip())
            for item in payload.get("value") or []:
                if (
                    isinstance(item, dict)
                    and str(item.get("certificateThumbprint", "")).upper() == thumbprint
                    and (item.get("managedDeviceDisplayName") or "") == device
                    and item.get("id")
                ):
                    return Lookup(found=True, supported=True, object_id=str(item["id"]))
            next_link = payload.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) and next_link else None
        return Lookup(found=False, supported=True)


@dataclass(frozen=True)
class Lookup:
    """The answer to "does this key exist in Graph?"."""

    found: bool
    supported: bool  # False: the target cannot answer (lookup refused or failed)
    object_id: str = ""
    reason: str = ""
