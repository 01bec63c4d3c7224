"""Models and converter: round-trips, open enums, timestamps, strictness, error paths, fuzzed pages.

The strategies generate the API's JSON for each model, in every documented shape
(references as ``{id, name}`` objects or bare ids, ``package_template`` as an id
or an object, known and unknown status text). No I/O here.
"""

from __future__ import annotations

import copy
import enum
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import cattrs
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from betatel_async import MalformedResponseError, timestamp_to_datetime
from betatel_async._converter import (
    _detailed,
    check_page,
    configure_converter,
    converter,
    decode_json,
    decode_model,
    decode_page,
    make_fast_list_structure_fn,
    make_fast_structure_fn,
    structure_page,
    unstructure,
)
from betatel_async._models import (
    ActivationType,
    ApiStatus,
    Country,
    DataProfile,
    EuiccProfile,
    EuiccProfileState,
    Imsi,
    Inventory,
    InventoryStatus,
    Package,
    PackageStatus,
    PackageTemplate,
    PackageTemplateInfo,
    PackageTemplateStatus,
    Page,
    PcrProfile,
    ProfileReusePolicy,
    Ref,
    ReuseType,
    ServiceProfile,
    ServiceState,
    Sim,
    SimStatus,
    Throttling,
    TimeAllowance,
    TimeUnit,
    Wallet,
    WalletMode,
    WalletOwner,
    WalletType,
)

# -- strategies: the API's JSON ---------------------------------------------------------------

# orjson reads and writes 64-bit integers; no real field needs more.
INTS = st.integers(-(2**63), 2**63 - 1)
# Any text orjson can encode (lone surrogates are not valid UTF-8).
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
# Instants from 1971 to 2500, in the units the API mixes.
SECONDS = st.integers(31_536_000, 16_756_761_599)
MILLISECONDS = st.integers(31_536_000_000, 16_756_761_599_999)
TIMESTAMPS = st.just(0) | SECONDS | MILLISECONDS

JSON_SCALARS = st.none() | st.booleans() | INTS | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def open_enum(values: list[str]) -> st.SearchStrategy[str]:
    """Known values (often) or any text."""
    return st.sampled_from(values) | TEXT


def values_of(enum_cls: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in enum_cls]


# A reference: a bare id (API 1.0.4's partial SIM) or an {id, name} object (the seed
# document). An object always has a name here: ``{"id": 1}`` alone comes back as ``1``.
REF = INTS | st.fixed_dictionaries({"id": INTS, "name": TEXT})
IMSI = st.fixed_dictionaries({"sponsor_id": INTS, "imsi": INTS})
SIM = st.fixed_dictionaries(
    {"iccid": TEXT, "sim_status": open_enum(values_of(SimStatus))},
    optional={
        "group": REF,
        "inventory": REF,
        "company": REF,
        "provisioned_date": TIMESTAMPS,
        "terminated_date": TIMESTAMPS,
        "created_date": TIMESTAMPS,
        "modified_date": TIMESTAMPS,
        "imsis": st.lists(IMSI, max_size=3),
        "mapped_imsi": INTS,
    },
)
INVENTORY = st.fixed_dictionaries(
    {
        "id": INTS,
        "name": TEXT,
        "created_date": TIMESTAMPS,
        "modified_date": TIMESTAMPS,
        "company": INTS,
        "status": open_enum(["Active", "ACTIVE", "NOT_ACTIVE"]),
    },
    optional={
        "note": TEXT,
        "deleted_date": TIMESTAMPS,
        "parent_inventory": INTS,
        "deactivated_date": TIMESTAMPS,
        "wallet": INTS,
        "whitelist": INTS,
    },
)
TIME_ALLOWANCE = st.fixed_dictionaries({"unit": open_enum(values_of(TimeUnit)), "duration": INTS})
TEMPLATE_INFO = st.fixed_dictionaries(
    {
        "id": INTS,
        "name": TEXT,
        "voice_usage_allowance": INTS,
        "data_usage_allowance": INTS,
        "sms_usage_allowance": INTS,
        "time_allowance": TIME_ALLOWANCE,
        "activation_time_allowance": INTS,
    }
)
PACKAGE_TEMPLATE = st.fixed_dictionaries(
    {
        "id": INTS,
        "name": TEXT,
        "supported_countries": st.lists(TEXT, max_size=3),
        "data_usage_allowance": INTS,
        "activation_type": open_enum(values_of(ActivationType)),
        "created_date": TIMESTAMPS,
        "modified_date": TIMESTAMPS,
        "time_allowance": TIME_ALLOWANCE,
        "status": open_enum(values_of(PackageTemplateStatus)),
    },
    optional={
        "traffic_policy": INTS,
        "voice_usage_allowance": INTS,
        "sms_usage_allowance": INTS,
        "activation_time_allowance": INTS,
        "earliest_activation_date": TIMESTAMPS,
        "earliest_available_date": TIMESTAMPS,
        "latest_available_date": TIMESTAMPS,
        "notes": TEXT,
        "deactivated_date": TIMESTAMPS,
        "apn": TEXT,
    },
)
_PACKAGE_REQUIRED: dict[str, st.SearchStrategy[Any]] = {
    "id": TEXT,
    "sim": TEXT,
    "status": open_enum(values_of(PackageStatus)),
}
_PACKAGE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "window_activation_start": TIMESTAMPS,
    "window_activation_end": TIMESTAMPS,
    "voice_usage_remaining": INTS,
    "data_usage_remaining": INTS,
    "sms_usage_remaining": INTS,
    "created_date": TIMESTAMPS,
    "expiry_date": TIMESTAMPS,
    "activated_date": TIMESTAMPS,
    "terminated_date": TIMESTAMPS,
    "time_allowance": INTS,
}
# The three shapes of package_template: an id (lists), the seven-field info
# (create response), the full template (detail view).
PACKAGE = st.fixed_dictionaries({**_PACKAGE_REQUIRED, "package_template": INTS}, optional=_PACKAGE_FIELDS)
CREATED_PACKAGE = st.fixed_dictionaries(
    {**_PACKAGE_REQUIRED, "package_template": TEMPLATE_INFO}, optional={**_PACKAGE_FIELDS, "apn": TEXT}
)
DETAILED_PACKAGE = st.fixed_dictionaries(
    {**_PACKAGE_REQUIRED, "package_template": PACKAGE_TEMPLATE}, optional=_PACKAGE_FIELDS
)
COUNTRY = st.fixed_dictionaries({"name": TEXT, "iso2": TEXT, "iso3": TEXT})
PROFILE_REUSE_POLICY = st.fixed_dictionaries(
    {"reuse_type": open_enum(values_of(ReuseType)), "max_count": INTS}
)
EUICC_PROFILE = st.fixed_dictionaries(
    {
        "iccid": TEXT,
        "imsi": TEXT,
        "state": open_enum(values_of(EuiccProfileState)),
        "last_operation_date": TIMESTAMPS,
        "activation_code": TEXT,
    },
    optional={
        "reuse_remaining_count": INTS,
        "reuse_enabled": st.booleans(),
        "profile_reuse_policy": PROFILE_REUSE_POLICY,
        "release_date": TIMESTAMPS,
        "cc_required": st.booleans(),
        "cc_retries": INTS,
        "eid": TEXT,
    },
)
SERVICE_STATE = open_enum(values_of(ServiceState))
SERVICE_PROFILE = st.fixed_dictionaries({"state": SERVICE_STATE})
DATA_PROFILE = st.fixed_dictionaries(
    {"state": SERVICE_STATE, "active_throttling": open_enum(values_of(Throttling))}
)
WALLET_OWNER = st.fixed_dictionaries({}, optional={"group": INTS, "inventory": INTS, "sim": TEXT})
WALLET = st.fixed_dictionaries(
    {
        "id": INTS,
        "owner": WALLET_OWNER,
        "balance": INTS,
        "overdraft": INTS,
        "wallet_type": open_enum(values_of(WalletType)),
    }
)
PCR_PROFILE = st.fixed_dictionaries(
    {
        "sim": TEXT,
        "data": DATA_PROFILE,
        "voice": SERVICE_PROFILE,
        "sms": SERVICE_PROFILE,
        "wallets": st.lists(WALLET, max_size=3),
        "wallet_mode": open_enum(values_of(WalletMode)),
    },
    optional={"route_policy": INTS},
)
API_STATUS = st.fixed_dictionaries(
    {"status": open_enum(["ok", "error"]), "version": TEXT}, optional={"uptime": INTS}
)

MODELS = [
    pytest.param(Sim, SIM, id="sim"),
    pytest.param(Inventory, INVENTORY, id="inventory"),
    pytest.param(Package, PACKAGE, id="package"),
    pytest.param(Package, CREATED_PACKAGE, id="created-package"),
    pytest.param(Package, DETAILED_PACKAGE, id="detailed-package"),
    pytest.param(PackageTemplate, PACKAGE_TEMPLATE, id="package-template"),
    pytest.param(PackageTemplateInfo, TEMPLATE_INFO, id="package-template-info"),
    pytest.param(Country, COUNTRY, id="country"),
    pytest.param(EuiccProfile, EUICC_PROFILE, id="euicc-profile"),
    pytest.param(ProfileReusePolicy, PROFILE_REUSE_POLICY, id="profile-reuse-policy"),
    pytest.param(PcrProfile, PCR_PROFILE, id="pcr-profile"),
    pytest.param(Wallet, WALLET, id="wallet"),
    pytest.param(ApiStatus, API_STATUS, id="api-status"),
]
PAGES = [
    pytest.param("sims", Sim, SIM, id="sims"),
    pytest.param("inventories", Inventory, INVENTORY, id="inventories"),
    pytest.param("packages", Package, PACKAGE, id="packages"),
    pytest.param("package_templates", PackageTemplate, PACKAGE_TEMPLATE, id="package-templates"),
    pytest.param("countries", Country, COUNTRY, id="countries"),
]
# The smallest valid SIM (iccid and sim_status are required).
S: dict[str, Any] = {"iccid": "1", "sim_status": "IN_SERVICE"}
# The smallest valid package list item.
P: dict[str, Any] = {"id": "p", "sim": "1", "package_template": 7, "status": "ACTIVE"}
# The smallest valid inventory.
INV: dict[str, Any] = {
    "id": 1,
    "name": "n",
    "created_date": 0,
    "modified_date": 0,
    "company": 2,
    "status": "ACTIVE",
}
# A time allowance, a template's seven-field info, and the smallest full template.
TA: dict[str, Any] = {"unit": "DAY", "duration": 30}
INFO: dict[str, Any] = {
    "id": 21145354,
    "name": "Europe 20 GB / 30 days",
    "voice_usage_allowance": 100,
    "data_usage_allowance": 21474836480,
    "sms_usage_allowance": 100,
    "time_allowance": TA,
    "activation_time_allowance": 15552000,
}
T: dict[str, Any] = {
    "id": 21145354,
    "name": "Europe 20 GB / 30 days",
    "supported_countries": ["FRA", "DEU"],
    "data_usage_allowance": 21474836480,
    "activation_type": "AUTO",
    "created_date": 1761330317000,
    "modified_date": 1761330317000,
    "time_allowance": TA,
    "status": "Active",
}
# The smallest valid eUICC profile and a PCR profile.
E: dict[str, Any] = {
    "iccid": "89148000004012345678",
    "imsi": "310260123456789",
    "state": "RELEASED",
    "last_operation_date": 1761330317000,
    "activation_code": "LPA:1$smdp.example$MATCHING-ID",
}
PCR: dict[str, Any] = {
    "sim": "89148000004012345678",
    "data": {"state": "ENABLED", "active_throttling": "NO_LIMIT"},
    "voice": {"state": "ENABLED"},
    "sms": {"state": "DISABLED"},
    "wallets": [{"id": 9, "owner": {"group": 1001}, "balance": 500, "overdraft": 0, "wallet_type": "GROUP"}],
    "wallet_mode": "SIM",
}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def json_keys(cls: type) -> set[str]:
    return {a.name for a in attrs.fields(cls)} - {"reconciled"}


# -- round-trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "strategy"), MODELS)
@settings(deadline=None)
@given(data=st.data())
def test_structure_then_unstructure_gives_the_same_json(
    cls: type, strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    doc = data.draw(strategy)
    assert dumps(unstructure(converter.structure(doc, cls))) == dumps(doc)


@pytest.mark.parametrize(("cls", "strategy"), MODELS)
@settings(deadline=None)
@given(data=st.data())
def test_unknown_keys_are_ignored(
    cls: type, strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    doc = data.draw(strategy)
    known = json_keys(cls)
    extra = data.draw(st.dictionaries(TEXT.filter(lambda k: k not in known), JSON, min_size=1, max_size=3))
    grown = {**extra, **doc}
    assert converter.structure(grown, cls) == converter.structure(doc, cls)
    assert dumps(unstructure(converter.structure(grown, cls))) == dumps(doc)


def test_unknown_keys_inside_nested_objects_are_ignored() -> None:
    sim = converter.structure(
        {
            **S,
            "group": {"id": 1001, "name": "Premium Group", "colour": "gold"},
            "imsis": [{"sponsor_id": 200, "imsi": 310260123456789, "network": "T-Mobile US"}],
        },
        Sim,
    )
    assert sim.group == Ref(id=1001, name="Premium Group")
    assert sim.imsis == [Imsi(sponsor_id=200, imsi=310260123456789)]


@pytest.mark.parametrize(
    ("cls", "doc", "field"),
    [
        (Sim, {**S, "group": None}, "group"),
        (Sim, {**S, "imsis": None}, "imsis"),
        (Inventory, {**INV, "note": None}, "note"),
        (Package, {**P, "apn": None}, "apn"),
        (EuiccProfile, {**E, "profile_reuse_policy": None}, "profile_reuse_policy"),
        (PcrProfile, {**PCR, "route_policy": None}, "route_policy"),
        (WalletOwner, {"group": None, "sim": "1"}, "group"),
        (ApiStatus, {"status": "ok", "version": "1.0.4", "uptime": None}, "uptime"),
    ],
)
def test_null_optional_fields_decode_as_none_and_are_left_out(
    cls: type, doc: dict[str, Any], field: str
) -> None:
    obj: Any = converter.structure(doc, cls)
    assert getattr(obj, field) is None
    assert field not in unstructure(obj)


def test_both_sim_shapes_decode_to_the_same_references() -> None:
    objects = {
        **S,
        "group": {"id": 1001, "name": "Premium Group"},
        "inventory": {"id": 12345, "name": "US East Inventory"},
        "company": {"id": 100, "name": "Acme Corp"},
    }
    ids = {**S, "group": 1001, "inventory": 12345, "company": 100}
    with_names = converter.structure(objects, Sim)
    bare = converter.structure(ids, Sim)
    for field in ("group", "inventory", "company"):
        assert getattr(bare, field) == Ref(id=getattr(with_names, field).id)
    assert unstructure(bare) == ids
    assert unstructure(with_names) == objects


def test_reconciled_is_never_read_from_or_written_to_json() -> None:
    package = converter.structure({**P, "reconciled": True}, Package)
    assert package.reconciled is False
    package.reconciled = True
    assert unstructure(package) == P


# -- open enums -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "doc", "field", "known"),
    [
        (Sim, S, "sim_status", SimStatus.IN_SERVICE),
        (Inventory, {**INV, "status": "ACTIVE"}, "status", InventoryStatus.ACTIVE),
        (Inventory, {**INV, "status": "NOT_ACTIVE"}, "status", InventoryStatus.NOT_ACTIVE),
        (Package, {**P, "status": "SUSPENDED"}, "status", PackageStatus.SUSPENDED),
        (PackageTemplate, T, "activation_type", ActivationType.AUTO),
        (PackageTemplate, {**T, "status": "Not Active"}, "status", PackageTemplateStatus.NOT_ACTIVE),
        (PackageTemplate, {**T, "status": "De-activated"}, "status", PackageTemplateStatus.DEACTIVATED),
        (TimeAllowance, {"unit": "CALENDAR_MONTH", "duration": 1}, "unit", TimeUnit.CALENDAR_MONTH),
        (EuiccProfile, {**E, "state": "UNAVAILABLE"}, "state", EuiccProfileState.UNAVAILABLE),
        (ProfileReusePolicy, {"reuse_type": "SAME_EID", "max_count": 3}, "reuse_type", ReuseType.SAME_EID),
        (DataProfile, {"state": "DISABLED", "active_throttling": "NO_LIMIT"}, "state", ServiceState.DISABLED),
        (
            DataProfile,
            {"state": "ENABLED", "active_throttling": "SPEED_5000_KBPS"},
            "active_throttling",
            Throttling.SPEED_5000_KBPS,
        ),
        (ServiceProfile, {"state": "ENABLED"}, "state", ServiceState.ENABLED),
        (PcrProfile, PCR, "wallet_mode", WalletMode.SIM),
        (Wallet, PCR["wallets"][0], "wallet_type", WalletType.GROUP),
    ],
)
def test_known_status_text_decodes_to_its_member(
    cls: type, doc: dict[str, Any], field: str, known: object
) -> None:
    assert getattr(converter.structure(doc, cls), field) is known


@settings(deadline=None)
@given(text=TEXT.filter(lambda t: t not in values_of(SimStatus)))
def test_unknown_sim_status_stays_text_and_round_trips(text: str) -> None:
    sim = converter.structure({"iccid": "1", "sim_status": text}, Sim)
    assert type(sim.sim_status) is str
    assert sim.sim_status == text
    assert unstructure(sim)["sim_status"] == text


# Every open enum of the new models: (model, a valid document, the field, its enum).
NEW_OPEN_ENUMS = [
    pytest.param(PackageTemplate, T, "status", PackageTemplateStatus, id="template-status"),
    pytest.param(PackageTemplate, T, "activation_type", ActivationType, id="activation-type"),
    pytest.param(EuiccProfile, E, "state", EuiccProfileState, id="euicc-state"),
    pytest.param(
        ProfileReusePolicy, {"reuse_type": "NEW_EID", "max_count": 1}, "reuse_type", ReuseType, id="reuse"
    ),
    pytest.param(DataProfile, PCR["data"], "state", ServiceState, id="service-state"),
    pytest.param(DataProfile, PCR["data"], "active_throttling", Throttling, id="throttling"),
    pytest.param(PcrProfile, PCR, "wallet_mode", WalletMode, id="wallet-mode"),
    pytest.param(Wallet, PCR["wallets"][0], "wallet_type", WalletType, id="wallet-type"),
]


@pytest.mark.parametrize(("cls", "doc", "field", "enum_cls"), NEW_OPEN_ENUMS)
@settings(deadline=None, max_examples=50)
@given(text=TEXT)
def test_unknown_enum_text_of_the_new_models_is_kept_and_round_trips(
    cls: type, doc: dict[str, Any], field: str, enum_cls: type[enum.StrEnum], text: str
) -> None:
    known = values_of(enum_cls)
    for conv in (converter, _detailed()):
        obj = conv.structure({**doc, field: text}, cls)
        value = getattr(obj, field)
        assert value == text
        assert (type(value) is str) is (text not in known)
        assert unstructure(obj)[field] == text


@pytest.mark.parametrize(
    ("status", "active", "member"),
    [
        ("Active", True, False),  # the seed example's spelling: not a member, still active
        ("ACTIVE", True, True),
        ("NOT_ACTIVE", False, True),
        ("Suspended by admin", False, False),
    ],
)
def test_inventory_status_spellings(status: str, active: bool, member: bool) -> None:
    inventory = converter.structure({**INV, "status": status}, Inventory)
    assert inventory.is_active is active
    assert isinstance(inventory.status, InventoryStatus) is member
    assert unstructure(inventory)["status"] == status


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1761330317000, datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)),  # inventories, packages: ms
        (1761330517000, datetime(2025, 10, 24, 18, 28, 37, tzinfo=UTC)),
        (1640995200, datetime(2022, 1, 1, tzinfo=UTC)),  # SIMs: seconds
        (1_000_000_000, datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)),
        (1_000_000_000_123, datetime(2001, 9, 9, 1, 46, 40, 123_000, tzinfo=UTC)),
        (0, None),  # "not set"
        (None, None),
    ],
)
def test_timestamp_unit_is_inferred(raw: int | None, expected: datetime | None) -> None:
    assert timestamp_to_datetime(raw) == expected


@given(
    instant=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2500, 12, 31, 23, 59, 59), timezones=st.just(UTC)
    )
)
def test_seconds_and_milliseconds_of_one_instant_give_the_same_datetime(instant: datetime) -> None:
    seconds = int(instant.timestamp())
    whole = instant.replace(microsecond=0)
    assert timestamp_to_datetime(seconds) == whole
    assert timestamp_to_datetime(seconds * 1000) == whole


@given(ms=MILLISECONDS)
def test_milliseconds_are_exact(ms: int) -> None:
    at = timestamp_to_datetime(ms)
    assert at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert at is not None and at.tzinfo is UTC


def test_datetime_accessors_use_the_inference() -> None:
    sim = converter.structure({**S, "provisioned_date": 1640995200, "terminated_date": 0}, Sim)
    assert sim.provisioned_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert sim.terminated_at is None
    package = converter.structure({**P, "created_date": 1761330317000}, Package)
    assert package.created_at == datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)
    assert package.activated_at is None
    profile = converter.structure(
        {**E, "last_operation_date": 1761330317000, "release_date": 0}, EuiccProfile
    )
    assert profile.last_operation_at == datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)
    assert profile.released_at is None
    template = converter.structure({**T, "deactivated_date": 1640995200}, PackageTemplate)
    assert template.deactivated_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert template.created_at == datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)


# -- strictness and error paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "doc", "path"),
    [
        (Sim, {}, "$.iccid"),
        (Sim, {"iccid": None}, "$.iccid"),
        (Sim, {"iccid": 89148000004012345678}, "$.iccid"),
        (Sim, {**S, "mapped_imsi": "310260123456789"}, "$.mapped_imsi"),
        (Sim, {**S, "mapped_imsi": 3.1e14}, "$.mapped_imsi"),
        (Sim, {**S, "provisioned_date": True}, "$.provisioned_date"),
        (Sim, {**S, "sim_status": 3}, "$.sim_status"),
        (Sim, {**S, "sim_status": None}, "$.sim_status"),
        (Sim, {**S, "group": "1001"}, "$.group"),
        (Sim, {**S, "group": True}, "$.group"),
        (Sim, {**S, "group": [1001]}, "$.group"),
        (Sim, {**S, "group": {"name": "Premium"}}, "$.group.id"),
        (Sim, {**S, "group": {"id": "1001", "name": "Premium"}}, "$.group.id"),
        (Sim, {**S, "company": {"id": 1, "name": 7}}, "$.company.name"),
        (Sim, {**S, "company": {"id": 1, "name": None}}, "$.company.name"),
        (Sim, {**S, "imsis": "310260123456789"}, "$.imsis"),
        (Sim, {**S, "imsis": {"imsi": 1}}, "$.imsis"),
        (Sim, {**S, "imsis": [{"sponsor_id": 200, "imsi": 1}, []]}, "$.imsis[1]"),
        (
            Sim,
            {**S, "imsis": [{"sponsor_id": 200, "imsi": 1}, {"sponsor_id": "200", "imsi": 2}]},
            "$.imsis[1].sponsor_id",
        ),
        (Inventory, {**INV, "id": "51952"}, "$.id"),
        (Inventory, {**INV, "status": ["Active"]}, "$.status"),
        (Package, {**P, "id": 5}, "$.id"),
        (Package, {**P, "package_template": "21145354"}, "$.package_template"),
        (Package, {**P, "package_template": None}, "$.package_template"),
        (Package, {**P, "package_template": [21145354]}, "$.package_template"),
        (Package, {**P, "package_template": {**INFO, "id": "1"}}, "$.package_template.id"),
        (
            Package,
            {**P, "package_template": {**T, "traffic_policy": "FAIR_USE"}},
            "$.package_template.traffic_policy",
        ),
        (
            Package,
            {**P, "package_template": {**INFO, "time_allowance": {"unit": "DAY", "duration": "30"}}},
            "$.package_template.time_allowance.duration",
        ),
        (
            Package,
            {**P, "package_template": {**INFO, "activation_time_allowance": "180d"}},
            "$.package_template.activation_time_allowance",
        ),
        (PackageTemplate, {**T, "supported_countries": "FR"}, "$.supported_countries"),
        (PackageTemplate, {**T, "supported_countries": ["FR", 33]}, "$.supported_countries[1]"),
        (PackageTemplate, {**T, "traffic_policy": "FAIR_USE"}, "$.traffic_policy"),
        (EuiccProfile, {**E, "imsi": 310260123456789}, "$.imsi"),
        (EuiccProfile, {**E, "reuse_enabled": 1}, "$.reuse_enabled"),
        (
            EuiccProfile,
            {**E, "profile_reuse_policy": {"reuse_type": "SAME_EID", "max_count": "3"}},
            "$.profile_reuse_policy.max_count",
        ),
        (
            PcrProfile,
            {**PCR, "data": {"state": "ENABLED", "active_throttling": 500}},
            "$.data.active_throttling",
        ),
        (
            PcrProfile,
            {**PCR, "wallets": [PCR["wallets"][0], {**PCR["wallets"][0], "owner": {"sim": 1}}]},
            "$.wallets[1].owner.sim",
        ),
        (ApiStatus, {"status": "ok", "version": 1}, "$.version"),
        (Sim, "89148000004012345678", "$"),
        (Sim, ["89148000004012345678"], "$"),
    ],
)
def test_a_wrong_type_fails_and_names_its_path(cls: type, doc: Any, path: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        decode_model(doc, cls, method="GET", path="/api/v1/esim/x")
    assert info.value.json_path == path
    assert path in str(info.value)


def mutate(data: st.DataObject, value: Any, replacement: st.SearchStrategy[Any]) -> tuple[Any, str]:
    """Replace one place in ``value`` (maybe the whole) with a drawn value; return it and its path."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        inner, path = mutate(data, value[key], replacement)
        return {**value, key: inner}, f".{key}{path}"
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        inner, path = mutate(data, value[index], replacement)
        return [*value[:index], inner, *value[index + 1 :]], f"[{index}]{path}"
    return data.draw(replacement), ""


def structure_or_error(conv: cattrs.Converter, doc: Any, cls: type) -> object:
    try:
        return conv.structure(doc, cls)
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc)


@pytest.mark.parametrize(("cls", "strategy"), MODELS)
@settings(deadline=None, max_examples=200)
@given(data=st.data())
def test_fast_and_detailed_converters_agree(
    cls: type, strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    """Both accept the same documents and build equal objects (so every fast failure has a path)."""
    doc, _ = mutate(data, data.draw(strategy), JSON)
    fast = structure_or_error(converter, doc, cls)
    detailed = structure_or_error(_detailed(), doc, cls)
    if isinstance(fast, type) or isinstance(detailed, type):
        assert isinstance(fast, type) and isinstance(detailed, type), (fast, detailed)
    else:
        assert fast == detailed


@pytest.mark.parametrize(("key", "cls", "strategy"), PAGES)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_bad_field_in_a_page_is_named_by_its_json_path(
    key: str, cls: type, strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    items = data.draw(st.lists(strategy, min_size=1, max_size=6))
    index = data.draw(st.integers(0, len(items) - 1))
    # No field of any model takes a float, so the error is where the float is.
    items[index], path = mutate(data, items[index], st.just(1.5))
    body = {"total": len(items), "offset": 0, "count": len(items), key: items}
    with pytest.raises(MalformedResponseError) as info:
        decode_page(body, key, cls, method="GET", path="/api/v1/esim/x")
    assert info.value.json_path == f"$.{key}[{index}]{path}"


def test_the_documented_malformed_example_path() -> None:
    sims: list[dict[str, Any]] = [{**S, "iccid": str(89148000004012345678 + n)} for n in range(5)]
    sims[3]["imsis"] = [{"sponsor_id": 200, "imsi": "310260123456789"}]
    with pytest.raises(MalformedResponseError) as info:
        decode_page({"total": 5, "offset": 0, "count": 5, "sims": sims}, "sims", Sim, method="GET", path="/p")
    assert info.value.json_path == "$.sims[3].imsis[0].imsi"


# -- fuzzed response bodies -------------------------------------------------------------------


def envelope(
    key: str, items: st.SearchStrategy[Any], counts: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """List bodies: the envelope fields drawn from ``counts``, up to five items."""
    return st.fixed_dictionaries(
        {key: st.lists(items, max_size=5)}, optional={"total": counts, "offset": counts, "count": counts}
    )


@pytest.mark.parametrize(("key", "cls", "strategy"), PAGES)
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_page_returns_a_page_or_raises_malformed_response(
    key: str, cls: type, strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    counts = st.integers(0, 10**6)
    body: Any = data.draw(
        JSON  # anything at all
        | envelope(key, strategy, counts).map(lambda page: {"total": 0, "offset": 0, **page})  # right
        | envelope(key, strategy | JSON, counts | JSON)  # nearly right
    )
    if data.draw(st.booleans()):
        body, _ = mutate(data, body, JSON)
    original = copy.deepcopy(body)  # decoding consumes the item list
    outcome: Page[Any] | MalformedResponseError
    try:
        outcome = decode_page(body, key, cls, method="GET", path="/api/v1/esim/x")
    except MalformedResponseError as exc:
        outcome = exc
    event(type(outcome).__name__)
    if isinstance(outcome, MalformedResponseError):
        assert outcome.json_path.startswith("$")
    else:
        assert all(isinstance(item, cls) for item in outcome.items)
        assert outcome.items == [converter.structure(item, cls) for item in original[key]]


@settings(deadline=None)
@given(body=st.binary(max_size=64) | JSON.map(orjson.dumps))
def test_decode_json_parses_or_raises_malformed_response(body: bytes) -> None:
    try:
        decode_json(body, method="GET", path="/x", status=200)
    except MalformedResponseError as exc:
        path = exc.json_path
    else:
        path = "$"
    assert path == "$"


def test_check_page_then_structure_page_is_decode_page() -> None:
    """A scan may check a page when it arrives and build its items when it hands it on."""
    body = {"total": 7, "offset": 5, "count": 2, "sims": [S, {**S, "iccid": "2", "group": 3}]}
    same = copy.deepcopy(body)
    raw = check_page(body, "sims", method="GET", path="/p")
    items = body["sims"]
    assert raw.items is items  # untouched JSON, not a copy
    typed = structure_page(raw, "sims", Sim, method="GET", path="/p")
    assert typed is raw  # in place
    assert items == [None, None]  # consumed: each JSON object freed once its model was built
    assert typed == decode_page(same, "sims", Sim, method="GET", path="/p")
    status = SimStatus.IN_SERVICE
    assert typed.items == [
        Sim(iccid="1", sim_status=status),
        Sim(iccid="2", sim_status=status, group=Ref(id=3)),
    ]


@pytest.mark.parametrize("bad", [0, 1, 3])
def test_structure_page_names_the_bad_item_although_those_before_it_were_consumed(bad: int) -> None:
    sims: list[Any] = [{**S, "iccid": str(n)} for n in range(4)]
    sims[bad] = {**S, "iccid": bad}
    raw = check_page({"total": 4, "offset": 0, "sims": sims}, "sims", method="GET", path="/p")
    with pytest.raises(MalformedResponseError) as info:
        structure_page(raw, "sims", Sim, method="GET", path="/p")
    assert info.value.json_path == f"$.sims[{bad}].iccid"
    assert sims[bad] == {**S, "iccid": bad}


def test_a_page_without_count_counts_its_items() -> None:
    page = decode_page({"total": 1, "offset": 0, "sims": [S]}, "sims", Sim, method="GET", path="/p")
    assert (page.total, page.offset, page.count, len(page)) == (1, 0, 1, 1)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"total": -1, "offset": 0, "sims": []}, "$.total"),
        ({"total": 1, "offset": "0", "sims": []}, "$.offset"),
        ({"total": True, "offset": 0, "sims": []}, "$.total"),
        ({"total": 1, "offset": 0}, "$.sims"),
        ({"total": 1, "offset": 0, "sims": S}, "$.sims"),
        ([], "$"),
    ],
)
def test_a_bad_envelope_names_its_field(body: Any, path: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        decode_page(body, "sims", Sim, method="GET", path="/p")
    assert info.value.json_path == path


# -- the documents' own examples, field by field ----------------------------------------------


def test_seed_sim_registries_example_decodes() -> None:
    body = orjson.loads(
        b"""{"total": 250, "offset": 0, "count": 20, "sims": [{
        "iccid": "89148000004012345678", "sim_status": "WAITING_FOR_ASSIGNMENT",
        "group": {"id": 1001, "name": "Premium Group"},
        "inventory": {"id": 12345, "name": "US East Inventory"},
        "company": {"id": 100, "name": "Acme Corp"},
        "provisioned_date": 1640995200, "terminated_date": 0,
        "imsis": [{"sponsor_id": 200, "imsi": 310260123456789}],
        "mapped_imsi": 310260123456789}]}"""
    )
    original = copy.deepcopy(body)  # decoding consumes the item list
    page = decode_page(body, "sims", Sim, method="GET", path="/p")
    assert (page.total, page.offset, page.count) == (250, 0, 20)
    (sim,) = page.items
    assert sim.iccid == "89148000004012345678"  # fails Luhn, and decodes all the same
    assert sim.sim_status is SimStatus.WAITING_FOR_ASSIGNMENT
    assert sim.group == Ref(id=1001, name="Premium Group")
    assert sim.inventory == Ref(id=12345, name="US East Inventory")
    assert sim.company == Ref(id=100, name="Acme Corp")
    assert sim.provisioned_date == 1640995200
    assert sim.provisioned_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert sim.terminated_date == 0
    assert sim.terminated_at is None
    assert sim.created_date is None
    assert sim.modified_date is None
    assert sim.imsis == [Imsi(sponsor_id=200, imsi=310260123456789)]
    assert sim.mapped_imsi == 310260123456789
    assert dumps(unstructure(sim)) == dumps(original["sims"][0])


def test_partial_sim_of_api_1_0_4_decodes() -> None:
    doc = {
        "iccid": "89148000004012345678",
        "sim_status": "IN_SERVICE",
        "group": 1001,
        "inventory": 12345,
        "company": 100,
        "created_date": 1640995200,
        "modified_date": 1641081600,
        "imsis": [{"sponsor_id": 200, "imsi": 310260123456789}],
        "mapped_imsi": 310260123456789,
    }
    sim = converter.structure(doc, Sim)
    assert sim.sim_status is SimStatus.IN_SERVICE
    assert (sim.group, sim.inventory, sim.company) == (Ref(id=1001), Ref(id=12345), Ref(id=100))
    assert sim.created_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert sim.modified_at == datetime(2022, 1, 2, tzinfo=UTC)
    assert sim.provisioned_date is None
    assert dumps(unstructure(sim)) == dumps(doc)


def test_seed_inventories_example_decodes() -> None:
    body = orjson.loads(
        b"""{"total": 1, "offset": 0, "count": 1, "inventories": [{
        "id": 51952, "name": "Betatel LTD Inventory 1", "created_date": 1761330317000,
        "modified_date": 1761330317000, "company": 72571, "parent_inventory": 1,
        "status": "Active", "wallet": 99612820, "whitelist": 11599}]}"""
    )
    original = copy.deepcopy(body)  # decoding consumes the item list
    page = decode_page(body, "inventories", Inventory, method="GET", path="/p")
    assert (page.total, page.offset, page.count) == (1, 0, 1)
    (inventory,) = page.items
    assert inventory.id == 51952
    assert inventory.name == "Betatel LTD Inventory 1"
    assert inventory.created_date == inventory.modified_date == 1761330317000
    assert inventory.created_at == datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)
    assert inventory.company == 72571
    assert inventory.parent_inventory == 1
    assert inventory.status == "Active"
    assert type(inventory.status) is str  # not a member: the documented enum is upper case
    assert inventory.is_active
    assert inventory.wallet == 99612820
    assert inventory.whitelist == 11599
    assert (inventory.note, inventory.deleted_date, inventory.deactivated_date) == (None, None, None)
    assert dumps(unstructure(inventory)) == dumps(original["inventories"][0])


def test_seed_packages_example_decodes() -> None:
    body = orjson.loads(
        b"""{"total": 100, "offset": 0, "count": 20, "packages": [{
        "id": "pkg_123456", "sim": "89148000004012345678", "package_template": 21145354,
        "status": "ACTIVE", "created_date": 1761330317000, "activated_date": 1761330517000,
        "expiry_date": 1763922517000}]}"""
    )
    original = copy.deepcopy(body)  # decoding consumes the item list
    page = decode_page(body, "packages", Package, method="GET", path="/p")
    assert (page.total, page.offset, page.count) == (100, 0, 20)
    (package,) = page.items
    assert package.id == "pkg_123456"
    assert package.sim == "89148000004012345678"
    assert package.package_template == 21145354
    assert package.package_template_id == 21145354
    assert package.status is PackageStatus.ACTIVE
    assert package.created_at == datetime(2025, 10, 24, 18, 25, 17, tzinfo=UTC)
    assert package.activated_at == datetime(2025, 10, 24, 18, 28, 37, tzinfo=UTC)
    assert package.expires_at == datetime(2025, 11, 23, 18, 28, 37, tzinfo=UTC)
    assert package.terminated_at is None
    assert package.reconciled is False
    assert dumps(unstructure(package)) == dumps(original["packages"][0])


def test_create_package_response_decodes() -> None:
    """The create response's documented fields (values illustrative): template as an object, plus apn."""
    doc = {
        "id": "pkg_123457",
        "sim": "89148000004012345678",
        "created_date": 1761330317000,
        "expiry_date": 0,
        "activated_date": 0,
        "terminated_date": 0,
        "window_activation_start": 1761330317000,
        "window_activation_end": 1776882317000,
        "status": "NOT_ACTIVE",
        "voice_usage_remaining": 100,
        "data_usage_remaining": 21474836480,
        "sms_usage_remaining": 100,
        "time_allowance": 2592000,
        "package_template": {
            "id": 21145354,
            "name": "Europe 20 GB / 30 days",
            "voice_usage_allowance": 100,
            "data_usage_allowance": 21474836480,
            "sms_usage_allowance": 100,
            "time_allowance": {"unit": "DAY", "duration": 30},
            "activation_time_allowance": 15552000,
        },
        "apn": "betatel",
    }
    package = decode_model(doc, Package, method="POST", path="/p", status=201)
    template = package.package_template
    assert isinstance(template, PackageTemplateInfo)
    assert package.package_template_id == 21145354
    assert template.name == "Europe 20 GB / 30 days"
    assert template.time_allowance == TimeAllowance(unit=TimeUnit.DAY, duration=30)
    assert template.activation_time_allowance == 15552000
    assert package.status is PackageStatus.NOT_ACTIVE
    assert package.apn == "betatel"
    assert package.time_allowance == 2592000
    assert package.expires_at is None
    assert package.window_activation_end_at == datetime(2026, 4, 22, 18, 25, 17, tzinfo=UTC)
    assert dumps(unstructure(package)) == dumps(doc)


# -- the generator's other paths --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Checked:
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    size: int = 5
    tags: list[str] = attrs.Factory(list)
    unit: TimeUnit | str | None = None


@attrs.define(kw_only=True)
class _Plain:
    label: str | None = None
    items: list[_Checked] | None = None
    seen: int = attrs.field(default=0)


def fresh_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False)
    configure_converter(conv, detailed=False)
    return conv


def test_generated_hooks_call_init_where_it_does_more_than_store() -> None:
    conv = fresh_converter()
    checked = make_fast_structure_fn(_Checked, conv)
    conv.register_structure_hook(_Checked, checked)
    assert checked({"name": "a"}) == _Checked(name="a", size=5, tags=[])
    assert checked({"name": "a", "size": 7, "tags": ["x"], "unit": "DAY"}, _Checked) == _Checked(
        name="a", size=7, tags=["x"], unit=TimeUnit.DAY
    )
    with pytest.raises(ValueError, match="name"):
        checked({"name": ""})  # the validator ran
    with pytest.raises(TypeError):
        checked({"name": "a", "size": None})  # null is not "absent" for a field whose default is not None
    plain = make_fast_structure_fn(_Plain, conv, omit=("seen",))
    built = plain({"label": "l", "items": [{"name": "b"}], "seen": 9})
    assert built == _Plain(label="l", items=[_Checked(name="b")], seen=0)
    assert make_fast_list_structure_fn(_Plain, conv)([{}, {"label": "m"}]) == [_Plain(), _Plain(label="m")]


def test_a_field_omitted_from_json_needs_a_default() -> None:
    @attrs.define
    class NoDefault:
        x: int

    with pytest.raises(TypeError, match="no default"):
        make_fast_structure_fn(NoDefault, fresh_converter(), omit=("x",))


def test_generated_source_is_in_tracebacks() -> None:
    structure: Callable[..., Any] = converter.get_structure_hook(Sim)
    with pytest.raises(TypeError) as info:
        structure({"iccid": 1})
    frames = traceback.extract_tb(info.value.__traceback__)
    generated = [frame for frame in frames if frame.filename.startswith("<betatel_async generated")]
    assert generated
    assert generated[-1].line == "raise _wrong('a string', v2)"


@settings(deadline=None, max_examples=200)
@given(
    sims=st.lists(
        st.fixed_dictionaries(
            {"iccid": TEXT, "sim_status": TEXT},
            optional={
                "group": INTS | st.none() | st.fixed_dictionaries({"id": INTS, "name": TEXT}),
                "imsis": st.lists(IMSI, max_size=2) | st.none(),
                "mapped_imsi": INTS | st.none(),
            },
        ),
        max_size=6,
    )
)
def test_list_function_builds_what_the_single_hook_builds_when_keys_are_missing(
    sims: list[dict[str, Any]],
) -> None:
    """The list function reads keys with ``o[key]``; an item without one is built the ``.get`` way."""
    structure_sim: Callable[..., Any] = converter.get_structure_hook(Sim)
    assert make_fast_list_structure_fn(Sim, converter)(sims) == [structure_sim(sim) for sim in sims]


# -- required fields: an answer without one fails, naming it ----------------------------------

# A valid document of every model, with every required field (and only those where possible).
MINIMAL: dict[type, dict[str, Any]] = {
    Sim: S,
    Imsi: {"sponsor_id": 200, "imsi": 310260123456789},
    Inventory: INV,
    TimeAllowance: TA,
    PackageTemplateInfo: INFO,
    PackageTemplate: T,
    Package: P,
    Country: {"name": "France", "iso2": "FR", "iso3": "FRA"},
    ProfileReusePolicy: {"reuse_type": "SAME_EID", "max_count": 3},
    EuiccProfile: E,
    DataProfile: PCR["data"],
    ServiceProfile: PCR["voice"],
    WalletOwner: {},
    Wallet: PCR["wallets"][0],
    PcrProfile: PCR,
    ApiStatus: {"status": "ok", "version": "1.0.4"},
}
REQUIRED = [
    pytest.param(cls, a.name, id=f"{cls.__name__}.{a.name}")
    for cls in MINIMAL
    for a in attrs.fields(cls)
    if a.default is attrs.NOTHING
]


def test_every_model_has_a_minimal_document() -> None:
    from betatel_async._converter import _MODELS

    assert set(MINIMAL) == set(_MODELS)
    for cls, doc in MINIMAL.items():
        assert dumps(unstructure(decode_model(doc, cls, method="GET", path="/p"))) == dumps(doc)


@pytest.mark.parametrize(("cls", "field"), REQUIRED)
def test_a_missing_required_field_fails_on_both_paths_naming_it(cls: type, field: str) -> None:
    doc = {key: value for key, value in MINIMAL[cls].items() if key != field}
    with pytest.raises(KeyError):
        converter.structure(doc, cls)  # the fast path
    with pytest.raises(cattrs.BaseValidationError):
        _detailed().structure(doc, cls)  # the detailed path
    with pytest.raises(MalformedResponseError) as info:
        decode_model(doc, cls, method="GET", path="/p")
    assert info.value.json_path == f"$.{field}"
    assert f"$.{field}: required field missing" in str(info.value)


@pytest.mark.parametrize(
    ("key", "cls", "field"),
    [
        (key, cls, a.name)
        for key, cls in (
            ("sims", Sim),
            ("inventories", Inventory),
            ("packages", Package),
            ("package_templates", PackageTemplate),
            ("countries", Country),
        )
        for a in attrs.fields(cls)
        if a.default is attrs.NOTHING
    ],
)
def test_a_page_item_without_a_required_field_fails_naming_it(key: str, cls: type, field: str) -> None:
    """The list functions' ``o[key]`` path, then the per-item fallback: neither lets it through."""
    items = [MINIMAL[cls], {k: v for k, v in MINIMAL[cls].items() if k != field}, MINIMAL[cls]]
    with pytest.raises(MalformedResponseError) as info:
        decode_page({"total": 3, "offset": 0, key: items}, key, cls, method="GET", path="/p")
    assert info.value.json_path == f"$.{key}[1].{field}"


def test_the_older_sim_shape_fails_loudly_naming_sim_status() -> None:
    """The docs site's ``{iccid, status, inventory_id, profile_data}``: no empty Sim."""
    older = {"iccid": "89148000004012345678", "status": "active", "inventory_id": 12345, "profile_data": {}}
    with pytest.raises(MalformedResponseError) as info:
        decode_model(older, Sim, method="GET", path="/api/v1/esim/sim-registries/89148000004012345678")
    assert info.value.json_path == "$.sim_status"
    with pytest.raises(MalformedResponseError) as info:
        decode_page({"total": 1, "offset": 0, "sims": [older]}, "sims", Sim, method="GET", path="/p")
    assert info.value.json_path == "$.sims[0].sim_status"


def test_a_reference_object_without_its_name_fails() -> None:
    """The bare id is the shape without a name; an {id, name} object must carry both."""
    with pytest.raises(MalformedResponseError) as info:
        decode_model({**S, "inventory": {"id": 12345}}, Sim, method="GET", path="/p")
    assert info.value.json_path == "$.inventory.name"
    for conv in (converter, _detailed()):  # the Ref hooks themselves, not only as inlined in Sim's
        assert conv.structure({"id": 1, "name": "n"}, Ref) == Ref(id=1, name="n")
        assert conv.structure(1, Ref) == Ref(id=1)
        for bad in ({"id": 1}, {"id": 1, "name": None}):
            with pytest.raises(Exception):  # noqa: B017, PT011 - KeyError, TypeError or a validation group
                conv.structure(bad, Ref)


# -- package_template: three shapes, told apart by keys ---------------------------------------


def test_the_three_package_template_shapes() -> None:
    listed = decode_model(P, Package, method="GET", path="/p")
    assert listed.package_template == 7
    created = decode_model({**P, "package_template": INFO}, Package, method="POST", path="/p", status=201)
    assert type(created.package_template) is PackageTemplateInfo
    full = {**T, "traffic_policy": 3, "voice_usage_allowance": 100, "notes": "n", "apn": "betatel"}
    detailed = decode_model({**P, "package_template": full}, Package, method="GET", path="/p")
    template = detailed.package_template
    assert type(template) is PackageTemplate
    assert (template.traffic_policy, template.notes, template.apn) == (3, "n", "betatel")
    assert template.supported_countries == ["FRA", "DEU"]
    assert template.status is PackageTemplateStatus.ACTIVE
    for package, template_id in ((listed, 7), (created, 21145354), (detailed, 21145354)):
        assert package.package_template_id == template_id
    assert unstructure(detailed)["package_template"] == full
    assert unstructure(created)["package_template"] == INFO


@pytest.mark.parametrize(
    "key", ["supported_countries", "activation_type", "created_date", "modified_date", "status"]
)
def test_a_template_object_with_any_full_template_key_is_a_full_template(key: str) -> None:
    """So a full template missing one field fails naming it, instead of decoding as the info."""
    partial = {**INFO, key: T[key]}
    with pytest.raises(MalformedResponseError) as info:
        decode_model({**P, "package_template": partial}, Package, method="GET", path="/p")
    # cattrs reports the first missing field in declaration order.
    full_only = {"supported_countries", "activation_type", "created_date", "modified_date", "status"}
    missing = [a.name for a in attrs.fields(PackageTemplate) if a.name in full_only - {key}]
    assert info.value.json_path == f"$.package_template.{missing[0]}"


def test_a_full_template_missing_a_field_is_named() -> None:
    broken = {k: v for k, v in T.items() if k != "time_allowance"}
    with pytest.raises(MalformedResponseError) as info:
        decode_model({**P, "package_template": broken}, Package, method="GET", path="/p")
    assert info.value.json_path == "$.package_template.time_allowance"


# -- eUICC profile: the older wrapped shape ---------------------------------------------------


def test_a_wrapped_euicc_profile_decodes_as_the_bare_one() -> None:
    full = {
        **E,
        "reuse_remaining_count": 2,
        "reuse_enabled": True,
        "profile_reuse_policy": {"reuse_type": "SAME_EID", "max_count": 3},
        "release_date": 1761330517000,
        "cc_required": False,
        "cc_retries": 0,
        "eid": "89049032000001000000000000000000",
    }
    bare = decode_model(full, EuiccProfile, method="GET", path="/p")
    wrapped = decode_model({"profile": full}, EuiccProfile, method="GET", path="/p")
    assert wrapped == bare
    assert bare.state is EuiccProfileState.RELEASED
    assert bare.profile_reuse_policy == ProfileReusePolicy(reuse_type=ReuseType.SAME_EID, max_count=3)
    assert bare.released_at == datetime(2025, 10, 24, 18, 28, 37, tzinfo=UTC)
    assert bare.activation_code == "LPA:1$smdp.example$MATCHING-ID"
    assert unstructure(wrapped) == full


def test_a_wrapped_euicc_profile_missing_a_field_names_it_inside_the_wrapper() -> None:
    inner = {k: v for k, v in E.items() if k != "activation_code"}
    with pytest.raises(MalformedResponseError) as info:
        decode_model({"profile": inner}, EuiccProfile, method="GET", path="/p")
    assert info.value.json_path == "$.profile.activation_code"


def test_only_an_object_without_iccid_is_unwrapped() -> None:
    """A profile that one day carries a ``profile`` key of its own is not mistaken for a wrapper."""
    grown = {**E, "profile": {"iccid": "other"}}
    assert decode_model(grown, EuiccProfile, method="GET", path="/p").iccid == E["iccid"]
    with pytest.raises(MalformedResponseError) as info:
        decode_model({"profile": "x"}, EuiccProfile, method="GET", path="/p")
    assert info.value.json_path == "$.iccid"


# -- the rest of API 1.0.4: the facts file's examples ------------------------------------------


def test_pcr_profile_decodes_every_part() -> None:
    doc = {
        **PCR,
        "wallets": [
            *PCR["wallets"],
            {
                "id": 10,
                "owner": {"sim": "89148000004012345678"},
                "balance": 0,
                "overdraft": 100,
                "wallet_type": "SIM",
            },
        ],
        "route_policy": 4,
    }
    pcr = decode_model(doc, PcrProfile, method="GET", path="/p")
    assert pcr.data == DataProfile(state=ServiceState.ENABLED, active_throttling=Throttling.NO_LIMIT)
    assert (pcr.voice.state, pcr.sms.state) == (ServiceState.ENABLED, ServiceState.DISABLED)
    assert pcr.wallets[0].owner == WalletOwner(group=1001)
    assert pcr.wallets[1].owner == WalletOwner(sim="89148000004012345678")
    assert pcr.wallets[1].wallet_type is WalletType.SIM
    assert (pcr.wallet_mode, pcr.route_policy) == (WalletMode.SIM, 4)
    assert unstructure(pcr) == doc


@pytest.mark.parametrize(("status", "ok"), [("ok", True), ("error", False), ("OK", False)])
def test_api_status(status: str, ok: bool) -> None:
    health = decode_model(
        {"status": status, "version": "1.0.4", "uptime": 86400}, ApiStatus, method="GET", path="/p"
    )
    assert health.ok is ok
    assert (health.version, health.uptime) == ("1.0.4", 86400)
