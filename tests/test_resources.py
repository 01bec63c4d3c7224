"""The resources over real loopback HTTP against the sandbox: the listing description, the new
namespaces (package templates, countries, eUICC profiles and QR codes, PCR profiles, API status)."""

from __future__ import annotations

import enum
import time
from collections import UserList
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve
from tests._servers import web_server

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=60, seed=3)) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[bt.BetatelClient]:
    async with bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        retry=bt.RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.001),
    ) as c:
        yield c


def _iccid(sandbox: Sandbox, index: int = 0) -> str:
    iccid: str = sandbox.data.sims_list()[index]["iccid"]
    return iccid


def _sandbox_template(inventory: int, name: str) -> dict[str, Any]:
    """The template arguments as the sandbox's data takes them (JSON values)."""
    return _template_args(inventory, name) | {"time_allowance": {"unit": "DAY", "duration": 30}}


def _template_args(inventory: int, name: str = "Europe 10 GB") -> dict[str, Any]:
    return {
        "name": name,
        "supported_countries": ["FRA", "DEU"],
        "activation_type": "AUTO",
        "data_usage_allowance": 10 * 1024**3,
        "time_allowance": bt.TimeAllowance(unit="DAY", duration=30),
        "activation_time_allowance": 86_400,
        "earliest_available_date": 1_700_000_000_000,
        "latest_available_date": 0,
        "inventory": inventory,
    }


# -- the listing description -----------------------------------------------------------


async def test_an_unknown_keyword_is_refused_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """Nothing silently dropped: a misspelt filter or option is an error, not ignored."""
    kwargs: dict[str, Any] = {"compnay": 1}
    with pytest.raises(bt.InvalidArgumentTypeError, match="compnay"):
        client.sims.iter(**kwargs)
    with pytest.raises(bt.InvalidArgumentTypeError, match="ordered"):
        await client.sims.all(ordered=False)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="inventory"):
        await client.countries.list(inventory=1)  # type: ignore[call-arg]
    with pytest.raises(bt.InvalidArgumentTypeError, match="inventory"):
        await client.countries.all(inventory=1)  # type: ignore[call-arg]
    assert sandbox.stats.total == 0


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.inventories.pages(company=-1), "company"),
        (lambda c: c.package_templates.iter(inventory="x"), "inventory"),
        (lambda c: c.countries.pages(page_size=0), "page_size"),
        (lambda c: c.packages.iter(status="active"), "status"),
        (lambda c: c.sims.pages(on_drift="ignore"), "on_drift"),
    ],
)
async def test_bad_filters_and_options_name_the_argument(
    client: bt.BetatelClient, sandbox: Sandbox, call: Any, argument: str
) -> None:
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError), match=argument):
        call(client)
    assert sandbox.stats.total == 0


async def test_inventories_filter_by_company(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    company = sandbox.data.inventories_list()[0]["company"]
    expected = [i["id"] for i in sandbox.data.inventories_list() if i["company"] == company]
    page = await client.inventories.list(company=company, count=1000)
    assert [i.id for i in page.items] == expected
    assert [i.id for i in await client.inventories.all(company=company, page_size=1)] == expected
    assert len(expected) < len(sandbox.data.inventories_list())


# -- countries ---------------------------------------------------------------------------


async def test_countries_list_and_scan(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    served = sandbox.data.countries_list()
    countries = await client.countries.all(page_size=50)
    assert [(c.name, c.iso2, c.iso3) for c in countries] == [
        (r["name"], r["iso2"], r["iso3"]) for r in served
    ]
    page = await client.countries.list(offset=2, count=3)
    assert [c.iso3 for c in page.items] == [r["iso3"] for r in served[2:5]]
    async with client.countries.iter(page_size=7, ordered=False) as scan:
        assert sorted([c.iso3 async for c in scan]) == sorted(r["iso3"] for r in served)


async def test_countries_scan_dedupes_by_iso3_on_restart(client: bt.BetatelClient) -> None:
    assert bt.Countries._listing.key(bt.Country(name="France", iso2="FR", iso3="FRA")) == "FRA"


# -- package templates -------------------------------------------------------------------


async def test_package_templates_list_filter_and_get(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    rows = sandbox.data.package_templates_list()
    inventory = sandbox.data.template_inventory(rows[0]["id"])
    expected = [r["id"] for r in rows if sandbox.data.template_inventory(r["id"]) == inventory]
    assert [t.id for t in await client.package_templates.all(inventory=inventory, page_size=1)] == expected
    assert len(expected) < len(rows)
    template = await client.package_templates.get(rows[0]["id"])
    assert isinstance(template, bt.PackageTemplate)
    assert (template.id, template.name, template.traffic_policy) == (
        rows[0]["id"],
        rows[0]["name"],
        rows[0]["traffic_policy"],
    )


async def test_package_template_get_404(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.NotFoundError):
        await client.package_templates.get(999_999_999)


async def test_package_template_create(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    inventory = sandbox.data.inventories_list()[0]["id"]
    info = await client.package_templates.create(**_template_args(inventory))
    assert isinstance(info, bt.PackageTemplateInfo)
    assert info.name == "Europe 10 GB"
    assert info.time_allowance == bt.TimeAllowance(unit=bt.TimeUnit.DAY, duration=30)
    created = await client.package_templates.get(info.id)
    assert created.supported_countries == ["FRA", "DEU"]
    assert sandbox.stats.by_route[("POST", "package_templates")] == 1


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"name": "  "}, "name"),
        ({"supported_countries": "FRA"}, "supported_countries"),
        ({"supported_countries": []}, "supported_countries"),
        ({"supported_countries": ["FR"]}, "supported_countries"),
        ({"supported_countries": ["fra"]}, "supported_countries"),
        ({"supported_countries": ["FRA", "FRA"]}, "supported_countries"),
        ({"activation_type": "auto"}, "activation_type"),
        ({"data_usage_allowance": -1}, "data_usage_allowance"),
        ({"time_allowance": bt.TimeAllowance(unit="FORTNIGHT", duration=1)}, "time_allowance.unit"),
        ({"time_allowance": bt.TimeAllowance(unit="DAY", duration=0)}, "time_allowance.duration"),
        ({"time_allowance": {"unit": "DAY", "duration": 1}}, "time_allowance"),
        ({"activation_time_allowance": True}, "activation_time_allowance"),
        ({"earliest_available_date": -5}, "earliest_available_date"),
        ({"latest_available_date": 5}, "latest_available_date"),
        ({"inventory": None}, "inventory"),
    ],
)
async def test_package_template_create_validates_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, change: dict[str, Any], argument: str
) -> None:
    args = _template_args(1) | change
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError)) as caught:
        await client.package_templates.create(**args)
    assert caught.value.argument == argument
    assert sandbox.stats.total == 0


@pytest.mark.parametrize("fault", ["commit_drop", "truncated", "malformed"])
async def test_package_template_create_reads_back_after_an_ambiguous_failure(
    client: bt.BetatelClient, sandbox: Sandbox, fault: str
) -> None:
    """The POST was carried out but its answer lost: the read-back finds it, no second POST."""
    inventory = sandbox.data.inventories_list()[1]["id"]
    sandbox.config.faults = FaultConfig(script=[fault])
    info = await client.package_templates.create(**_template_args(inventory, name=f"after {fault}"))
    created = [r for r in sandbox.data.package_templates_list() if r["name"] == f"after {fault}"]
    assert [info.id] == [r["id"] for r in created]
    assert sandbox.stats.by_route[("POST", "package_templates")] == 1


async def test_package_template_create_ignores_a_template_made_before_the_call(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """A same-named template created long before the call is not taken for this call's."""
    inventory = sandbox.data.inventories_list()[1]["id"]
    sandbox.data.now = lambda: time.time() - 61
    old = sandbox.data.create_package_template(**_sandbox_template(inventory, "twin"))
    sandbox.data.now = time.time
    sandbox.config.faults = FaultConfig(script=["502"])  # answered before the handler: nothing created
    with pytest.raises(bt.ServerError, match="no template named 'twin' created since") as caught:
        await client.package_templates.create(**_template_args(inventory, name="twin"))
    assert caught.value.status == 502
    assert [r["id"] for r in sandbox.data.package_templates_list() if r["name"] == "twin"] == [old["id"]]


async def test_package_template_create_dates_the_call_on_the_servers_clock(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """The server's clock is an hour ahead: its same-named template from 30 minutes ago predates the call."""
    inventory = sandbox.data.inventories_list()[1]["id"]
    sandbox.data.now = lambda: time.time() + 1800  # ahead of our clock, behind the server's
    old = sandbox.data.create_package_template(**_sandbox_template(inventory, "ahead"))
    sandbox.data.now = lambda: time.time() + 3600
    sandbox.config.faults = FaultConfig(script=["503"])  # answered with the server's Date, nothing created
    with pytest.raises(bt.ServerError, match="no template named 'ahead' created since"):
        await client.package_templates.create(**_template_args(inventory, name="ahead"))
    assert [r["id"] for r in sandbox.data.package_templates_list() if r["name"] == "ahead"] == [old["id"]]


async def test_package_template_create_refuses_to_choose_between_two_matches(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    inventory = sandbox.data.inventories_list()[1]["id"]
    sandbox.data.create_package_template(**_sandbox_template(inventory, "twin"))
    sandbox.config.faults = FaultConfig(script=["commit_drop"])
    with pytest.raises(bt.APIConnectionError, match="2 templates named 'twin'"):
        await client.package_templates.create(**_template_args(inventory, name="twin"))


async def test_package_template_create_raises_a_rejection_at_once(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    with pytest.raises(bt.BadRequestError, match="inventory"):
        await client.package_templates.create(**_template_args(999_999))
    assert sandbox.stats.total == 1  # no read-back after a plain 400


# -- eUICC profiles and QR codes ---------------------------------------------------------


async def test_euicc_profile_get(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = _iccid(sandbox)
    served = sandbox.data.euicc_profile(iccid)
    profile = await client.euicc_profiles.get(iccid)
    assert isinstance(profile, bt.EuiccProfile)
    assert (profile.iccid, profile.activation_code, profile.state) == (
        iccid,
        served["activation_code"],
        served["state"],
    )


async def test_qr_code_is_the_image_as_served(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = _iccid(sandbox, 2)
    image = await client.euicc_profiles.qr_code(iccid)
    async with (
        aiohttp.ClientSession(headers=sandbox.headers) as session,
        session.get(f"{sandbox.url}/api/v1/esim/euicc-profiles/{iccid}/qrcode") as response,
    ):
        served = await response.read()
    assert image == served
    assert image.startswith(PNG)


@pytest.mark.parametrize(("mode", "match"), [("empty", "empty"), ("html", "text/html")])
async def test_qr_code_that_is_not_an_image_is_malformed(
    client: bt.BetatelClient, sandbox: Sandbox, mode: str, match: str
) -> None:
    sandbox.config.qr_response = mode  # type: ignore[assignment]
    with pytest.raises(bt.MalformedResponseError, match=match):
        await client.euicc_profiles.qr_code(_iccid(sandbox))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (PNG + b"rest", True),
        (b"\xff\xd8\xff\xe0JFIF", True),
        (b"GIF89a...", True),
        (b"GIF87a...", True),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', True),
        (b"\xef\xbb\xbf  <svg/>", True),
        (b'<!-- QR --><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"><svg width="1">', True),
        (b"<!doctype html><html><body><svg></svg></body></html>", False),
        (b"<svgfont/>", False),
        (b"<!doctype html><html></html>", False),
        (b'{"message": "no"}', False),
        (b"PNG", False),
    ],
)
def test_is_image_by_magic_bytes(body: bytes, expected: bool) -> None:
    from betatel_async._resources.euicc_profiles import is_image

    assert is_image(body) is expected


@pytest.mark.parametrize("method", ["get", "qr_code"])
async def test_euicc_calls_refuse_a_bad_iccid_and_meet_404(
    client: bt.BetatelClient, sandbox: Sandbox, method: str
) -> None:
    call = getattr(client.euicc_profiles, method)
    with pytest.raises(bt.InvalidArgumentError, match="iccid"):
        await call("8914800000401234567x")
    assert sandbox.stats.total == 0
    with pytest.raises(bt.NotFoundError):
        await call("8900000000000000000")


# -- PCR profiles ------------------------------------------------------------------------


async def test_pcr_profile_get(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = _iccid(sandbox)
    served = sandbox.data.pcr_profile(iccid)
    profile = await client.pcr_profiles.get(iccid)
    assert isinstance(profile, bt.PcrProfile)
    assert profile.sim == iccid
    assert profile.data.active_throttling == served["data"]["active_throttling"]
    assert profile.wallet_mode == served["wallet_mode"]
    assert profile.route_policy == served.get("route_policy")


def _pcr_body(profile: dict[str, Any]) -> dict[str, Any]:
    return {key: profile.get(key) for key in ("data", "voice", "sms", "wallet_mode", "route_policy")}


async def test_pcr_update_changes_only_what_was_given(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    iccid = next(
        s["iccid"]
        for s in sandbox.data.sims_list()
        if sandbox.data.pcr_profile(s["iccid"]).get("route_policy")
    )
    before = _pcr_body(sandbox.data.pcr_profile(iccid))
    speed = "SPEED_500_KBPS" if before["data"]["active_throttling"] != "SPEED_500_KBPS" else "NO_LIMIT"
    profile = await client.pcr_profiles.update(iccid, active_throttling=speed)
    after = _pcr_body(sandbox.data.pcr_profile(iccid))
    assert after == before | {"data": {**before["data"], "active_throttling": speed}}
    assert profile.data.active_throttling == speed
    assert profile.route_policy == before["route_policy"] is not None
    assert sandbox.stats.by_route[("PUT", "pcr_profile")] == 1


async def test_pcr_update_none_clears_the_route_policy_and_not_given_keeps_it(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    iccid = next(
        s["iccid"]
        for s in sandbox.data.sims_list()
        if sandbox.data.pcr_profile(s["iccid"]).get("route_policy")
    )
    kept = await client.pcr_profiles.update(iccid, voice_state=bt.ServiceState.DISABLED)
    assert kept.route_policy is not None and kept.voice.state == "DISABLED"
    cleared = await client.pcr_profiles.update(iccid, route_policy=None)
    assert cleared.route_policy is None
    assert sandbox.data.pcr_profile(iccid).get("route_policy") is None
    assert cleared.voice.state == "DISABLED"
    again = await client.pcr_profiles.update(iccid, route_policy=4, sms_state="DISABLED")
    assert (again.route_policy, again.sms.state) == (4, "DISABLED")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"data_state": "ON"}, "data_state"),
        ({"data_state": None}, "data_state"),
        ({"active_throttling": "SPEED_1_KBPS"}, "active_throttling"),
        ({"voice_state": "enabled"}, "voice_state"),
        ({"sms_state": 1}, "sms_state"),
        ({"wallet_mode": "INVENTORY"}, "wallet_mode"),
        ({"route_policy": -1}, "route_policy"),
        ({"route_policy": "1"}, "route_policy"),
    ],
)
async def test_pcr_update_validates_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises((bt.InvalidArgumentError, bt.InvalidArgumentTypeError)) as caught:
        await client.pcr_profiles.update(_iccid(sandbox), **kwargs)
    assert caught.value.argument == argument
    assert sandbox.stats.total == 0


async def test_pcr_calls_meet_404(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.NotFoundError):
        await client.pcr_profiles.get("8900000000000000000")
    with pytest.raises(bt.NotFoundError):
        await client.pcr_profiles.update("8900000000000000000", data_state="ENABLED")


def test_not_given_is_one_falsy_sentinel() -> None:
    assert bt.NotGiven() is bt.NOT_GIVEN
    assert not bt.NOT_GIVEN
    assert repr(bt.NOT_GIVEN) == "NOT_GIVEN"


# -- wrong-shape answers fail loudly -----------------------------------------------------


@pytest.fixture
async def liar() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that answers every GET with a JSON object of the wrong shape, and records headers."""
    seen: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"iccid": 5, "unexpected": True})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.sims.get("89148000004012345678"),
        lambda c: c.packages.get("pkg_1"),
        lambda c: c.package_templates.get(1),
        lambda c: c.euicc_profiles.get("89148000004012345678"),
        lambda c: c.pcr_profiles.get("89148000004012345678"),
        lambda c: c.api_status(),
    ],
)
async def test_every_get_fails_loudly_on_a_wrong_shape(
    liar: tuple[str, list[dict[str, str]]], call: Any
) -> None:
    url, _ = liar
    async with bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client:
        with pytest.raises(bt.MalformedResponseError):
            await call(client)


# -- API status --------------------------------------------------------------------------


async def test_api_status_sends_no_credentials(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    seen: list[tuple[str, str]] = []
    sandbox.on_request = lambda method, path, query: seen.append((method, path))
    status = await client.api_status()
    assert isinstance(status, bt.ApiStatus)
    assert (status.status, status.version) == ("ok", "1.0.4")
    assert seen == [("GET", "/api/v1/status")]


async def test_api_status_headers_at_the_server(liar: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = liar
    async with bt.BetatelClient(api_key="secret-key", user_id="user-1", base_url=url) as client:
        with pytest.raises(bt.MalformedResponseError):
            await client.api_status()
        with pytest.raises(bt.MalformedResponseError):
            await client.sims.get("89148000004012345678")
    status_headers, sim_headers = ({k.lower(): v for k, v in h.items()} for h in seen)
    assert "x-api-key" not in status_headers and "x-user-id" not in status_headers
    assert sim_headers["x-api-key"] == "secret-key"  # the same client sends them elsewhere


# -- PATHS -------------------------------------------------------------------------------


def test_paths_cover_every_operation() -> None:
    assert len(bt.PATHS) == 14
    assert bt.PATHS["status"] == "/api/v1/status"
    assert all(p.startswith("/api/v1/esim/") for k, p in bt.PATHS.items() if k != "status")


# -- arguments as careless callers pass them ----------------------------------------------


class _MixinStatus(str, enum.Enum):  # noqa: UP042 - the mixin users still write, on purpose
    ACTIVE = "ACTIVE"


async def test_a_str_enum_mixin_member_is_sent_as_its_text(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """``str()`` of a ``(str, Enum)`` member is ``Cls.MEMBER``: the server must see ``ACTIVE``."""
    seen: list[str] = []
    sandbox.on_request = lambda method, path, query: seen.append(query.get("status", ""))
    page = await client.packages.list(status=_MixinStatus.ACTIVE)
    assert seen == ["ACTIVE"]
    assert {p.status for p in page.items} <= {"ACTIVE"}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.packages.list(offset=2**63),
        lambda c: c.package_templates.get(10**30),
        lambda c: c.packages.create(sim="89148000004012345678", package_template=2**64),
        lambda c: c.pcr_profiles.update("89148000004012345678", route_policy=2**70),
    ],
)
async def test_an_int_past_64_bits_is_refused_before_any_request(
    client: bt.BetatelClient, sandbox: Sandbox, call: Any
) -> None:
    with pytest.raises(bt.InvalidArgumentError, match="<= 9223372036854775807"):
        await call(client)
    assert sandbox.stats.total == 0


async def test_supported_countries_may_be_any_sequence(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    inventory = sandbox.data.inventories_list()[0]["id"]
    args = _template_args(inventory, name="from a UserList") | {"supported_countries": UserList(["FRA"])}
    info = await client.package_templates.create(**args)
    stored = next(t for t in sandbox.data.package_templates_list() if t["id"] == info.id)
    assert stored["supported_countries"] == ["FRA"]


async def test_an_envelope_error_names_the_type_not_the_servers_text() -> None:
    secret = "sk-live-SECRET"

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"total": "echo " + secret.upper() + "x" * 100_000, "offset": 0, "sims": []})

    async with web_server(handler) as url:
        async with bt.BetatelClient(api_key=secret, user_id="u", base_url=url) as client:
            with pytest.raises(bt.MalformedResponseError) as info:
                await client.sims.list()
    assert "got str" in str(info.value)
    assert len(str(info.value)) < 300
    assert secret.lower() not in str(info.value).lower()


@pytest.mark.parametrize(
    "other",
    [
        {"name": "another name"},
        {"data_usage_allowance": 1},
        {"supported_countries": ["ITA"]},
        {"time_allowance": {"unit": "YEAR", "duration": 9}},
        {"activation_type": "MANUAL"},
    ],
)
async def test_package_template_create_claims_no_template_made_by_someone_else_meanwhile(
    client: bt.BetatelClient, sandbox: Sandbox, other: dict[str, Any]
) -> None:
    """Created just now in the same inventory, but not with what this call sent: not this call's."""
    inventory = sandbox.data.inventories_list()[1]["id"]
    theirs = sandbox.data.create_package_template(**(_sandbox_template(inventory, "mine") | other))
    sandbox.config.faults = FaultConfig(script=["502"])  # answered before the handler: nothing created
    with pytest.raises(bt.ServerError, match="no template named 'mine' created since"):
        await client.package_templates.create(**_template_args(inventory, name="mine"))
    assert [t["id"] for t in sandbox.data.package_templates_list() if t["id"] == theirs["id"]] == [
        theirs["id"]
    ]


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        (b'{"message": "profile not ready"}', False),
        (b"<html><body>busy</body></html>", False),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),  # a format without a magic check here: the label decides
    ],
)
async def test_qr_code_labelled_as_an_image_must_not_be_json_or_markup(body: bytes, accepted: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    async with web_server(handler) as url:
        async with bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client:
            if accepted:
                assert await client.euicc_profiles.qr_code("89148000004012345678") == body
            else:
                with pytest.raises(bt.MalformedResponseError, match="image/png, not an image"):
                    await client.euicc_profiles.qr_code("89148000004012345678")
