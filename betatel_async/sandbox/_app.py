"""The aiohttp application: routes, the API's validation and errors, and fault injection.

Strategy: one middleware wraps every request. It counts the request, calls the
test's ``on_request`` hook, draws a fault, checks the credentials, runs the
route's handler, then holds the answer until the configured latency has passed
since the request arrived. Handlers only parse the query
or body and call `SandboxData`, whose rules raise `SandboxError`. Every error,
aiohttp's own 404 and 405 included, leaves as ``{"message", "statusCode"}`` JSON.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import TypeGuard

import attrs
import orjson
from aiohttp import web

from ._config import NO_FAULT, FaultConfig, SandboxConfig, is_status_fault
from ._data import PACKAGE_STATUSES, Resource, Row, SandboxData, SandboxError
from ._qr import qr_png

__all__ = [
    "API_PREFIX",
    "API_VERSION",
    "STATS_PATH",
    "STATUS_PATH",
    "OnRequest",
    "Sandbox",
    "SandboxStats",
    "create_app",
]

#: Every API path starts here; only these routes need credentials and get faults.
API_PREFIX = "/api/v1/esim"
#: Health check, from the host root, without credentials.
STATUS_PATH = "/api/v1/status"
#: The sandbox's own counters (`SandboxStats`) as JSON, from the host root,
#: without credentials: the only way to read them when the sandbox serves in
#: another process (``python -m betatel_async.sandbox``). Not part of the API.
STATS_PATH = "/_sandbox/stats"
#: The API version the sandbox behaves like, and the ``version`` its status answers.
API_VERSION = "1.0.4"

#: ``on_request(method, path, query)``: called before each request is answered.
OnRequest = Callable[[str, str, dict[str, str]], object]
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# ASCII digits only, at most 18 of them: int() alone would also take "+1", " 1",
# "1_0", Arabic-Indic digits, and raise past 4300 digits.
_INT = re.compile(r"-?[0-9]{1,18}")
# The eUICC and PCR endpoints' ICCIDs: 18 to 22 ASCII digits (ITU-T E.118 allows
# up to 22; the API documents 19-20, and a client must not be stricter than the server).
_ICCID = re.compile(r"[0-9]{18,22}")
_JSON = "application/json"


@attrs.define
class SandboxStats:
    """Counters of the requests a sandbox has seen.

    Requests to `STATS_PATH` read these counters and are not counted, so
    reading them does not change them.

    Attributes:
        total: Every request, faulted or not.
        by_route: Requests by ``(method, route name)``; route names are
            ``inventories``, ``sims``, ``sim``, ``packages`` (GET list and POST
            create), ``package``, ``activate_package``, ``terminate_package``,
            ``package_templates`` (GET list and POST create),
            ``package_template``, ``countries``, ``euicc_profile``,
            ``euicc_qrcode``, ``pcr_profile`` (GET and PUT), ``status``,
            ``echo`` (the sandbox's own, any method), or ``unmatched``.
        by_status: Responses by HTTP status. A dropped connection (``reset``,
            ``commit_drop``) sends none and is not counted here.
        faults: Faults applied, by kind.
        in_flight: Requests being handled now.
        max_in_flight: Most requests handled at once since the last `reset`.
    """

    total: int = 0
    by_route: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    by_status: Counter[int] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        """Zero every counter (``in_flight`` stays true to what is in flight)."""
        self.total = 0
        self.by_route.clear()
        self.by_status.clear()
        self.faults.clear()
        self.max_in_flight = self.in_flight


class Sandbox:
    """The live handle on a sandbox: configuration, data, counters, hook and URL.

    Made by `create_app` (``Sandbox.from_app(app)``) or `serve`; not
    constructed directly.

    Attributes:
        config: Read on every request: change ``latency``, ``page_cap``,
            ``faults`` … (or replace it) between requests.
        data: The live `SandboxData`; tests change it mid-scan.
        stats: Request counters, see `SandboxStats`.
        on_request: None, or a plain function called as
            ``on_request(method, path, query)`` as each request arrives, before
            it is handled. Tests use it to change the data under a scan.
        started_at: ``time.monotonic()`` when the sandbox was made; the
            status answers ``uptime`` from it. Tests may move it back.
    """

    __slots__ = ("_fault_rng", "_latency_rng", "_url", "config", "data", "on_request", "started_at", "stats")

    def __init__(self, config: SandboxConfig, data: SandboxData) -> None:
        self.config = config
        self.data = data
        self.stats = SandboxStats()
        self.on_request: OnRequest | None = None
        self.started_at = time.monotonic()
        self._url: str | None = None
        # Separate generators, so jitter on or off does not change which requests fault.
        self._fault_rng = random.Random(config.seed)
        self._latency_rng = random.Random(config.seed)

    @classmethod
    def from_app(cls, app: web.Application) -> Sandbox:
        """The sandbox behind an application made by `create_app`."""
        return app[_SANDBOX]

    @property
    def url(self) -> str:
        """Base URL to give a client, e.g. ``http://127.0.0.1:8080`` (API paths follow it).

        Raises:
            RuntimeError: The sandbox is not being served by `serve`.
        """
        if self._url is None:
            raise RuntimeError("this sandbox is not being served: use `async with serve(...)`")
        return self._url

    @property
    def api_key(self) -> str:
        """The ``x-api-key`` it accepts."""
        return self.config.api_key

    @property
    def user_id(self) -> str:
        """The ``x-user-id`` it accepts."""
        return self.config.user_id

    @property
    def headers(self) -> dict[str, str]:
        """The credential headers it accepts, ready for a client session."""
        return {"x-api-key": self.config.api_key, "x-user-id": self.config.user_id}

    def __repr__(self) -> str:
        return f"<Sandbox url={self._url!r}>"

    def _draw_fault(self) -> str | None:
        faults = self.config.faults
        if faults.script:
            kind = faults.script.pop(0)
            return None if kind == NO_FAULT else kind
        if faults.rate <= 0 or self._fault_rng.random() >= faults.rate:
            return None
        kinds = [kind for kind, weight in faults.kinds.items() if weight > 0]
        if not kinds:
            return None
        return self._fault_rng.choices(kinds, [faults.kinds[kind] for kind in kinds])[0]


_SANDBOX = web.AppKey("betatel_sandbox", Sandbox)


def create_app(config: SandboxConfig | None = None, data: SandboxData | None = None) -> web.Application:
    """An aiohttp application that behaves like the Betatel eSIM API.

    For running it in your own runner; `serve` does that for you on loopback.
    ``Sandbox.from_app(app)`` gives its live handle.

    Args:
        config: Default ``SandboxConfig()``.
        data: The data to serve; default generated from ``config.sims`` and
            ``config.seed``. Passing one lets several apps share it.

    Returns:
        The application, routes under ``/api/v1/esim`` plus ``/api/v1/status``
        and the sandbox's counters at ``/_sandbox/stats``.
    """
    if config is None:
        config = SandboxConfig()
    if data is None:
        data = SandboxData(sims=config.sims, seed=config.seed)
    app = web.Application(middlewares=[_middleware])
    app[_SANDBOX] = Sandbox(config, data)
    app.add_routes(_routes())
    app.on_response_prepare.append(_stamp_headers)
    return app


async def _stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``Date`` and ``X-Request-Id`` on every answer, errors and faults included."""
    # One server, one clock: the Date header follows ``data.now``, as the
    # timestamps of created packages do, so a test that moves one moves both.
    response.headers["Date"] = email.utils.formatdate(request.app[_SANDBOX].data.now(), usegmt=True)
    # A new id per answer, as the request ids of real APIs are.
    response.headers["X-Request-Id"] = f"req_{uuid.uuid4().hex}"


# -- the middleware: counting, latency, hook, faults, auth, errors ---------------------------


@web.middleware
async def _middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    sandbox = request.app[_SANDBOX]
    if request.match_info.route.name == _STATS_ROUTE:
        return await handler(request)  # no latency, no fault, not counted: an observer
    stats = sandbox.stats
    stats.total += 1
    stats.by_route[(request.method, request.match_info.route.name or "unmatched")] += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        response = await _answer(sandbox, request, handler)
    finally:
        stats.in_flight -= 1
    if response is None:
        # The connection is closed: aiohttp's attempt to send this fails quietly.
        return web.Response(status=204)
    stats.by_status[response.status] += 1
    return response


async def _answer(sandbox: Sandbox, request: web.Request, handler: _Handler) -> web.StreamResponse | None:
    """The response to send, or None when the connection was dropped instead.

    The answer is prepared at once and leaves ``latency`` after the request
    arrived: the latency is the time to answer, not a wait added before the
    work (so a burst of requests does not also queue for the server's CPU).
    """
    config = sandbox.config
    delay = config.latency
    if config.latency_jitter:
        delay += sandbox._latency_rng.random() * config.latency_jitter
    loop = asyncio.get_running_loop()
    due = loop.time() + delay
    if delay > 0:
        # Requests that came together each take their arrival time before any
        # of them is handled: the latency does not grow with a request's place
        # in a burst.
        await asyncio.sleep(0)
    if sandbox.on_request is not None:
        sandbox.on_request(request.method, request.path, dict(request.query))

    is_api = request.path.startswith(API_PREFIX)
    fault = sandbox._draw_fault() if is_api else None
    if fault is not None:
        sandbox.stats.faults[fault] += 1
        if is_status_fault(fault):
            await _until(loop, due)
            return _status_fault(int(fault), config.faults)
        if fault == "reset":
            await _until(loop, due)
            _drop(request, reset=True)
            return None
        if fault == "slow":
            due += config.faults.slow_seconds

    response = await _respond(config, request, handler, is_api=is_api)
    await _until(loop, due)
    if fault == "truncated":
        return await _truncate(request, response)
    if fault == "commit_drop":
        _drop(request)
        return None
    if fault == "malformed":
        return _malform(response)
    return response


async def _until(loop: asyncio.AbstractEventLoop, due: float) -> None:
    delay = due - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _respond(
    config: SandboxConfig, request: web.Request, handler: _Handler, *, is_api: bool
) -> web.Response:
    if is_api and (
        request.headers.get("x-api-key") != config.api_key
        or request.headers.get("x-user-id") != config.user_id
    ):
        return _error(401, "Invalid or missing API key")
    try:
        response = await handler(request)
    except SandboxError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPException as exc:
        # The router's 404 and 405: same JSON as the API's errors, Allow kept.
        allow = exc.headers.get("Allow")
        return _error(exc.status, exc.reason, {"Allow": allow} if allow is not None else None)
    # Every handler here answers a complete web.Response; the faults rely on it.
    assert isinstance(response, web.Response)
    return response


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message, "statusCode": status}),
        content_type=_JSON,
        headers=headers,
    )


def _status_fault(status: int, faults: FaultConfig) -> web.Response:
    headers = {}
    if status == HTTPStatus.TOO_MANY_REQUESTS and faults.retry_after is not None:
        seconds = float(faults.retry_after)
        headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else repr(seconds)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a status code without a registered name, e.g. 499
        phrase = "Error"
    return _error(status, f"{phrase} (sandbox fault)", headers)


def _drop(request: web.Request, *, reset: bool = False) -> None:
    """Close the connection; with ``reset``, abortively (TCP RST, "connection reset by peer")."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if reset and sock is not None:
        # Linger on, timeout 0: close() then discards the buffers and sends RST, not FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.close()


async def _truncate(request: web.Request, response: web.Response) -> web.StreamResponse | None:
    body = response.body
    if not isinstance(body, bytes) or not body:
        _drop(request)
        return None
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    _drop(request)  # close() still flushes what was written
    return stream


def _malform(response: web.Response) -> web.Response:
    body = response.body
    if isinstance(body, bytes) and body:
        return web.Response(status=response.status, body=body[: len(body) // 2], headers=response.headers)
    return web.Response(body=b"{", content_type=_JSON)


# -- handlers --------------------------------------------------------------------------------


def _bad_query(name: str, expected: str, raw: str) -> SandboxError:
    return SandboxError(400, f"Invalid query parameter '{name}': expected {expected}, got {raw!r}")


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if _INT.fullmatch(raw) is None:
        raise _bad_query(name, "an integer", raw)
    return int(raw)


def _int_filters(request: web.Request, *names: str) -> dict[str, object]:
    return {name: value for name in names if (value := _int_param(request, name)) is not None}


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=_JSON)


def _listing(
    request: web.Request,
    resource: Resource,
    *,
    default_count: int,
    filters: Mapping[str, object] | None = None,
) -> web.Response:
    sandbox = request.app[_SANDBOX]
    config = sandbox.config
    offset = _int_param(request, "offset")
    if offset is None:
        offset = 0
    elif offset < 0:
        raise _bad_query("offset", "a non-negative integer", request.query["offset"])
    elif config.faults.ignore_offset:
        offset = 0
    count = _int_param(request, "count")
    if count is None:
        count = default_count
    elif not 1 <= count <= config.max_count:
        expected = f"an integer from 1 to {config.max_count}"
        raise _bad_query("count", expected, request.query["count"])
    if config.page_cap is not None:
        count = min(count, config.page_cap)
    total, items = sandbox.data.page(
        resource, offset=offset, count=count, filters=filters, shape=config.sim_shape
    )
    head = b'{"total":%d,"offset":%d,"count":%d,"%s":[' % (
        total,
        offset,
        len(items),
        resource.encode(),
    )
    return web.Response(body=b"".join((head, b",".join(items), b"]}")), content_type=_JSON)


async def _list_inventories(request: web.Request) -> web.Response:
    return _listing(request, "inventories", default_count=20, filters=_int_filters(request, "company"))


async def _list_sims(request: web.Request) -> web.Response:
    filters = _int_filters(request, "company", "inventory", "group")
    return _listing(request, "sims", default_count=100, filters=filters)


async def _get_sim(request: web.Request) -> web.Response:
    iccid = request.match_info["iccid"]
    if not (iccid.isascii() and iccid.isdigit()):
        raise SandboxError(400, f"Invalid ICCID: {iccid!r}")
    body = request.app[_SANDBOX].data.encoded_sim(iccid)
    if body is None:
        raise SandboxError(404, "SIM not found")
    return web.Response(body=body, content_type=_JSON)


async def _list_packages(request: web.Request) -> web.Response:
    filters = _int_filters(request, "inventory", "package_template")
    if "sim" in request.query:
        filters["sim"] = request.query["sim"]
    if "status" in request.query:
        status = request.query["status"]
        if status not in PACKAGE_STATUSES:
            raise _bad_query("status", f"one of {', '.join(PACKAGE_STATUSES)}", status)
        filters["status"] = status
    return _listing(request, "packages", default_count=20, filters=filters)


async def _get_package(request: web.Request) -> web.Response:
    return _json(request.app[_SANDBOX].data.package_detail(request.match_info["id"]))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise SandboxError(400, "Request body must be a JSON object")
    return body


async def _create_package(request: web.Request) -> web.Response:
    body = await _json_object(request)
    sim, template, time_allowance = (
        body.get("sim"),
        body.get("package_template"),
        body.get("time_allowance"),
    )
    if not isinstance(sim, str) or not sim:
        raise SandboxError(400, "Field 'sim' is required: the SIM's ICCID as a string")
    if not _is_int(template):
        raise SandboxError(400, "Field 'package_template' is required: a template id (integer)")
    if time_allowance is not None and not (_is_int(time_allowance) and time_allowance > 0):
        raise SandboxError(400, "Field 'time_allowance' must be a positive integer (seconds)")
    created = request.app[_SANDBOX].data.create_package(sim, template, time_allowance)
    return _json(created, status=201)


def _action_done(config: SandboxConfig) -> web.Response:
    if config.action_response == "bool":
        return web.Response(body=b"true", content_type=_JSON)
    return web.Response(status=204)


async def _activate_package(request: web.Request) -> web.Response:
    sandbox = request.app[_SANDBOX]
    sandbox.data.activate_package(request.match_info["id"])
    return _action_done(sandbox.config)


async def _terminate_package(request: web.Request) -> web.Response:
    sandbox = request.app[_SANDBOX]
    sandbox.data.terminate_package(request.match_info["id"])
    return _action_done(sandbox.config)


async def _list_package_templates(request: web.Request) -> web.Response:
    filters = _int_filters(request, "inventory")
    return _listing(request, "package_templates", default_count=20, filters=filters)


_TEMPLATE_FIELDS = (
    "name",
    "supported_countries",
    "activation_type",
    "data_usage_allowance",
    "time_allowance",
    "activation_time_allowance",
    "earliest_available_date",
    "latest_available_date",
    "inventory",
)


async def _create_package_template(request: web.Request) -> web.Response:
    body = await _json_object(request)
    fields = {name: body.get(name) for name in _TEMPLATE_FIELDS}
    return _json(request.app[_SANDBOX].data.create_package_template(**fields), status=201)


async def _get_package_template(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if _INT.fullmatch(raw) is None:
        raise SandboxError(400, f"Invalid package template id: {raw!r}")
    template: Row | None = request.app[_SANDBOX].data.get_package_template(int(raw))
    if template is None:
        raise SandboxError(404, "Package template not found")
    return _json(template)


async def _list_countries(request: web.Request) -> web.Response:
    # Undocumented paging; a default that covers every country keeps one call enough.
    return _listing(request, "countries", default_count=1000)


def _profile_iccid(request: web.Request) -> str:
    iccid = request.match_info["iccid"]
    if _ICCID.fullmatch(iccid) is None:
        raise SandboxError(400, f"Invalid ICCID: {iccid!r} (expected 18 to 22 digits)")
    return iccid


async def _get_euicc_profile(request: web.Request) -> web.Response:
    return _json(request.app[_SANDBOX].data.euicc_profile(_profile_iccid(request)))


_NOT_AN_IMAGE = b"<!doctype html><html><body><h1>Sandbox</h1><p>Not an image.</p></body></html>"


async def _get_qr_code(request: web.Request) -> web.Response:
    sandbox = request.app[_SANDBOX]
    profile = sandbox.data.euicc_profile(_profile_iccid(request))
    mode = sandbox.config.qr_response
    if mode == "empty":
        return web.Response(body=b"", content_type="image/png")
    if mode == "html":
        return web.Response(body=_NOT_AN_IMAGE, content_type="text/html")
    return web.Response(body=qr_png(profile["activation_code"]), content_type="image/png")


async def _get_pcr_profile(request: web.Request) -> web.Response:
    return _json(request.app[_SANDBOX].data.pcr_profile(_profile_iccid(request)))


async def _put_pcr_profile(request: web.Request) -> web.Response:
    iccid = _profile_iccid(request)
    body = await _json_object(request)
    request.app[_SANDBOX].data.update_pcr_profile(iccid, body)
    return web.Response(status=204)


_CREDENTIAL_HEADERS = frozenset({"x-api-key", "x-user-id"})


async def _echo(request: web.Request) -> web.Response:
    """The sandbox's own route, not the API's: what it received, for testing ``client.request()``.

    Answers ``{"method", "query", "headers", "json"}``: the query (a name's
    last value), the headers other than the credentials (names lower-cased),
    and the JSON body (``null`` when empty or not JSON).
    """
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    return _json({"method": request.method, "query": dict(request.query), "headers": headers, "json": body})


async def _status(request: web.Request) -> web.Response:
    uptime = time.monotonic() - request.app[_SANDBOX].started_at
    return _json({"status": "ok", "version": API_VERSION, "uptime": int(uptime)})


async def _stats(request: web.Request) -> web.Response:
    stats = request.app[_SANDBOX].stats
    return _json(
        {
            "total": stats.total,
            "by_route": {f"{method} {name}": n for (method, name), n in sorted(stats.by_route.items())},
            "by_status": {str(status): n for status, n in sorted(stats.by_status.items())},
            "faults": dict(sorted(stats.faults.items())),
            "in_flight": stats.in_flight,
            "max_in_flight": stats.max_in_flight,
        }
    )


_STATS_ROUTE = "sandbox_stats"


def _routes() -> list[web.RouteDef]:
    """Every path the sandbox serves, in one place.

    Routes of one path share a name (``packages``, ``package_templates``,
    ``pcr_profile``): aiohttp merges adjacent routes of one path and name into
    one resource.
    """
    api = API_PREFIX
    return [
        web.get(f"{api}/inventories", _list_inventories, name="inventories"),
        web.get(f"{api}/sim-registries", _list_sims, name="sims"),
        web.get(f"{api}/sim-registries/{{iccid}}", _get_sim, name="sim"),
        web.get(f"{api}/packages", _list_packages, name="packages"),
        web.post(f"{api}/packages", _create_package, name="packages"),
        web.get(f"{api}/packages/{{id}}", _get_package, name="package"),
        web.post(f"{api}/packages/{{id}}/activate", _activate_package, name="activate_package"),
        web.post(f"{api}/packages/{{id}}/terminate", _terminate_package, name="terminate_package"),
        web.get(f"{api}/package-templates", _list_package_templates, name="package_templates"),
        web.post(f"{api}/package-templates", _create_package_template, name="package_templates"),
        web.get(f"{api}/package-templates/{{id}}", _get_package_template, name="package_template"),
        web.get(f"{api}/countries", _list_countries, name="countries"),
        web.get(f"{api}/euicc-profiles/{{iccid}}", _get_euicc_profile, name="euicc_profile"),
        web.get(f"{api}/euicc-profiles/{{iccid}}/qrcode", _get_qr_code, name="euicc_qrcode"),
        web.get(f"{api}/sim-pcr-profiles/{{iccid}}", _get_pcr_profile, name="pcr_profile"),
        web.put(f"{api}/sim-pcr-profiles/{{iccid}}", _put_pcr_profile, name="pcr_profile"),
        web.get(STATUS_PATH, _status, name="status"),
        web.get(STATS_PATH, _stats, name=_STATS_ROUTE),
        # Not an API route: an endpoint the SDK does not model, for client.request().
        web.route("*", f"{api}/echo", _echo, name="echo"),
    ]
