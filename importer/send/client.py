"""The Graph client: one aiohttp session, every answer classified by ``send.classify``, retries.

With ``batch`` > 1 the bodies go through ``$batch`` (up to 20 per call): each item is classified
the same way, throttled items are retried with their own ``Retry-After``, and the pacer counts
items, not calls (Graph's throttle does). Creates, batches, updates and lookups go through one
retry loop (:meth:`GraphClient._with_retries`); aiohttp's exceptions are translated here.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

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
from importer.outcome import Outcome
from importer.send.auth import TokenSource
from importer.send.breaker import CircuitBreaker
from importer.send.classify import (
    Classified,
    Operation,
    Verdict,
    classify,
    gave_up,
    missing_batch_item,
    outcome_of,
    transport_failure,
)
from importer.send.pacing import Pacer
from importer.send.retry import RetryPolicy

log = logging.getLogger("importer.client")


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
        stats: ClientStats | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.collection_url = collection_url
        self.batch_url = collection_url.removesuffix(COLLECTION_PATH) + "/$batch"
        self.tokens = tokens
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer(clock=self.policy.clock, sleep=self.policy.sleep)
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.read_pacer = read_pacer or Pacer(clock=self.policy.clock, sleep=self.policy.sleep)
        self.stats = stats or ClientStats()
        # off unless given: tests and the benchmark drive failures on purpose
        self.breaker = breaker or CircuitBreaker(requests=1 << 62, seconds=float("inf"))
        self._last_token: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ids = RequestIds()

    async def sleep(self, seconds: float) -> None:
        """Wait as the client's retry policy waits (a test clock in tests)."""
        await self.policy.sleep(seconds)

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
        self, url: str, data: bytes | None, token: str, method: str, operation: Operation
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
                    _log_answer(method, response, client_request_id)
                return _Answer(response.status, response.headers, payload, text)
        except aiohttp.ClientSSLError as exc:
            raise RunAborted(f"TLS failure talking to {url}: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            result = transport_failure(exc, operation, client_request_id)
            never_sent = result.error_code == "ConnectionFailed"
            log.info(
                "%s (client-request-id %s): %s",
                "connection failed" if never_sent else f"no answer to {method}",
                client_request_id,
                exc if never_sent else result.error_code,
                extra={
                    "event": "connection_failed" if never_sent else "no_answer",
                    "client_request_id": client_request_id,
                },
            )
            return result

    async def _call(
        self, url: str, data: bytes | None, method: str, operation: Operation, object_id: str = ""
    ) -> Classified:
        """One exchange, with the single token renewal a 401 allows, classified; raises
        :class:`RunAborted` when the answer means every row would fail the same way."""
        token = await self.tokens.token()
        if token is not self._last_token:  # a new token: mask it in every log from now on
            register_secret(token)
            self._last_token = token
        answer = await self._exchange(url, data, token, method, operation)
        if isinstance(answer, _Answer) and answer.status == 401:
            self.stats.token_refreshes += 1
            token = await self.tokens.refresh(token)
            register_secret(token)
            answer = await self._exchange(url, data, token, method, operation)
        if not isinstance(answer, _Answer):
            self.breaker.record(answer)
            return answer
        result = classify(
            answer.status, answer.headers, answer.payload, answer.text, operation, object_id
        )
        self.breaker.record(result)
        if result.verdict is Verdict.REAUTH:
            raise AuthenticationFailed(
                "Graph rejected a freshly obtained token "
                f"(401 {result.error_code}: {result.error_message})"
            )
        if result.verdict is Verdict.ABORT:
            self._abort(result)
        return result

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

    def _note(
        self, results: Sequence[Classified], sent: float, pacer: Pacer | None = None
    ) -> float | None:
        """Feed the pacer (writes by default) with the results of requests sent at ``sent``
        (as its ``wait`` returned); the longest Retry-After among the results."""
        pacer = pacer or self.pacer
        if len(results) == 1 and results[0].verdict is not Verdict.RETRY:  # the common case
            pacer.succeeded(1)
            return None
        throttled = [r for r in results if r.verdict is Verdict.RETRY and r.status == 429]
        self.stats.throttled += len(throttled)
        waits = [r.retry_after for r in results if r.verdict is Verdict.RETRY and r.retry_after]
        longest = max(waits) if waits else None
        if throttled:
            pacer.throttled(longest, sent)
        elif longest:
            pacer.pause(longest)
        ok = sum(1 for r in results if r.verdict is not Verdict.RETRY)
        if ok:
            pacer.succeeded(ok)
        return longest

    def _retrying(self, attempts: int, deadline: float) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(attempts) | stop_before_delay(deadline),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self.policy.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.result.retry_after if isinstance(exc, _Retryable) else None
        # The first retry waited before this loop began: tenacity's attempt 1 is retry 2.
        return self.policy.wait_for(state.attempt_number + 1, retry_after)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        result = exc.result if isinstance(exc, _Retryable) else Classified(Verdict.RETRY)
        wait = state.next_action.sleep if state.next_action else 0.0
        _log_retry(result, wait, state.attempt_number + 1)

    async def _with_retries(
        self, once: Callable[[int], Awaitable[Classified]]
    ) -> tuple[Classified, int, bool]:
        """The one retry loop: ``once(attempt)`` until its verdict is not RETRY, as the policy
        allows. Returns (last result, attempts, gave up).

        The first attempt goes without building a tenacity loop (the common case, no retry).
        A Retry-After longer than ``max_retry_after``, or than what is left of the deadline,
        ends the retries at once: no wait is longer than the policy allows.
        """
        policy = self.policy
        started = policy.clock()
        result = await once(1)
        if result.verdict is not Verdict.RETRY:
            return result, 1, False
        wait = policy.wait_for(1, result.retry_after)
        if policy.max_attempts <= 1 or wait >= policy.deadline or self._too_long(result, started):
            return self._beyond(result, started), 1, True
        _log_retry(result, wait, 2)
        await policy.sleep(wait)
        attempts = 1
        remaining = policy.deadline - (policy.clock() - started)
        try:
            async for attempt in self._retrying(policy.max_attempts - 1, remaining):
                with attempt:
                    attempts += 1
                    result = await once(attempts)
                    if result.verdict is Verdict.RETRY:
                        if self._too_long(result, started):
                            return self._beyond(result, started), attempts, True
                        raise _Retryable(result)
        except _Retryable as exc:
            return exc.result, attempts, True
        return result, attempts, False

    def _too_long(self, result: Classified, started: float) -> bool:
        """Graph asks for a wait longer than ``max_retry_after`` or the deadline's rest."""
        if not result.retry_after:
            return False
        left = self.policy.deadline - (self.policy.clock() - started)
        return result.retry_after > min(self.policy.max_retry_after, left)

    def _beyond(self, result: Classified, started: float) -> Classified:
        """``result`` with the reason its retries end, when Graph asked for too long a wait."""
        if not self._too_long(result, started):
            return result
        limit = (
            f"max_retry_after ({self.policy.max_retry_after:g} s)"
            if result.retry_after and result.retry_after > self.policy.max_retry_after
            else "what is left of retry_deadline"
        )
        message = f"Graph asked to wait {result.retry_after:.0f} s, longer than {limit}"
        return replace(result, error_message=message)

    async def create(self, body: Mapping[str, Any]) -> Outcome:
        """POST one body; returns its outcome (raises RunAborted when the run must stop)."""
        data = orjson.dumps(body)

        async def once(attempt: int) -> Classified:
            if attempt > 1:
                self.stats.retries += 1
            sent = await self.pacer.wait()
            self.stats.items += 1
            result = await self._call(self.collection_url, data, "POST", "create")
            self._note([result], sent)
            return result

        result, attempts, failed = await self._with_retries(once)
        return gave_up(result, attempts) if failed else outcome_of(result, attempts)

    async def create_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Create up to 20 bodies through one ``$batch`` call per round; outcomes in order."""
        if len(bodies) == 1:
            return [await self.create(bodies[0])]
        batch = _BatchRounds(self, bodies)
        _, _, failed = await self._with_retries(batch.round)
        return batch.outcomes(failed)

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
        data = orjson.dumps({"requests": requests})
        whole = await self._call(self.batch_url, data, "POST", "batch")
        if whole.verdict is not Verdict.CREATED:
            return dict.fromkeys(items, whole)
        return _batch_items(whole, items)

    async def update(self, object_id: str, body: Mapping[str, Any]) -> Outcome:
        """PATCH a known object with ``body``; ``updated`` on 200/204."""
        url = f"{self.collection_url}/{quote(object_id, safe='')}"
        data = orjson.dumps(body)

        async def once(attempt: int) -> Classified:
            if attempt > 1:
                self.stats.retries += 1
            sent = await self.pacer.wait()
            self.stats.items += 1
            result = await self._call(url, data, "PATCH", "update", object_id)
            self._note([result], sent)
            return result

        result, attempts, failed = await self._with_retries(once)
        return gave_up(result, attempts) if failed else outcome_of(result, attempts, "update")

    async def get_page(self, url: str) -> Classified:
        """GET one page of the collection (paced by the read budget, retried as a read);
        ``CREATED`` with the page as ``payload``, or the verdict it ended on. A link to another
        origin than the collection's (a nextLink elsewhere) is not followed: UNKNOWN."""
        if _origin(url) != _origin(self.collection_url):
            message = f"not following a link to {_origin(url)}: tokens go only to the Graph root"
            return Classified(Verdict.UNKNOWN, error_code="ForeignLink", error_message=message)

        async def once(attempt: int) -> Classified:
            if attempt > 1:
                self.stats.retries += 1
            sent = await self.read_pacer.wait()
            result = await self._call(url, None, "GET", "lookup")
            if result.verdict is Verdict.RETRY and result.status == 429:
                self.stats.throttled += 1
                self.read_pacer.throttled(result.retry_after, sent)
            elif result.verdict is not Verdict.RETRY:
                self.read_pacer.succeeded(1)
            return result

        result, _, failed = await self._with_retries(once)
        if failed or (result.verdict is Verdict.CREATED and not isinstance(result.payload, dict)):
            return replace(result, verdict=Verdict.UNKNOWN)
        return result

    async def find(self, thumbprint: str, device: str) -> Lookup:
        """Look a row key up in Graph (``$filter`` on the thumbprint, every page)."""
        literal = thumbprint.replace("'", "''")
        url: str | None = f"{self.collection_url}?$filter=" + quote(
            f"certificateThumbprint eq '{literal}'", safe=""
        )
        while url is not None:
            result = await self.get_page(url)
            if result.verdict is not Verdict.CREATED:
                reason = f"{result.status or ''} {result.error_code}: {result.error_message}"
                return Lookup(found=False, supported=False, reason=reason.strip())
            payload = result.payload
            for item in payload.get("value") or []:
                if (
                    isinstance(item, dict)
                    and str(item.get("certificateThumbprint", "")).upper() == thumbprint
                    and (item.get("managedDeviceDisplayName") or "") == device
                    and item.get("id")
                ):
                    return Lookup(found=True, supported=True, object_id=str(item["id"]))
            url = next_link(payload)
        return Lookup(found=False, supported=True)

    async def delete(self, object_id: str) -> Outcome:
        """DELETE one object by id (paced as a write; an object already gone counts as done)."""
        url = f"{self.collection_url}/{quote(object_id, safe='')}"

        async def once(attempt: int) -> Classified:
            if attempt > 1:
                self.stats.retries += 1
            sent = await self.pacer.wait()
            result = await self._call(url, None, "DELETE", "delete", object_id)
            self._note([result], sent)
            return result

        result, attempts, failed = await self._with_retries(once)
        return gave_up(result, attempts) if failed else outcome_of(result, attempts, "delete")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def next_link(payload: Mapping[str, Any]) -> str | None:
    """A page's ``@odata.nextLink`` (the whole URL, as Graph gives it), or None on the last."""
    link = payload.get("@odata.nextLink")
    return link if isinstance(link, str) and link else None


class _BatchRounds:
    """The items of one ``create_batch`` call: each round sends the items still pending."""

    def __init__(self, client: GraphClient, bodies: Sequence[Mapping[str, Any]]) -> None:
        self.client = client
        self.bodies = bodies
        self.done: list[Outcome | None] = [None] * len(bodies)
        self.attempts = [0] * len(bodies)
        self.pending = list(range(len(bodies)))
        self.last: dict[int, Classified] = {}

    async def round(self, attempt: int) -> Classified:
        """Send the pending items once; RETRY (with the longest Retry-After) while some must
        go again."""
        client = self.client
        pending = self.pending
        if attempt > 1:
            client.stats.retries += len(pending)
        for i in pending:
            self.attempts[i] += 1
        sent = await client.pacer.wait(len(pending))
        client.stats.items += len(pending)
        results = await client._send_batch({i: self.bodies[i] for i in pending})
        longest = client._note(list(results.values()), sent)
        retry = []
        for i in pending:
            if results[i].verdict is Verdict.RETRY:
                retry.append(i)
                self.last[i] = results[i]
            else:
                self.done[i] = outcome_of(results[i], self.attempts[i])
        self.pending = retry
        if retry:
            return replace(self.last[retry[0]], retry_after=longest)
        return Classified(Verdict.CREATED)

    def outcomes(self, failed: bool) -> list[Outcome]:
        """Every item's outcome, in order; items still pending gave up."""
        if failed:
            for i in self.pending:
                self.done[i] = gave_up(self.last[i], self.attempts[i])
        return [o for o in self.done if o is not None]


def _batch_items(whole: Classified, items: Mapping[int, Any]) -> dict[int, Classified]:
    """Each item's verdict from a ``$batch`` answer (200); a missing item is unknown."""
    request_id = whole.request_id
    results: dict[int, Classified] = {}
    payload = whole.payload
    responses = payload.get("responses") if isinstance(payload, dict) else None
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
        results[key] = classify(status if isinstance(status, int) else 0, headers, item.get("body"))
    missing = missing_batch_item(request_id)
    return {i: results.get(i, missing) for i in items}


def _log_answer(method: str, response: aiohttp.ClientResponse, client_request_id: str) -> None:
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


@dataclass(frozen=True)
class Lookup:
    """The answer to "does this key exist in Graph?"."""

    found: bool
    supported: bool  # False: the target cannot answer (lookup refused or failed)
    object_id: str = ""
    reason: str = ""
