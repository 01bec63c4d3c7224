"""Every model of ours against the vendor's declaration of it, field by field.

``tests/data/betatel-api-1.0.4-models.json`` is a copy of the models file in
the project's API documents: every model of API 1.0.4 as the vendor's
generated Kotlin client declares it (JSON name, type, required flag). A copy,
so that the test runs from a clean clone.

For each of our models and the vendor model(s) it stands for (``VENDOR_MODELS``):

- the JSON names are the same set (a field added by hand or forgotten fails);
- each field's type is compatible both ways: every vendor type is matched by
  one of our type's alternatives, and every alternative of ours matches a
  vendor type (String -> ``str``, Int/Long -> ``int``, Boolean -> ``bool``,
  ``List<X>`` -> ``list[...]``, an enum -> our open enum ``| str`` holding
  every vendor value, a vendor model -> ours that stands for it);
- a field is required in ours exactly when every vendor shape requires it.

Where a model of ours decodes several vendor shapes, or a seed document's
example lacks a field the vendor requires, the difference is listed in
``EXCEPTIONS`` with its reason, and an exception that is no longer needed
fails too: nothing is lenient without saying so here.
"""

from __future__ import annotations

import enum
import json
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs
import pytest

from betatel_async._converter import _LOCAL_FIELDS, _MODELS
from betatel_async._models import (
    ApiStatus,
    Country,
    DataProfile,
    EuiccProfile,
    Imsi,
    Inventory,
    Package,
    PackageTemplate,
    PackageTemplateInfo,
    PcrProfile,
    ProfileReusePolicy,
    Ref,
    ServiceProfile,
    Sim,
    TimeAllowance,
    Wallet,
    WalletOwner,
)

MODELS_FILE = Path(__file__).parent / "data" / "betatel-api-1.0.4-models.json"
VENDOR: dict[str, Any] = json.loads(MODELS_FILE.read_text(encoding="utf-8"))["models"]

# Ours -> the vendor model(s) it stands for (one class decoding several shapes).
VENDOR_MODELS: dict[type, tuple[str, ...]] = {
    Sim: ("ESIM", "ESIMPartial"),
    Ref: ("ESIMGroup", "ESIMInventory", "ESIMCompany"),
    Imsi: ("IMSI",),
    Inventory: ("Inventory",),
    TimeAllowance: ("TimeAllowance",),
    PackageTemplateInfo: ("CreatePackageResponsePackageTemplate", "CreatePackageTemplateResponse"),
    PackageTemplate: ("PackageTemplate",),
    Package: ("Package", "CreatePackageResponse"),
    Country: ("Country",),
    ProfileReusePolicy: ("ProfileReusePolicy",),
    EuiccProfile: ("GetEUICCProfileResponse",),
    DataProfile: ("DataProfile",),
    ServiceProfile: ("ServiceProfile",),
    WalletOwner: ("WalletOwner",),
    Wallet: ("Wallet",),
    PcrProfile: ("GetPCRProfileResponse",),
    ApiStatus: ("StatusResponse",),
}

# Vendor models that are not one of our response models, and why.
NOT_RESPONSE_MODELS: dict[str, str] = {
    "CreatePackageRequest": "a request body: the resources build it from keyword arguments",
    "CreatePackageTemplateRequest": "a request body",
    "ModifyPCRProfileRequest": "a request body (PUT /sim-pcr-profiles)",
    "ModifyPCRProfileRequestData": "part of a request body",
    "ModifyPCRProfileRequestSms": "part of a request body",
    "ModifyPCRProfileRequestVoice": "part of a request body",
    "Error": "an error body: its message goes on the exception (transport)",
    "GetCountriesResponse": "a list envelope: Page[Country]",
    "GetESIMsResponse": "a list envelope: Page[Sim]",
    "GetInventoriesResponse": "a list envelope: Page[Inventory]",
    "GetPackageTemplatesResponse": "a list envelope: Page[PackageTemplate]",
    "GetPackagesResponse": "a list envelope: Page[Package]",
}

# Strategy: one table of every place where ours differs from a vendor shape.
# (our model, JSON name) -> (what differs, why). "optional" = the vendor
# requires it in some shape and ours does not; "type" = a vendor type that
# none of our alternatives matches, or an alternative of ours no vendor type
# matches.
EXCEPTIONS: dict[tuple[type, str], tuple[str, str]] = {
    # A SIM list item of API 1.0.4 (ESIMPartial) sends these as bare Int ids,
    # the full SIM (ESIM) and the seed document as {id, name} objects: both
    # decode to Ref (a bare id as Ref(id, name=None)).
    (Sim, "group"): ("type", "ESIMPartial sends an Int id, decoded as Ref(id)"),
    (Sim, "inventory"): ("type", "ESIMPartial sends an Int id, decoded as Ref(id)"),
    (Sim, "company"): ("type", "ESIMPartial sends an Int id, decoded as Ref(id)"),
    # Ref also stands for that bare id, which has no name. In the object form
    # the name is required all the same (the converter's hook checks it).
    (Ref, "name"): ("optional", "None only for a bare id; an {id, name} object must have it"),
    # Package is both the vendor's Package (list item and detail) and
    # CreatePackageResponse. These are required in the create response only;
    # the seed document's list example has none of them.
    (Package, "created_date"): ("optional", "required in CreatePackageResponse only"),
    (Package, "expiry_date"): ("optional", "required in CreatePackageResponse only"),
    (Package, "window_activation_start"): ("optional", "required in CreatePackageResponse only"),
    (Package, "window_activation_end"): ("optional", "required in CreatePackageResponse only"),
    (Package, "voice_usage_remaining"): ("optional", "required in CreatePackageResponse only"),
    (Package, "data_usage_remaining"): ("optional", "required in CreatePackageResponse only"),
    (Package, "sms_usage_remaining"): ("optional", "required in CreatePackageResponse only"),
    (Package, "time_allowance"): ("optional", "required in CreatePackageResponse only"),
    # The vendor's Package says package_template is a PackageTemplate object,
    # but lists send its int id (the seed document's GET /packages example).
    (Package, "package_template"): ("type", "an int id in lists (seed document)"),
    # The health status is kept as sent ("ok" or "error"); ApiStatus.ok reads it.
    (ApiStatus, "status"): ("type", "kept as plain str, read through ApiStatus.ok"),
}

_SCALARS: dict[str, type] = {"String": str, "Int": int, "Long": int, "Boolean": bool}
_LIST = re.compile(r"^List<(.+)>$")


def alternatives(tp: Any) -> list[Any]:
    """Our type's alternatives: ``None`` dropped, an open enum ``E | str`` as one ``("enum", E)``."""
    args = get_args(tp) if isinstance(tp, types.UnionType) or get_origin(tp) is Union else (tp,)
    alts = [arg for arg in args if arg is not type(None)]
    enums = [arg for arg in alts if isinstance(arg, type) and issubclass(arg, enum.StrEnum)]
    for enum_cls in enums:
        assert str in alts, f"{enum_cls.__name__} is not open (no | str)"
        alts = [arg for arg in alts if arg not in (enum_cls, str)] + [("enum", enum_cls)]
    return alts


def vendor_enum(ref: str) -> list[str] | None:
    """The values of a vendor enum type ``Model.Enum``, or ``None`` if ``ref`` names no enum."""
    model, _, name = ref.partition(".")
    if not name:
        return None
    values: list[str] = VENDOR[model]["enums"][name]
    return values


def matches(vendor_type: str, ours: Any) -> bool:
    """Whether one alternative of our type stands for the vendor type."""
    if vendor_type in _SCALARS:
        return ours is _SCALARS[vendor_type]
    if (element := _LIST.match(vendor_type)) is not None:
        return get_origin(ours) is list and any(
            matches(element[1], alt) for alt in alternatives(get_args(ours)[0])
        )
    if (values := vendor_enum(vendor_type)) is not None:
        return isinstance(ours, tuple) and set(values) <= {member.value for member in ours[1]}
    return isinstance(ours, type) and vendor_type in VENDOR_MODELS.get(ours, ())


def vendor_fields(name: str) -> dict[str, dict[str, Any]]:
    return {field["json"]: field for field in VENDOR[name]["fields"]}


def our_fields(cls: type) -> dict[str, attrs.Attribute[Any]]:
    attrs.resolve_types(cls)  # type: ignore[type-var]
    local = _LOCAL_FIELDS.get(cls, ())
    return {a.name: a for a in attrs.fields(cls) if a.name not in local}


def differences(cls: type) -> tuple[list[str], set[tuple[str, str]]]:
    """(differences not excused, every (field, kind) of difference seen) of one model of ours."""
    shapes = [vendor_fields(name) for name in VENDOR_MODELS[cls]]
    ours = our_fields(cls)
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    names = set().union(*shapes)
    problems += [
        f"{cls.__name__}.{name}: in the vendor's model, not in ours" for name in sorted(names - set(ours))
    ]
    problems += [f"{cls.__name__}.{name}: in ours, not in the vendor's" for name in sorted(set(ours) - names)]
    for name in sorted(names & set(ours)):
        attribute = ours[name]
        declared = [shape[name] for shape in shapes if name in shape]
        alts = alternatives(attribute.type)
        vendor_types = [field["type"] for field in declared]
        unmatched = [t for t in vendor_types if not any(matches(t, alt) for alt in alts)]
        extra = [alt for alt in alts if not any(matches(t, alt) for t in vendor_types)]
        if unmatched or extra:
            seen.add((name, "type"))
            if EXCEPTIONS.get((cls, name), ("",))[0] != "type":
                problems.append(f"{cls.__name__}.{name}: {attribute.type} against {vendor_types}")
        required_by_all = all(field["required"] for field in declared)
        required_by_some = any(field["required"] for field in declared)
        required = attribute.default is attrs.NOTHING
        flags = [field["required"] for field in declared]
        if required and not required_by_all:
            problems.append(f"{cls.__name__}.{name}: required={required}, vendor {flags}")
        if not required and required_by_some:
            seen.add((name, "optional"))
            if EXCEPTIONS.get((cls, name), ("",))[0] != "optional":
                problems.append(f"{cls.__name__}.{name}: required={required}, vendor {flags}")
        if not required and attribute.default is not None:
            problems.append(f"{cls.__name__}.{name}: optional, so its default must be None")
    return problems, seen


@pytest.mark.parametrize("cls", list(VENDOR_MODELS), ids=lambda cls: cls.__name__)
def test_model_matches_the_vendors_declaration_field_by_field(cls: type) -> None:
    problems, _ = differences(cls)
    assert problems == []


@pytest.mark.parametrize("cls", list(VENDOR_MODELS), ids=lambda cls: cls.__name__)
def test_every_exception_is_still_needed(cls: type) -> None:
    _, seen = differences(cls)
    listed = {(name, kind) for (model, name), (kind, _) in EXCEPTIONS.items() if model is cls}
    assert listed - seen == set(), "an exception no longer needed: remove it from EXCEPTIONS"


def test_every_vendor_model_is_ours_or_said_not_to_be() -> None:
    mapped = {name for names in VENDOR_MODELS.values() for name in names}
    assert mapped.isdisjoint(NOT_RESPONSE_MODELS)
    assert mapped | set(NOT_RESPONSE_MODELS) == set(VENDOR)


def test_every_model_the_converter_registers_is_checked() -> None:
    assert set(_MODELS) | {Ref} == set(VENDOR_MODELS)


# -- the checker itself: a field added by hand, forgotten, retyped or loosened fails ----------


@attrs.define(kw_only=True)
class _Added:
    name: str
    iso2: str
    iso3: str
    flag: str | None = None


@attrs.define(kw_only=True)
class _Forgotten:
    name: str
    iso2: str


@attrs.define(kw_only=True)
class _Retyped:
    name: str
    iso2: str
    iso3: int


@attrs.define(kw_only=True)
class _Loosened:
    name: str
    iso2: str
    iso3: str | None = None


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (_Added, "_Added.flag: in ours, not in the vendor's"),
        (_Forgotten, "_Forgotten.iso3: in the vendor's model, not in ours"),
        (_Retyped, "_Retyped.iso3: <class 'int'> against ['String']"),
        (_Loosened, "_Loosened.iso3: required=False, vendor [True]"),
    ],
)
def test_the_checker_sees_each_kind_of_difference(
    cls: type, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VENDOR_MODELS, cls, ("Country",))
    problems, _ = differences(cls)
    assert expected in problems
