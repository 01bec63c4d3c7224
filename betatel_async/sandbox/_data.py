"""The sandbox's world: deterministic fake data, and the operations the API performs on it.

Everything here is plain synchronous Python with no HTTP in sight: the web
layer (`_app`) parses requests and calls these methods, and tests call them
directly to set up or inspect a scenario.

Strategy: each row is stored once as the JSON-ready dict the API sends (SIMs
in the full ``{id, name}`` "objects" shape), in listing order, in a `_Table`
that caches each row's JSON and, per listing, the list of those encodings: a
page of 1000 is a list slice and one ``bytes.join``, with no per-row work. The
default SIM listing is encoded while generating, so even a first scan is
served from the cache. Everything runs on the event loop's thread, so nothing
is locked.

Timestamps follow the API's units: SIMs and eUICC profiles in seconds;
inventories, packages and package templates in milliseconds; 0 means "not set".
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import operator
import random
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import orjson

from ._config import SimShape
from ._countries import COUNTRIES, EUROPE, GLOBAL
from ._errors import SandboxError
from ._profiles import check_pcr_update, draw_euicc_profile, draw_pcr_profile

__all__ = [
    "ICCID_PREFIX",
    "PACKAGE_STATUSES",
    "SIM_STATUSES",
    "Resource",
    "Row",
    "SandboxData",
    "SandboxError",
]

#: A JSON-ready object as the API sends it.
Row = dict[str, Any]
#: A listing's name, which is also its key in the response envelope.
Resource = Literal["inventories", "sims", "packages", "package_templates", "countries"]

SIM_STATUSES: Final = ("WAITING_FOR_ASSIGNMENT", "PRE_SERVICE", "IN_SERVICE", "TERMINATED")
PACKAGE_STATUSES: Final = ("NOT_ACTIVE", "ACTIVE", "SUSPENDED", "TERMINATED")
#: Every generated ICCID is this prefix plus a zero-padded 10-digit serial:
#: 20 digits, so string order is serial order. No Luhn digit: the documented
#: example ICCID fails Luhn too, and clients must not reject that.
ICCID_PREFIX: Final = "8914800000"
_SERIAL_LIMIT = 10**10

# The generated world's "now" and "beginning", in seconds (2025-10-09, 2020-09-13).
_GENERATED_AT = 1_760_000_000
_EPOCH_START = 1_600_000_000
_DAY = 86_400
_MB = 1024 * 1024

_COMPANY_NAMES = (
    "Acme Corp",
    "Betatel LTD",
    "Globex Logistics",
    "Initech Mobility",
    "Umbrella Fleet",
    "Stark Telematics",
    "Wayne Sensors",
    "Hooli IoT",
    "Vandelay Imports",
    "Tyrell Devices",
    "Cyberdyne Systems",
    "Wonka Industries",
)
_GROUP_NAMES = (
    "Premium Group",
    "Standard Group",
    "IoT Fleet",
    "Staff Devices",
    "Trial",
    "Point of Sale",
    "Vehicles",
)
_INVENTORY_STATUSES = ("Active", "ACTIVE", "NOT_ACTIVE")
#: IMSI sponsors: id, mobile network, MCC+MNC (the IMSI's leading digits).
_SPONSORS = (
    (200, "T-Mobile US", "310260"),
    (201, "Vodafone UK", "23415"),
    (202, "Orange FR", "20801"),
)
_SPONSOR_CUMULATIVE = (0.60, 0.85, 1.0)  # a SIM's first IMSI: 60 % sponsor 200, 25 % 201, 15 % 202
# Per sponsor: id, its 15-digit IMSIs' lowest value, how many MSINs follow its MCC+MNC.
_SPONSOR_IMSIS = tuple(
    (sponsor_id, int(mcc_mnc.ljust(15, "0")), int("1".ljust(16 - len(mcc_mnc), "0")))
    for sponsor_id, _, mcc_mnc in _SPONSORS
)
_SIM_STATUS_CUMULATIVE = (0.20, 0.35, 0.90, 1.0)  # 20 % waiting, 15 % pre-service, 55 % in service
_UNIT_SECONDS = {
    "SECOND": 1,
    "MINUTE": 60,
    "HOUR": 3600,
    "DAY": _DAY,
    "WEEK": 7 * _DAY,
    "MONTH": 30 * _DAY,
    "CALENDAR_MONTH": 31 * _DAY,
    "YEAR": 365 * _DAY,
}
# name, countries, data MB, voice minutes, SMS, time unit, duration, activation type, status
_TEMPLATES = (
    ("Europe 5 GB / 30 days", EUROPE, 5 * 1024, 0, 0, "DAY", 30, "AUTO", "Active"),
    ("Europe 20 GB / 30 days", EUROPE, 20 * 1024, 100, 100, "DAY", 30, "AUTO", "Active"),
    ("USA 10 GB / month", ("USA",), 10 * 1024, 500, 500, "MONTH", 1, "MANUAL", "Active"),
    ("Global 1 GB / 7 days", GLOBAL, 1024, 0, 0, "WEEK", 1, "AUTO", "Active"),
    ("Global 3 GB / 15 days", GLOBAL, 3 * 1024, 0, 0, "DAY", 15, "AUTO", "Active"),
    ("IoT 50 MB / year", GLOBAL, 50, 0, 10, "YEAR", 1, "AUTO", "Active"),
    ("IoT 500 MB / calendar month", GLOBAL, 500, 0, 0, "CALENDAR_MONTH", 1, "AUTO", "Active"),
    ("Asia 10 GB / 30 days", ("JPN", "KOR", "SGP", "THA"), 10 * 1024, 0, 0, "DAY", 30, "MANUAL", "Active"),
    ("Day pass 1 GB / 24 hours", GLOBAL, 1024, 0, 0, "HOUR", 24, "AUTO", "Not Active"),
    ("Americas 2 GB / 30 days", ("BRA", "CAN", "MEX", "USA"), 2048, 0, 0, "DAY", 30, "MANUAL", "De-activated"),
)  # fmt: skip
# Traffic policies are ids (ints) of policies defined elsewhere in the platform.
_DEFAULT_TRAFFIC_POLICY = 1
_FAIR_USE_POLICY = 2
_TEMPLATE_SUMMARY_KEYS = (
    "id",
    "name",
    "voice_usage_allowance",
    "data_usage_allowance",
    "sms_usage_allowance",
    "time_allowance",
    "activation_time_allowance",
)
_SHAPES: Final[Mapping[str, int]] = {"objects": 0, "ids": 1, "mixed": -1}  # SIM encoders
_MAX_LISTINGS = 256  # filter combinations cached per table before the cache starts over


def _encode_sim_ids(row: Row) -> bytes:
    # API 1.0.4's "partial" SIM: group, inventory and company as bare ids.
    return orjson.dumps(
        {
            **row,
            "group": row["group"]["id"],
            "inventory": row["inventory"]["id"],
            "company": row["company"]["id"],
        }
    )


class _Table:
    """Rows of one resource in listing order, with cached encodings. Private.

    Rows are the live dicts; whoever changes one in place calls `changed`.

    Strategy: each row's JSON is cached by key and shape, and each listing (a
    filter combination and a shape) caches the list of its rows' encodings, so
    a page is a slice of that list: no per-row work at all. A change patches
    the unfiltered listings and drops the others, which the next page asking
    for them rebuilds from the per-row cache.
    """

    __slots__ = ("_encoded", "_encoders", "_fields", "_key", "_listings", "by_key", "rows")

    def __init__(
        self,
        key: str,
        rows: list[Row],
        *,
        encoders: Sequence[Callable[[Row], bytes]] = (orjson.dumps,),
        fields: Mapping[str, Callable[[Row], object]] | None = None,
    ) -> None:
        self._key = key
        self.rows = rows
        self.by_key: dict[Hashable, Row] = {row[key]: row for row in rows}
        self._encoders = encoders
        self._encoded: list[dict[Hashable, bytes]] = [{} for _ in encoders]
        self._fields = fields or {}
        self._listings: dict[tuple[tuple[tuple[str, object], ...], int], list[bytes]] = {}

    @property
    def filter_names(self) -> Collection[str]:
        return self._fields.keys()

    def view(self, filters: Mapping[str, object], base: Sequence[Row] | None = None) -> list[Row]:
        """The rows matching every filter, in listing order (``rows`` itself when unfiltered).

        ``base``, when given, is a superset of the answer already narrowed by an index.
        """
        if not filters:
            return self.rows
        tests = [(self._fields[name], value) for name, value in filters.items()]
        return [row for row in (self.rows if base is None else base) if _matches(row, tests)]

    def page(
        self,
        filters: Mapping[str, object],
        offset: int,
        count: int,
        shape: int,
        base: Sequence[Row] | None = None,
    ) -> tuple[int, list[bytes]]:
        """``(total, encodings)`` of one page; see `encode_rows` for ``shape``."""
        if base is not None:  # narrowed by an index: small, not worth caching
            view = self.view(filters, base)
            return len(view), self.encode_rows(view[offset : offset + count], shape, offset)
        listing_key = (tuple(sorted(filters.items())), shape)
        encoded = self._listings.get(listing_key)
        if encoded is None:
            encoded = self.encode_rows(self.view(filters), shape, 0)
            if len(self._listings) >= _MAX_LISTINGS:
                self._listings.clear()
            self._listings[listing_key] = encoded
        return len(encoded), encoded[offset : offset + count]

    def encode(self, row: Row, shape: int = 0) -> bytes:
        """The row's JSON in encoder ``shape``, encoded once and cached."""
        cache = self._encoded[shape]
        key = row[self._key]
        data = cache.get(key)
        if data is None:
            data = cache[key] = self._encoders[shape](row)
        return data

    def encode_rows(self, rows: Sequence[Row], shape: int, first_position: int) -> list[bytes]:
        """Encodings of ``rows``; a negative ``shape`` alternates 0 and 1 by listing position."""
        encode = self.encode
        if shape >= 0:
            return [encode(row, shape) for row in rows]
        return [encode(row, (first_position + i) % 2) for i, row in enumerate(rows)]

    def insert(self, at: int, rows: Sequence[Row]) -> None:
        self.rows[at:at] = rows
        self.by_key.update((row[self._key], row) for row in rows)
        for shape, encoded in self._patchable_listings():
            encoded[at:at] = [self.encode(row, shape) for row in rows]

    def remove(self, keys: Collection[Hashable]) -> list[Row]:
        """Remove the rows with these (known) keys; return them in listing order."""
        kept = [row[self._key] not in keys for row in self.rows]
        removed = list(itertools.compress(self.rows, map(operator.not_, kept)))
        self.rows[:] = itertools.compress(self.rows, kept)
        for key in keys:
            del self.by_key[key]
            for cache in self._encoded:
                cache.pop(key, None)
        for _, encoded in self._patchable_listings():
            encoded[:] = itertools.compress(encoded, kept)
        return removed

    def changed(self, key: Hashable) -> None:
        """Row ``key`` changed in place: re-encode it where it is listed."""
        for cache in self._encoded:
            cache.pop(key, None)
        row = self.by_key[key]
        listings = self._patchable_listings()
        if listings:
            index = self.rows.index(row)
            for shape, encoded in listings:
                encoded[index] = self.encode(row, shape)

    def _patchable_listings(self) -> list[tuple[int, list[bytes]]]:
        """Drop the listings a change may reorder; return the ones to patch in place.

        Strategy: a test that changes 100,000 SIMs under a running scan would
        pay a full rebuild per request; the unfiltered listings (the scans) are
        patched instead. Filtered ones may gain or lose rows, and "mixed" ones
        shift shape with position, so they are rebuilt when next asked for.
        """
        patchable = {
            listing_key: encoded
            for listing_key, encoded in self._listings.items()
            if not listing_key[0] and listing_key[1] >= 0
        }
        self._listings = patchable
        return [(shape, encoded) for (_, shape), encoded in patchable.items()]


def _matches(row: Row, tests: Iterable[tuple[Callable[[Row], object], object]]) -> bool:
    return all(get(row) == value for get, value in tests)


def _item(key: str) -> Callable[[Row], object]:
    return lambda row: row[key]


def _nested_id(key: str) -> Callable[[Row], object]:
    return lambda row: row[key]["id"]


class SandboxData:
    """The live state of a sandbox, generated deterministically from a seed.

    Generated: ``sims // 5000 + 3`` companies, each with 2-4 inventories and
    1-3 groups; three IMSI sponsors (ids 200-202); ten package templates,
    owned by the first three inventories; the SIMs, sorted by ICCID (the
    listing order); about one package per four SIMs; 59 countries. Each SIM's
    eUICC and PCR profiles are drawn when asked for, from the seed and its
    ICCID. The same ``sims`` and ``seed`` give the same data.

    Tests mutate it while a client scans, as a real database would change
    under a paginating client: `insert_sims` and `delete_sims` shift every
    later offset. Rows returned by the ``*_list`` and ``get_*`` methods are the
    live dicts the sandbox serves: read them, and change a SIM only through
    `update_sim` (its cached JSON is dropped there).

    Args:
        sims: Number of SIMs to generate (>= 0); 100,000 take about half a second.
        seed: Seed of a private ``random.Random``; global ``random`` is never used.

    Attributes:
        companies: ``{id, name}`` of each company.
        groups: ``{id, name, company}`` of each group (``company`` is an id).
        sponsors: ``{id, name, mcc_mnc}`` of each IMSI sponsor (mobile network).
        now: Clock for packages created, activated and terminated through the
            API, in seconds; default ``time.time``. Replace it for exact timestamps.
    """

    def __init__(self, *, sims: int = 1000, seed: int = 0) -> None:
        if isinstance(sims, bool) or not isinstance(sims, int) or sims < 0:
            raise ValueError(f"sims must be an int >= 0, got {sims!r}")
        self.now: Callable[[], float] = time.time
        with _gc_paused():
            self._generate(sims, seed)
        self._tables: dict[str, _Table] = {
            "inventories": self._inventories,
            "sims": self._sims,
            "packages": self._packages,
            "package_templates": self._templates,
            "countries": self._countries,
        }

    def _generate(self, sims: int, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        rng = self._rng
        self.sponsors: list[Row] = [
            {"id": sponsor_id, "name": name, "mcc_mnc": mcc_mnc} for sponsor_id, name, mcc_mnc in _SPONSORS
        ]
        self.companies: list[Row] = _generate_companies(rng, sims // 5000 + 3)
        self.groups: list[Row] = []
        inventories: list[Row] = []
        # Per company: its inventories and groups as the {id, name} objects SIMs embed.
        # One object per entity, shared by all its SIMs, keeps 100k SIMs small.
        self._company_parts: list[tuple[Row, list[Row], list[Row]]] = []
        inventory_ids = itertools.count(51952)
        group_ids = itertools.count(1001)
        for company in self.companies:
            company_inventories = _generate_inventories(rng, company, inventory_ids)
            inventories.extend(company_inventories)
            group_names = rng.sample(_GROUP_NAMES, rng.randint(1, 3))
            company_groups = [{"id": next(group_ids), "name": name} for name in group_names]
            self.groups.extend({**group, "company": company["id"]} for group in company_groups)
            self._company_parts.append(
                (
                    {"id": company["id"], "name": company["name"]},
                    [{"id": inv["id"], "name": inv["name"]} for inv in company_inventories],
                    company_groups,
                )
            )
        self._inventories = _Table("id", inventories, fields={"company": _item("company")})
        templates = _generate_templates(rng)
        # The inventory each template was made in: the inventory filter of GET
        # /package-templates needs it, though the template's JSON has no such field.
        # The first three inventories hold them all, so the filter selects several.
        self._template_inventory: dict[int, int] = {
            template["id"]: inventories[index % min(3, len(inventories))]["id"]
            for index, template in enumerate(templates)
        }
        self._templates = _Table(
            "id", templates, fields={"inventory": lambda row: self._template_inventory[row["id"]]}
        )
        self._countries = _Table(
            "iso3", [{"name": name, "iso2": iso2, "iso3": iso3} for iso2, iso3, name in COUNTRIES]
        )
        # A PCR profile as last PUT, by ICCID: its modifiable part only (see _profiles).
        self._pcr_changes: dict[str, Row] = {}

        serial = 4_012_345_000 + rng.randrange(1000)
        sim_rows = []
        for _ in range(sims):
            # Gaps of 50 to 149 leave room to insert SIMs between any two neighbours.
            serial += 50 + int(rng.random() * 100)
            sim_rows.append(self._new_sim(serial))
        self._sims = _Table(
            "iccid",
            sim_rows,
            encoders=(orjson.dumps, _encode_sim_ids),
            fields={
                "company": _nested_id("company"),
                "inventory": _nested_id("inventory"),
                "group": _nested_id("group"),
            },
        )
        # Encode the default listing now, so the first full scan is served as fast
        # as the next ones (a benchmark measures the client, not a cold cache).
        self._sims.page({}, 0, 0, 0)

        # The SIM's inventory when the package was made: the inventory filter of
        # GET /packages needs it, and a package outlives its SIM's deletion.
        self._package_inventory: dict[str, int] = {}
        self._packages_by_sim: dict[str, list[Row]] = {}
        self._package_numbers = itertools.count(100_000)
        active_templates = [t for t in self._templates.rows if t["status"] == "Active"]
        packages = [
            self._generate_package(sim, rng.choice(active_templates))
            for sim in sim_rows
            if rng.random() < 0.25  # one package per four SIMs
        ]
        self._packages = _Table(
            "id",
            packages,
            fields={
                "inventory": lambda row: self._package_inventory[row["id"]],
                "package_template": _item("package_template"),
                "sim": _item("sim"),
                "status": _item("status"),
            },
        )

    # -- generation --------------------------------------------------------------------

    def _new_sim(self, serial: int) -> Row:
        # Only rng.random() and bisect here: choice(), choices() and sample() cost
        # several times more, and this runs once per SIM.
        rnd = self._rng.random
        parts = self._company_parts
        company, inventories, groups = parts[int(rnd() * len(parts))]
        status = SIM_STATUSES[bisect.bisect(_SIM_STATUS_CUMULATIVE, rnd())]
        provisioned = _EPOCH_START + int(rnd() * (_GENERATED_AT - _EPOCH_START))
        terminated = 0
        if status == "TERMINATED":
            terminated = provisioned + int(rnd() * (_GENERATED_AT - provisioned))
        first = bisect.bisect(_SPONSOR_CUMULATIVE, rnd())
        sponsors = [first]
        if rnd() < 0.3:  # a second IMSI, from another network
            sponsors.append((first + 1 + int(rnd() * 2)) % len(_SPONSOR_IMSIS))
        imsis = []
        for index in sponsors:
            sponsor_id, imsi_base, msin_values = _SPONSOR_IMSIS[index]
            imsis.append({"sponsor_id": sponsor_id, "imsi": imsi_base + int(rnd() * msin_values)})
        return {
            "iccid": f"{ICCID_PREFIX}{serial:010d}",
            "sim_status": status,
            "group": groups[int(rnd() * len(groups))],
            "inventory": inventories[int(rnd() * len(inventories))],
            "company": company,
            "provisioned_date": provisioned,
            "terminated_date": terminated,
            "created_date": provisioned - int(rnd() * 30 * _DAY),
            "modified_date": max(provisioned, terminated) + int(rnd() * _DAY),
            "imsis": imsis,
            "mapped_imsi": imsis[0]["imsi"],
        }

    def _generate_package(self, sim: Row, template: Row) -> Row:
        rng = self._rng
        rnd = rng.random
        status = "TERMINATED"
        if sim["sim_status"] != "TERMINATED":
            status = rng.choices(PACKAGE_STATUSES, (30, 55, 5, 10))[0]
        start = sim["provisioned_date"]
        created = (start + int(rnd() * (_GENERATED_AT - start))) * 1000
        row = self._package_row(sim, template, created, template_seconds(template))
        if status != "NOT_ACTIVE" and (status != "TERMINATED" or rnd() < 0.7):
            used = rnd()
            activated = created + int(rnd() * _DAY * 1000)
            row["activated_date"] = activated
            row["expiry_date"] = activated + row["time_allowance"] * 1000
            for field in ("voice", "data", "sms"):
                row[f"{field}_usage_remaining"] -= int(row[f"{field}_usage_remaining"] * used)
        if status == "TERMINATED":
            row["terminated_date"] = max(created, row["activated_date"]) + int(rnd() * _DAY * 1000)
        row["status"] = status
        return row

    def _package_row(self, sim: Row, template: Row, created_ms: int, time_allowance: int) -> Row:
        package_id = f"pkg_{next(self._package_numbers)}"
        self._package_inventory[package_id] = sim["inventory"]["id"]
        row = {
            "id": package_id,
            "sim": sim["iccid"],
            "package_template": template["id"],
            "status": "NOT_ACTIVE",
            "window_activation_start": created_ms,
            "window_activation_end": created_ms + template["activation_time_allowance"] * 1000,
            "voice_usage_remaining": template["voice_usage_allowance"],
            "data_usage_remaining": template["data_usage_allowance"],
            "sms_usage_remaining": template["sms_usage_allowance"],
            "created_date": created_ms,
            "expiry_date": 0,
            "activated_date": 0,
            "terminated_date": 0,
            "time_allowance": time_allowance,
        }
        self._packages_by_sim.setdefault(sim["iccid"], []).append(row)
        return row

    # -- reading -----------------------------------------------------------------------

    def _query(
        self, resource: str, filters: Mapping[str, object] | None
    ) -> tuple[_Table, Mapping[str, object], Sequence[Row] | None]:
        """The table, the checked filters, and the rows an index narrows them to (or None)."""
        table = self._tables.get(resource)
        if table is None:
            raise ValueError(f"resource must be one of {', '.join(self._tables)}, got {resource!r}")
        filters = filters or {}
        unknown = filters.keys() - table.filter_names
        if unknown:
            raise ValueError(
                f"filters of {resource} must be among {sorted(table.filter_names)}, got {sorted(unknown)}"
            )
        base = None
        if resource == "packages" and "sim" in filters:
            # Per-SIM look-ups are common (a client reading a SIM's package back
            # after a 409): answer them from the index, not a full scan.
            base = self._packages_by_sim.get(str(filters["sim"]), [])
        return table, filters, base

    def listing(self, resource: Resource, filters: Mapping[str, object] | None = None) -> list[Row]:
        """The rows a listing serves right now, in order: what a full scan should see.

        Args:
            resource: ``"inventories"``, ``"sims"``, ``"packages"``,
                ``"package_templates"`` or ``"countries"``.
            filters: The listing's filters by query name, with the values the API
                compares (ints for ids; strings for ``sim`` and ``status``).

        Returns:
            A new list of the live rows (SIMs in the "objects" shape).

        Raises:
            ValueError: Unknown resource or filter name.
        """
        table, filters, base = self._query(resource, filters)
        return list(table.view(filters, base))

    def page(
        self,
        resource: Resource,
        *,
        offset: int,
        count: int,
        filters: Mapping[str, object] | None = None,
        shape: SimShape = "objects",
    ) -> tuple[int, list[bytes]]:
        """One page of a listing, encoded.

        Args:
            resource: As for `listing`.
            offset: Items to skip (>= 0).
            count: Items to return at most (>= 0).
            filters: As for `listing`.
            shape: For SIMs: ``"objects"``, ``"ids"`` or ``"mixed"`` (even listing
                positions objects, odd ones ids). Ignored for other resources.

        Returns:
            ``(total, items)``: how many rows match the filters, and the JSON
            encoding of each row of the page.
        """
        table, filters, base = self._query(resource, filters)
        shape_index = _SHAPES[shape] if resource == "sims" else 0
        return table.page(filters, offset, count, shape_index, base)

    def sims_list(self) -> list[Row]:
        """Every SIM in listing (ICCID) order, in the "objects" shape."""
        return list(self._sims.rows)

    def packages_list(self) -> list[Row]:
        """Every package in listing (creation) order, in the list shape."""
        return list(self._packages.rows)

    def inventories_list(self) -> list[Row]:
        """Every inventory in listing order."""
        return list(self._inventories.rows)

    def package_templates_list(self) -> list[Row]:
        """Every package template in listing order."""
        return list(self._templates.rows)

    def countries_list(self) -> list[Row]:
        """Every country (``{name, iso2, iso3}``) in listing order."""
        return list(self._countries.rows)

    def get_sim(self, iccid: str) -> Row | None:
        """The SIM with this ICCID, or None."""
        return self._sims.by_key.get(iccid)

    def get_package(self, package_id: str) -> Row | None:
        """The package with this id in the list shape (``package_template`` an int), or None."""
        return self._packages.by_key.get(package_id)

    def get_package_template(self, template_id: int) -> Row | None:
        """The package template with this id, or None."""
        return self._templates.by_key.get(template_id)

    def template_inventory(self, template_id: int) -> int:
        """The id of the inventory a package template was made in.

        Raises:
            KeyError: Unknown template.
        """
        return self._template_inventory[template_id]

    def sim_packages(self, iccid: str) -> list[Row]:
        """Every package ever made for this SIM, oldest first."""
        return list(self._packages_by_sim.get(iccid, ()))

    def encoded_sim(self, iccid: str) -> bytes | None:
        """The JSON of one SIM in the "objects" shape (cached), or None if unknown."""
        row = self._sims.by_key.get(iccid)
        return None if row is None else self._sims.encode(row)

    def package_detail(self, package_id: str) -> Row:
        """The package as ``GET /packages/{id}`` answers it: ``package_template`` the whole template.

        Raises:
            SandboxError: 404 ``Package not found``.
        """
        row = self._package_or_404(package_id)
        return {**row, "package_template": dict(self._templates.by_key[row["package_template"]])}

    def euicc_profile(self, iccid: str) -> Row:
        """The SIM's eUICC profile, as ``GET /euicc-profiles/{iccid}`` answers it.

        Drawn from the seed and the ICCID: the same on every call. See
        `draw_euicc_profile` for which optional fields appear.

        Raises:
            SandboxError: 404 ``eUICC profile not found`` for an unknown SIM.
        """
        sim = self._sims.by_key.get(iccid)
        if sim is None:
            raise SandboxError(404, "eUICC profile not found")
        return draw_euicc_profile(self._seed, sim)

    def pcr_profile(self, iccid: str) -> Row:
        """The SIM's PCR profile, as ``GET /sim-pcr-profiles/{iccid}`` answers it.

        As drawn from the seed and the ICCID until `update_pcr_profile`
        changes it; its wallets never change.

        Raises:
            SandboxError: 404 ``PCR profile not found`` for an unknown SIM.
        """
        sim = self._sims.by_key.get(iccid)
        if sim is None:
            raise SandboxError(404, "PCR profile not found")
        inventory = self._inventories.by_key.get(sim["inventory"]["id"])
        profile = draw_pcr_profile(self._seed, sim, None if inventory is None else inventory["wallet"])
        changes = self._pcr_changes.get(iccid)
        if changes is not None:
            # Copies of the stored sections: a caller changing the answer must not change the store.
            profile.update({key: dict(v) if isinstance(v, dict) else v for key, v in changes.items()})
            if profile["route_policy"] is None:
                del profile["route_policy"]
        return profile

    # -- changing ----------------------------------------------------------------------

    def insert_sims(self, n: int, at: Literal["start", "end"] | int = "end") -> list[str]:
        """Add ``n`` new SIMs (no packages) where the listing will show them.

        Their ICCIDs are chosen so the listing stays sorted by ICCID: before the
        first SIM for ``"start"``, after the last for ``"end"``, between the
        neighbours for an index (generated neighbours leave room for 49 at
        least). Every later offset shifts by ``n``, as in a real database.

        Args:
            n: How many SIMs (>= 0).
            at: ``"start"``, ``"end"`` (default) or a listing index in
                ``0..len(sims)``.

        Returns:
            The new ICCIDs in listing order.

        Raises:
            ValueError: Bad ``n`` or ``at``, or no free ICCIDs between the
                neighbours at ``at``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        rows = self._sims.rows
        if at == "start":
            index = 0
        elif at == "end":
            index = len(rows)
        elif isinstance(at, int) and not isinstance(at, bool) and 0 <= at <= len(rows):
            index = at
        else:
            raise ValueError(f"at must be 'start', 'end' or an index in 0..{len(rows)}, got {at!r}")
        low = _serial(rows[index - 1]) if index > 0 else -1
        high = _serial(rows[index]) if index < len(rows) else _SERIAL_LIMIT
        if high - low - 1 < n:
            raise ValueError(f"at={at!r} has room for {high - low - 1} new ICCIDs, not {n}")
        # Right below the SIM now at the index (right above the last one at the
        # end), so inserting again at the same index still finds room.
        first = low + 1 if index == len(rows) else high - n
        new_rows = [self._new_sim(serial) for serial in range(first, first + n)]
        self._sims.insert(index, new_rows)
        return [row["iccid"] for row in new_rows]

    def delete_sims(self, iccids_or_count: Iterable[str] | int) -> list[str]:
        """Remove SIMs; every later offset shifts back. Their packages stay.

        Args:
            iccids_or_count: The ICCIDs to remove, or a count: that many SIMs
                from the start of the listing.

        Returns:
            The removed ICCIDs, in listing order.

        Raises:
            KeyError: An ICCID is unknown (nothing is removed then).
            ValueError: A negative count.
        """
        rows = self._sims.rows
        if isinstance(iccids_or_count, str):
            iccids_or_count = [iccids_or_count]  # one ICCID, not an iterable of characters
        if isinstance(iccids_or_count, int):
            if iccids_or_count < 0:
                raise ValueError(f"count must be >= 0, got {iccids_or_count}")
            doomed = {row["iccid"] for row in rows[:iccids_or_count]}
        else:
            doomed = set(iccids_or_count)
            for iccid in doomed:
                if iccid not in self._sims.by_key:
                    raise KeyError(iccid)
        return [row["iccid"] for row in self._sims.remove(doomed)]

    def update_sim(self, iccid: str, **fields: Any) -> Row:
        """Change fields of a SIM in place (e.g. ``sim_status="TERMINATED"``).

        Returns:
            The live row.

        Raises:
            KeyError: Unknown ICCID, or a field the SIM doesn't have (or ``iccid``).
        """
        row = self._sims.by_key[iccid]
        for name in fields:
            if name not in row or name == "iccid":
                raise KeyError(name)
        row.update(fields)
        self._sims.changed(iccid)
        return row

    def create_package(self, sim: str, package_template: int, time_allowance: int | None = None) -> Row:
        """Create a package, as ``POST /packages`` does.

        Args:
            sim: ICCID of a known SIM.
            package_template: Id of a known package template.
            time_allowance: Seconds; default the template's.

        Returns:
            The create response: the package with ``package_template`` as
            the template's 7-field summary, plus ``apn``. Status ``NOT_ACTIVE``, dates in milliseconds.

        Raises:
            SandboxError: 400 for an unknown SIM or template; 409 ``Package
                already exists for this SIM`` if a package of the SIM is not
                TERMINATED.
        """
        sim_row = self._sims.by_key.get(sim)
        if sim_row is None:
            raise SandboxError(400, f"Unknown SIM: {sim}")
        template = self._templates.by_key.get(package_template)
        if template is None:
            raise SandboxError(400, f"Unknown package template: {package_template}")
        if any(p["status"] != "TERMINATED" for p in self._packages_by_sim.get(sim, ())):
            raise SandboxError(409, "Package already exists for this SIM")
        if time_allowance is None:
            time_allowance = template_seconds(template)
        row = self._package_row(sim_row, template, self._now_ms(), time_allowance)
        self._packages.insert(len(self._packages.rows), [row])
        summary = {key: template[key] for key in _TEMPLATE_SUMMARY_KEYS}
        return {**row, "package_template": summary, "apn": template["apn"]}

    def create_package_template(
        self,
        *,
        name: object,
        supported_countries: object,
        activation_type: object,
        data_usage_allowance: object,
        time_allowance: object,
        activation_time_allowance: object,
        earliest_available_date: object,
        latest_available_date: object,
        inventory: object,
    ) -> Row:
        """Create a package template, as ``POST /package-templates`` does.

        The arguments are the request body's fields as decoded from JSON,
        checked here so that a direct call meets the same rules.

        Args:
            name: A non-empty string.
            supported_countries: A non-empty list of alpha-3 codes of the served countries.
            activation_type: ``"AUTO"`` or ``"MANUAL"``.
            data_usage_allowance: Bytes, an int >= 0.
            time_allowance: ``{"unit": one of the time units, "duration": int >= 1}``.
            activation_time_allowance: Seconds, an int >= 0.
            earliest_available_date: A Unix int >= 0, stored as given.
            latest_available_date: A Unix int >= 0 (0: no end), not before
                ``earliest_available_date`` unless 0.
            inventory: The id of a known inventory, the template's owner.

        Returns:
            The create response: exactly ``id, name, voice_usage_allowance,
            data_usage_allowance, sms_usage_allowance, time_allowance,
            activation_time_allowance``. The template is listed last, with
            status ``Active``, no voice or SMS allowance, and ``created_date``
            and ``modified_date`` from `now` in milliseconds.

        Raises:
            SandboxError: 400 naming the first field that breaks its rule.
        """
        if not isinstance(name, str) or not name.strip():
            raise SandboxError(400, "Field 'name' is required: a non-empty string")
        if not isinstance(supported_countries, list) or not supported_countries:
            raise SandboxError(
                400, "Field 'supported_countries' is required: a non-empty list of alpha-3 codes"
            )
        for code in supported_countries:
            if not isinstance(code, str) or code not in self._countries.by_key:
                raise SandboxError(400, f"Field 'supported_countries' holds an unknown country: {code!r}")
        if activation_type not in ("AUTO", "MANUAL"):
            raise SandboxError(400, "Field 'activation_type' must be AUTO or MANUAL")
        data_bytes = _natural("data_usage_allowance", data_usage_allowance)
        allowance = _check_time_allowance(time_allowance)
        activation_seconds = _natural("activation_time_allowance", activation_time_allowance)
        earliest = _natural("earliest_available_date", earliest_available_date)
        latest = _natural("latest_available_date", latest_available_date)
        if latest and latest < earliest:
            raise SandboxError(400, "Field 'latest_available_date' is before 'earliest_available_date'")
        inventory_id = _natural("inventory", inventory)
        if inventory_id not in self._inventories.by_key:
            raise SandboxError(400, f"Field 'inventory': unknown inventory {inventory_id}")
        now = self._now_ms()
        template_id = max((row["id"] for row in self._templates.rows), default=0) + 1
        row: Row = {
            "id": template_id,
            "name": name,
            "supported_countries": list(supported_countries),
            "data_usage_allowance": data_bytes,
            "voice_usage_allowance": 0,
            "sms_usage_allowance": 0,
            "activation_type": activation_type,
            "created_date": now,
            "modified_date": now,
            "time_allowance": allowance,
            "activation_time_allowance": activation_seconds,
            "status": "Active",
            "earliest_activation_date": 0,
            "earliest_available_date": earliest,
            "latest_available_date": latest,
            "notes": "",
            "deactivated_date": 0,
            "apn": "betatel",
            "traffic_policy": _DEFAULT_TRAFFIC_POLICY,
        }
        self._template_inventory[template_id] = inventory_id
        self._templates.insert(len(self._templates.rows), [row])
        return {key: row[key] for key in _TEMPLATE_SUMMARY_KEYS}

    def update_pcr_profile(self, iccid: str, body: object) -> Row:
        """Replace the modifiable part of a SIM's PCR profile, as ``PUT /sim-pcr-profiles/{iccid}`` does.

        Args:
            iccid: A known SIM.
            body: The decoded request body: the whole modifiable profile,
                ``data {state, active_throttling}``, ``voice {state}``,
                ``sms {state}``, ``wallet_mode``, and ``route_policy`` (absent
                or null: the profile has none afterwards). Other fields are ignored.

        Returns:
            The profile as `pcr_profile` now answers it (wallets unchanged).

        Raises:
            SandboxError: 404 for an unknown SIM (checked first); 400 naming
                the first bad field, and then nothing changes.
        """
        if iccid not in self._sims.by_key:
            raise SandboxError(404, "PCR profile not found")
        self._pcr_changes[iccid] = check_pcr_update(body)
        return self.pcr_profile(iccid)

    def activate_package(self, package_id: str) -> Row:
        """Activate a ``NOT_ACTIVE`` package: ``ACTIVE``, activated now, expiring after its time.

        Returns:
            The live row (list shape).

        Raises:
            SandboxError: 404 unknown; 400 ``Package cannot be activated`` if not NOT_ACTIVE.
        """
        row = self._package_or_404(package_id)
        if row["status"] != "NOT_ACTIVE":
            raise SandboxError(400, "Package cannot be activated")
        now = self._now_ms()
        row.update(status="ACTIVE", activated_date=now, expiry_date=now + row["time_allowance"] * 1000)
        self._packages.changed(package_id)
        return row

    def terminate_package(self, package_id: str) -> Row:
        """Terminate a package that is not yet ``TERMINATED``.

        Returns:
            The live row (list shape).

        Raises:
            SandboxError: 404 unknown; 400 ``Package cannot be terminated`` if already TERMINATED.
        """
        row = self._package_or_404(package_id)
        if row["status"] == "TERMINATED":
            raise SandboxError(400, "Package cannot be terminated")
        row.update(status="TERMINATED", terminated_date=self._now_ms())
        self._packages.changed(package_id)
        return row

    def _package_or_404(self, package_id: str) -> Row:
        row = self._packages.by_key.get(package_id)
        if row is None:
            raise SandboxError(404, "Package not found")
        return row

    def _now_ms(self) -> int:
        return int(self.now() * 1000)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Generation makes hundreds of thousands of containers and no reference
    # cycles; the collections they would trigger only rescan them, a third of
    # the time of generating 100,000 SIMs.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def template_seconds(template: Row) -> int:
    """A package template's time allowance in seconds (a month counts 30 days)."""
    allowance = template["time_allowance"]
    return int(_UNIT_SECONDS[allowance["unit"]] * allowance["duration"])


def _natural(field: str, value: object, minimum: int = 0) -> int:
    """``value`` if it is a JSON integer >= ``minimum``; else a 400 naming ``field``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SandboxError(400, f"Field '{field}' is required: an integer >= {minimum}")
    return value


def _check_time_allowance(value: object) -> Row:
    if not isinstance(value, dict):
        raise SandboxError(400, "Field 'time_allowance' is required: {unit, duration}")
    unit, duration = value.get("unit"), value.get("duration")
    if unit not in _UNIT_SECONDS:
        raise SandboxError(400, f"Field 'time_allowance.unit' must be one of {', '.join(_UNIT_SECONDS)}")
    return {"unit": unit, "duration": _natural("time_allowance.duration", duration, minimum=1)}


def _serial(sim: Row) -> int:
    return int(sim["iccid"][len(ICCID_PREFIX) :])


def _generate_companies(rng: random.Random, n: int) -> list[Row]:
    ids = sorted(rng.sample(range(10_000, 100_000), n))
    names = [
        name if cycle == 0 else f"{name} {cycle + 1}"
        for cycle in range(n // len(_COMPANY_NAMES) + 1)
        for name in _COMPANY_NAMES
    ]
    return [{"id": company_id, "name": name} for company_id, name in zip(ids, names, strict=False)]


def _generate_inventories(rng: random.Random, company: Row, ids: Iterable[int]) -> list[Row]:
    inventories: list[Row] = []
    for number, inventory_id in zip(range(1, rng.randint(2, 4) + 1), ids, strict=False):
        created = (_EPOCH_START + int(rng.random() * (_GENERATED_AT - _EPOCH_START))) * 1000
        modified = created + int(rng.random() * 90 * _DAY) * 1000
        status = rng.choices(_INVENTORY_STATUSES, (50, 35, 15))[0]
        inventories.append(
            {
                "id": inventory_id,
                "name": f"{company['name']} Inventory {number}",
                "created_date": created,
                "modified_date": modified,
                "company": company["id"],
                "status": status,
                "note": rng.choice(("", "", "Main stock", "Returned SIMs")),
                "deleted_date": 0,
                # The first inventory of a company is its root; the others hang off it.
                "parent_inventory": inventories[0]["id"] if inventories else 0,
                "deactivated_date": modified if status == "NOT_ACTIVE" else 0,
                "wallet": rng.randrange(10_000_000, 100_000_000),
                "whitelist": rng.randrange(10_000, 100_000),
            }
        )
    return inventories


def _generate_templates(rng: random.Random) -> list[Row]:
    templates = []
    template_id = 21_145_354
    for name, countries, data_mb, voice, sms, unit, duration, activation, status in _TEMPLATES:
        created = (_EPOCH_START + int(rng.random() * (_GENERATED_AT - _EPOCH_START))) * 1000
        modified = created + int(rng.random() * 30 * _DAY) * 1000
        template: Row = {
            "id": template_id,
            "name": name,
            "supported_countries": list(countries),
            "data_usage_allowance": data_mb * _MB,
            "voice_usage_allowance": voice,
            "sms_usage_allowance": sms,
            "activation_type": activation,
            "created_date": created,
            "modified_date": modified,
            "time_allowance": {"unit": unit, "duration": duration},
            "activation_time_allowance": 180 * _DAY,
            "status": status,
            "earliest_activation_date": 0,
            "earliest_available_date": created,
            "latest_available_date": 0,
            "notes": "",
            "deactivated_date": modified if status == "De-activated" else 0,
            "apn": "betatel",
            "traffic_policy": _FAIR_USE_POLICY if voice else _DEFAULT_TRAFFIC_POLICY,
        }
        templates.append(template)
        template_id += rng.randint(1, 5000)
    return templates
