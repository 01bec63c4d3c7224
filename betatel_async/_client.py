"""BetatelClient: configuration, the session's lifecycle, and the resources."""

from __future__ import annotations

import asyncio
import copy
import enum
import functools
import os
import platform
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
import anyio
import orjson

from ._converter import decode_json, decode_model
from ._errors import ClientClosedError, InvalidArgumentError, InvalidArgumentTypeError
from ._models import ApiStatus
from ._paginate import ListingTotals
from ._raw_view import BetatelClientWithRawResponse
from ._resources import (
    PATHS,
    Countries,
    EuiccProfiles,
    Inventories,
    Packages,
    PackageTemplates,
    PcrProfiles,
    Sims,
)
from ._response import RawResponse, json_parser, raw_response
from ._retry import AdaptiveLimit, RetryBudget, RetryPolicy
from ._telemetry import Telemetry, log_from_env
from ._transport import DEFAULT_MAX_BODY_SIZE, Transport, close_session, merge_headers
from ._validate import (
    check_api_path,
    check_base_url,
    check_credential,
    check_headers,
    check_int,
    check_positive_float,
    check_query,
)
from ._version import __version__

__all__ = ["DEFAULT_BASE_URL", "BetatelClient", "ClientState"]

DEFAULT_BASE_URL: Final = "https://esim.betatel.com"

USER_AGENT: Final = (
    f"betatel-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)


_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""RFC 9110's idempotent methods: repeating one does what doing it once does."""


class ClientState(enum.Enum):
    """Where a client is in its life: it opens once and closes once."""

    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class _Secret:
    """A string that never shows itself in a repr. Private."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


class BetatelClient:
    """An asyncio client of the Betatel eSIM API.

    Use it as an async context manager; it owns one ``aiohttp.ClientSession``
    (unless you pass yours) and one client-wide limit on requests in flight,
    shared by every scan and single call::

        async with BetatelClient(api_key=..., user_id=...) as client:
            sims = await client.sims.all(company=100)

    Args:
        api_key: Sent as ``x-api-key``. Never logged, never in a repr or an error.
        user_id: Sent as ``x-user-id``.
        base_url: The API's origin (and optional path prefix). Default
            ``https://esim.betatel.com``. Plain ``http`` is refused except for
            loopback hosts, unless ``allow_insecure_http`` is true.
        max_concurrency: Requests in flight at most, for this whole client
            (>= 1, default 8). Scans may ask for less, not more.
        timeout: Seconds one attempt may take, connect to last byte (default 30).
        connect_timeout: Seconds to open a connection (default 10).
        retry: The retry policy (default: 3 attempts, 0.5 s base, 8 s cap,
            full jitter); ``RetryPolicy.none()`` disables retries.
        retry_budget: The client-wide retry quota (default: see [`RetryBudget`][betatel_async.RetryBudget]).
        session: An ``aiohttp.ClientSession`` to use. The client does not close
            it. Its connector must allow ``max_concurrency`` connections. A
            scan opens no connection ahead on it (on the client's own
            session, a scan whose first page must teach ``total`` opens the
            connections of its first wave while that page is in flight):
            the session's settings decide how its requests connect.
        allow_insecure_http: Accept an ``http://`` base URL to a non-loopback host.
        trace_configs: ``aiohttp.TraceConfig``\\ s for your own tracing (only
            when the client creates the session).
        remember_totals: Keep the ``total`` each listing (path and filters)
            reported last (default true; at most 256 listings), so that a
            later scan of the same listing sends its first wave of requests
            at once instead of waiting for the first page to learn
            ``total``. If the listing shrank meanwhile, the requests that
            start past its new end are wasted (at most ``concurrency - 1``
            per pass, counted in ``ScanReport.pages_discarded``): they are
            cancelled once the first page is read, their pages are dropped
            unread and a failure of them does not fail the scan; the items
            are the same either way. ``False``: every scan starts with one
            request.
        max_body_size: The largest response body read, in bytes after
            decompression (>= 1, default 32 MiB; a page of 1,000 SIMs is
            about 0.4 MB). A larger one raises ``MalformedResponseError``
            (not retried) as soon as it passes the limit; no more of it is
            held. Bounds a scan's memory too: at most the look-ahead's pages
            times this.
        hedge: Scans hedge late page requests (default true): a request out
            much longer than the listing's answers usually take (1.5 times their
            95th percentile, at least 20 ms; 1 s before any answer is known)
            gets a second one for the same page, and the first answer wins.
            At most a tenth of a scan's pages, each paid from the retry
            budget as a retry is, each taking a slot of ``max_concurrency``.
            A scan may say otherwise (``hedge=``).
        default_headers: Headers sent with every request, for what the SDK
            does not know yet (names are tokens, values ASCII strings without
            CR or LF). One may replace a header the SDK sets (``Accept``,
            ``User-Agent``), never the credentials (``x-api-key``,
            ``x-user-id``) nor ``Content-Length``/``Transfer-Encoding``.
        default_query: Query parameters sent with every request (values
            strings or ints); a call's own parameters (``offset``, a filter)
            win over them.
        tracing: With ``opentelemetry-api`` installed (the ``otel`` extra),
            every call is a span of the global tracer provider and its
            duration and retries go to the global meter provider (default
            true; see the guide "Tracing, logging and metrics", ``docs/pages/observability.md``).
            ``False``: no span, no metric, and OpenTelemetry is not imported.
            Without the package this changes nothing.

    Raises:
        InvalidArgumentError: A bad value (named); credentials are never echoed.
        InvalidArgumentTypeError: A bad type (named).
    """

    def __init__(
        self,
        *,
        api_key: str,
        user_id: str,
        base_url: str = DEFAULT_BASE_URL,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        remember_totals: bool = True,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        hedge: bool = True,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int] | None = None,
        tracing: bool = True,
    ) -> None:
        log_from_env()
        self._api_key = _Secret(check_credential("api_key", api_key))
        self._user_id = check_credential("user_id", user_id)
        if not isinstance(allow_insecure_http, bool):
            raise InvalidArgumentTypeError("allow_insecure_http", "expected a bool")
        if not isinstance(remember_totals, bool):
            raise InvalidArgumentTypeError("remember_totals", "expected a bool")
        if not isinstance(hedge, bool):
            raise InvalidArgumentTypeError("hedge", "expected a bool")
        if not isinstance(tracing, bool):
            raise InvalidArgumentTypeError("tracing", "expected a bool")
        self._base_url = check_base_url("base_url", base_url, allow_insecure=allow_insecure_http)
        self._max_concurrency = check_int("max_concurrency", max_concurrency, minimum=1)
        body_limit = check_int("max_body_size", max_body_size, minimum=1)
        total = check_positive_float("timeout", timeout)
        connect = check_positive_float("connect_timeout", connect_timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentTypeError("retry", f"expected a RetryPolicy, got {type(retry).__name__}")
        if retry_budget is not None and not isinstance(retry_budget, RetryBudget):
            raise InvalidArgumentTypeError("retry_budget", "expected a RetryBudget")
        if session is not None:
            if not isinstance(session, aiohttp.ClientSession):
                raise InvalidArgumentTypeError("session", "expected an aiohttp.ClientSession")
            connector = session.connector
            for limit in (getattr(connector, "limit", 0), getattr(connector, "limit_per_host", 0)):
                if limit and limit < self._max_concurrency:
                    raise InvalidArgumentError(
                        "session",
                        f"its connector allows {limit} connections, fewer than max_concurrency={max_concurrency}",
                    )
        self._session = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs or [])
        self._state = ClientState.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop of the session
        self._timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect)
        self._default_headers = (
            {} if default_headers is None else check_headers("default_headers", default_headers)
        )
        self._default_query = {} if default_query is None else check_query("default_query", default_query)
        self._transport = Transport(
            get_session=self._get_session,
            base_url=self._base_url,
            headers=self._headers(),
            query=self._default_query,
            secret=self._api_key.value,
            timeout=self._timeout,
            retry=retry or RetryPolicy(),
            budget=retry_budget or RetryBudget(),
            # fast_acquire: a free slot is taken without a trip through the event loop.
            limiter=anyio.Semaphore(self._max_concurrency, fast_acquire=True),
            adaptive=AdaptiveLimit(self._max_concurrency),
            totals=ListingTotals(size=256 if remember_totals else 0),
            hedge=hedge,
            max_body_size=body_limit,
            owns_session=session is None,
            telemetry=Telemetry(self._base_url) if tracing else None,
        )
        self._parent: BetatelClient | None = None
        self._bind_resources()

    def _headers(self) -> dict[str, str]:
        """Every request's headers: the SDK's, then ``default_headers`` over them."""
        sdk = {
            "x-api-key": self._api_key.value,
            "x-user-id": self._user_id,
            "Accept": "application/json",
            # The API documents Content-Type on every call, GETs included.
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        return merge_headers(sdk, self._default_headers)

    def _bind_resources(self) -> None:
        self.inventories = Inventories(self._transport, self._max_concurrency)
        """The inventories of the account."""
        self.sims = Sims(self._transport, self._max_concurrency)
        """The SIM registry."""
        self.packages = Packages(self._transport, self._max_concurrency)
        """Packages: list, get, create, activate, terminate."""
        self.package_templates = PackageTemplates(self._transport, self._max_concurrency)
        """Package templates: list, get, create."""
        self.countries = Countries(self._transport, self._max_concurrency)
        """The countries the API knows (name, alpha-2, alpha-3)."""
        self.euicc_profiles = EuiccProfiles(self._transport)
        """eUICC profiles and the QR codes that install eSIMs."""
        self.pcr_profiles = PcrProfiles(self._transport)
        """PCR profiles: a SIM's data, voice and SMS states and speed."""

    async def api_status(self) -> ApiStatus:
        """The API's health: ``ApiStatus(status, version, uptime)`` (``GET /api/v1/status``).

        The health check needs no credentials and is sent without them (no
        ``x-api-key``, no ``x-user-id``). Its path is beside ``/api/v1/esim``,
        below the base URL's prefix if it has one (see ``PATHS``).

        Raises:
            APIError: The request failed.
            MalformedResponseError: The answer lacks ``status`` or ``version``.
        """
        path = PATHS["status"]
        response = await self._transport.request("GET", path, credentials=False)
        return decode_model(response.data, ApiStatus, method="GET", path=self._transport.url_path(path))

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_body_size: int | None = None,
        hedge: bool | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int] | None = None,
        tracing: bool | None = None,
    ) -> BetatelClient:
        """A view of this client with other per-call options, e.g. for one call::

            pkg = await client.with_options(retry=RetryPolicy.none(), timeout=5).packages.get(pid)

        The view shares this client's session, concurrency limit, retry
        budget and adaptive limit, and lives as long as this client: closing
        it does nothing, closing this client closes both.

        Args:
            retry: Retry policy for calls made through the view.
            timeout: Seconds per attempt (default: this client's).
            connect_timeout: Seconds to connect (default: this client's).
            max_body_size: Largest response body in bytes (default: this client's).
            hedge: Whether scans through the view hedge late page requests
                (default: this client's).
            default_headers: Headers set over this client's ``default_headers``
                (a name given replaces this client's value), checked as the
                constructor's.
            default_query: Query parameters set over this client's
                ``default_query``, likewise.
            tracing: Whether calls through the view are traced and measured
                (default: this client's).
        """
        if hedge is not None and not isinstance(hedge, bool):
            raise InvalidArgumentTypeError("hedge", "expected a bool")
        if tracing is not None and not isinstance(tracing, bool):
            raise InvalidArgumentTypeError("tracing", "expected a bool")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentTypeError("retry", f"expected a RetryPolicy, got {type(retry).__name__}")
        client_timeout = None
        if timeout is not None or connect_timeout is not None:
            client_timeout = aiohttp.ClientTimeout(
                total=self._timeout.total if timeout is None else check_positive_float("timeout", timeout),
                sock_connect=(
                    self._timeout.sock_connect
                    if connect_timeout is None
                    else check_positive_float("connect_timeout", connect_timeout)
                ),
            )
        body_limit = None if max_body_size is None else check_int("max_body_size", max_body_size, minimum=1)
        extra_headers = None if default_headers is None else check_headers("default_headers", default_headers)
        extra_query = None if default_query is None else check_query("default_query", default_query)
        view = copy.copy(self)
        view.__dict__.pop("with_raw_response", None)  # the parent's, bound to the parent's resources
        view._parent = self._parent or self
        view._owns_session = False
        if extra_headers is not None:
            view._default_headers = merge_headers(self._default_headers, extra_headers)
        if extra_query is not None:
            view._default_query = {**self._default_query, **extra_query}
        view._transport = self._transport.evolve(
            retry=retry,
            timeout=client_timeout,
            max_body_size=body_limit,
            hedge=hedge,
            headers=None if extra_headers is None else view._headers(),
            query=None if extra_query is None else view._default_query,
            tracing=tracing,
        )
        view._timeout = view._transport.timeout
        view._bind_resources()
        return view

    @functools.cached_property
    def with_raw_response(self) -> BetatelClientWithRawResponse:
        """This client's single-request methods, each returning a [`RawResponse`][betatel_async.RawResponse]::

            raw = await client.with_raw_response.sims.get(iccid)
            print(raw.status, raw.request_id, raw.headers.get("Date"))
            sim = raw.parse()  # the Sim that client.sims.get(iccid) returns

        Every ``list``, ``get``, ``create``, ``activate``, ``terminate``,
        ``update``, ``qr_code`` and ``api_status``; not the scans. The call
        runs as the plain one (checks, retries, read-backs, decoding) and
        raises what it raises. Shares everything with this client; combine
        with options as ``client.with_options(...).with_raw_response``.
        """
        return BetatelClientWithRawResponse(self)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> RawResponse[Any]:
        """Send any request to the API, for an endpoint the SDK does not model (yet)::

            raw = await client.request("GET", "/api/v1/esim/countries", params={"count": 10})
            countries = raw.parse()["countries"]

        With the client's credentials, ``default_headers`` and
        ``default_query``, concurrency limit, timeouts, retry policy and
        logging. Retried as the policy says only for an idempotent method
        (GET, HEAD, PUT, DELETE, OPTIONS); a POST or PATCH is sent once, unless
        the connection could not even be opened. Redirects are not followed.

        Args:
            method: ``GET``, ``HEAD``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``
                or ``OPTIONS`` (any letter case).
            path: The path below the base URL (its prefix, if any, is put in
                front), starting with ``/`` and percent-encoded, without query
                or fragment: no ``..`` segment, no other host, no CR or LF.
            params: Query parameters (strings, ints or floats), over ``default_query``.
            json: A body to send as JSON (``None``: no body).
            headers: Headers for this request, over the client's; not the
                credentials (``x-api-key``, ``x-user-id``).

        Returns:
            The answer: ``.status``, ``.headers``, ``.request_id``,
            ``.content``, ``.attempts``, ``.elapsed``; ``.parse()`` parses
            the body as JSON (``None`` when empty).

        Raises:
            InvalidArgumentError: A bad method, path, params or headers
                (named), before any request.
            InvalidArgumentTypeError: A bad type, or ``json`` that cannot be
                sent as JSON, before any request.
            APIStatusError: A 3xx, 4xx or 5xx answer, as its subclass
                (``NotFoundError`` ...), as in every call.
            APIConnectionError: No usable answer.
        """
        if not isinstance(method, str):
            raise InvalidArgumentTypeError("method", f"expected a string, got {type(method).__name__}")
        verb = method.upper()
        if verb not in _METHODS:
            raise InvalidArgumentError("method", f"must be one of {', '.join(sorted(_METHODS))}")
        check_api_path("path", path)
        query = None if params is None else check_query("params", params, floats=True)
        extra = None if headers is None else check_headers("headers", headers)
        if json is not None:
            try:
                orjson.dumps(json)
            except orjson.JSONEncodeError as exc:
                raise InvalidArgumentTypeError("json", f"cannot be sent as JSON: {exc}") from None
        transport = self._transport
        response = await transport.request(
            verb,
            path,
            params=query,
            json=json,
            idempotent=verb in _IDEMPOTENT_METHODS,
            parse=False,
            headers=extra,
        )
        decode = functools.partial(
            decode_json, method=verb, path=transport.url_path(path), status=response.status
        )
        parse = json_parser(response.content, decode)
        return raw_response(response, parse, attempts=response.attempts, elapsed=response.elapsed)

    @classmethod
    def from_env(cls, **options: object) -> BetatelClient:
        """A client configured from ``BETATEL_API_KEY``, ``BETATEL_USER_ID`` and,
        if set, ``BETATEL_BASE_URL``.

        Args:
            **options: Any other keyword argument of the constructor.

        Raises:
            InvalidArgumentError: A required variable is unset or empty (named).
        """
        values: dict[str, object] = {}
        for argument, variable in (("api_key", "BETATEL_API_KEY"), ("user_id", "BETATEL_USER_ID")):
            value = os.environ.get(variable)
            if not value:
                raise InvalidArgumentError(variable, "environment variable is not set")
            values[argument] = value
        base_url = os.environ.get("BETATEL_BASE_URL")
        if base_url:
            values["base_url"] = base_url
        values.update(options)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def state(self) -> ClientState:
        """``UNOPENED`` until first used, ``OPEN``, then ``CLOSED`` for good."""
        if self._parent is not None:
            return self._parent.state
        return self._state

    @property
    def base_url(self) -> str:
        """The API origin this client talks to."""
        return str(self._base_url)

    @property
    def max_concurrency(self) -> int:
        """The client-wide limit on requests in flight."""
        return self._max_concurrency

    @property
    def retry_policy(self) -> RetryPolicy:
        """The client's retry policy."""
        return self._transport.retry

    @property
    def adaptive_limit(self) -> AdaptiveLimit:
        """The client-wide scan concurrency, halved on 429 and grown back on success."""
        return self._transport.adaptive

    @property
    def retry_budget(self) -> RetryBudget:
        """The client-wide retry quota (its ``available`` tokens are live)."""
        return self._transport.budget

    def __repr__(self) -> str:
        return f"BetatelClient(base_url={str(self._base_url)!r}, user_id={self._user_id!r}, state={self._state.value})"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._parent is not None:
            return self._parent._get_session()
        if self._state is ClientState.CLOSED:
            raise ClientClosedError("this BetatelClient is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            # aiohttp's session (its connections, its timers) belongs to the
            # loop it first ran in; each asyncio.run() starts a new loop.
            raise ClientClosedError(
                "this BetatelClient was opened in another event loop (each asyncio.run() starts "
                "a new one); create the client inside the event loop that uses it"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_concurrency, limit_per_host=self._max_concurrency
                ),
                trace_configs=self._trace_configs or None,
                # The API authenticates by header: cookies a response may set
                # are neither kept nor sent back (and not parsed per request).
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        self._state = ClientState.OPEN
        return self._session

    async def open(self) -> Self:
        """Create the session now (``async with`` does this for you)."""
        self._get_session()
        return self

    async def aclose(self) -> None:
        """Close the client and, if it created it, its session. Idempotent.

        Calls in flight on this client and its ``with_options`` views (a
        retry's wait included) end at once with ``ClientClosedError``, and so
        do scans running on them; this returns once they have ended. A
        session of another event loop (see ``ClientClosedError``) cannot be
        closed from this one and is only let go.
        """
        if self._parent is not None or self._state is ClientState.CLOSED:
            return
        self._state = ClientState.CLOSED
        await self._transport.calls.close()
        session, self._session = self._session, None
        if session is not None and self._owns_session and self._loop is asyncio.get_running_loop():
            await close_session(session)

    async def __aenter__(self) -> Self:
        if self._state is ClientState.CLOSED:
            raise ClientClosedError("this BetatelClient is closed; create a new one")
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
