"""The sandbox server, over real loopback HTTP with a plain aiohttp client.

It is public API (users test against it), so these tests hold it to the API
documents: credentials, validation, paging, filters, shapes, units, package
states, mutation mid-scan, and every fault kind observable from a client.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async.sandbox import (
    API_PREFIX,
    DEFAULT_API_KEY,
    DEFAULT_USER_ID,
    STATS_PATH,
    FaultConfig,
    Resource,
    Sandbox,
    SandboxConfig,
    SandboxData,
    SandboxError,
    SimShape,
    create_app,
    main,
    serve,
)
from betatel_async.sandbox._cli import command, config_from_options

from ._signals import default_sigint_in_children

pytestmark = pytest.mark.anyio

SIMS = 300


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=SIMS, seed=5)) as sb:
        yield sb


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(sandbox.url, headers=sandbox.headers) as session:
        yield session


async def call(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    params: Mapping[str, str | int] | None = None,
    json: object = None,
    headers: Mapping[str, str] | None = None,
    prefix: str = API_PREFIX,
) -> tuple[int, Any, Mapping[str, str]]:
    """One request: (status, decoded JSON body or None, headers)."""
    async with session.request(method, prefix + path, params=params, json=json, headers=headers) as response:
        body = await response.read()
        return response.status, orjson.loads(body) if body else None, response.headers


async def get(session: aiohttp.ClientSession, path: str, **params: str | int) -> Any:
    status, body, _ = await call(session, "GET", path, params=params)
    assert status == 200, body
    return body


def free_sim(sandbox: Sandbox) -> str:
    """A SIM with no package, so a create succeeds."""
    sims = sandbox.data.sims_list()
    iccid: str = next(s["iccid"] for s in sims if not sandbox.data.sim_packages(s["iccid"]))
    return iccid


# -- credentials and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": DEFAULT_API_KEY},
        {"x-user-id": DEFAULT_USER_ID},
        {"x-api-key": "wrong", "x-user-id": DEFAULT_USER_ID},
        {"x-api-key": DEFAULT_API_KEY, "x-user-id": "someone-else"},
    ],
)
async def test_requests_without_both_credentials_get_401(sandbox: Sandbox, headers: dict[str, str]) -> None:
    iccid = sandbox.data.sims_list()[0]["iccid"]
    requests = [
        ("GET", "/sim-registries"),
        ("GET", "/packages/pkg_100000"),
        ("GET", "/no-such-route"),
        ("GET", "/countries"),
        ("GET", "/package-templates"),
        ("POST", "/package-templates"),
        ("GET", f"/euicc-profiles/{iccid}"),
        ("GET", f"/euicc-profiles/{iccid}/qrcode"),
        ("GET", f"/sim-pcr-profiles/{iccid}"),
        ("PUT", f"/sim-pcr-profiles/{iccid}"),
    ]
    async with aiohttp.ClientSession(sandbox.url, headers=headers) as session:
        for method, path in requests:
            async with session.request(method, API_PREFIX + path) as response:
                assert response.status == 401
                assert response.content_type == "application/json"
                assert await response.json() == {
                    "message": "Invalid or missing API key",
                    "statusCode": 401,
                }


async def test_status_needs_no_credentials_and_says_version_and_uptime(sandbox: Sandbox) -> None:
    sandbox.started_at -= 3600  # as if started an hour ago
    async with aiohttp.ClientSession(sandbox.url) as session:
        status, body, _ = await call(session, "GET", "/api/v1/status", prefix="")
        # Only the status path goes without credentials: its neighbours still need them.
        for path in ("/api/v1/esim/countries", "/api/v1/status/", "/api/v1/statusx"):
            assert (await call(session, "GET", path, prefix=""))[0] in {401, 404}, path
        assert (await call(session, "GET", "/api/v1/esim/countries", prefix=""))[0] == 401
    assert status == 200
    assert set(body) == {"status", "version", "uptime"}
    assert (body["status"], body["version"]) == ("ok", "1.0.4")
    assert type(body["uptime"]) is int
    assert 3600 <= body["uptime"] < 3600 + 60


async def test_stats_route_answers_the_counters_without_counting_itself_or_faulting(sandbox: Sandbox) -> None:
    """What another process reads of a sandbox it started: every request counted, by route, status and fault."""
    sandbox.config.faults = FaultConfig(script=["503", "slow"], slow_seconds=0)
    async with aiohttp.ClientSession(sandbox.url, headers=sandbox.headers) as session:
        assert (await call(session, "GET", "/sim-registries"))[0] == 503
        for _ in range(2):
            assert (await call(session, "GET", "/sim-registries"))[0] == 200
        assert (await call(session, "GET", "/api/v1/status", prefix=""))[0] == 200
        sandbox.config.faults.rate = 1.0  # every API request would fault now: the stats route is not one
        async with aiohttp.ClientSession(sandbox.url) as anonymous:  # no credentials needed
            statuses = [await call(anonymous, "GET", STATS_PATH, prefix="") for _ in range(2)]
    assert [status for status, _, _ in statuses] == [200, 200]
    assert statuses[0][1] == statuses[1][1]  # the first read did not count itself
    assert statuses[0][1] == {
        "total": 4,
        "by_route": {"GET sims": 3, "GET status": 1},
        "by_status": {"200": 3, "503": 1},
        "faults": {"503": 1, "slow": 1},
        "in_flight": 0,
        "max_in_flight": 1,
    }
    assert sandbox.stats.total == 4


async def test_router_errors_are_json_too(http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", "/no-such-route")
    assert (status, body) == (404, {"message": "Not Found", "statusCode": 404})
    status, body, headers = await call(http, "DELETE", "/packages")
    assert (status, body["statusCode"]) == (405, 405)
    assert "POST" in headers["Allow"]


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/inventories", {"offset": "-1"}, "offset"),
        ("/inventories", {"offset": "1.5"}, "offset"),
        ("/inventories", {"offset": "+3"}, "offset"),
        ("/sim-registries", {"count": "0"}, "count"),
        ("/sim-registries", {"count": "1001"}, "count"),
        ("/sim-registries", {"count": "ten"}, "count"),
        ("/sim-registries", {"company": "acme"}, "company"),
        ("/sim-registries", {"inventory": ""}, "inventory"),
        ("/sim-registries", {"group": "1e3"}, "group"),
        ("/sim-registries", {"offset": "9" * 40}, "offset"),
        ("/packages", {"status": "active"}, "status"),
        ("/packages", {"package_template": "x"}, "package_template"),
        ("/packages", {"inventory": "1,2"}, "inventory"),
        ("/package-templates", {"count": "-5"}, "count"),
        ("/package-templates", {"inventory": "1.5"}, "inventory"),
        ("/package-templates", {"inventory": "x"}, "inventory"),
        ("/inventories", {"company": "acme"}, "company"),
        ("/inventories", {"company": ""}, "company"),
        ("/countries", {"count": "0"}, "count"),
        ("/countries", {"offset": "-1"}, "offset"),
    ],
)
async def test_bad_query_parameters_get_400_naming_the_parameter(
    http: aiohttp.ClientSession, path: str, params: dict[str, str], name: str
) -> None:
    status, body, headers = await call(http, "GET", path, params=params)
    assert status == 400
    assert body["statusCode"] == 400
    assert f"'{name}'" in body["message"]
    assert headers["Content-Type"] == "application/json"


async def test_unknown_query_parameters_are_ignored(http: aiohttp.ClientSession) -> None:
    body = await get(http, "/sim-registries", count=5, colour="blue")
    assert body["count"] == 5


# -- listings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "default_count"),
    [
        ("/inventories", "inventories", 20),
        ("/sim-registries", "sims", 100),
        ("/packages", "packages", 20),
        ("/package-templates", "package_templates", 20),
        ("/countries", "countries", 1000),
    ],
)
async def test_listings_default_to_offset_0_and_the_documented_count(
    http: aiohttp.ClientSession, path: str, key: str, default_count: int
) -> None:
    body = await get(http, path)
    assert set(body) == {"total", "offset", "count", key}
    assert body["offset"] == 0
    assert body["count"] == len(body[key]) == min(default_count, body["total"])


async def test_pages_tile_the_listing_in_iccid_order(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    seen: list[str] = []
    for offset in range(0, SIMS, 37):
        body = await get(http, "/sim-registries", offset=offset, count=37)
        assert (body["total"], body["offset"], body["count"]) == (SIMS, offset, len(body["sims"]))
        seen += [sim["iccid"] for sim in body["sims"]]
    assert seen == [sim["iccid"] for sim in sandbox.data.sims_list()]
    assert seen == sorted(seen)
    assert len(set(seen)) == SIMS
    assert body["count"] == SIMS % 37  # the last page is short
    past = await get(http, "/sim-registries", offset=SIMS + 5, count=10)
    assert (past["total"], past["count"], past["sims"]) == (SIMS, 0, [])


async def test_sim_filters_select_what_the_data_holds(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sims = sandbox.data.sims_list()
    first = sims[0]
    for name in ("company", "inventory", "group"):
        wanted = [s["iccid"] for s in sims if s[name]["id"] == first[name]["id"]]
        body = await get(http, "/sim-registries", count=1000, **{name: first[name]["id"]})
        assert body["total"] == len(wanted)
        assert [s["iccid"] for s in body["sims"]] == wanted
    both = await get(http, "/sim-registries", company=first["company"]["id"], group=first["group"]["id"])
    assert all(s["group"]["id"] == first["group"]["id"] for s in both["sims"])
    assert (await get(http, "/sim-registries", company=1))["total"] == 0


async def test_package_filters_select_what_the_data_holds(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    packages = sandbox.data.packages_list()
    inventory_of = {s["iccid"]: s["inventory"]["id"] for s in sandbox.data.sims_list()}
    one = packages[0]
    cases: list[tuple[dict[str, str | int], list[str]]] = [
        ({"status": "ACTIVE"}, [p["id"] for p in packages if p["status"] == "ACTIVE"]),
        ({"sim": one["sim"]}, [p["id"] for p in packages if p["sim"] == one["sim"]]),
        (
            {"package_template": one["package_template"]},
            [p["id"] for p in packages if p["package_template"] == one["package_template"]],
        ),
        (
            {"inventory": inventory_of[one["sim"]]},
            [p["id"] for p in packages if inventory_of[p["sim"]] == inventory_of[one["sim"]]],
        ),
        ({"sim": "89000000000000000000"}, []),
    ]
    for params, wanted in cases:
        assert wanted or "sim" in params  # the data covers the filter
        body = await get(http, "/packages", count=1000, **params)
        assert body["total"] == len(wanted), params
        assert [p["id"] for p in body["packages"]] == wanted


async def test_page_cap_returns_fewer_items_and_says_so(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.config.page_cap = 7
    body = await get(http, "/sim-registries", offset=10, count=50)
    assert (body["total"], body["offset"], body["count"], len(body["sims"])) == (SIMS, 10, 7, 7)
    assert [s["iccid"] for s in body["sims"]] == [s["iccid"] for s in sandbox.data.sims_list()[10:17]]
    sandbox.config.page_cap = None
    assert (await get(http, "/sim-registries", count=50))["count"] == 50


async def test_ignore_offset_answers_the_first_page_to_every_request(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.config.faults.ignore_offset = True
    body = await get(http, "/sim-registries", offset=10, count=5)
    assert (body["total"], body["offset"], body["count"]) == (SIMS, 0, 5)
    assert [s["iccid"] for s in body["sims"]] == [s["iccid"] for s in sandbox.data.sims_list()[:5]]
    status, _, _ = await call(http, "GET", "/sim-registries", params={"offset": -1})
    assert status == 400  # a bad offset is still refused
    sandbox.config.faults.ignore_offset = False
    assert (await get(http, "/sim-registries", offset=10, count=5))["offset"] == 10


async def test_max_count_bounds_count(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.max_count = 50
    status, body, _ = await call(http, "GET", "/sim-registries", params={"count": 51})
    assert status == 400
    assert "from 1 to 50" in body["message"]


async def test_latency_delays_every_answer(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.latency = 0.05
    started = time.perf_counter()
    await get(http, "/inventories")
    assert time.perf_counter() - started >= 0.05


async def test_concurrent_requests_are_served_concurrently(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.config.latency = 0.05
    async with anyio.create_task_group() as tg:
        for offset in range(6):
            tg.start_soon(functools.partial(get, http, "/sim-registries", offset=offset))
    assert sandbox.stats.max_in_flight == 6  # all six waited out their latency together


# -- shapes and units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("objects", [dict, dict, dict, dict]),
        ("ids", [int, int, int, int]),
        ("mixed", [int, dict, int, dict]),  # by listing position: 1 odd, 2 even, ...
    ],
)
async def test_sim_shape_sets_how_list_items_refer_to_entities(
    sandbox: Sandbox, http: aiohttp.ClientSession, shape: SimShape, expected: list[type]
) -> None:
    sandbox.config = SandboxConfig(sim_shape=shape)
    sims = (await get(http, "/sim-registries", offset=1, count=4))["sims"]
    for sim, kind in zip(sims, expected, strict=True):
        for key in ("group", "inventory", "company"):
            assert type(sim[key]) is kind
    one = await get(http, f"/sim-registries/{sims[0]['iccid']}")
    assert one == sandbox.data.get_sim(sims[0]["iccid"])  # the single SIM: always objects
    assert set(one["group"]) == {"id", "name"}


async def test_get_sim_answers_404_for_unknown_and_400_for_non_digits(
    http: aiohttp.ClientSession,
) -> None:
    status, body, _ = await call(http, "GET", "/sim-registries/89148000000000000000")
    assert (status, body) == (404, {"message": "SIM not found", "statusCode": 404})
    status, body, _ = await call(http, "GET", "/sim-registries/8914abc")
    assert status == 400


async def test_fields_and_timestamp_units_follow_the_documents(
    http: aiohttp.ClientSession,
) -> None:
    inventory = (await get(http, "/inventories", count=1))["inventories"][0]
    assert set(inventory) == {
        "id", "name", "created_date", "modified_date", "company", "status", "note",
        "deleted_date", "parent_inventory", "deactivated_date", "wallet", "whitelist",
    }  # fmt: skip
    assert inventory["created_date"] > 10**12  # milliseconds
    assert inventory["status"] in {"Active", "ACTIVE", "NOT_ACTIVE"}

    for sim in (await get(http, "/sim-registries", count=200))["sims"]:
        assert re.fullmatch(r"8914800000\d{10}", sim["iccid"])
        assert 1_600_000_000 <= sim["provisioned_date"] < 1_760_000_000  # seconds
        assert (sim["terminated_date"] == 0) == (sim["sim_status"] != "TERMINATED")
        assert 1 <= len(sim["imsis"]) <= 2
        assert all(len(str(i["imsi"])) == 15 for i in sim["imsis"])
        assert sim["mapped_imsi"] == sim["imsis"][0]["imsi"]

    for package in (await get(http, "/packages", count=200))["packages"]:
        assert package["id"].startswith("pkg_")
        assert isinstance(package["package_template"], int)
        assert package["created_date"] > 10**12
        assert (package["activated_date"] == 0) == (package["expiry_date"] == 0)
        if package["status"] == "NOT_ACTIVE":
            assert package["activated_date"] == package["terminated_date"] == 0


async def test_templates_and_countries_are_listed_and_fetched(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    templates = await get(http, "/package-templates")
    assert templates["total"] == len(templates["package_templates"]) == 10
    first = templates["package_templates"][0]
    assert await get(http, f"/package-templates/{first['id']}") == first
    assert (await call(http, "GET", "/package-templates/1"))[0] == 404
    assert (await call(http, "GET", "/package-templates/abc"))[0] == 400
    countries = await get(http, "/countries")
    assert countries["countries"] == sandbox.data.countries_list()


# -- packages: create, activate, terminate ----------------------------------------------------


async def test_package_lifecycle_create_activate_terminate(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.data.now = lambda: 1_770_000_000.5
    sim = free_sim(sandbox)
    template = sandbox.data.package_templates_list()[0]

    status, created, _ = await call(
        http, "POST", "/packages", json={"sim": sim, "package_template": template["id"]}
    )
    assert status == 201
    assert created["sim"] == sim
    assert created["status"] == "NOT_ACTIVE"
    assert created["package_template"]["id"] == template["id"]
    assert created["apn"] == template["apn"]
    assert created["time_allowance"] == 30 * 86_400
    assert created["created_date"] == created["window_activation_start"] == 1_770_000_000_500
    assert created["activated_date"] == created["expiry_date"] == created["terminated_date"] == 0

    pid = created["id"]
    detail = await get(http, f"/packages/{pid}")
    assert detail["package_template"] == template  # the whole template, not the create's summary
    assert set(created["package_template"]) == {
        "id", "name", "voice_usage_allowance", "data_usage_allowance", "sms_usage_allowance",
        "time_allowance", "activation_time_allowance",
    }  # fmt: skip
    assert created["package_template"].items() <= template.items()
    assert {**created, "package_template": template} == {**detail, "apn": template["apn"]}
    assert "apn" not in detail
    listed = await get(http, "/packages", sim=sim)
    assert listed["packages"] == [{**detail, "package_template": template["id"]}]

    assert (await call(http, "POST", f"/packages/{pid}/activate"))[:2] == (204, None)
    active = await get(http, f"/packages/{pid}")
    assert active["status"] == "ACTIVE"
    assert active["activated_date"] == 1_770_000_000_500
    assert active["expiry_date"] == 1_770_000_000_500 + 30 * 86_400_000
    status, body, _ = await call(http, "POST", f"/packages/{pid}/activate")
    assert (status, body["message"]) == (400, "Package cannot be activated")

    assert (await call(http, "POST", f"/packages/{pid}/terminate"))[:2] == (204, None)
    assert (await get(http, f"/packages/{pid}"))["status"] == "TERMINATED"
    status, body, _ = await call(http, "POST", f"/packages/{pid}/terminate")
    assert (status, body["message"]) == (400, "Package cannot be terminated")

    # A terminated package no longer blocks a new one for the SIM.
    again = await call(http, "POST", "/packages", json={"sim": sim, "package_template": template["id"]})
    assert again[0] == 201


async def test_create_for_a_sim_with_an_open_package_is_409(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    open_package = next(p for p in sandbox.data.packages_list() if p["status"] != "TERMINATED")
    status, body, _ = await call(
        http,
        "POST",
        "/packages",
        json={"sim": open_package["sim"], "package_template": open_package["package_template"]},
    )
    assert (status, body) == (409, {"message": "Package already exists for this SIM", "statusCode": 409})


async def test_action_response_bool_answers_200_true(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.action_response = "bool"
    pending = next(p for p in sandbox.data.packages_list() if p["status"] == "NOT_ACTIVE")
    status, body, headers = await call(http, "POST", f"/packages/{pending['id']}/activate")
    assert (status, body, headers["Content-Type"]) == (200, True, "application/json")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"package_template": 21145354}', "'sim'"),
        (b'{"sim": 8914, "package_template": 21145354}', "'sim'"),
        (b'{"sim": "89148000000000000000", "package_template": 21145354}', "Unknown SIM"),
        (b'{"sim": "SIM"}', "'package_template'"),
        (b'{"sim": "SIM", "package_template": "21145354"}', "'package_template'"),
        (b'{"sim": "SIM", "package_template": true}', "'package_template'"),
        (b'{"sim": "SIM", "package_template": 1}', "Unknown package template"),
        (b'{"sim": "SIM", "package_template": 21145354, "time_allowance": 0}', "'time_allowance'"),
        (b'{"sim": "SIM", "package_template": 21145354, "time_allowance": 1.5}', "'time_allowance'"),
    ],
)
async def test_bad_create_bodies_get_400_naming_the_field(
    sandbox: Sandbox, http: aiohttp.ClientSession, body: bytes, needle: str
) -> None:
    body = body.replace(b'"SIM"', f'"{free_sim(sandbox)}"'.encode())
    before = len(sandbox.data.packages_list())
    async with http.post(API_PREFIX + "/packages", data=body) as response:
        answer = await response.json()
    assert (response.status, answer["statusCode"]) == (400, 400)
    assert needle in answer["message"]
    assert len(sandbox.data.packages_list()) == before


async def test_create_takes_an_explicit_time_allowance(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    status, created, _ = await call(
        http,
        "POST",
        "/packages",
        json={"sim": free_sim(sandbox), "package_template": 21145354, "time_allowance": 3600},
    )
    assert (status, created["time_allowance"]) == (201, 3600)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/packages/pkg_1"),
        ("POST", "/packages/pkg_1/activate"),
        ("POST", "/packages/pkg_1/terminate"),
    ],
)
async def test_unknown_packages_are_404(http: aiohttp.ClientSession, method: str, path: str) -> None:
    status, body, _ = await call(http, method, path)
    assert (status, body) == (404, {"message": "Package not found", "statusCode": 404})


def test_data_operations_raise_the_api_errors() -> None:
    data = SandboxData(sims=20, seed=1)
    with pytest.raises(SandboxError, match="Package not found") as caught:
        data.activate_package("pkg_0")
    assert caught.value.status == 404


# -- determinism and mutation -----------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data() -> None:
    one, two, other = (SandboxData(sims=500, seed=seed) for seed in (7, 7, 8))
    listings = ("sims_list", "packages_list", "inventories_list", "package_templates_list", "countries_list")
    for listing in listings:
        assert getattr(one, listing)() == getattr(two, listing)()
    assert one.companies == two.companies
    assert one.sims_list() != other.sims_list()


def test_generated_data_has_the_documented_proportions() -> None:
    data = SandboxData(sims=20_000, seed=0)
    assert len(data.companies) == 20_000 // 5000 + 3
    assert 4000 < len(data.packages_list()) < 6000  # about one per four SIMs
    statuses = {s["sim_status"] for s in data.sims_list()}
    assert statuses == {"WAITING_FOR_ASSIGNMENT", "PRE_SERVICE", "IN_SERVICE", "TERMINATED"}
    assert {i["sponsor_id"] for s in data.sims_list() for i in s["imsis"]} == {200, 201, 202}


def test_inserted_sims_keep_the_listing_sorted_where_asked() -> None:
    data = SandboxData(sims=50, seed=2)
    before = [s["iccid"] for s in data.sims_list()]
    at_start = data.insert_sims(3, at="start")
    at_end = data.insert_sims(2, at="end")
    in_middle = data.insert_sims(1, at=10)
    after = [s["iccid"] for s in data.sims_list()]
    assert after == sorted(after)
    assert after[:3] == at_start
    assert after[-2:] == at_end
    assert after[10:11] == in_middle
    assert len(after) == len(set(after)) == len(before) + 6
    assert all(re.fullmatch(r"8914800000\d{10}", iccid) for iccid in after)
    assert len(data.insert_sims(40, at=20)) == 40  # generated neighbours leave room
    assert len(data.insert_sims(5, at=20)) == 5  # and again at the same place
    with pytest.raises(ValueError, match="room"):
        data.insert_sims(1000, at=30)
    with pytest.raises(ValueError, match="at must be"):
        data.insert_sims(1, at=10**6)


def test_deleted_sims_leave_the_listing() -> None:
    data = SandboxData(sims=50, seed=2)
    before = [s["iccid"] for s in data.sims_list()]
    assert data.delete_sims(3) == before[:3]
    assert data.delete_sims([before[10], before[5]]) == [before[5], before[10]]
    assert [s["iccid"] for s in data.sims_list()] == [
        iccid for i, iccid in enumerate(before) if i not in {0, 1, 2, 5, 10}
    ]
    with pytest.raises(KeyError):
        data.delete_sims([before[20], "89140000000000000000"])
    assert data.get_sim(before[20]) is not None  # nothing removed


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "update", "create", "activate", "terminate"]),
        st.integers(0, 10**6),
    ),
    max_size=12,
)


def _expected_sims(data: SandboxData, filters: dict[str, object], shape: SimShape) -> list[Any]:
    expected = []
    for position, sim in enumerate(data.listing("sims", filters)):
        if shape == "ids" or (shape == "mixed" and position % 2):
            sim = {**sim, **{key: sim[key]["id"] for key in ("group", "inventory", "company")}}
        expected.append(sim)
    return expected


@settings(max_examples=60, deadline=None)
@given(operations=_OPERATIONS)
def test_served_pages_match_the_data_after_any_changes(operations: list[tuple[str, int]]) -> None:
    """The cached encodings and listings never serve a stale or misplaced row."""
    data = SandboxData(sims=40, seed=9)
    data.now = lambda: 1_770_000_000.0
    company = data.companies[0]["id"]
    reads: list[tuple[Resource, dict[str, object], SimShape]] = [
        ("sims", {}, "objects"),
        ("sims", {}, "ids"),
        ("sims", {}, "mixed"),
        ("sims", {"company": company}, "objects"),
        ("packages", {}, "objects"),
        ("packages", {"status": "NOT_ACTIVE"}, "objects"),
    ]

    def check() -> None:
        for resource, filters, shape in reads:
            total, items = data.page(resource, offset=0, count=10**6, filters=filters, shape=shape)
            served = [orjson.loads(item) for item in items]
            if resource == "sims":
                assert served == _expected_sims(data, filters, shape)
            else:
                assert served == data.listing("packages", filters)
            assert total == len(served)
            offset_page = data.page(resource, offset=3, count=5, filters=filters, shape=shape)
            assert [orjson.loads(item) for item in offset_page[1]] == served[3:8]

    check()
    for operation, n in operations:
        sims, packages = data.sims_list(), data.packages_list()
        if operation == "insert":
            with contextlib.suppress(ValueError):  # no free ICCID between two inserted ones
                data.insert_sims(1 + n % 3, at=("start", "end", n % (len(sims) + 1))[n % 3])
        elif operation == "delete" and sims:
            data.delete_sims(n % 3 if n % 2 else [sims[n % len(sims)]["iccid"]])
        elif operation == "update" and sims:
            data.update_sim(sims[n % len(sims)]["iccid"], sim_status="TERMINATED")
        elif operation == "create" and sims:
            with contextlib.suppress(SandboxError):  # 409 when the SIM has a package
                data.create_package(sims[n % len(sims)]["iccid"], 21145354)
        elif operation in {"activate", "terminate"} and packages:
            with contextlib.suppress(SandboxError):  # 400 when the state forbids it
                getattr(data, f"{operation}_package")(packages[n % len(packages)]["id"])
        check()


async def test_changes_mid_scan_shift_the_offsets_of_later_pages(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    original = [s["iccid"] for s in sandbox.data.sims_list()]
    inserted: list[str] = []

    def on_request(method: str, path: str, query: dict[str, str]) -> None:
        if path.endswith("/sim-registries") and query.get("offset") == "100":
            inserted.extend(sandbox.data.insert_sims(10, at="start"))

    sandbox.on_request = on_request
    first = await get(http, "/sim-registries", offset=50, count=50)
    second = await get(http, "/sim-registries", offset=100, count=50)
    assert first["total"] == SIMS
    assert second["total"] == SIMS + 10
    assert [s["iccid"] for s in first["sims"]] == original[50:100]
    assert [s["iccid"] for s in second["sims"]] == original[90:140]  # shifted by 10
    assert inserted == sorted(inserted)
    assert inserted[-1] < original[0]

    sandbox.data.delete_sims(15)
    third = await get(http, "/sim-registries", offset=0, count=5)
    assert third["total"] == SIMS - 5
    assert [s["iccid"] for s in third["sims"]] == original[5:10]


async def test_update_sim_is_served_at_once(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    iccid = sandbox.data.sims_list()[0]["iccid"]
    await get(http, "/sim-registries", count=1)  # cached encoding
    sandbox.data.update_sim(iccid, sim_status="TERMINATED", terminated_date=1_750_000_000)
    sim = (await get(http, "/sim-registries", count=1))["sims"][0]
    assert (sim["sim_status"], sim["terminated_date"]) == ("TERMINATED", 1_750_000_000)
    with pytest.raises(KeyError):
        sandbox.data.update_sim(iccid, colour="red")


async def test_on_request_sees_method_path_and_query(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    calls: list[tuple[str, str, dict[str, str]]] = []
    sandbox.on_request = lambda *args: calls.append(args)
    await get(http, "/packages", status="ACTIVE", count=3)
    assert calls == [("GET", API_PREFIX + "/packages", {"status": "ACTIVE", "count": "3"})]


async def test_stats_count_requests_by_route_and_status(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.stats.reset()
    await get(http, "/sim-registries")
    await get(http, "/sim-registries")
    await call(http, "GET", "/packages/pkg_1")
    await call(http, "POST", "/packages", json={})
    stats = sandbox.stats
    assert stats.total == 4
    assert stats.by_route == {("GET", "sims"): 2, ("GET", "package"): 1, ("POST", "packages"): 1}
    assert stats.by_status == {200: 2, 404: 1, 400: 1}
    assert stats.in_flight == 0
    stats.reset()
    assert (stats.total, stats.by_route, stats.by_status) == (0, {}, {})


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504", "408"])
async def test_status_faults_answer_that_status_then_recover(
    sandbox: Sandbox, http: aiohttp.ClientSession, kind: str
) -> None:
    sandbox.config.faults.script = [kind]
    status, body, headers = await call(http, "GET", "/inventories")
    assert (status, body["statusCode"]) == (int(kind), int(kind))
    assert "sandbox fault" in body["message"]
    assert ("Retry-After" in headers) == (kind == "429")
    assert (await call(http, "GET", "/inventories"))[0] == 200
    assert sandbox.stats.faults == {kind: 1}


@pytest.mark.parametrize(("retry_after", "header"), [(0.0, "0"), (2, "2"), (1.5, "1.5"), (None, None)])
async def test_retry_after_of_a_429_is_configurable(
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    retry_after: float | None,
    header: str | None,
) -> None:
    sandbox.config.faults = FaultConfig(script=["429"], retry_after=retry_after)
    _, _, headers = await call(http, "GET", "/inventories")
    assert headers.get("Retry-After") == header


async def test_reset_drops_the_connection(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    # aiohttp's client silently sends an idempotent request a second time after
    # a dropped connection, so a GET needs two resets in a row to be seen failing.
    sandbox.config.faults.script = ["reset", "reset"]
    with pytest.raises(aiohttp.ClientOSError, match="reset by peer"):
        await call(http, "GET", "/inventories")
    assert sandbox.stats.faults == {"reset": 2}
    assert sandbox.stats.by_status == {}
    assert (await call(http, "GET", "/inventories"))[0] == 200


async def test_truncated_sends_half_the_promised_body(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.faults.script = ["truncated"]
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(http, "GET", "/sim-registries")
    assert sandbox.stats.by_status == {200: 1}


async def test_malformed_sends_a_complete_body_that_is_not_json(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.config.faults.script = ["malformed"]
    async with http.get(API_PREFIX + "/inventories") as response:
        body = await response.read()
    assert response.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_slow_stalls_past_the_client_timeout(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.faults = FaultConfig(script=["slow"], slow_seconds=5)
    with pytest.raises(TimeoutError):
        async with http.get(API_PREFIX + "/inventories", timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    # The server gives up on the request once the client hangs up.
    with anyio.fail_after(2):
        while sandbox.stats.in_flight:  # noqa: ASYNC110 - a counter, no event to wait on
            await anyio.sleep(0.01)


async def test_commit_drop_changes_state_but_never_answers(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sim = free_sim(sandbox)
    sandbox.config.faults.script = ["commit_drop"]
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(http, "POST", "/packages", json={"sim": sim, "package_template": 21145354})
    assert [p["status"] for p in sandbox.data.sim_packages(sim)] == ["NOT_ACTIVE"]
    status, _, _ = await call(http, "POST", "/packages", json={"sim": sim, "package_template": 21145354})
    assert status == 409


async def test_script_ok_lets_a_request_through(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.faults.script = ["ok", "503"]
    assert (await call(http, "GET", "/inventories"))[0] == 200
    assert (await call(http, "GET", "/inventories"))[0] == 503
    assert sandbox.config.faults.script == []


async def test_faults_spare_the_status_route(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.config.faults = FaultConfig(rate=1.0, kinds={"503": 1.0})
    assert (await call(http, "GET", "/api/v1/status", prefix=""))[0] == 200
    assert (await call(http, "GET", "/inventories"))[0] == 503


async def test_random_faults_are_reproducible_from_the_seed() -> None:
    async def statuses() -> list[int]:
        faults = FaultConfig(rate=0.5, kinds={"500": 1.0, "503": 1.0})
        async with serve(SandboxConfig(sims=10, seed=11, faults=faults)) as sb:
            async with aiohttp.ClientSession(sb.url, headers=sb.headers) as session:
                return [(await call(session, "GET", "/inventories"))[0] for _ in range(30)]

    first = await statuses()
    assert first == await statuses()
    assert {200, 500, 503} == set(first)


# -- configuration, serving, command line -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sims": -1}, "sims"),
        ({"latency": -0.1}, "latency"),
        ({"latency": float("nan")}, "latency"),
        ({"latency_jitter": -1}, "latency_jitter"),
        ({"page_cap": 0}, "page_cap"),
        ({"max_count": 0}, "max_count"),
        ({"sim_shape": "flat"}, "sim_shape"),
        ({"action_response": "json"}, "action_response"),
        ({"qr_response": "jpeg"}, "qr_response"),
    ],
)
def test_bad_config_values_raise_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SandboxConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rate": 1.5}, "rate"),
        ({"rate": -0.1}, "rate"),
        ({"kinds": {"teapot": 1.0}}, "kinds"),
        ({"kinds": {"503": -1.0}}, "kinds"),
        ({"kinds": {"302": 1.0}}, "kinds"),
        ({"script": ["reset", "explode"]}, "script"),
        ({"retry_after": -1}, "retry_after"),
        ({"slow_seconds": -1}, "slow_seconds"),
    ],
)
def test_bad_fault_values_raise_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FaultConfig(**kwargs)


def test_config_is_validated_when_changed_too() -> None:
    config = SandboxConfig()
    with pytest.raises(ValueError, match="latency"):
        config.latency = -1
    with pytest.raises(ValueError, match="rate"):
        config.faults.rate = 2


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "192.168.1.10", "::", "example.com", "", "::ffff:10.0.0.1", "::ffff:0.0.0.0", "[::1]"],  # noqa: S104
)
def test_non_loopback_hosts_are_refused(host: str) -> None:
    """Including IPv4-mapped addresses of other hosts, and URL brackets (an address to bind has none)."""
    with pytest.raises(ValueError, match="host"):
        serve(host=host)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("host", "url_host"),
    [
        ("localhost", "127.0.0.1"),
        ("127.0.0.2", "127.0.0.2"),
        # IPv4-mapped loopback is loopback on every Python (only 3.13's ipaddress
        # says so by itself), bound as the IPv4 address it maps.
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:127.0.0.3", "127.0.0.3"),
        pytest.param(
            "::1",
            "[::1]",
            marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
)
async def test_loopback_hosts_are_served(host: str, url_host: str) -> None:
    async with serve(SandboxConfig(sims=5), host=host) as sb:
        assert sb.url.startswith(f"http://{url_host}:")
        async with aiohttp.ClientSession(sb.url) as session:
            assert (await call(session, "GET", "/api/v1/status", prefix=""))[0] == 200
    with pytest.raises(RuntimeError, match="not being served"):
        _ = sb.url


def test_create_app_exposes_its_sandbox() -> None:
    data = SandboxData(sims=12, seed=3)
    sandbox = Sandbox.from_app(create_app(SandboxConfig(latency=0.5), data))
    assert sandbox.data is data
    assert sandbox.config.latency == 0.5
    assert (sandbox.api_key, sandbox.user_id) == (DEFAULT_API_KEY, DEFAULT_USER_ID)


def _config_of(args: list[str]) -> SandboxConfig:
    """The config the command would serve with ``args``: what click hands its callback, built."""
    context = command.make_context("sandbox", args)
    options = {k: v for k, v in context.params.items() if k not in ("host", "port")}
    return config_from_options(**options)


def test_command_line_arguments_build_the_config() -> None:
    config = _config_of(
        [
            "--sims", "10", "--seed", "4", "--latency-ms", "25", "--page-cap", "50",
            "--fault-rate", "0.1", "--fault-kinds", "429=2,reset", "--sim-shape", "mixed",
            "--qr-response", "html", "--ignore-offset",
        ]
    )  # fmt: skip
    assert (config.sims, config.seed, config.latency, config.page_cap) == (10, 4, 0.025, 50)
    assert config.sim_shape == "mixed"
    assert config.qr_response == "html"
    assert (config.faults.rate, config.faults.kinds) == (0.1, {"429": 2.0, "reset": 1.0})
    assert config.faults.ignore_offset
    default = _config_of([])
    assert not default.faults.ignore_offset
    assert (default.sims, default.seed, default.latency, default.page_cap) == (1000, 0, 0.0, None)
    assert (default.api_key, default.user_id) == (DEFAULT_API_KEY, DEFAULT_USER_ID)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--host", "0.0.0.0"], "host"),  # noqa: S104
        (["--latency-ms", "-5"], "latency"),
        (["--fault-kinds", "teapot"], "kinds"),
        (["--qr-response", "gif"], "qr-response"),
        (["--fault-kinds", "429=x"], "bad weight in '429=x'"),
        (["--sims", "many"], "--sims"),
    ],
)
def test_command_line_refuses_bad_values(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_command_line_help_names_the_program_and_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: python -m betatel_async.sandbox [OPTIONS]")
    assert [o for o in command.params if o.name and f"--{o.name.replace('_', '-')}" not in out] == []


def test_command_line_says_it_cannot_serve_on_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--sims", "5"]) == 1
    assert f"Error: cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


async def test_command_line_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "betatel_async.sandbox", "--port", "0", "--sims", "20"]
    with default_sigint_in_children():
        process = await anyio.open_process(command)
    async with process:
        try:
            assert process.stdout is not None
            output = b""
            with anyio.fail_after(20):
                while b"Ctrl-C" not in output:
                    output += await process.stdout.receive()
            match = re.search(rb"serving at (http://127\.0\.0\.1:\d+)", output)
            assert match is not None, output
            headers = {"x-api-key": DEFAULT_API_KEY, "x-user-id": DEFAULT_USER_ID}
            async with aiohttp.ClientSession(match[1].decode(), headers=headers) as session:
                body = await get(session, "/sim-registries")
            assert body["total"] == 20
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                assert await process.wait() == 0
        finally:
            # Leaving the block waits for the process without a bound: never hang on a failure.
            if process.returncode is None:
                process.kill()


@pytest.mark.parametrize("turns", range(6))
async def test_connections_arriving_as_the_sandbox_stops_are_closed_with_it(turns: int) -> None:
    """No socket is left for the garbage collector to find, however late a connection arrives.

    asyncio builds an accepted connection's transport one event-loop turn after
    accepting it, and closing the server in that turn leaked the socket
    (CPython gh-109564): the sandbox stops accepting before it closes. Here a
    connection opens ``turns`` turns before the block ends and another at every
    turn while the sandbox stops, so accepts land in every position around the
    shutdown; a leaked socket warns at ``gc.collect()`` (warnings are errors).
    """
    clients: list[socket.socket] = []

    def connect(address: tuple[str, int]) -> None:
        with contextlib.suppress(ConnectionRefusedError):  # once the listener is closed
            clients.append(socket.create_connection(address))

    async def connect_at_every_turn(address: tuple[str, int]) -> None:
        for _ in range(turns + 8):
            connect(address)
            await anyio.lowlevel.checkpoint()

    try:
        for _ in range(10):
            async with anyio.create_task_group() as tg:
                async with serve(SandboxConfig(sims=1)) as sb:
                    host, port = sb.url.removeprefix("http://").rsplit(":", 1)
                    tg.start_soon(connect_at_every_turn, (host, int(port)))
                    for _ in range(turns):
                        await anyio.lowlevel.checkpoint()
    finally:
        for client in clients:
            client.close()
    gc.collect()
