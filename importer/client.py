"""The Graph client: one aiohttp session, every response classified in one place, retries.

Verdicts for a create (POST):
    201                          created (id from the body)
    429, 503, 504, 509           retried after Retry-After, else exponential backoff with jitter
    connection not established   retried (the request was never sent)
    401                          token renewed once, then retried; a second 401 aborts the run
    403, 404 on the collection   the run is aborted: every row would fail the same way
    other 4xx                    the row is rejected with Graph's error code and message
    other 5xx, timeout, dropped  unknown: the POST may have been committed, so it is not re-sent
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from importer.auth import TokenSource
from importer.errors import AuthenticationFailed, PermissionDenied, RunAborted
from importer.outcome import CREATED, FAILED, REJECTED, UNKNOWN, Outcome
from importer.pacing import Pacer
from importer.retry import RetryPolicy, parse_retry_after

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
        return Classified(Verdict.RETRY, status, retry_after, code, message, request_id)
    if status == 401:
        return Classified(Verdict.REAUTH, status, None, code, message, request_id)
    if status in ABORT_STATUSES:
        return Classified(Verdict.ABORT, status, None, code, message, request_id)
    if 400 <= status < 500:
        return Classified(Verdict.REJECTED, status, None, code, message, request_id)
    return Classified(Verdict.UNKNOWN, status, None, code, message, request_id)


class _Retryable(Exception):
    def __init__(self, result: Classified) -> None:
        super().__init__(result.error_code)
        self.result = result


@dataclass
class ClientStats:
    """Counters of the traffic a client sent."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    token_refreshes: int = 0


class GraphClient:
    """Creates certificate-state objects; use as ``async with GraphClient(...) as client``."""

    def __init__(
        self,
        collection_url: str,
        tokens: TokenSource,
        *,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        concurrency: int = 4,
        request_timeout: float = 60.0,
    ) -> None:
        self.collection_url = collection_url
        self.tokens = tokens
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or Pacer(clock=self.policy.clock, sleep=self.policy.sleep)
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.stats = ClientStats()
        self._session: aiohttp.ClientSession | None = None

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
            connector=connector, timeout=timeout, json_serialize=lambda o: orjson.dumps(o).decode()
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(self, data: bytes, token: str) -> Classified:
        assert self._session is not None, "use GraphClient as an async context manager"
        client_request_id = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "client-request-id": client_request_id,
            "return-client-request-id": "true",
        }
        self.stats.requests += 1
        try:
            async with self._session.post(
                self.collection_url, data=data, headers=headers, allow_redirects=False
            ) as response:
                text = await response.text()
                try:
                    payload = orjson.loads(text) if text else None
                except orjson.JSONDecodeError:
                    payload = None
                result = classify(response.status, response.headers, payload, text)
                if result.verdict is not Verdict.CREATED:
                    log.info(
                        "POST answered %s %s (client-request-id %s, request-id %s, diag %s)",
                        response.status,
                        result.error_code,
                        client_request_id,
                        result.request_id,
                        response.headers.get("x-ms-ags-diagnostic", ""),
                    )
                return result
        except aiohttp.ClientSSLError as exc:
            raise RunAborted(f"TLS failure talking to {self.collection_url}: {exc}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection was never established: the request cannot have been sent.
            log.info("connection failed (client-request-id %s): %s", client_request_id, exc)
            return Classified(Verdict.RETRY, None, None, "ConnectionFailed", str(exc))
        except (TimeoutError, aiohttp.ClientError) as exc:
            kind = "Timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.info("no answer to POST (client-request-id %s): %s", client_request_id, kind)
            return Classified(
                Verdict.UNKNOWN,
                None,
                None,
                kind,
                f"request sent but no answer ({exc or kind}); the object may exist",
            )

    async def _attempt(self, data: bytes) -> Classified:
        """One attempt, including the single token renewal a 401 allows."""
        await self.pacer.wait()
        token = await self.tokens.token()
        result = await self._send(data, token)
        if result.verdict is Verdict.REAUTH:
            self.stats.token_refreshes += 1
            token = await self.tokens.refresh(token)
            result = await self._send(data, token)
            if result.verdict is Verdict.REAUTH:
                raise AuthenticationFailed(
                    f"Graph rejected a freshly obtained token (401 {result.error_code}: "
                    f"{result.error_message})"
                )
        if result.verdict is Verdict.ABORT:
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
        if result.verdict is Verdict.RETRY:
            if result.status == 429:
                self.stats.throttled += 1
                if result.retry_after:
                    self.pacer.pause(result.retry_after)
            raise _Retryable(result)
        return result

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.result.retry_after if isinstance(exc, _Retryable) else None
        return self.policy.wait_for(state.attempt_number, retry_after)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        code = exc.result.error_code if isinstance(exc, _Retryable) else "?"
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("retrying after %s in %.3f s (attempt %d)", code, wait, state.attempt_number + 1)

    async def create(self, body: Mapping[str, Any]) -> Outcome:
        """POST one body; returns its outcome (raises RunAborted when the run must stop)."""
        data = orjson.dumps(body)
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts)
            | stop_before_delay(self.policy.deadline),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self.policy.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    result = await self._attempt(data)
        except _Retryable as exc:
            last = exc.result
            return Outcome(
                FAILED,
                http_status=last.status,
                error_code=last.error_code,
                error_message=f"gave up after {attempts} attempt(s): {last.error_message}".strip(),
                attempts=attempts,
                request_id=last.request_id,
            )
        status = {Verdict.CREATED: CREATED, Verdict.REJECTED: REJECTED}.get(result.verdict, UNKNOWN)
        return Outcome(
            status,
            id=result.created_id,
            http_status=result.status,
            error_code=result.error_code,
            error_message=result.error_message,
            attempts=attempts,
            request_id=result.request_id,
        )
