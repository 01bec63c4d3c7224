"""One logical API call: headers, timeouts, the client-wide limiter, retries, error mapping.

Strategy: the decisions (retry or not, how long to wait, whether the retry
budget allows it) are pure functions in ``_retry``; this module only executes
them. aiohttp's exceptions are mapped to the SDK's in exactly one place,
:func:`map_aiohttp_error`, most specific class first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

import aiohttp
import anyio
import attrs
import orjson
from yarl import URL

from ._converter import decode_json
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    MalformedResponseError,
    status_error_class,
)
from ._retry import AdaptiveLimit, RetryBudget, RetryPolicy, decide, retry_after_from_headers

__all__ = ["Response", "Transport", "map_aiohttp_error"]

logger: Final = logging.getLogger("betatel_async")

_REDACTED: Final = "***"
_CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "x-user-id"})
_URL_CACHE_SIZE: Final = 64


@attrs.define(slots=True)
class Response:
    """A successful (2xx) response: its status and parsed JSON (``None`` if empty), or its body.

    ``content_type`` is the media type of the ``Content-Type`` header without
    its parameters (aiohttp's ``application/octet-stream`` when absent).
    """

    status: int
    data: Any
    attempts: int
    content_type: str = ""


def map_aiohttp_error(exc: BaseException, *, method: str, path: str) -> tuple[APIError, str]:
    """Map an aiohttp (or timeout) exception to the SDK's, with the retry kind.

    Returns:
        The SDK exception to raise, and the kind used by retry decisions:
        ``"connect"`` (the request never left: safe to retry anything),
        ``"timeout"``, ``"disconnect"`` or ``"truncated"``.
    """
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
        # A response aiohttp could not parse as HTTP, or similar: the request was sent.
        return (
            APIConnectionError(
                f"invalid HTTP response: {getattr(exc, 'message', '') or type(exc).__name__}",
                kind="disconnect",
                method=method,
                path=path,
            ),
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


def _error_message(data: Any, fallback: str) -> str:
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
    return fallback


class ListingTotals:
    """The ``total`` each listing (path and filters) reported last, for the client's scans. Private.

    A scan of a listing seen before plans its first windows on this total
    instead of waiting for the first page (see ``ScanPlan``'s
    ``expected_total``). Bounded: the least recently seen listings are
    forgotten past ``size``; ``size=0`` remembers nothing.
    """

    __slots__ = ("_size", "_totals")

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._totals: dict[Hashable, int] = {}

    def get(self, listing: Hashable) -> int | None:
        return self._totals.get(listing)

    def set(self, listing: Hashable, total: int) -> None:
        if not self._size:
            return
        totals = self._totals
        totals.pop(listing, None)  # re-inserted last: the most recently seen
        totals[listing] = total
        if len(totals) > self._size:
            del totals[next(iter(totals))]


class Transport:
    """Sends one logical request, with retries, under the client-wide limiter.

    Private: owned by :class:`~betatel_async.BetatelClient`.
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
    ) -> None:
        self._get_session = get_session
        self._base_url = base_url
        self._prefix = base_url.path.rstrip("/")  # a base URL may carry a path prefix
        self._headers = dict(headers)
        self._anonymous_headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        self._secret = secret
        self.timeout = timeout
        self.retry = retry
        self.budget = budget
        self.limiter = limiter
        self.adaptive = adaptive
        self._rand = rand
        self._urls: dict[str, URL] = {}  # API path -> full URL
        self.totals = ListingTotals() if totals is None else totals

    def evolve(self, *, retry: RetryPolicy | None, timeout: aiohttp.ClientTimeout | None) -> Transport:
        """A transport sharing this one's session, limiter, budget and adaptive limit."""
        return Transport(
            get_session=self._get_session,
            base_url=self._base_url,
            headers=self._headers,
            secret=self._secret,
            timeout=timeout or self.timeout,
            retry=retry or self.retry,
            budget=self.budget,
            limiter=self.limiter,
            adaptive=self.adaptive,
            rand=self._rand,
            totals=self.totals,
        )

    def url_path(self, path: str) -> str:
        """The full URL path for an API path (the base URL may carry a prefix)."""
        return self._prefix + path

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, _REDACTED) if self._secret else text

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[], None] | None = None,
        parse: bool = True,
        credentials: bool = True,
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
            parse: Parse a 2xx body as JSON (retrying one that is not, as
                most likely cut short). With ``False``, ``data`` is the body
                as bytes, for a caller that parses it later (a scan does,
                when the page is taken).
            credentials: Send the ``x-api-key`` and ``x-user-id`` headers
                (``False`` for an endpoint that needs none: the key is then
                not sent at all).

        Returns:
            The 2xx response: its parsed JSON body (``parse=True``) or its bytes.

        Raises:
            APIStatusError: A subclass per status, once retries are exhausted.
            APIConnectionError: No usable response (``APITimeoutError`` on timeouts).
            MalformedResponseError: A 2xx body that is not JSON, after retries.
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
        started = time.monotonic()
        attempt = 0
        retried_cost: int | None = None
        while True:
            attempt += 1
            status: int | None = None
            retry_after: float | None = None
            date: str | None = None
            error: APIError
            error_kind: str | None = None
            t0 = time.monotonic()
            attempt_timeout = self.timeout
            if policy.deadline is not None:
                # The overall deadline also bounds the attempt in progress.
                remaining = max(policy.deadline - (t0 - started), 0.001)
                if attempt_timeout.total is None or remaining < attempt_timeout.total:
                    attempt_timeout = aiohttp.ClientTimeout(
                        total=remaining, sock_connect=attempt_timeout.sock_connect
                    )
            async with self.limiter:
                try:
                    async with self._get_session().request(
                        method,
                        url,
                        params=params,
                        data=body,
                        headers=headers,
                        allow_redirects=False,
                        timeout=attempt_timeout,
                    ) as resp:
                        status = resp.status
                        content_type = resp.content_type
                        raw = await resp.read()
                        if not 200 <= status < 300:
                            retry_after = retry_after_from_headers(resp.headers)
                            date = resp.headers.get("Date")  # the server's clock, for create's read-back
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    error, error_kind = map_aiohttp_error(exc, method=method, path=full_path)
                    error.__cause__ = exc
                    status = None  # a status line without its body is no answer
            elapsed_attempt = time.monotonic() - t0
            if status is not None:
                logger.debug(
                    "%s %s -> %d (attempt %d, %.1f ms)",
                    method,
                    full_path,
                    status,
                    attempt,
                    elapsed_attempt * 1000,
                )
                if status == 429:
                    self.adaptive.on_throttle()
                if 200 <= status < 300:
                    data: Any = raw if not parse else None
                    if raw and parse:
                        try:
                            data = decode_json(raw, method=method, path=full_path, status=status)
                        except MalformedResponseError as exc:
                            # An unparseable 2xx body is most often one cut short
                            # mid-stream; for retry purposes it is one.
                            error, error_kind = exc, "truncated"
                    if error_kind is None:
                        self.adaptive.on_success()
                        self.budget.release_success(retried_cost)
                        return Response(status=status, data=data, attempts=attempt, content_type=content_type)
                else:
                    error = self._status_error(status, raw, method, full_path, retry_after, date)
            else:
                logger.debug(
                    "%s %s -> %s (attempt %d, %.1f ms)",
                    method,
                    full_path,
                    error_kind,
                    attempt,
                    elapsed_attempt * 1000,
                )
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
                logger.warning(
                    "retrying %s %s in %.2f s (attempt %d failed: %s)",
                    method,
                    full_path,
                    decision.delay,
                    attempt,
                    decision.reason,
                )
                if on_retry is not None:
                    on_retry()
                await anyio.sleep(decision.delay)
                continue
            error.attempts = attempt
            raise error

    def _status_error(
        self, status: int, raw: bytes, method: str, path: str, retry_after: float | None, date: str | None
    ) -> APIStatusError:
        if 300 <= status < 400:
            return APIStatusError(
                "redirect not followed (the API key is never sent to another location)",
                status=status,
                method=method,
                path=path,
            )
        data: Any = None
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            data = None
        fallback = raw[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
        message = self._redact(_error_message(data, fallback))
        cls = status_error_class(status)
        return cls(message, status=status, method=method, path=path, retry_after=retry_after, date=date)


async def close_session(session: aiohttp.ClientSession) -> None:
    """Close a session we own and let its transports finish closing (no ResourceWarning)."""
    await session.close()
    # Let the event loop run the connection_lost callbacks of closed transports.
    await asyncio.sleep(0)
