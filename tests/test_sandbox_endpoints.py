"""The sandbox's endpoints beyond the seed documents, held to API 1.0.4's models file.

Package templates (filters, create), countries, package detail, eUICC
profiles and their QR image, PCR profiles (GET and PUT), and the status
route, over real loopback HTTP with a plain aiohttp client. Shapes are
checked field by field against the vendor's models file
(the copy in ``tests/data/betatel-api-1.0.4-models.json``), so the sandbox
cannot drift from the documents unnoticed.
"""

from __future__ import annotations

import io
import re
import struct
import sys
import zlib
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async.sandbox import (
    API_PREFIX,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    SandboxData,
    SandboxError,
    serve,
)
from betatel_async.sandbox._countries import COUNTRIES
from betatel_async.sandbox._qr import FALLBACK_PNG
from tests.test_sandbox import call, get

pytestmark = pytest.mark.anyio

SIMS = 300
SEED = 5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS_FILE = Path(__file__).parent / "data" / "betatel-api-1.0.4-models.json"
# The models file lists only the first and last time unit ("as generated");
# the facts file lists them all.
TIME_UNITS = ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "CALENDAR_MONTH", "YEAR")
# Enums whose documented values the seed documents already exceed (the seed
# inventory says "Active"; the package list filter takes SUSPENDED): open sets.
OPEN_ENUMS = {"Inventory.Status", "Package.Status"}


@cache
def models() -> dict[str, Any]:
    """The vendor's models file (the copy the models' own test checks against)."""
    loaded: dict[str, Any] = orjson.loads(MODELS_FILE.read_bytes())["models"]
    return loaded


def check_model(value: object, type_name: str, where: str = "$") -> None:
    """Assert ``value`` has the models file's shape for ``type_name``, recursively.

    Every required field present and not null; no field the model lacks;
    each field of its declared type; enum values in the declared set.
    """
    if type_name in {"String", "Int", "Long", "Boolean"}:
        expected = {"String": str, "Int": int, "Long": int, "Boolean": bool}[type_name]
        assert type(value) is expected, f"{where}: {value!r} is not {type_name}"
        return
    if (inner := re.fullmatch(r"List<(\w+)>", type_name)) is not None:
        assert isinstance(value, list), f"{where}: not a list"
        for index, item in enumerate(value):
            check_model(item, inner[1], f"{where}[{index}]")
        return
    if "." in type_name:  # an enum: Model.Enum
        model, enum = type_name.split(".")
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        if type_name == "TimeAllowance.Unit":
            assert value in TIME_UNITS, f"{where}: {value!r}"
        elif type_name not in OPEN_ENUMS:
            assert value in models()[model]["enums"][enum], f"{where}: {value!r} not in {type_name}"
        return
    assert isinstance(value, dict), f"{where}: {value!r} is not a {type_name} object"
    fields = {field["json"]: field for field in models()[type_name]["fields"]}
    assert value.keys() <= fields.keys(), f"{where}: fields {value.keys() - fields.keys()} not in {type_name}"
    for name, field in fields.items():
        if name in value:
            check_model(value[name], field["type"], f"{where}.{name}")
        else:
            assert not field["required"], f"{where}: required {type_name}.{name} missing"


def field_names(model: str) -> set[str]:
    return {field["json"] for field in models()[model]["fields"]}


def optional_fields(model: str) -> set[str]:
    return {field["json"] for field in models()[model]["fields"] if not field["required"]}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=SIMS, seed=SEED)) as sb:
        yield sb


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(sandbox.url, headers=sandbox.headers) as session:
        yield session


async def get_bytes(session: aiohttp.ClientSession, path: str) -> tuple[int, str, bytes]:
    async with session.get(API_PREFIX + path) as response:
        return response.status, response.content_type, await response.read()


def iccids(sandbox: Sandbox) -> list[str]:
    return [sim["iccid"] for sim in sandbox.data.sims_list()]


# -- the models-file checker itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "model", "needle"),
    [
        ({"name": "France", "iso2": "FR"}, "Country", "iso3 missing"),
        ({"name": "France", "iso2": "FR", "iso3": "FRA", "code": "FR"}, "Country", "not in Country"),
        ({"name": "France", "iso2": "FR", "iso3": 250}, "Country", "is not String"),
        ({"state": "ENABLED", "active_throttling": "FAST"}, "DataProfile", "not in DataProfile"),
        ({"unit": "FORTNIGHT", "duration": 1}, "TimeAllowance", "FORTNIGHT"),
        ({"status": "ok", "version": "1", "uptime": True}, "StatusResponse", "is not Int"),
    ],
)
def test_the_shape_checker_refuses_what_the_models_file_does_not_allow(
    value: dict[str, Any], model: str, needle: str
) -> None:
    """A checker that passed everything would make every shape test below vacuous."""
    with pytest.raises(AssertionError, match=needle):
        check_model(value, model)


# -- listings: inventories, package templates, countries ----------------------------------------


@pytest.mark.parametrize(
    ("path", "envelope"),
    [
        ("/inventories", "GetInventoriesResponse"),
        ("/package-templates", "GetPackageTemplatesResponse"),
        ("/countries", "GetCountriesResponse"),
    ],
)
async def test_listings_have_the_models_file_shape(
    http: aiohttp.ClientSession, path: str, envelope: str
) -> None:
    body = await get(http, path, count=1000)
    check_model(body, envelope)
    assert body["total"] == body["count"] > 0


async def test_templates_carry_every_field_in_the_documented_values(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    templates = (await get(http, "/package-templates"))["package_templates"]
    served_iso3 = {iso3 for _, iso3, _ in COUNTRIES}
    for template in templates:
        assert set(template) == field_names("PackageTemplate")  # optional ones too
        check_model(template, "PackageTemplate")
        assert set(template["supported_countries"]) <= served_iso3
        assert template["created_date"] > 10**12  # milliseconds, as the other listings
        assert await get(http, f"/package-templates/{template['id']}") == template
    assert {t["status"] for t in templates} == {"Active", "Not Active", "De-activated"}
    assert {type(t["traffic_policy"]) for t in templates} == {int}


async def test_the_inventory_filter_selects_each_inventorys_templates(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    data = sandbox.data
    owner = {t["id"]: data.template_inventory(t["id"]) for t in data.package_templates_list()}
    seen = []
    for inventory in data.inventories_list():
        body = await get(http, "/package-templates", inventory=inventory["id"])
        wanted = [tid for tid, inv in owner.items() if inv == inventory["id"]]
        assert [t["id"] for t in body["package_templates"]] == wanted
        assert body["total"] == len(wanted)
        seen += wanted
    assert sorted(seen) == sorted(owner)  # every template belongs to exactly one inventory
    assert len(set(owner.values())) > 1  # and the filter has something to tell apart
    assert (await get(http, "/package-templates", inventory=1))["total"] == 0


async def test_the_company_filter_selects_each_companys_inventories(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    inventories = sandbox.data.inventories_list()
    for company in sandbox.data.companies:
        body = await get(http, "/inventories", company=company["id"])
        wanted = [inv["id"] for inv in inventories if inv["company"] == company["id"]]
        assert wanted
        assert [inv["id"] for inv in body["inventories"]] == wanted
        assert body["total"] == len(wanted)
    assert (await get(http, "/inventories", company=1))["total"] == 0


async def test_countries_are_real_codes_paged_by_count_and_offset(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    everything = await get(http, "/countries")
    countries = everything["countries"]
    assert 40 <= everything["total"] == len(countries) <= 60
    for country in countries:
        assert set(country) == {"name", "iso2", "iso3"}
        assert re.fullmatch(r"[A-Z]{2}", country["iso2"])
        assert re.fullmatch(r"[A-Z]{3}", country["iso3"])
    assert len({c["iso2"] for c in countries}) == len({c["iso3"] for c in countries}) == len(countries)
    assert {"name": "France", "iso2": "FR", "iso3": "FRA"} in countries
    assert {"name": "United States", "iso2": "US", "iso3": "USA"} in countries
    paged = []
    for offset in range(0, len(countries), 7):
        page = await get(http, "/countries", offset=offset, count=7)
        assert (page["total"], page["offset"]) == (len(countries), offset)
        paged += page["countries"]
    assert paged == countries


# -- package detail and create ------------------------------------------------------------------


async def test_package_detail_holds_the_whole_template_and_lists_keep_the_id(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    for package in (await get(http, "/packages", count=30))["packages"]:
        assert type(package["package_template"]) is int
        detail = await get(http, f"/packages/{package['id']}")
        check_model(detail["package_template"], "PackageTemplate")
        assert detail["package_template"] == sandbox.data.get_package_template(package["package_template"])
        assert {**detail, "package_template": package["package_template"]} == package


async def test_the_package_create_answer_keeps_the_template_summary(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sim = next(s for s in iccids(sandbox) if not sandbox.data.sim_packages(s))
    status, created, _ = await call(
        http, "POST", "/packages", json={"sim": sim, "package_template": 21145354}
    )
    assert status == 201
    check_model(created, "CreatePackageResponse")
    assert set(created["package_template"]) == field_names("CreatePackageResponsePackageTemplate")


# -- package template create --------------------------------------------------------------------


def template_body(sandbox: Sandbox, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "Nordics 8 GB / 30 days",
        "supported_countries": ["DNK", "FIN", "NOR", "SWE"],
        "activation_type": "MANUAL",
        "data_usage_allowance": 8 * 1024**3,
        "time_allowance": {"unit": "DAY", "duration": 30},
        "activation_time_allowance": 90 * 86_400,
        "earliest_available_date": 1_760_000_000_000,
        "latest_available_date": 1_790_000_000_000,
        "inventory": sandbox.data.inventories_list()[-1]["id"],
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


async def test_a_created_template_is_answered_then_listed_and_fetched(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.data.now = lambda: 1_770_000_000.25
    body = template_body(sandbox)
    status, created, _ = await call(http, "POST", "/package-templates", json=body)
    assert status == 201
    assert set(created) == field_names("CreatePackageTemplateResponse")
    check_model(created, "CreatePackageTemplateResponse")
    assert created == {
        "id": created["id"],
        "name": body["name"],
        "voice_usage_allowance": 0,
        "data_usage_allowance": body["data_usage_allowance"],
        "sms_usage_allowance": 0,
        "time_allowance": body["time_allowance"],
        "activation_time_allowance": body["activation_time_allowance"],
    }
    assert created["id"] not in {t["id"] for t in sandbox.data.package_templates_list()[:-1]}

    fetched = await get(http, f"/package-templates/{created['id']}")
    check_model(fetched, "PackageTemplate")
    assert set(fetched) == field_names("PackageTemplate")
    assert (
        fetched.items()
        >= {
            "supported_countries": body["supported_countries"],
            "activation_type": "MANUAL",
            "earliest_available_date": body["earliest_available_date"],
            "latest_available_date": body["latest_available_date"],
            "created_date": 1_770_000_000_250,  # the server's clock, in milliseconds
            "status": "Active",
        }.items()
    )
    # Found the way the SDK reads back after an ambiguous create: by inventory, then name.
    own = (await get(http, "/package-templates", inventory=body["inventory"]))["package_templates"]
    assert [t for t in own if t["name"] == body["name"]] == [fetched]
    other_inventory = sandbox.data.inventories_list()[0]["id"]
    others = (await get(http, "/package-templates", inventory=other_inventory))["package_templates"]
    assert body["name"] not in {t["name"] for t in others}
    assert (await get(http, "/package-templates", count=1000))["package_templates"][-1] == fetched


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"name": ...}, "'name'"),
        ({"name": ""}, "'name'"),
        ({"name": 7}, "'name'"),
        ({"supported_countries": ...}, "'supported_countries'"),
        ({"supported_countries": []}, "'supported_countries'"),
        ({"supported_countries": "FRA"}, "'supported_countries'"),
        ({"supported_countries": ["FR"]}, "'supported_countries'"),  # alpha-2, not alpha-3
        ({"supported_countries": ["FRA", "XYZ"]}, "'supported_countries'"),
        ({"activation_type": ...}, "'activation_type'"),
        ({"activation_type": "auto"}, "'activation_type'"),
        ({"data_usage_allowance": ...}, "'data_usage_allowance'"),
        ({"data_usage_allowance": -1}, "'data_usage_allowance'"),
        ({"data_usage_allowance": 1.5}, "'data_usage_allowance'"),
        ({"data_usage_allowance": "1024"}, "'data_usage_allowance'"),
        ({"data_usage_allowance": True}, "'data_usage_allowance'"),
        ({"time_allowance": ...}, "'time_allowance'"),
        ({"time_allowance": 30}, "'time_allowance'"),
        ({"time_allowance": {"unit": "FORTNIGHT", "duration": 1}}, "'time_allowance.unit'"),
        ({"time_allowance": {"unit": "DAY", "duration": 0}}, "'time_allowance.duration'"),
        ({"time_allowance": {"unit": "DAY"}}, "'time_allowance.duration'"),
        ({"activation_time_allowance": ...}, "'activation_time_allowance'"),
        ({"activation_time_allowance": -5}, "'activation_time_allowance'"),
        ({"earliest_available_date": ...}, "'earliest_available_date'"),
        ({"earliest_available_date": "2026-01-01"}, "'earliest_available_date'"),
        ({"latest_available_date": ...}, "'latest_available_date'"),
        ({"latest_available_date": 1_700_000_000_000}, "'latest_available_date'"),  # before earliest
        ({"inventory": ...}, "'inventory'"),
        ({"inventory": "51952"}, "'inventory'"),
        ({"inventory": 1}, "'inventory'"),  # no such inventory
    ],
)
async def test_bad_template_bodies_get_400_naming_the_field_and_create_nothing(
    sandbox: Sandbox, http: aiohttp.ClientSession, changes: dict[str, object], needle: str
) -> None:
    before = sandbox.data.package_templates_list()
    status, body, _ = await call(http, "POST", "/package-templates", json=template_body(sandbox, **changes))
    assert (status, body["statusCode"]) == (400, 400)
    assert needle in body["message"]
    assert sandbox.data.package_templates_list() == before


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"null"])
async def test_a_template_body_that_is_not_an_object_is_400(http: aiohttp.ClientSession, raw: bytes) -> None:
    async with http.post(API_PREFIX + "/package-templates", data=raw) as response:
        answer = await response.json()
    assert (response.status, answer["message"]) == (400, "Request body must be a JSON object")


def test_template_creation_rules_hold_for_direct_calls_too() -> None:
    data = SandboxData(sims=10, seed=1)
    good = {
        "name": "Direct",
        "supported_countries": ["FRA"],
        "activation_type": "AUTO",
        "data_usage_allowance": 0,
        "time_allowance": {"unit": "HOUR", "duration": 1},
        "activation_time_allowance": 0,
        "earliest_available_date": 0,
        "latest_available_date": 0,  # 0: no end, allowed whatever the start
        "inventory": data.inventories_list()[0]["id"],
    }
    created = data.create_package_template(**good)
    assert data.template_inventory(created["id"]) == good["inventory"]
    with pytest.raises(SandboxError, match="'activation_type'") as caught:
        data.create_package_template(**{**good, "activation_type": None})
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("kind", "error"),
    [("commit_drop", aiohttp.ServerDisconnectedError), ("truncated", aiohttp.ClientPayloadError)],
)
async def test_a_template_create_can_commit_without_a_readable_answer(
    sandbox: Sandbox, http: aiohttp.ClientSession, kind: str, error: type[Exception]
) -> None:
    sandbox.config.faults.script = [kind]
    body = template_body(sandbox)
    with pytest.raises(error):
        await call(http, "POST", "/package-templates", json=body)
    assert sandbox.stats.faults == {kind: 1}
    assert sandbox.data.package_templates_list()[-1]["name"] == body["name"]  # committed all the same


@pytest.mark.parametrize("kind", ["503", "429"])
async def test_a_template_create_answered_with_an_error_status_creates_nothing(
    sandbox: Sandbox, http: aiohttp.ClientSession, kind: str
) -> None:
    sandbox.config.faults.script = [kind]
    before = sandbox.data.package_templates_list()
    assert (await call(http, "POST", "/package-templates", json=template_body(sandbox)))[0] == int(kind)
    assert sandbox.data.package_templates_list() == before


async def test_a_slow_template_create_stalls_past_the_client_timeout(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.config.faults = FaultConfig(script=["slow"], slow_seconds=5)
    with pytest.raises(TimeoutError):
        async with http.post(
            API_PREFIX + "/package-templates",
            json=template_body(sandbox),
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass


# -- eUICC profiles and their QR image ----------------------------------------------------------


async def test_every_sim_has_a_euicc_profile_of_the_models_file_shape(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    present: dict[str, int] = dict.fromkeys(optional_fields("GetEUICCProfileResponse"), 0)
    states = set()
    for sim in sandbox.data.sims_list():
        profile = await get(http, f"/euicc-profiles/{sim['iccid']}")
        check_model(profile, "GetEUICCProfileResponse")
        assert profile["iccid"] == sim["iccid"]
        assert profile["imsi"] == str(sim["mapped_imsi"])
        assert re.fullmatch(
            r"LPA:1\$smdp\.sandbox\.invalid\$[A-Z0-9]{5}(-[A-Z0-9]{5}){3}", profile["activation_code"]
        )
        states.add(profile["state"])
        for name in present.keys() & profile.keys():
            present[name] += 1
    # Each optional field shows on some profiles and is absent from others.
    assert all(0 < count < SIMS for count in present.values()), present
    assert len(states) >= 8


async def test_euicc_profiles_are_the_same_for_the_same_seed() -> None:
    async def profiles(seed: int) -> list[Any]:
        async with serve(SandboxConfig(sims=20, seed=seed)) as sb:
            async with aiohttp.ClientSession(sb.url, headers=sb.headers) as session:
                return [
                    (
                        await get(session, f"/euicc-profiles/{iccid}"),
                        await get(session, f"/sim-pcr-profiles/{iccid}"),
                    )
                    for iccid in iccids(sb)
                ]

    first = await profiles(3)
    assert first == await profiles(3)
    assert first != await profiles(4)
    codes = [euicc["activation_code"] for euicc, _ in first]
    assert len(set(codes)) == len(codes)


def test_profiles_depend_on_the_seed_and_not_only_on_the_iccid() -> None:
    one, other = SandboxData(sims=0, seed=3), SandboxData(sims=0, seed=4)
    [iccid] = one.insert_sims(1)
    assert other.insert_sims(1) == [iccid]  # an empty listing gives both the same first ICCID
    assert one.euicc_profile(iccid)["activation_code"] != other.euicc_profile(iccid)["activation_code"]
    assert one.euicc_profile(iccid) == one.euicc_profile(iccid)


@pytest.mark.parametrize("suffix", ["", "/qrcode"])
@pytest.mark.parametrize(
    ("iccid", "status"),
    [
        ("8914800000401234567", 404),  # 19 digits, unknown
        ("89148000000000000000", 404),
        ("8914800000000000000000", 404),  # 22 digits
        ("891480000040123456", 404),  # 18 digits
        ("89148000004012345", 400),  # 17 digits
        ("89148000000000000000000", 400),  # 23 digits
        ("8914800000abcdefghij", 400),
        ("%2B8914800000401234567", 400),  # "+" and 19 digits
    ],
)
async def test_euicc_endpoints_answer_400_for_a_malformed_iccid_and_404_for_an_unknown_one(
    http: aiohttp.ClientSession, iccid: str, status: int, suffix: str
) -> None:
    async with http.get(API_PREFIX + f"/euicc-profiles/{iccid}{suffix}") as response:
        body = await response.json()
    assert (response.status, body["statusCode"], response.content_type) == (
        status,
        status,
        "application/json",
    )
    if status == 404:
        assert body["message"] == "eUICC profile not found"
    else:
        assert "ICCID" in body["message"]


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG, after checking its signature, chunks, CRCs and pixel data."""
    assert data[:8] == PNG_MAGIC
    chunks = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        payload = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + payload) == crc, kind
        chunks.append((kind, payload))
        position += 12 + length
    assert position == len(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    pixels = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + (width * depth * channels + 7) // 8)  # a filter byte per row
    return width, height


def segno_png(text: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


async def test_the_qr_code_is_a_png_of_the_activation_code(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    images = set()
    for iccid in iccids(sandbox)[:5]:
        status, content_type, image = await get_bytes(http, f"/euicc-profiles/{iccid}/qrcode")
        assert (status, content_type) == (200, "image/png")
        width, height = png_size(image)
        # A QR code of version v has 17 + 4v modules a side; 4 px each, plus 4 modules of margin.
        assert width == height
        assert width % 4 == 0
        assert (width // 4 - 8 - 17) % 4 == 0
        assert 1 <= (width // 4 - 8 - 17) // 4 <= 10
        profile = await get(http, f"/euicc-profiles/{iccid}")
        # The same image segno draws for the profile's activation code, at the sandbox's settings.
        assert image == segno_png(profile["activation_code"])
        images.add(image)
    assert len(images) == 5


async def test_without_segno_the_qr_code_is_a_fixed_valid_png(
    sandbox: Sandbox, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "segno", None)  # "import segno" now raises ImportError
    status, content_type, image = await get_bytes(http, f"/euicc-profiles/{iccids(sandbox)[0]}/qrcode")
    assert (status, content_type, image) == (200, "image/png", FALLBACK_PNG)
    assert png_size(FALLBACK_PNG) == (1, 1)


@pytest.mark.parametrize(
    ("mode", "content_type", "body"),
    [("empty", "image/png", b""), ("html", "text/html", None)],
)
async def test_qr_response_makes_the_qr_endpoint_answer_what_is_not_an_image(
    sandbox: Sandbox, http: aiohttp.ClientSession, mode: Any, content_type: str, body: bytes | None
) -> None:
    sandbox.config.qr_response = mode
    status, served_type, served = await get_bytes(http, f"/euicc-profiles/{iccids(sandbox)[0]}/qrcode")
    assert (status, served_type) == (200, content_type)
    if body is not None:
        assert served == body
    else:
        assert served.startswith(b"<!doctype html>")
    assert not served.startswith(PNG_MAGIC)
    # Errors stay errors: the knob shapes only a successful answer.
    assert (await get_bytes(http, "/euicc-profiles/89148000000000000000/qrcode"))[0] == 404
    sandbox.config.qr_response = "png"
    assert (await get_bytes(http, f"/euicc-profiles/{iccids(sandbox)[0]}/qrcode"))[2].startswith(PNG_MAGIC)


# -- PCR profiles -------------------------------------------------------------------------------


async def test_every_sim_has_a_pcr_profile_of_the_models_file_shape(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    with_route_policy = 0
    wallet_types = set()
    for sim in sandbox.data.sims_list():
        profile = await get(http, f"/sim-pcr-profiles/{sim['iccid']}")
        check_model(profile, "GetPCRProfileResponse")
        assert profile["sim"] == sim["iccid"]
        with_route_policy += "route_policy" in profile
        assert profile["wallets"]
        for wallet in profile["wallets"]:
            wallet_types.add(wallet["wallet_type"])
            owner_field = {"GROUP": "group", "INVENTORY": "inventory", "SIM": "sim"}[wallet["wallet_type"]]
            expected_owner = sim["iccid"] if owner_field == "sim" else sim[owner_field]["id"]
            assert wallet["owner"] == {owner_field: expected_owner}
    assert 0 < with_route_policy < SIMS
    assert wallet_types == {"GROUP", "INVENTORY", "SIM"}


def pcr_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "data": {"state": "ENABLED", "active_throttling": "SPEED_500_KBPS"},
        "voice": {"state": "DISABLED"},
        "sms": {"state": "ENABLED"},
        "wallet_mode": "SIM",
        "route_policy": 9,
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


async def test_a_pcr_put_answers_no_body_and_changes_what_get_returns(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    iccid = iccids(sandbox)[3]
    before = await get(http, f"/sim-pcr-profiles/{iccid}")
    async with http.put(API_PREFIX + f"/sim-pcr-profiles/{iccid}", json=pcr_body()) as response:
        assert (response.status, await response.read()) == (204, b"")
    after = await get(http, f"/sim-pcr-profiles/{iccid}")
    assert after == {**before, **pcr_body()}  # wallets untouched
    check_model(after, "GetPCRProfileResponse")

    # The PUT is the whole modifiable profile: without route_policy there is none.
    assert (await call(http, "PUT", f"/sim-pcr-profiles/{iccid}", json=pcr_body(route_policy=...)))[0] == 204
    cleared = await get(http, f"/sim-pcr-profiles/{iccid}")
    assert "route_policy" not in cleared
    assert cleared["wallets"] == before["wallets"]
    # Fields of the GET sent back in a PUT are ignored, wallets included.
    echoed = {**cleared, "wallets": [], "sim": "x", "wallet_mode": "GROUP"}
    assert (await call(http, "PUT", f"/sim-pcr-profiles/{iccid}", json=echoed))[0] == 204
    assert await get(http, f"/sim-pcr-profiles/{iccid}") == {**cleared, "wallet_mode": "GROUP"}
    # Other SIMs are untouched.
    other = iccids(sandbox)[4]
    assert await get(http, f"/sim-pcr-profiles/{other}") == sandbox.data.pcr_profile(other)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"data": ...}, "'data'"),
        ({"data": "ENABLED"}, "'data'"),
        ({"data": {"state": "ENABLED"}}, "'data.active_throttling'"),
        ({"data": {"state": "ON", "active_throttling": "NO_LIMIT"}}, "'data.state'"),
        ({"data": {"state": "ENABLED", "active_throttling": "SPEED_750_KBPS"}}, "'data.active_throttling'"),
        ({"data": {"state": "enabled", "active_throttling": "NO_LIMIT"}}, "'data.state'"),
        ({"voice": ...}, "'voice'"),
        ({"voice": {}}, "'voice.state'"),
        ({"voice": {"state": True}}, "'voice.state'"),
        ({"sms": ...}, "'sms'"),
        ({"sms": {"state": "OFF"}}, "'sms.state'"),
        ({"wallet_mode": ...}, "'wallet_mode'"),
        ({"wallet_mode": "INVENTORY"}, "'wallet_mode'"),
        ({"route_policy": "3"}, "'route_policy'"),
        ({"route_policy": -1}, "'route_policy'"),
        ({"route_policy": 1.5}, "'route_policy'"),
        ({"route_policy": False}, "'route_policy'"),
    ],
)
async def test_a_bad_pcr_put_is_400_naming_the_field_and_changes_nothing(
    sandbox: Sandbox, http: aiohttp.ClientSession, changes: dict[str, object], needle: str
) -> None:
    iccid = iccids(sandbox)[7]
    before = await get(http, f"/sim-pcr-profiles/{iccid}")
    status, body, _ = await call(http, "PUT", f"/sim-pcr-profiles/{iccid}", json=pcr_body(**changes))
    assert (status, body["statusCode"]) == (400, 400)
    assert needle in body["message"]
    assert await get(http, f"/sim-pcr-profiles/{iccid}") == before


@pytest.mark.parametrize(
    ("method", "iccid", "status"),
    [
        ("GET", "89148000000000000000", 404),
        ("PUT", "89148000000000000000", 404),
        ("GET", "8914", 400),
        ("PUT", "8914800000401234567x", 400),
    ],
)
async def test_pcr_endpoints_answer_400_for_a_malformed_iccid_and_404_for_an_unknown_one(
    http: aiohttp.ClientSession, method: str, iccid: str, status: int
) -> None:
    answer, body, _ = await call(http, method, f"/sim-pcr-profiles/{iccid}", json=pcr_body())
    assert (answer, body["statusCode"]) == (status, status)
    if status == 404:
        assert body["message"] == "PCR profile not found"


async def test_a_pcr_put_whose_body_is_not_an_object_is_400(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.put(API_PREFIX + f"/sim-pcr-profiles/{iccids(sandbox)[0]}", data=b"{") as response:
        body = await response.json()
    assert (response.status, body["message"]) == (400, "Request body must be a JSON object")


# The documented values (the facts file's), written out for the strategies below.
THROTTLING = [
    "NO_LIMIT", "SPEED_100_KBPS", "SPEED_500_KBPS", "SPEED_1000_KBPS",
    "SPEED_2000_KBPS", "SPEED_3000_KBPS", "SPEED_5000_KBPS",
]  # fmt: skip
_STATES = st.sampled_from(["ENABLED", "DISABLED"])
_VALID_PCR_BODIES = st.fixed_dictionaries(
    {
        "data": st.fixed_dictionaries(
            {
                "state": _STATES,
                "active_throttling": st.sampled_from(THROTTLING),
            }
        ),
        "voice": st.fixed_dictionaries({"state": _STATES}),
        "sms": st.fixed_dictionaries({"state": _STATES}),
        "wallet_mode": st.sampled_from(["GROUP", "SIM"]),
    },
    optional={"route_policy": st.none() | st.integers(0, 2**31)},
)


@settings(max_examples=200, deadline=None)
@given(first=_VALID_PCR_BODIES, second=_VALID_PCR_BODIES, index=st.integers(0, 9))
def test_the_last_valid_pcr_put_is_what_get_returns(
    first: dict[str, Any], second: dict[str, Any], index: int
) -> None:
    data = SandboxData(sims=10, seed=2)
    iccid = data.sims_list()[index]["iccid"]
    wallets = data.pcr_profile(iccid)["wallets"]
    for body in (first, second):
        data.update_pcr_profile(iccid, body)
        profile = data.pcr_profile(iccid)
        expected = {key: value for key, value in body.items() if value is not None}
        assert {key: profile[key] for key in profile.keys() - {"sim", "wallets"}} == expected
        assert profile["wallets"] == wallets
    profile["data"]["state"] = "changed by the caller"  # a copy: the store is unaffected
    assert data.pcr_profile(iccid)["data"] == second["data"]


# -- the rest: stats, faults, credentials -------------------------------------------------------


async def test_new_routes_are_counted_by_name(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    iccid = iccids(sandbox)[0]
    sandbox.stats.reset()
    await get(http, f"/euicc-profiles/{iccid}")
    await get_bytes(http, f"/euicc-profiles/{iccid}/qrcode")
    await get(http, f"/sim-pcr-profiles/{iccid}")
    await call(http, "PUT", f"/sim-pcr-profiles/{iccid}", json=pcr_body())
    await call(http, "POST", "/package-templates", json={})
    await get(http, "/countries")
    assert sandbox.stats.by_route == {
        ("GET", "euicc_profile"): 1,
        ("GET", "euicc_qrcode"): 1,
        ("GET", "pcr_profile"): 1,
        ("PUT", "pcr_profile"): 1,
        ("POST", "package_templates"): 1,
        ("GET", "countries"): 1,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/euicc-profiles/{iccid}"),
        ("GET", "/euicc-profiles/{iccid}/qrcode"),
        ("GET", "/sim-pcr-profiles/{iccid}"),
        ("PUT", "/sim-pcr-profiles/{iccid}"),
        ("GET", "/countries"),
    ],
)
async def test_faults_apply_to_the_new_routes(
    sandbox: Sandbox, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    sandbox.config.faults.script = ["503", "malformed"]
    path = path.format(iccid=iccids(sandbox)[0])
    status, body, _ = await call(http, method, path, json=pcr_body())
    assert (status, body["statusCode"]) == (503, 503)
    async with http.request(method, API_PREFIX + path, json=pcr_body()) as response:
        raw = await response.read()
    assert response.status in {200, 204}
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    assert sandbox.stats.faults == {"503": 1, "malformed": 1}


def test_served_countries_are_what_the_data_module_lists() -> None:
    data = SandboxData(sims=0)
    assert [(c["iso2"], c["iso3"], c["name"]) for c in data.countries_list()] == list(COUNTRIES)
