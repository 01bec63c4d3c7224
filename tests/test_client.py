"""The client against the sandbox over real loopback HTTP: endpoints, errors, lifecycle, secrets."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio

SECRET_KEY = "sk-test-7f3a9c1e5b"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=250, seed=7)) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[bt.BetatelClient]:
    async with bt.BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url) as c:
        yield c


# -- endpoints ---------------------------------------------------------------------


async def test_list_sims_returns_a_typed_page(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    page = await client.sims.list(offset=10, count=25)
    assert isinstance(page, bt.Page)
    assert (page.total, page.offset, page.count, len(page.items)) == (250, 10, 25, 25)
    expected = [s["iccid"] for s in sandbox.data.sims_list()[10:35]]
    assert [s.iccid for s in page.items] == expected
    sim = page.items[0]
    assert isinstance(sim, bt.Sim)
    assert isinstance(sim.company, bt.Ref)
    assert sim.imsis and isinstance(sim.imsis[0], bt.Imsi)


async def test_list_sims_filters_by_company(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    company = sandbox.data.sims_list()[0]["company"]
    company_id = company["id"] if isinstance(company, dict) else company
    page = await client.sims.list(company=company_id, count=1000)
    assert page.items
    assert all(s.company is not None and s.company.id == company_id for s in page.items)
    assert page.total == len(page.items)


async def test_list_sims_without_count_uses_the_server_default_of_100(client: bt.BetatelClient) -> None:
    page = await client.sims.list()
    assert len(page.items) == 100


async def test_list_inventories_and_packages(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    invs = await client.inventories.list(count=5)
    assert invs.total == len(sandbox.data.inventories_list())
    assert all(isinstance(i, bt.Inventory) for i in invs.items)
    pkgs = await client.packages.list(count=5)
    assert pkgs.total == len(sandbox.data.packages_list())
    assert all(isinstance(p.package_template, int) for p in pkgs.items)


async def test_packages_list_filters_by_status(client: bt.BetatelClient) -> None:
    page = await client.packages.list(status="ACTIVE", count=1000)
    assert page.items
    assert {p.status for p in page.items} == {bt.PackageStatus.ACTIVE}


async def test_get_sim_by_iccid(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = sandbox.data.sims_list()[3]["iccid"]
    sim = await client.sims.get(iccid)
    assert sim.iccid == iccid
    assert sim.company is not None and sim.company.name is not None


async def test_package_lifecycle_create_get_activate_terminate(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    with_package = {p["sim"] for p in sandbox.data.packages_list()}
    iccid = next(s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in with_package)
    template = (await client.packages.list(count=1)).items[0].package_template_id
    assert template is not None
    created = await client.packages.create(sim=iccid, package_template=template, time_allowance=3600)
    assert created.sim == iccid
    assert isinstance(created.package_template, bt.PackageTemplateInfo)
    assert created.package_template_id == template
    assert created.reconciled is False
    fetched = await client.packages.get(created.id)
    assert fetched.id == created.id and fetched.status == bt.PackageStatus.NOT_ACTIVE
    await client.packages.activate(created.id)
    assert (await client.packages.get(created.id)).status == bt.PackageStatus.ACTIVE
    await client.packages.terminate(created.id)
    assert (await client.packages.get(created.id)).status == bt.PackageStatus.TERMINATED


async def test_activate_accepts_a_json_true_body(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    sandbox.config.action_response = "bool"
    pkg = next(p for p in sandbox.data.packages_list() if p["status"] == "NOT_ACTIVE")
    await client.packages.activate(pkg["id"])
    assert (await client.packages.get(pkg["id"])).status == bt.PackageStatus.ACTIVE


# -- errors ------------------------------------------------------------------------


async def test_unknown_package_is_not_found(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.NotFoundError) as info:
        await client.packages.get("pkg_does_not_exist")
    err = info.value
    assert err.status == 404
    assert err.message == "Package not found"
    assert err.method == "GET"
    assert err.path == "/api/v1/esim/packages/pkg_does_not_exist"


async def test_second_package_on_a_sim_is_a_conflict_never_retried(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    live = next(p for p in sandbox.data.packages_list() if p["status"] != "TERMINATED")
    sandbox.stats.reset()
    with pytest.raises(bt.ConflictError) as info:
        await client.packages.create(sim=live["sim"], package_template=live["package_template"])
    assert info.value.status == 409
    assert info.value.attempts == 1
    assert sandbox.stats.total == 1


async def test_wrong_key_is_an_authentication_error_without_the_key(sandbox: Sandbox) -> None:
    async with bt.BetatelClient(api_key=SECRET_KEY, user_id="someone", base_url=sandbox.url) as client:
        with pytest.raises(bt.AuthenticationError) as info:
            await client.sims.list()
    err = info.value
    assert err.status == 401
    for text in (str(err), repr(err), repr(pickle.loads(pickle.dumps(err)).__dict__)):
        assert SECRET_KEY not in text


async def test_bad_request_from_the_server_is_mapped(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    # 2000 passes our own check only because max_count is the sandbox's limit, not ours.
    sandbox.config.max_count = 50
    with pytest.raises(bt.BadRequestError) as info:
        await client.sims.list(count=51)
    assert "count" in info.value.message


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, bt.BadRequestError),
        (401, bt.AuthenticationError),
        (403, bt.PermissionDeniedError),
        (404, bt.NotFoundError),
        (409, bt.ConflictError),
        (429, bt.RateLimitError),
        (500, bt.ServerError),
        (502, bt.ServerError),
        (503, bt.ServerError),
        (504, bt.ServerError),
        (418, bt.APIStatusError),
    ],
)
async def test_each_status_maps_to_its_class_with_the_server_message(
    status: int, cls: type[bt.APIStatusError]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": f"nope {status}", "statusCode": status}, status=status)

    async with (
        _raw_server(handler) as url,
        bt.BetatelClient(api_key="k", user_id="u", base_url=url, retry=bt.RetryPolicy.none()) as client,
    ):
        with pytest.raises(cls) as info:
            await client.packages.get("pkg_1")
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.message == f"nope {status}"


async def test_redirect_is_not_followed(sandbox: Sandbox) -> None:
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect(location=sandbox.url + "/api/v1/esim/packages")

    async with _raw_server(redirect) as url:
        async with bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client:
            with pytest.raises(bt.APIStatusError) as info:
                await client.packages.list()
    assert info.value.status == 307
    assert "redirect" in info.value.message
    assert len(hits) == 1
    assert sandbox.stats.total == 0


async def test_non_json_success_body_is_malformed(sandbox: Sandbox) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    async with _raw_server(handler) as url:
        async with bt.BetatelClient(
            api_key="k", user_id="u", base_url=url, retry=bt.RetryPolicy.none()
        ) as client:
            with pytest.raises(bt.MalformedResponseError):
                await client.sims.list()


async def test_malformed_item_names_the_json_path(sandbox: Sandbox) -> None:
    async def handler(request: web.Request) -> web.Response:
        sims = [
            {"iccid": "89148000004012345678", "sim_status": "IN_SERVICE"},
            {
                "iccid": "89148000004012345679",
                "sim_status": "IN_SERVICE",
                "imsis": [{"sponsor_id": 200, "imsi": "x"}],
            },
        ]
        return web.json_response({"total": 2, "offset": 0, "count": 2, "sims": sims})

    async with _raw_server(handler) as url:
        async with bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client:
            with pytest.raises(bt.MalformedResponseError) as info:
                await client.sims.list()
    assert info.value.json_path == "$.sims[1].imsis[0].imsi"


async def test_connection_refused_is_a_connection_error() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response()

    async with _raw_server(ok) as url:
        pass  # the port is closed again now
    async with bt.BetatelClient(
        api_key="k", user_id="u", base_url=url, retry=bt.RetryPolicy.none()
    ) as client:
        with pytest.raises(bt.APIConnectionError) as info:
            await client.sims.list()
    assert info.value.kind == "connect"


# -- validation: nothing is sent ---------------------------------------------------


@pytest.mark.parametrize(
    ("call", "argument", "exc"),
    [
        (lambda c: c.sims.list(offset=-1), "offset", bt.InvalidArgumentError),
        (lambda c: c.sims.list(count=0), "count", bt.InvalidArgumentError),
        (lambda c: c.sims.list(count=1001), "count", bt.InvalidArgumentError),
        (lambda c: c.sims.list(count="10"), "count", bt.InvalidArgumentTypeError),
        (lambda c: c.sims.list(offset=True), "offset", bt.InvalidArgumentTypeError),
        (lambda c: c.sims.list(company=-5), "company", bt.InvalidArgumentError),
        (lambda c: c.inventories.list(count=0), "count", bt.InvalidArgumentError),
        (lambda c: c.packages.list(status="BOGUS"), "status", bt.InvalidArgumentError),
        (lambda c: c.packages.list(sim="8914abc"), "sim", bt.InvalidArgumentError),
        (lambda c: c.packages.get(""), "id", bt.InvalidArgumentError),
        (lambda c: c.packages.get("a/b"), "id", bt.InvalidArgumentError),
        (lambda c: c.packages.get(".."), "id", bt.InvalidArgumentError),
        (lambda c: c.packages.get("a\nb"), "id", bt.InvalidArgumentError),
        (lambda c: c.packages.get(123), "id", bt.InvalidArgumentTypeError),
        (lambda c: c.packages.activate("x/../y"), "id", bt.InvalidArgumentError),
        (lambda c: c.packages.create(sim="123", package_template=1), "sim", bt.InvalidArgumentError),
        (
            lambda c: c.packages.create(sim="8914800000401234567x", package_template=1),
            "sim",
            bt.InvalidArgumentError,
        ),
        (
            lambda c: c.packages.create(sim="89148000004012345678", package_template="1"),
            "package_template",
            bt.InvalidArgumentTypeError,
        ),
        (
            lambda c: c.packages.create(sim="89148000004012345678", package_template=1, time_allowance=-1),
            "time_allowance",
            bt.InvalidArgumentError,
        ),
        (lambda c: c.sims.get("12"), "iccid", bt.InvalidArgumentError),
        (lambda c: c.sims.all(page_size=0), "page_size", bt.InvalidArgumentError),
        (lambda c: c.sims.all(concurrency=99), "concurrency", bt.InvalidArgumentError),
    ],
)
async def test_bad_arguments_fail_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, call, argument: str, exc: type[Exception]
) -> None:
    sandbox.stats.reset()
    with pytest.raises(exc) as info:
        await call(client)
    assert info.value.argument == argument  # type: ignore[attr-defined]
    assert str(info.value).startswith(f"{argument}:")
    assert isinstance(info.value, bt.BetatelError)
    assert sandbox.stats.total == 0


def test_bad_iter_arguments_fail_when_the_scan_is_made() -> None:
    client = bt.BetatelClient(api_key="k", user_id="u")
    with pytest.raises(bt.InvalidArgumentError, match="^ordered:"):
        client.sims.iter(ordered="yes")  # type: ignore[arg-type]
    with pytest.raises(bt.InvalidArgumentError, match="^on_drift:"):
        client.sims.iter(on_drift="ignore")  # type: ignore[arg-type]


async def test_documented_iccid_that_fails_luhn_is_accepted(client: bt.BetatelClient) -> None:
    page = await client.packages.list(sim="89148000004012345678")
    assert page.total == 0


async def test_id_with_reserved_characters_is_percent_encoded(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.NotFoundError) as info:
        await client.packages.get("pkg 1?x=y#z")
    assert info.value.path == "/api/v1/esim/packages/pkg%201%3Fx%3Dy%23z"


# -- construction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "   "}, "api_key"),
        ({"api_key": "abc\r\nX-Evil: 1"}, "api_key"),
        ({"user_id": "u\n"}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"base_url": "http://esim.betatel.com"}, "base_url"),
        ({"base_url": "http://[::ffff:10.0.0.1]:9"}, "base_url"),  # IPv4-mapped, not loopback
        ({"base_url": "ftp://esim.betatel.com"}, "base_url"),
        ({"base_url": "esim.betatel.com"}, "base_url"),
        ({"base_url": "https://user:pw@esim.betatel.com"}, "base_url"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"remember_totals": "yes"}, "remember_totals"),
        ({"allow_insecure_http": 1}, "allow_insecure_http"),
    ],
)
def test_bad_configuration_is_refused_naming_the_argument(kwargs: dict[str, object], argument: str) -> None:
    options: dict[str, object] = {"api_key": "key-abc\r\nsecret", "user_id": "u"} | kwargs
    if "api_key" not in kwargs:
        options["api_key"] = "valid-key"
    with pytest.raises(bt.BetatelError) as info:
        bt.BetatelClient(**options)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{argument}:")
    assert "secret" not in str(info.value)
    assert "X-Evil" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://[::ffff:127.0.0.1]:9"]
)
def test_plain_http_is_allowed_for_loopback(url: str) -> None:
    """An IPv4-mapped loopback address is loopback on every Python (3.13's ipaddress agrees, 3.11's not).

    Compared as URLs: yarl spells an IPv4-mapped address as ipaddress does,
    ``::ffff:7f00:1`` before 3.13 and ``::ffff:127.0.0.1`` from 3.13 on.
    """
    assert URL(bt.BetatelClient(api_key="k", user_id="u", base_url=url).base_url) == URL(url)


def test_plain_http_elsewhere_needs_the_explicit_opt_in() -> None:
    client = bt.BetatelClient(
        api_key="k", user_id="u", base_url="http://esim.internal", allow_insecure_http=True
    )
    assert client.base_url == "http://esim.internal"


def test_repr_shows_url_and_user_but_never_the_key() -> None:
    client = bt.BetatelClient(api_key=SECRET_KEY, user_id="user-9")
    text = repr(client)
    assert "https://esim.betatel.com" in text and "user-9" in text
    assert SECRET_KEY not in text
    view = client.with_options(timeout=5)
    for shown in (client, view):
        assert SECRET_KEY not in repr(vars(shown))  # its attributes as a debugger shows them
        for resource in (shown.sims, shown.packages, shown.inventories):
            assert SECRET_KEY not in repr(resource)


def test_from_env_reads_the_three_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETATEL_API_KEY", "k1")
    monkeypatch.setenv("BETATEL_USER_ID", "u1")
    monkeypatch.setenv("BETATEL_BASE_URL", "http://127.0.0.1:9999")
    client = bt.BetatelClient.from_env(max_concurrency=3)
    assert client.base_url == "http://127.0.0.1:9999"
    assert client.max_concurrency == 3
    assert "u1" in repr(client)


def test_from_env_without_variables_names_the_missing_one() -> None:
    with pytest.raises(bt.InvalidArgumentError, match="^BETATEL_API_KEY:"):
        bt.BetatelClient.from_env()


def test_from_env_defaults_to_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETATEL_API_KEY", "k1")
    monkeypatch.setenv("BETATEL_USER_ID", "u1")
    assert bt.BetatelClient.from_env().base_url == bt.DEFAULT_BASE_URL


# -- lifecycle ---------------------------------------------------------------------


async def test_closed_client_says_so(sandbox: Sandbox) -> None:
    client = bt.BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url)
    assert client.state is bt.ClientState.UNOPENED
    async with client:
        assert client.state is bt.ClientState.OPEN
        await client.sims.list(count=1)
    assert client.state is bt.ClientState.CLOSED
    with pytest.raises(bt.ClientClosedError):
        await client.sims.list(count=1)
    with pytest.raises(bt.ClientClosedError):
        async with client:
            pass
    await client.aclose()  # idempotent


async def test_client_used_without_async_with_opens_lazily_and_closes(sandbox: Sandbox) -> None:
    client = bt.BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url)
    page = await client.sims.list(count=2)
    assert len(page.items) == 2
    await client.aclose()
    assert client.state is bt.ClientState.CLOSED


async def test_callers_session_is_used_and_left_open(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        async with bt.BetatelClient(
            api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, session=session
        ) as client:
            await client.sims.list(count=1)
        assert not session.closed
        async with session.get(sandbox.url + "/api/v1/status") as resp:
            assert resp.status == 200


async def test_callers_session_with_too_small_a_pool_is_refused() -> None:
    connector = aiohttp.TCPConnector(limit=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(bt.InvalidArgumentError, match="^session:"):
            bt.BetatelClient(api_key="k", user_id="u", session=session, max_concurrency=8)


async def test_requests_carry_auth_and_a_user_agent(sandbox: Sandbox) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.json_response({"total": 0, "offset": 0, "count": 0, "sims": []})

    async with _raw_server(handler) as url:
        async with bt.BetatelClient(api_key="the-key", user_id="the-user", base_url=url) as client:
            await client.sims.list()
    assert seen["x-api-key"] == "the-key"
    assert seen["x-user-id"] == "the-user"
    assert seen["User-Agent"].startswith(f"betatel-async/{bt.__version__}")


async def test_debug_logs_never_contain_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """The server echoes the key it got, in several letter cases, in JSON and non-JSON bodies, at bytes 190-210."""
    caplog.set_level(logging.DEBUG, logger="betatel_async")
    echoes = [str.upper, str.lower, str.swapcase, lambda key: key]
    hits = 0

    async def echo(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        key = echoes[hits % len(echoes)](request.headers["x-api-key"])
        status = 503 if hits % 3 else 401  # 503s are retried: WARNING lines
        if hits % 2:
            text = "." * (190 + hits % 20) + key + "." * 100
            return web.Response(status=status, text=text, content_type="text/plain")
        # '{"message":"' is 12 bytes: the key starts at byte 190-209 of the body.
        message = "." * (178 + hits % 20) + key
        return web.json_response({"message": message, "statusCode": status}, status=status)

    policy = bt.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.001)
    errors: list[BaseException] = []
    async with (
        _raw_server(echo) as url,
        bt.BetatelClient(api_key=SECRET_KEY, user_id="u", base_url=url, retry=policy) as client,
    ):
        for _ in range(8):
            with pytest.raises(bt.APIStatusError) as info:
                await client.sims.list()
            errors.append(info.value)
    assert hits >= 16
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    texts += [text for err in errors for text in (str(err), repr(err), repr(vars(err)))]
    assert any("***" in text for text in texts)  # the echo reached the errors, redacted
    secret = SECRET_KEY.lower()
    for text in texts:
        assert secret not in text.lower()
        assert secret[:8] not in text.lower() and secret[-8:] not in text.lower()  # nor a part of it


# -- helpers -----------------------------------------------------------------------


class _raw_server:  # noqa: N801 - reads as a function at the call site
    """A one-route aiohttp server on loopback answering every path with ``handler``."""

    def __init__(self, handler) -> None:  # type: ignore[no-untyped-def]
        self._handler = handler
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_with_options_overrides_retry_for_its_calls_and_shares_the_session(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.faults = FaultConfig(script=["503"])
    view = client.with_options(retry=bt.RetryPolicy.none(), timeout=5)
    with pytest.raises(bt.ServerError) as info:
        await view.sims.list(count=1)
    assert info.value.attempts == 1
    sandbox.config.faults = FaultConfig(script=["503"])
    assert len((await client.sims.list(count=1)).items) == 1  # the client itself retries
    assert view.state is bt.ClientState.OPEN
    await view.aclose()  # a view closes nothing
    assert client.state is bt.ClientState.OPEN
    await client.aclose()
    assert view.state is bt.ClientState.CLOSED
    with pytest.raises(bt.ClientClosedError):
        await view.sims.list(count=1)


def test_importing_the_sdk_loads_neither_cli_nor_sandbox_nor_their_dependencies() -> None:
    """``import betatel_async`` stays light: the CLI, the sandbox, click, rich and aiohttp.web load on use."""
    code = (
        "import sys, betatel_async\n"
        "heavy = ('betatel_async.cli', 'betatel_async.sandbox', 'click', 'rich', 'aiohttp.web', "
        "'importlib.metadata', 'hypothesis')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 - our own code
    assert done.stdout.strip() == "[]"
