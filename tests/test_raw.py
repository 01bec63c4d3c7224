"""Raw responses, request ids, the escape hatch and default headers/query, over loopback HTTP.

``client.with_raw_response`` against the sandbox: every single-request method's
``parse()`` equals what the plain call returns (two sandboxes of one seed and
one clock, one called raw and one plain), status, headers, request id,
attempts through retries and read-backs. ``client.request()`` reaching an
endpoint the SDK does not model (the sandbox's ``/echo``), retried only for
idempotent methods, with every bad path, header and parameter refused before
any request. Errors carry the answer's body, headers and request id, the key
redacted however a server echoes it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

from ._leaks import exception_texts, leaks
from ._servers import web_server

pytestmark = pytest.mark.anyio

FAST = bt.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.001)
REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
ECHO = "/api/v1/esim/echo"
SECRET = "sk-Zq8Vw3Lm5Rt1Xy7Np2"


def make_client(sandbox: Sandbox, **options: Any) -> bt.BetatelClient:
    options.setdefault("retry", FAST)
    return bt.BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, **options)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=60, seed=7)) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[bt.BetatelClient]:
    async with make_client(sandbox) as c:
        yield c


# -- parse() is the plain call's result, for every single-request method ---------------------


class Ids:
    """What the calls of one case address, read from a sandbox's data (equal in two of one seed)."""

    def __init__(self, sandbox: Sandbox) -> None:
        data = sandbox.data
        taken = {p["sim"] for p in data.packages_list()}
        self.iccid: str = data.sims_list()[0]["iccid"]
        self.free_sim: str = next(s["iccid"] for s in data.sims_list() if s["iccid"] not in taken)
        self.package: str = next(p["id"] for p in data.packages_list() if p["status"] == "NOT_ACTIVE")
        self.live_package: str = next(p["id"] for p in data.packages_list() if p["status"] == "ACTIVE")
        self.template: int = data.package_templates_list()[0]["id"]
        self.inventory: int = data.inventories_list()[0]["id"]


def template_args(inventory: int) -> dict[str, Any]:
    return {
        "name": "Raw 1 GB",
        "supported_countries": ["FRA"],
        "activation_type": "AUTO",
        "data_usage_allowance": 1024**3,
        "time_allowance": bt.TimeAllowance(unit="DAY", duration=7),
        "activation_time_allowance": 3600,
        "earliest_available_date": 1_700_000_000_000,
        "latest_available_date": 0,
        "inventory": inventory,
    }


# Each case runs on a client (plain) or on its with_raw_response view (raw):
# both have the same namespaces and method names.
Call = Callable[[Any, Ids], Awaitable[Any]]
CASES: dict[str, Call] = {
    "inventories.list": lambda c, i: c.inventories.list(count=5),
    "sims.list": lambda c, i: c.sims.list(offset=3, count=7),
    "sims.get": lambda c, i: c.sims.get(i.iccid),
    "packages.list": lambda c, i: c.packages.list(count=4, status="ACTIVE"),
    "packages.get": lambda c, i: c.packages.get(i.package),
    "packages.create": lambda c, i: c.packages.create(sim=i.free_sim, package_template=i.template),
    "packages.activate": lambda c, i: c.packages.activate(i.package),
    "packages.terminate": lambda c, i: c.packages.terminate(i.live_package),
    "package_templates.list": lambda c, i: c.package_templates.list(count=3),
    "package_templates.get": lambda c, i: c.package_templates.get(i.template),
    "package_templates.create": lambda c, i: c.package_templates.create(**template_args(i.inventory)),
    "countries.list": lambda c, i: c.countries.list(count=10),
    "euicc_profiles.get": lambda c, i: c.euicc_profiles.get(i.iccid),
    "euicc_profiles.qr_code": lambda c, i: c.euicc_profiles.qr_code(i.iccid),
    "pcr_profiles.get": lambda c, i: c.pcr_profiles.get(i.iccid),
    "pcr_profiles.update": lambda c, i: c.pcr_profiles.update(i.iccid, active_throttling="SPEED_500_KBPS"),
    "api_status": lambda c, i: c.api_status(),
}
# Requests the call makes: (status of the answer it returns, requests in all).
SHAPES = {"packages.create": (201, 1), "package_templates.create": (201, 1), "pcr_profiles.update": (200, 3)}
SHAPES |= {"packages.activate": (204, 1), "packages.terminate": (204, 1)}

SCANS = {"pages", "iter", "all", "status", "export"}


@pytest.fixture
async def twins() -> AsyncIterator[tuple[Sandbox, Sandbox]]:
    """Two sandboxes of one seed, on one fixed clock: the same calls get the same answers."""
    now = time.time()
    async with serve(SandboxConfig(sims=60, seed=7)) as a, serve(SandboxConfig(sims=60, seed=7)) as b:
        for sb in (a, b):
            sb.data.now = lambda: now
            sb.started_at = time.monotonic() - 100.5  # uptime: 100 s in both, whatever the call's moment
        yield a, b


@pytest.mark.parametrize("name", sorted(CASES))
async def test_parse_returns_what_the_plain_call_returns(twins: tuple[Sandbox, Sandbox], name: str) -> None:
    raw_side, plain_side = twins
    async with make_client(raw_side) as raw_client, make_client(plain_side) as plain_client:
        raw = await CASES[name](raw_client.with_raw_response, Ids(raw_side))
        plain = await CASES[name](plain_client, Ids(plain_side))
    assert isinstance(raw, bt.RawResponse)
    assert raw.parse() == plain
    assert type(raw.parse()) is type(plain)
    status, requests = SHAPES.get(name, (200, 1))
    assert (raw.status, raw.attempts) == (status, requests)
    assert raw.attempts == raw_side.stats.total == plain_side.stats.total
    assert REQUEST_ID.fullmatch(raw.request_id or "")
    assert raw.headers["X-Request-Id"] == raw.request_id
    assert raw.elapsed > 0


def test_the_raw_view_has_every_single_request_method_and_no_scan() -> None:
    """A method added to a resource without a raw counterpart (or a test case) fails here."""
    client = bt.BetatelClient(api_key="k", user_id="u")
    view = client.with_raw_response
    expected = {"api_status"}
    for namespace in ("inventories", "sims", "packages", "package_templates", "countries"):
        expected |= {f"{namespace}.{m}" for m in _public_methods(getattr(client, namespace)) - SCANS}
    for namespace in ("euicc_profiles", "pcr_profiles"):
        expected |= {f"{namespace}.{m}" for m in _public_methods(getattr(client, namespace))}
    found = {"api_status"} if callable(view.api_status) else set()
    for namespace in vars(view):
        if namespace != "api_status":
            found |= {f"{namespace}.{m}" for m in vars(getattr(view, namespace))}
    assert found == expected == set(CASES)


def _public_methods(resource: object) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(type(resource), inspect.isfunction)
        if not name.startswith("_")
    }


# -- status, headers, request id, content ----------------------------------------------------


async def test_a_raw_response_shows_the_answer(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = sandbox.data.sims_list()[0]["iccid"]
    raw = await client.with_raw_response.sims.get(iccid)
    assert raw.status == 200
    assert raw.headers["content-type"].startswith("application/json")  # any letter case
    assert raw.headers["Date"]
    assert orjson.loads(raw.content)["iccid"] == iccid
    assert raw.parse().iccid == iccid
    assert raw.parse() is raw.parse()  # the plain call's object, not decoded again
    with pytest.raises(TypeError):
        raw.headers["X-Mine"] = "1"  # type: ignore[index]  # read-only
    assert "headers" not in repr(raw) and raw.request_id in repr(raw)


async def test_every_answer_has_its_own_request_id(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = sandbox.data.sims_list()[0]["iccid"]
    ids = {(await client.with_raw_response.sims.get(iccid)).request_id for _ in range(5)}
    assert len(ids) == 5


async def test_the_empty_answer_of_an_action_has_status_and_no_content(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    package = next(p["id"] for p in sandbox.data.packages_list() if p["status"] == "NOT_ACTIVE")
    raw = await client.with_raw_response.packages.activate(package)
    assert (raw.status, raw.content, raw.parse()) == (204, b"", None)


async def test_the_qr_code_is_the_content(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    raw = await client.with_raw_response.euicc_profiles.qr_code(sandbox.data.sims_list()[0]["iccid"])
    assert raw.content == raw.parse()
    assert raw.content.startswith(b"\x89PNG")
    assert raw.headers["Content-Type"] == "image/png"


async def test_concurrent_raw_calls_each_get_their_own_answer(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """The recording is per call: concurrent calls on one view (and a plain one among them) do not mix."""
    iccids = [s["iccid"] for s in sandbox.data.sims_list()[:6]]
    sandbox.config.latency = 0.01
    raws, _ = await asyncio.gather(
        asyncio.gather(*(client.with_raw_response.sims.get(i) for i in iccids)),
        client.pcr_profiles.update(iccids[0], data_state="DISABLED"),
    )
    for iccid, raw in zip(iccids, raws, strict=True):
        assert orjson.loads(raw.content)["iccid"] == raw.parse().iccid == iccid
        assert raw.attempts == 1
    assert len({raw.request_id for raw in raws}) == len(iccids)


async def test_the_view_is_one_per_client_and_follows_with_options(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    assert client.with_raw_response is client.with_raw_response
    strict = client.with_options(retry=bt.RetryPolicy.none())
    assert strict.with_raw_response is not client.with_raw_response
    sandbox.config.faults = FaultConfig(script=["503"])
    with pytest.raises(bt.ServerError) as info:
        await strict.with_raw_response.sims.list()
    assert info.value.attempts == 1  # the view's policy, not the client's


# -- attempts through retries; the answer a call of several requests returns -----------------


async def test_attempts_count_the_retries(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["503", "429"])
    raw = await client.with_raw_response.countries.list(count=3)
    assert (raw.status, raw.attempts, sandbox.stats.total) == (200, 3, 3)
    assert raw.parse().count == 3


async def test_a_pcr_update_returns_the_answer_of_its_last_read(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    iccid = sandbox.data.sims_list()[0]["iccid"]
    sandbox.config.faults = FaultConfig(script=["ok", "503"])  # the PUT is retried once
    raw = await client.with_raw_response.pcr_profiles.update(iccid, active_throttling="SPEED_100_KBPS")
    assert raw.attempts == 4 == sandbox.stats.total  # GET, PUT 503, PUT, GET
    assert raw.status == 200
    assert orjson.loads(raw.content)["data"]["active_throttling"] == "SPEED_100_KBPS"


async def test_a_create_read_back_returns_the_answer_it_found_the_package_in(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """A 201 that is not a package: the package is found by reading the SIM's packages back."""
    taken = {p["sim"] for p in sandbox.data.packages_list()}
    sim = next(s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken)
    template = sandbox.data.package_templates_list()[0]["id"]
    sandbox.config.faults = FaultConfig(script=["malformed"])
    raw = await client.with_raw_response.packages.create(sim=sim, package_template=template)
    assert raw.parse().reconciled
    assert (raw.status, raw.attempts, sandbox.stats.total) == (200, 2, 2)  # the POST, a page
    page = orjson.loads(raw.content)
    assert [p["id"] for p in page["packages"]] == [raw.parse().id]


async def test_a_create_sent_again_returns_the_second_answer(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """503 before anything was made: read back (nothing), sent again, 201."""
    taken = {p["sim"] for p in sandbox.data.packages_list()}
    sim = next(s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken)
    template = sandbox.data.package_templates_list()[0]["id"]
    sandbox.config.faults = FaultConfig(script=["503"])
    raw = await client.with_raw_response.packages.create(sim=sim, package_template=template)
    assert (raw.status, raw.attempts, sandbox.stats.total) == (201, 3, 3)
    assert orjson.loads(raw.content)["id"] == raw.parse().id


async def test_a_failed_raw_call_raises_what_the_plain_call_raises(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.NotFoundError):
        await client.with_raw_response.packages.get("pkg_nope")
    with pytest.raises(bt.InvalidArgumentError, match="iccid"):
        await client.with_raw_response.sims.get("12")


# -- client.request: the escape hatch --------------------------------------------------------


async def test_request_reaches_an_endpoint_the_sdk_does_not_model(sandbox: Sandbox) -> None:
    async with make_client(
        sandbox, default_headers={"X-Team": "ops"}, default_query={"lang": "en"}
    ) as client:
        raw = await client.request(
            "post", ECHO, params={"n": 2, "x": 0.5}, json={"a": [1, 2]}, headers={"X-Trace": "t-1"}
        )
    assert raw.status == 200
    echo = raw.parse()
    assert echo["method"] == "POST"
    assert echo["query"] == {"lang": "en", "n": "2", "x": "0.5"}
    assert echo["json"] == {"a": [1, 2]}
    assert echo["headers"]["x-team"] == "ops"
    assert echo["headers"]["x-trace"] == "t-1"
    assert REQUEST_ID.fullmatch(raw.request_id or "")
    assert sandbox.stats.by_route[("POST", "echo")] == 1  # and the credentials passed (no 401)


async def test_request_parses_json_on_demand(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    countries = await client.request("GET", "/api/v1/esim/countries", params={"count": 2})
    assert [c["iso3"] for c in countries.parse()["countries"]] == [
        c.iso3 for c in (await client.countries.list(count=2)).items
    ]
    head = await client.request("HEAD", ECHO)
    assert (head.status, head.content, head.parse()) == (200, b"", None)
    qr = await client.request(
        "GET", f"/api/v1/esim/euicc-profiles/{sandbox.data.sims_list()[0]['iccid']}/qrcode"
    )
    assert qr.content.startswith(b"\x89PNG")
    with pytest.raises(bt.MalformedResponseError):
        qr.parse()


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
async def test_request_retries_an_idempotent_method(
    client: bt.BetatelClient, sandbox: Sandbox, method: str
) -> None:
    sandbox.config.faults = FaultConfig(script=["503"])
    raw = await client.request(method, ECHO)
    assert (raw.status, raw.attempts, sandbox.stats.total) == (200, 2, 2)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_request_never_retries_post_or_patch(
    client: bt.BetatelClient, sandbox: Sandbox, method: str
) -> None:
    sandbox.config.faults = FaultConfig(script=["503"])
    with pytest.raises(bt.ServerError) as info:
        await client.request(method, ECHO, json={"once": True})
    assert (info.value.attempts, sandbox.stats.total) == (1, 1)


async def test_request_raises_the_typed_error_with_the_answer(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    with pytest.raises(bt.NotFoundError) as info:
        await client.request("GET", "/api/v1/esim/nowhere")
    err = info.value
    assert err.body == {"message": "Not Found", "statusCode": 404}
    assert REQUEST_ID.fullmatch(err.request_id or "")
    assert err.headers is not None and err.headers["X-Request-Id"] == err.request_id
    assert (err.method, err.path) == ("GET", "/api/v1/esim/nowhere")


BAD_PATHS = [
    "api/v1/esim/echo",  # not below the base URL
    "",
    "//evil.example/api",  # another host
    "http://evil.example/api",
    "https:/x",
    "/api/v1/../v2/echo",
    "/api/v1/esim/..",
    "/api/v1/%2e%2E/echo",  # an escaped ..
    "/api/./echo",
    "/api/v1/esim/echo\r\nX-Injected: 1",
    "/api/v1/esim/echo\n",
    "/api/v1/esim/echo\x00",
    "/api/v1/esim/echo?x=1",  # the query goes in params
    "/api/v1/esim/echo#top",
    "/api/v1/esim/e cho",
    "/api/v1/esim/échos",
    "/api/v1/esim\\echo",
    "/api/v1/esim%2Fecho",  # an escaped /
    "/api/v1/esim/%0d%0aecho",
    "/api/v1/esim/100%",  # not an escape
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_a_bad_path_is_refused_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, path: str
) -> None:
    with pytest.raises(bt.InvalidArgumentError) as info:
        await client.request("GET", path)
    assert info.value.argument == "path"
    assert sandbox.stats.total == 0


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("api/x", "must start with '/'"),
        ("//evil.example/x", "another host"),
        ("/x\r\nX-Injected: 1", "CR, LF"),
        ("/x?y=1", "params="),
        ("/x/../y", "'..'"),
        ("/x%2Fy", "escaped '/'"),
        ("/x y", "percent-encode"),
    ],
)
async def test_a_bad_path_says_why(client: bt.BetatelClient, path: str, why: str) -> None:
    with pytest.raises(bt.InvalidArgumentError, match=re.escape(why)):
        await client.request("GET", path)


BAD_HEADERS: list[dict[str, Any]] = [
    {"x-api-key": "other"},  # the SDK's own credentials
    {"X-API-KEY": "other"},
    {"x-user-id": "other"},
    {"X-Note": "a\r\nX-Injected: 1"},
    {"X-Note": "a\nb"},
    {"X-Note": "a\rb"},
    {"X-Note": "a\x00b"},
    {"X-Note": "é"},
    {"Bad Name": "v"},
    {"X-Note:": "v"},
    {"": "v"},
    {"X-Note": "1", "x-note": "2"},  # one name twice
    {"Content-Length": "5"},
    {"Transfer-Encoding": "chunked"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_bad_headers_are_refused_before_any_request(
    sandbox: Sandbox, client: bt.BetatelClient, headers: dict[str, Any]
) -> None:
    with pytest.raises(bt.InvalidArgumentError) as info:
        await client.request("GET", ECHO, headers=headers)
    assert info.value.argument == "headers"
    with pytest.raises(bt.InvalidArgumentError) as info:
        make_client(sandbox, default_headers=headers)
    assert info.value.argument == "default_headers"
    with pytest.raises(bt.InvalidArgumentError) as info:
        client.with_options(default_headers=headers)
    assert info.value.argument == "default_headers"
    assert sandbox.stats.total == 0
    assert all(v not in str(info.value) for v in headers.values() if len(v) > 1)  # values never echoed


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.request("TRACE", ECHO), "method"),
        (lambda c: c.request("GET /x", ECHO), "method"),
        (lambda c: c.request(b"GET", ECHO), "method"),
        (lambda c: c.request("GET", b"/api/v1/esim/echo"), "path"),
        (lambda c: c.request("GET", ECHO, params={"a": True}), "params"),
        (lambda c: c.request("GET", ECHO, params={"a": None}), "params"),
        (lambda c: c.request("GET", ECHO, params={"a": "x\r\ny"}), "params"),
        (lambda c: c.request("GET", ECHO, params={1: "x"}), "params"),
        (lambda c: c.request("GET", ECHO, params=[("a", "1")]), "params"),
        (lambda c: c.request("GET", ECHO, headers={"X-A": 1}), "headers"),
        (lambda c: c.request("GET", ECHO, headers=[("X-A", "1")]), "headers"),
        (lambda c: c.request("POST", ECHO, json={"a": object()}), "json"),
        (lambda c: c.request("POST", ECHO, json={"big": 2**70}), "json"),
    ],
)
async def test_bad_arguments_of_request_are_refused_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, call: Callable[[Any], Awaitable[Any]], argument: str
) -> None:
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError)) as info:
        await call(client)
    assert info.value.argument == argument
    assert sandbox.stats.total == 0


@pytest.mark.parametrize(
    "query",
    [{"a": True}, {"a": 1.5}, {"a": None}, {"a": "x\ny"}, {"": "x"}, {"a\r": "x"}, [("a", "1")]],
)
async def test_a_bad_default_query_is_refused(client: bt.BetatelClient, query: Any) -> None:
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError)) as info:
        bt.BetatelClient(api_key="k", user_id="u", default_query=query)
    assert info.value.argument == "default_query"
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError)) as info:
        client.with_options(default_query=query)
    assert info.value.argument == "default_query"


# -- default_headers and default_query on every call -----------------------------------------


async def test_defaults_go_with_every_call_and_the_calls_own_params_win(sandbox: Sandbox) -> None:
    queries: list[dict[str, str]] = []
    sandbox.on_request = lambda method, path, query: queries.append(query)
    async with make_client(sandbox, default_query={"lang": "en", "offset": 40}) as client:
        page = await client.sims.list(offset=5, count=2)
        await client.api_status()
        await client.sims.all(page_size=30)
    assert page.offset == 5  # the SDK's own parameter, not the default
    assert queries[0] == {"lang": "en", "offset": "5", "count": "2"}
    assert all(q["lang"] == "en" for q in queries)
    assert len(queries) == 1 + 1 + 2


async def test_a_view_sets_its_default_query_over_the_clients(sandbox: Sandbox) -> None:
    queries: list[dict[str, str]] = []
    sandbox.on_request = lambda method, path, query: queries.append(query)
    async with make_client(sandbox, default_query={"lang": "en", "v": 1}) as client:
        await client.with_options(default_query={"lang": "fr", "region": "eu"}).api_status()
        await client.api_status()
    assert queries == [{"lang": "fr", "v": "1", "region": "eu"}, {"lang": "en", "v": "1"}]


async def test_default_headers_go_with_every_call_and_views_merge_them() -> None:
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        # A header set twice (in two letter cases) would show as two values joined.
        seen.append({k.lower(): ", ".join(request.headers.getall(k)) for k in request.headers})
        return web.json_response({"status": "ok", "version": "1.0.4", "uptime": 1})

    async with web_server(record) as url:
        async with bt.BetatelClient(
            api_key="key-1",
            user_id="u",
            base_url=url,
            default_headers={"X-Team": "ops", "user-agent": "mine/1"},
        ) as client:
            await client.api_status()
            await client.with_options(default_headers={"X-Tenant": "t9", "x-team": "sre"}).api_status()
            await client.request("GET", "/anything", headers={"X-Team": "call"})
            await client.api_status()
    first, view, call, again = seen
    assert first["x-team"] == "ops" and first["user-agent"] == "mine/1"
    assert (view["x-team"], view["x-tenant"], view["user-agent"]) == ("sre", "t9", "mine/1")
    assert call["x-team"] == "call" and call["x-api-key"] == "key-1"
    assert "x-tenant" not in again and again["x-team"] == "ops"  # the view left the client as it was


# -- errors carry the answer's body, headers and request id, the key redacted ----------------


async def test_an_error_carries_the_answer_with_the_key_redacted() -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["x-api-key"]
        form = request.path.rsplit("/", 1)[-1]
        # Both ids: X-Request-Id is the one read.
        headers = {"Request-Id": "other", "X-Request-Id": "req-42", "X-Echo": f"seen {key.upper()}"}
        if form == "json":
            payload = {
                "message": f"bad key {key}",
                "detail": {key.lower(): [key.swapcase()]},
                "statusCode": 403,
            }
            return web.json_response(payload, status=403, headers=headers)
        if form == "long":
            return web.Response(status=403, text=f"{key} " + "x" * 900, headers=headers)
        return web.Response(status=403, text=f"no: {key}", headers=headers)

    errors: dict[str, bt.APIStatusError] = {}
    async with web_server(echo) as url:
        async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=url) as client:
            for form in ("json", "text", "long"):
                with pytest.raises(bt.PermissionDeniedError) as info:
                    await client.packages.get(form)
                errors[form] = info.value
    assert errors["json"].body == {"message": "bad key ***", "detail": {"***": ["***"]}, "statusCode": 403}
    assert errors["text"].body == "no: ***"
    long = errors["long"].body
    assert isinstance(long, str) and long.startswith("*** xxx") and long.endswith("(404 more characters)")
    for err in errors.values():
        assert err.request_id == "req-42"
        assert err.headers is not None
        assert err.headers["x-echo"] == "seen ***"
        assert "x-api-key" not in err.headers and "User-Agent" not in err.headers  # not the request's
        assert leaks(SECRET, list(exception_texts(err))) == []
        assert leaks(SECRET, [repr(err.body), repr(err.headers)]) == []


async def test_a_key_of_digits_echoed_as_a_number_is_redacted() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"key": int(request.headers["x-api-key"]), "n": 7}, status=400)

    async with web_server(echo) as url:
        async with bt.BetatelClient(api_key="73194628501", user_id="u", base_url=url) as client:
            with pytest.raises(bt.BadRequestError) as info:
                await client.sims.list()
    assert info.value.body == {"key": "***", "n": 7}


async def test_a_success_body_that_is_not_json_is_kept_on_the_error() -> None:
    async def page(request: web.Request) -> web.Response:
        key = request.headers["x-api-key"]
        return web.Response(
            text=f"<html>{key}</html>", content_type="text/html", headers={"Request-Id": "r-7"}
        )

    async with web_server(page) as url:
        async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=url) as client:
            with pytest.raises(bt.MalformedResponseError) as info:
                await client.sims.list()
    err = info.value
    assert err.body == "<html>***</html>"
    assert err.request_id == "r-7"  # Request-Id when there is no X-Request-Id
    assert leaks(SECRET, list(exception_texts(err))) == []


async def test_errors_without_an_answer_have_no_body_or_headers() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with bt.BetatelClient(
        api_key="k", user_id="u", base_url=f"http://127.0.0.1:{port}", retry=bt.RetryPolicy.none()
    ) as client:
        with pytest.raises(bt.APIConnectionError) as info:
            await client.sims.list()
    assert info.value.kind == "connect"
    assert (info.value.body, info.value.headers, info.value.request_id) == (None, None, None)


async def test_the_sandbox_sends_a_request_id_with_every_answer_errors_included(sandbox: Sandbox) -> None:
    ids = set()
    async with bt.BetatelClient(api_key="wrong", user_id="u", base_url=sandbox.url) as wrong:
        with pytest.raises(bt.AuthenticationError) as unauthorised:
            await wrong.sims.list()
    ids.add(unauthorised.value.request_id)
    sandbox.config.faults = FaultConfig(script=["503", "429"])
    async with make_client(sandbox, retry=bt.RetryPolicy.none()) as client:
        for status in (503, 429):
            with pytest.raises(bt.APIStatusError) as info:
                await client.sims.list()
            assert info.value.status == status
            ids.add(info.value.request_id)
        with pytest.raises(bt.NotFoundError) as missing:
            await client.packages.get("pkg_nope")
        ids.add(missing.value.request_id)
        ids.add((await client.with_raw_response.api_status()).request_id)
    assert len(ids) == 5 and all(REQUEST_ID.fullmatch(i or "") for i in ids)
