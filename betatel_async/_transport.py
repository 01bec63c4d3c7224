"""One logical API call: headers, timeouts, the client-wide limiter, retries, error mapping.

Strategy: the decisions (retry or not, how long to wait, whether the retry
budget allows it) are pure functions in ``_retry``; this module only executes
them. aiohttp's exceptions are mapped to the SDK's in exactly one place,
`map_aiohttp_error()`, most specific class first.

What leaves this module never holds the API key: server text (error bodies,
a bad status line) is redacted in any letter case, then cut to
``MESSAGE_LIMIT`` characters, and an aiohttp exception (whose
``request_info`` holds the request's headers) is never chained: the SDK
error's ``__cause__`` is an `RedactedAiohttpError` of it instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import anyio
import anyio.lowlevel
import attrs
import orjson
from aiohttp import hdrs
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.connector import Connection
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._converter import decode_json
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    MalformedResponseError,
    status_error_class,
)
from ._paginate import ListingMemory, ListingTotals
from ._response import record_answer, record_failure
from ._retry import AdaptiveLimit, RetryBudget, RetryPolicy, decide, retry_after_from_headers
from ._scan_machine import Latencies, NoHedgeBudget
from ._telemetry import CallTrace, Telemetry

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "MESSAGE_LIMIT",
    "CallsInFlight",
    "RedactedAiohttpError",
    "Response",
    "Transport",
    "map_aiohttp_error",
    "merge_headers",
]

logger: Final = logging.getLogger("betatel_async")

_REDACTED: Final = "***"
_CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "x-user-id"})
_URL_CACHE_SIZE: Final = 64

DEFAULT_MAX_BODY_SIZE: Final = 32 * 1024 * 1024
"""The largest response body read, in bytes after decompression (a page of
1,000 SIMs is about 0.4 MB)."""

MESSAGE_LIMIT: Final = 500
"""Characters of server text (an error's message) kept in an exception."""

# An error body only feeds a message and APIError.body: the rest of it is not read.
_ERROR_BODY_LIMIT: Final = 64 * 1024

_NOT_JSON: Final = object()
"""An error body that did not parse as JSON (``None`` is JSON's ``null``)."""


@attrs.define(slots=True)
class Response:
    """A successful (2xx) response: its status and parsed JSON (``None`` if empty), or its body.

    ``content_type`` is the media type of the ``Content-Type`` header without
    its parameters (aiohttp's ``application/octet-stream`` when absent).
    ``content`` is the body as received, ``headers`` the response's (aiohttp's
    own read-only view, kept by reference: nothing is copied for a plain
    call). ``attempts`` and ``elapsed`` (seconds, waits included) cover every
    attempt of the request.
    """

    status: int
    data: Any
    headers: CIMultiDictProxy[str]
    content: bytes
    content_type: str = ""
    attempts: int = 1
    elapsed: float = 0.0


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` with ``extra`` set over it, a name in ``extra`` replacing ``base``'s in any letter case."""
    replaced = {name.lower() for name in extra}
    merged = {name: value for name, value in base.items() if name.lower() not in replaced}
    merged.update(extra)
    return merged


class RedactedAiohttpError(Exception):
    """What aiohttp raised, as text: its class and message, the API key redacted.

    The ``__cause__`` of an [`APIConnectionError`][betatel_async.APIConnectionError]. It
    stands in for aiohttp's exception, which is not chained because it can
    hold the request's headers (``request_info``), the key among them.
    """


def _no_redaction(text: str) -> str:
    return text


def map_aiohttp_error(
    exc: BaseException,
    *,
    method: str,
    path: str,
    redact: Callable[[str], str] = _no_redaction,
) -> tuple[APIError, str]:
    """Map an aiohttp (or timeout) exception to the SDK's, with the retry kind.

    Args:
        exc: What aiohttp raised.
        method: The request's method, for the message.
        path: The request's URL path, for the message.
        redact: Applied to text that came from the server (a bad status
            line), which may echo the API key.

    Returns:
        The SDK exception to raise, and the kind used by retry decisions:
        ``"connect"`` (the request never left: safe to retry anything),
        ``"timeout"``, ``"disconnect"`` or ``"truncated"``. Its ``__cause__``
        is an `RedactedAiohttpError` of ``exc``, never ``exc`` itself.
    """
    error, kind = _map(exc, method=method, path=path, redact=redact)
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that needs what a bare instance lacks
        text = ""
    error.__cause__ = RedactedAiohttpError(
        _cap(redact(f"{type(exc).__module__}.{type(exc).__qualname__}: {text}"))
    )
    return error, kind


def _map(exc: BaseException, *, method: str, path: str, redact: Callable[[str], str]) -> tuple[APIError, str]:
    # Most specific first: ConnectionTimeoutError is a ServerTimeoutError is a
    # TimeoutError; ClientConnectorError is a ClientOSError is a ClientConnectionError.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError("timed out connecting", method=method, path=path), "connect"
    if isinstance(exc, TimeoutError):
        return APITimeoutError("timed out waiting for the response", method=method, path=path), "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            APIConnectionError(
                f"could not connect: {getattr(exc, 'os_error', None) or type(exc).__name__}",
                kind="connect",
                method=method,
                path=path,
            ),
            "connect",
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return (
            APIConnectionError("response body was cut short", kind="truncated", method=method, path=path),
            "truncated",
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return (
            APIConnectionError("server closed the connection", kind="disconnect", method=method, path=path),
            "disconnect",
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        # A response aiohttp could not parse as HTTP, or similar: the request
        # was sent. The message quotes what the server sent.
        text = _cap(redact(str(getattr(exc, "message", "")))) or type(exc).__name__
        return (
            APIConnectionError(f"invalid HTTP response: {text}", kind="disconnect", method=method, path=path),
            "disconnect",
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return (
            APIConnectionError(
                f"connection failed: {type(exc).__name__}",
                kind="disconnect",
                method=method,
                path=path,
            ),
            "disconnect",
        )
    raise TypeError(f"not a transport error: {type(exc).__name__}")  # pragma: no cover


def _cap(text: str) -> str:
    """``text`` cut to `MESSAGE_LIMIT` characters (redact before: a cut may split the key)."""
    if len(text) <= MESSAGE_LIMIT:
        return text
    return f"{text[:MESSAGE_LIMIT]}... ({len(text) - MESSAGE_LIMIT} more characters)"


def _error_message(data: Any) -> str | None:
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
    return None


def _too_large(limit: int, *, status: int, method: str, path: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"response body is larger than max_body_size ({limit} bytes, after decompression); "
        "raise it with BetatelClient(max_body_size=...) or client.with_options(max_body_size=...)",
        status=status,
        method=method,
        path=path,
    )


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, decoded, or ``None`` as soon as it is known to pass ``limit`` bytes.

    Never holds more than ``limit`` bytes of it (plus one chunk): aiohttp
    inflates a compressed body as it is read, a chunk at a time, so the count
    is of decompressed bytes.
    """
    length = resp.content_length
    if length is not None and not resp.headers.get(hdrs.CONTENT_ENCODING):
        # An uncompressed body of known length: aiohttp reads no more than that.
        return None if length > limit else await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_head(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first ``limit`` bytes of the body (the rest is not read: the connection is then closed)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        chunks.append(chunk[: limit - size])
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


class CallsInFlight:
    """The calls in flight on a client and its ``with_options`` views, so that closing ends them. Private.

    Each call runs in a cancel scope registered here; `close()` cancels
    them all and waits until they have ended (each then raises
    ``ClientClosedError``).
    """

    __slots__ = ("_drained", "_scopes", "closed")

    def __init__(self) -> None:
        self.closed = False
        self._scopes: set[anyio.CancelScope] = set()
        self._drained: asyncio.Event | None = None

    def add(self, scope: anyio.CancelScope) -> None:
        self._scopes.add(scope)

    def discard(self, scope: anyio.CancelScope) -> None:
        scopes = self._scopes
        scopes.discard(scope)
        if not scopes and self._drained is not None:
            self._drained.set()

    async def close(self) -> None:
        """Refuse new calls, cancel those in flight and wait until they have ended."""
        self.closed = True
        if not self._scopes:
            return
        self._drained = asyncio.Event()
        for scope in self._scopes:
            scope.cancel()
        await self._drained.wait()


_ONE_ATTEMPT: Final = RetryPolicy(max_attempts=1)
"""A hedge's policy: it is itself the second try; if it fails, its window's first request still counts."""


class Transport:
    """Sends one logical request, with retries, under the client-wide limiter.

    Private: owned by [`BetatelClient`][betatel_async.BetatelClient].
    """

    def __init__(
        self,
        *,
        get_session: Callable[[], aiohttp.ClientSession],
        base_url: URL,
        headers: Mapping[str, str],
        secret: str,
        timeout: aiohttp.ClientTimeout,
        retry: RetryPolicy,
        budget: RetryBudget,
        limiter: anyio.Semaphore,
        adaptive: AdaptiveLimit,
        rand: Callable[[], float] = random.random,
        totals: ListingTotals | None = None,
        latencies: ListingMemory[Latencies] | None = None,
        hedge: bool = True,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        calls: CallsInFlight | None = None,
        owns_session: bool = False,
        query: Mapping[str, str | int | float] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._get_session = get_session
        self._owns_session = owns_session
        self._base_url = base_url
        self._prefix = base_url.path.rstrip("/")  # a base URL may carry a path prefix
        self._headers = dict(headers)
        self._anonymous_headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        self._secret = secret
        # A server may echo the key in another letter case (a header name
        # lower-cased, a message upper-cased): redacted all the same.
        self._secret_pattern = re.compile(re.escape(secret), re.IGNORECASE) if secret else None
        self.timeout = timeout
        self.retry = retry
        self.budget = budget
        self.limiter = limiter
        self.adaptive = adaptive
        self._rand = rand
        self._urls: dict[str, URL] = {}  # API path -> full URL
        self.totals = ListingTotals() if totals is None else totals
        self.latencies: ListingMemory[Latencies] = ListingMemory() if latencies is None else latencies
        self.hedge = hedge  # scans hedge late page requests unless they say otherwise
        self.max_body_size = max_body_size
        self.calls = CallsInFlight() if calls is None else calls
        self._query = dict(query or {})  # the client's default_query, under every request's own params
        # Spans and metrics (None: tracing off, or opentelemetry-api not installed).
        self.telemetry = telemetry

    def evolve(
        self,
        *,
        retry: RetryPolicy | None,
        timeout: aiohttp.ClientTimeout | None,
        max_body_size: int | None = None,
        hedge: bool | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str | int | float] | None = None,
        tracing: bool | None = None,
    ) -> Transport:
        """A transport sharing this one's session, limiter, budget, adaptive limit and calls in flight.

        ``headers`` (credentials included) and ``query`` replace this one's when given.
        ``tracing``: ``None`` keeps this one's telemetry, ``False`` drops it,
        ``True`` keeps it or starts one.
        """
        telemetry = self.telemetry
        if tracing is not None:
            telemetry = (telemetry or Telemetry(self._base_url)) if tracing else None
        return Transport(
            get_session=self._get_session,
            base_url=self._base_url,
            headers=self._headers if headers is None else headers,
            secret=self._secret,
            timeout=timeout or self.timeout,
            retry=retry or self.retry,
            budget=self.budget,
            limiter=self.limiter,
            adaptive=self.adaptive,
            rand=self._rand,
            totals=self.totals,
            latencies=self.latencies,
            hedge=self.hedge if hedge is None else hedge,
            max_body_size=self.max_body_size if max_body_size is None else max_body_size,
            calls=self.calls,
            owns_session=self._owns_session,
            query=self._query if query is None else query,
            telemetry=telemetry,
        )

    def url_path(self, path: str) -> str:
        """The full URL path for an API path (the base URL may carry a prefix)."""
        return self._prefix + path

    def _redact(self, text: str) -> str:
        pattern = self._secret_pattern
        return pattern.sub(_REDACTED, text) if pattern is not None else text

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[], None] | None = None,
        parse: bool = True,
        credentials: bool = True,
        hedge: bool = False,
        headers: Mapping[str, str] | None = None,
        template: str | None = None,
    ) -> Response:
        """Send ``method path`` until it succeeds or the retry policy gives up.

        Args:
            method: HTTP method.
            path: API path below the base URL, already percent-encoded.
            params: Query parameters.
            json: A JSON body to send.
            idempotent: Whether repeating the request is harmless. Only
                idempotent requests are retried after the request may have
                reached the server.
            retry: Overrides the client's retry policy for this call.
            on_retry: Called once per retry (for scan reports).
            parse: Parse a 2xx body as JSON. With ``False``, ``data`` is the
                body as bytes, for a caller that parses it later (a scan
                does, when the page is taken).
            credentials: Send the ``x-api-key`` and ``x-user-id`` headers
                (``False`` for an endpoint that needs none: the key is then
                not sent at all).
            hedge: A scan's second request for a page whose first is late:
                sent once (never retried), and only if a slot of the
                client-wide limit is free now and the retry budget pays for
                it as for a retry (refunded if it succeeds, as a retry that
                worked is).
            headers: Headers set over the client's for this request (a name
                replaces the client's in any letter case; checked by the caller).
            template: ``path`` with ``{...}`` where it holds an id, as in
                ``PATHS`` (default: ``path``): the span's name and
                ``url.template`` (low cardinality: no id in them).

        Returns:
            The 2xx response with its parsed JSON body (``None`` if empty),
            or with its body as bytes when ``parse`` is false.

        Raises:
            APIStatusError: A subclass per status, once retries are exhausted.
            APIConnectionError: No usable response (``APITimeoutError`` on
                timeouts); ``kind="truncated"`` for a body cut short, retried
                first if the request is idempotent.
            MalformedResponseError: A complete 2xx body that is not JSON, or
                one larger than ``max_body_size``: never retried (asking again
                gets the same).
            ClientClosedError: The client is closed, was closed while the call
                was in flight, or belongs to another event loop.
            NoHedgeBudget: ``hedge``, and no slot is free or the retry
                budget cannot pay: nothing was sent.
        """
        calls = self._calls_open()
        prepaid: int | None = None
        if hedge:
            # A hedge that would wait for a slot of the client-wide limit
            # would come too late, and the client is busy anyway.
            if not self.limiter.value or not self.budget.acquire("hedge"):
                raise NoHedgeBudget
            prepaid = self.budget.cost("hedge")
            retry = _ONE_ATTEMPT
        trace = None if self.telemetry is None else self._trace(method, template or path, hedge)
        try:
            with anyio.CancelScope() as scope:
                calls.add(scope)
                try:
                    response = await self._send(
                        method,
                        path,
                        params,
                        json,
                        idempotent,
                        retry,
                        on_retry,
                        parse,
                        credentials,
                        prepaid,
                        headers,
                        trace,
                    )
                finally:
                    calls.discard(scope)
                if trace is not None:
                    trace.succeeded(response.status, response.attempts)
                return response
            # Only CallsInFlight.close() cancels this scope; the caller's own
            # cancellation passes through it untouched.
            raise ClientClosedError(  # noqa: TRY301 - the except below only ends the span with it
                f"the BetatelClient was closed while {method} {self.url_path(path)} was in flight"
            )
        except BaseException as exc:
            if trace is not None:
                trace.failed(exc)
            raise

    def _trace(self, method: str, template: str, hedge: bool) -> CallTrace | None:
        """Start a call's span, or drop the telemetry for good if opentelemetry-api is not installed."""
        assert self.telemetry is not None
        trace = self.telemetry.call(method, self._prefix + template, hedge=hedge)
        if trace is None and not self.telemetry.installed():
            self.telemetry = None  # the next calls pay one attribute check, no more
        return trace

    async def preconnect(self, count: int) -> None:
        """Make sure ``count`` connections to the API's host are open in the session's pool.

        Counts the pool's connections to the host, idle and in use (one being
        opened included), and opens the missing ones concurrently, sending
        nothing on them; they wait idle in the pool for the next requests.
        Opens none if the pool holds ``count`` already, and never more than
        the connector's limits leave room for. Takes no slot of the
        client-wide limit on requests in flight. A scan calls it while its
        first page is in flight, so that the first wave of requests goes out
        on open connections.

        Does nothing with a session the caller supplied: its settings (a
        proxy, ``trust_env``, its connector's class) decide how its requests
        connect, which this cannot reproduce from outside; a connection opened
        another way would sit unused. Does nothing either on a closed client,
        with ``count < 1``, or if aiohttp's pool cannot be read (see
        `_PoolCounts`). The connections it opens are not reported
        to the session's ``trace_configs`` (the requests that use them are,
        as reusing a connection).

        Never raises: a connection that fails to open is let go, and the
        request that needs one opens it and reports the failure, with its
        retries. Cancelling it closes the connections still being opened;
        closing the client cancels it.
        """
        if count < 1 or not self._owns_session or self.calls.closed:
            return
        try:
            session = self._get_session()
        except ClientClosedError:
            return
        calls = self.calls
        with anyio.CancelScope() as scope:
            calls.add(scope)
            try:
                await _fill_pool(session, self._base_url, count, self.timeout)
            finally:
                calls.discard(scope)

    def _calls_open(self) -> CallsInFlight:
        calls = self.calls
        if calls.closed:
            raise ClientClosedError("this BetatelClient is closed; create a new one")
        return calls

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int | float] | None,
        json: Any,
        idempotent: bool,
        retry: RetryPolicy | None,
        on_retry: Callable[[], None] | None,
        parse: bool,
        credentials: bool,
        prepaid: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        trace: CallTrace | None = None,
    ) -> Response:
        """The attempts of `request()`, with their waits (``prepaid``: tokens a hedge took;
        ``trace``: the call's span, told of each retry).

        Every answer and failure is told to the ``with_raw_response`` call
        being recorded, if any (see ``_response``).
        """
        policy = retry or self.retry
        url = self._urls.get(path)
        if url is None:
            url = self._base_url.with_path(self._prefix + path, encoded=True)
            if len(self._urls) < _URL_CACHE_SIZE:  # paths with ids are many: keep the first few
                self._urls[path] = url
        full_path = url.raw_path
        body = orjson.dumps(json) if json is not None else None
        headers = self._headers if credentials else self._anonymous_headers
        if extra_headers:
            headers = merge_headers(headers, extra_headers)
        if self._query:
            params = {**self._query, **params} if params else self._query
        started = time.monotonic()
        attempt = 0
        retried_cost: int | None = prepaid
        while True:
            attempt += 1
            t0 = time.monotonic()
            attempt_timeout = self.timeout
            if policy.deadline is not None:
                # The overall deadline also bounds the attempt in progress.
                remaining = max(policy.deadline - (t0 - started), 0.001)
                if attempt_timeout.total is None or remaining < attempt_timeout.total:
                    attempt_timeout = aiohttp.ClientTimeout(
                        total=remaining, sock_connect=attempt_timeout.sock_connect
                    )
            status, outcome, retry_after, error_kind = await self._attempt(
                method, url, full_path, params, body, headers, attempt_timeout, parse
            )
            logger.debug(
                "%s %s -> %s (attempt %d, %.1f ms)",
                method,
                full_path,
                status if error_kind is None else error_kind,
                attempt,
                (time.monotonic() - t0) * 1000,
            )
            if status == 429:
                self.adaptive.on_throttle()
            if isinstance(outcome, Response):
                self.adaptive.on_success()
                self.budget.release_success(retried_cost)
                outcome.attempts = attempt
                outcome.elapsed = time.monotonic() - started
                record_answer(outcome)
                return outcome
            error = outcome
            decision = decide(
                policy=policy,
                attempt=attempt,
                method=method,
                status=status if error_kind is None else None,
                error_kind=error_kind,
                retry_after=retry_after,
                elapsed=time.monotonic() - started,
                rand=self._rand,
                idempotent=idempotent,
                request_sent=None if error_kind is None else error_kind != "connect",
            )
            kind = "timeout" if error_kind == "timeout" else "error"
            if decision.retry and self.budget.acquire(kind):
                retried_cost = self.budget.cost(kind)
                logger.info(
                    "retrying %s %s in %.2f s (attempt %d failed: %s)",
                    method,
                    full_path,
                    decision.delay,
                    attempt,
                    decision.reason,
                )
                if trace is not None:
                    trace.retried(attempt, decision.delay, str(status) if error_kind is None else error_kind)
                if on_retry is not None:
                    on_retry()
                await anyio.sleep(decision.delay)
                continue
            if attempt > 1 or decision.retry:  # retried, or would have been but for the budget
                logger.warning(
                    "giving up on %s %s after %d attempt%s (%s)",
                    method,
                    full_path,
                    attempt,
                    "s" if attempt > 1 else "",
                    decision.reason if not decision.retry else "the retry budget is spent",
                )
            error.attempts = attempt
            record_failure(attempt)
            raise error

    async def _attempt(
        self,
        method: str,
        url: URL,
        full_path: str,
        params: Mapping[str, str | int | float] | None,
        body: bytes | None,
        headers: Mapping[str, str],
        attempt_timeout: aiohttp.ClientTimeout,
        parse: bool,
    ) -> tuple[int, Response | APIError, float | None, str | None]:
        """One attempt: ``(status, outcome, retry_after, error_kind)``.

        ``outcome`` is the `Response` of a success (``data`` the parsed
        body, or the bytes when not ``parse``; ``attempts`` and ``elapsed`` are
        the caller's to fill in), or the error to raise or retry.
        ``error_kind`` is set when no usable answer came (see
        ``_retry.ERROR_KINDS``), and ``status`` is then 0.
        """
        session = self._get_session()  # ClientClosedError: closed, or another event loop
        limit = self.max_body_size
        async with self.limiter:
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=attempt_timeout,
                ) as resp:
                    status = resp.status
                    if not 200 <= status < 300:
                        raw = await _read_head(resp, _ERROR_BODY_LIMIT)
                        retry_after = retry_after_from_headers(resp.headers)
                        return (
                            status,
                            self._status_error(status, raw, method, full_path, retry_after, resp.headers),
                            retry_after,
                            None,
                        )
                    content_type = resp.content_type
                    raw_or_none = await _read_body(resp, limit)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                # A status line without its body is no answer: status 0.
                error, error_kind = map_aiohttp_error(exc, method=method, path=full_path, redact=self._redact)
                return 0, error, None, error_kind
        if raw_or_none is None:
            too_large = _too_large(limit, status=status, method=method, path=full_path)
            too_large.headers = self._redacted_headers(resp.headers)
            return 0, too_large, None, "malformed"
        if not parse:
            data: Any = raw_or_none
        elif not raw_or_none:
            data = None
        else:
            try:
                data = decode_json(raw_or_none, method=method, path=full_path, status=status)
            except MalformedResponseError as malformed:
                # The body is complete (one cut short fails above, as "truncated"):
                # not JSON is what the server meant to send, e.g. a proxy's HTML page.
                malformed.body = self._error_body(raw_or_none, None)
                malformed.headers = self._redacted_headers(resp.headers)
                return 0, malformed, None, "malformed"
        return status, Response(status, data, resp.headers, raw_or_none, content_type), None, None

    def _status_error(
        self,
        status: int,
        raw: bytes,
        method: str,
        path: str,
        retry_after: float | None,
        headers: CIMultiDictProxy[str],
    ) -> APIStatusError:
        kept = self._redacted_headers(headers)
        if 300 <= status < 400:
            return APIStatusError(
                "redirect not followed (the API key is never sent to another location)",
                status=status,
                method=method,
                path=path,
                headers=kept,
            )
        data: Any = None
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = False
        else:
            parsed = bool(raw)
        text = _error_message(data) or raw.decode("utf-8", "replace").strip() or f"HTTP {status}"
        # Redacted before it is cut: a cut could split an echoed key, leaving
        # a part the redaction no longer matches.
        message = _cap(self._redact(text))
        cls = status_error_class(status)
        return cls(
            message,
            status=status,
            method=method,
            path=path,
            retry_after=retry_after,
            # The server's clock, for create's read-back; not from a cache
            # (an Age header): a stored answer keeps its old Date.
            date=None if "Age" in headers else headers.get("Date"),
            body=self._error_body(raw, data if parsed else _NOT_JSON),
            headers=kept,
        )

    def _error_body(self, raw: bytes, data: Any) -> Any:
        """An error's ``body``: ``data`` (the parsed JSON) with the key redacted in every string
        if the text is short enough to keep whole, else the text, redacted and cut; ``None`` if empty.

        ``data`` is `_NOT_JSON` (or ``None`` from a caller that did not
        parse) when the body is not JSON.
        """
        text = raw.decode("utf-8", "replace")
        if data is not _NOT_JSON and data is not None and len(text) <= MESSAGE_LIMIT:
            return self._redact_json(data)
        return _cap(self._redact(text)) or None

    def _redact_json(self, data: Any) -> Any:
        """Parsed JSON with the key redacted in every string, keys included, and in every number
        whose digits hold it (a key of digits echoed as a number)."""
        if isinstance(data, str):
            return self._redact(data)
        if isinstance(data, dict):
            return {self._redact(k): self._redact_json(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self._redact_json(v) for v in data]
        if isinstance(data, int | float) and not isinstance(data, bool):
            return data if self._redact(str(data)) == str(data) else _REDACTED
        return data

    def _redacted_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
        """A copy of an answer's headers for an exception to keep, the key redacted in names and values."""
        redact = self._redact
        return CIMultiDictProxy(CIMultiDict((redact(name), redact(value)) for name, value in headers.items()))


@attrs.frozen
class _PoolCounts:
    """Connections to one host in an aiohttp connector's pool. Private.

    Attributes:
        idle: Open and idle, waiting for a request.
        in_use: Taking part in a request, or being opened for one.
        opening: Of those in use, the ones still being opened.
        room: How many more the connector's ``limit`` and ``limit_per_host``
            let be opened once the idle ones are in use (``None``: no limit).
    """

    idle: int
    in_use: int
    opening: int
    room: int | None

    @classmethod
    def read(cls, connector: aiohttp.BaseConnector, key: ConnectionKey) -> _PoolCounts | None:
        """The counts, or ``None`` if the pool cannot be read.

        aiohttp has no public count of its pool: this reads its private
        ``_conns`` (idle connections per key) and ``_acquired`` /
        ``_acquired_per_host`` (connections in use; one being opened is a
        placeholder there, whose ``transport`` is ``None`` until it is
        replaced by the open connection), as aiohttp 3.9 to 3.14 keep them.
        """
        try:
            idle = sum(1 for protocol, _ in connector._conns.get(key, ()) if protocol.is_connected())
            acquired = connector._acquired
            in_use = connector._acquired_per_host.get(key, ()) if connector.limit_per_host else acquired
            opening = sum(1 for protocol in in_use if getattr(protocol, "transport", None) is None)
        except (AttributeError, TypeError, ValueError):
            return None
        rooms = []
        if connector.limit:
            rooms.append(connector.limit - len(acquired) - idle)
        if connector.limit_per_host:
            rooms.append(connector.limit_per_host - len(in_use) - idle)
        return cls(idle=idle, in_use=len(in_use), opening=opening, room=min(rooms) if rooms else None)

    def missing(self, count: int) -> int:
        """How many to open so that ``count`` are open (idle or in use), within the room left."""
        missing = count - self.idle - self.in_use
        if self.room is not None:
            missing = min(missing, self.room)
        return max(missing, 0)


_OPENING_POLL: Final = 0.001
"""Seconds between two looks at the pool while a connection is being opened."""


async def _fill_pool(
    session: aiohttp.ClientSession, base_url: URL, count: int, timeouts: aiohttp.ClientTimeout
) -> None:
    """Open connections to ``base_url``'s host until ``count`` are open in ``session``'s pool (see ``preconnect``).

    Strategy: aiohttp's documented ``BaseConnector.connect(request, traces,
    timeout)`` returns a connection, idle or new, that ``release()`` puts back
    in the pool. The request is built as the session builds a request of
    ours (no proxy, default TLS checks), so that the connections are those
    its requests reuse. Three things keep the count right and the caller's
    requests first:

    - Opening many connections at once takes the event loop for a few
      milliseconds: a request whose connection is being opened (a scan's
      first page) would be sent that much later. So this waits until no
      connection to the host is being opened, looking every millisecond
      (aiohttp signals nothing then), at most the connect timeout.
    - ``connect()`` hands out an idle connection before it opens one, so the
      idle ones are taken out first (handing one out does not suspend), and
      go back once every opener has asked for its connection: asyncio runs
      the openers' first steps (each finds no idle connection and starts
      opening one) before this task resumes from its checkpoint.
    - No more are opened than the connector's limits leave room for: an
      opener never queues for a free slot, ahead of a request.
    """
    connector = session.connector
    if connector is None or connector.closed:
        return
    request = aiohttp.ClientRequest(hdrs.METH_GET, base_url, loop=asyncio.get_running_loop())
    key = request.connection_key
    patience = timeouts.sock_connect or timeouts.total
    with anyio.move_on_after(patience):
        # aiohttp sets no event when a connection is open: look again each millisecond.
        while (counts := _PoolCounts.read(connector, key)) is not None and counts.opening:  # noqa: ASYNC110
            await anyio.sleep(_OPENING_POLL)
    counts = _PoolCounts.read(connector, key)
    missing = 0 if counts is None else counts.missing(count)
    if not missing:
        return
    assert counts is not None
    connect_timeout = aiohttp.ClientTimeout(total=None, connect=patience, sock_connect=timeouts.sock_connect)
    taken: list[Connection] = []
    try:
        for _ in range(counts.idle):
            connection = await _connect(connector, request, connect_timeout)
            if connection is not None:
                taken.append(connection)
        async with anyio.create_task_group() as openers:
            for _ in range(missing):
                openers.start_soon(_open_one, connector, request, connect_timeout)
            await anyio.lowlevel.checkpoint()
            _release(taken)
    finally:
        _release(taken)


def _release(connections: list[Connection]) -> None:
    while connections:
        connections.pop().release()


async def _open_one(
    connector: aiohttp.BaseConnector, request: aiohttp.ClientRequest, timeouts: aiohttp.ClientTimeout
) -> None:
    connection = await _connect(connector, request, timeouts)
    if connection is not None:
        connection.release()  # idle in the pool, for the next request


async def _connect(
    connector: aiohttp.BaseConnector, request: aiohttp.ClientRequest, timeouts: aiohttp.ClientTimeout
) -> Connection | None:
    """A connection from ``connector`` (idle or new), or ``None`` if none could be had."""
    try:
        return await connector.connect(request, [], timeouts)
    except Exception as exc:  # noqa: BLE001 - opening ahead must never fail the call it serves
        # The request that needs the connection opens its own, and reports
        # what fails then (mapped, with its retries).
        logger.debug("could not open a connection ahead: %s", type(exc).__name__)
        return None


async def close_session(session: aiohttp.ClientSession) -> None:
    """Close a session we own and let its transports finish closing (no ResourceWarning)."""
    await session.close()
    # Let the event loop run the connection_lost callbacks of closed transports.
    await asyncio.sleep(0)
