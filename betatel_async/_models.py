"""Typed models of the Betatel eSIM API's JSON.

Strategy: every model keeps exactly what the API sent, so that structuring then
unstructuring gives the API's JSON back (for the keys we know; unknown keys are
ignored on input because the API will grow).

- A field the vendor's generated client declares required (non-null, no
  default) has no default here either: an answer without it fails to decode,
  naming the field, rather than giving an object whose fields are silently
  empty. Where one of our models stands for several vendor shapes, a field is
  required only if every shape requires it (``tests/test_models_file.py``
  lists each such case).
- Optional fields default to ``None``, meaning "absent from the JSON", and are
  left out again on output.
- Timestamps are kept as the raw integer (lossless). The API mixes units
  (inventories and packages in milliseconds, SIMs in seconds), so the
  ``*_at`` accessors infer the unit from the magnitude and return an aware UTC
  ``datetime``; ``0`` and absent mean "not set" and give ``None``.
- Status fields are open sets: a known value decodes to its enum member (which
  is also a ``str``), an unknown one stays a plain ``str`` with its text intact.
- References (``group``, ``inventory``, ``company`` of a SIM) come either as
  ``{"id", "name"}`` objects or as bare integer ids; both decode to [`Ref`][betatel_async.Ref]
  (``name`` is ``None`` for a bare id, and a bare id is written back as one;
  an object must carry both ``id`` and ``name``).
- ``package_template`` of a package comes in three shapes: an ``int`` id
  (lists), the full [`PackageTemplate`][betatel_async.PackageTemplate] (``GET /packages/{id}``), or the
  seven fields of [`PackageTemplateInfo`][betatel_async.PackageTemplateInfo] (the create response). An
  object carrying any key that [`PackageTemplate`][betatel_async.PackageTemplate] requires and
  [`PackageTemplateInfo`][betatel_async.PackageTemplateInfo] lacks (``supported_countries``,
  ``activation_type``, ``created_date``, ``modified_date``, ``status``) is a
  full template, and must then carry all of them; any other object is the
  seven-field info. Each shape is written back as it came.

Models are attrs classes with slots and are not frozen: building frozen attrs
instances costs about twice as much, and a scan builds hundreds of thousands.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import attrs

__all__ = [
    "ActivationType",
    "ApiStatus",
    "Country",
    "DataProfile",
    "EuiccProfile",
    "EuiccProfileState",
    "Imsi",
    "Inventory",
    "InventoryStatus",
    "Package",
    "PackageStatus",
    "PackageTemplate",
    "PackageTemplateInfo",
    "PackageTemplateStatus",
    "Page",
    "PcrProfile",
    "ProfileReusePolicy",
    "Ref",
    "ReuseType",
    "ServiceProfile",
    "ServiceState",
    "Sim",
    "SimStatus",
    "Throttling",
    "TimeAllowance",
    "TimeUnit",
    "Wallet",
    "WalletMode",
    "WalletOwner",
    "WalletType",
    "timestamp_to_datetime",
]

T = TypeVar("T")

# Seconds below this, milliseconds from it: 2 * 10**10 seconds is October 2603,
# 2 * 10**10 milliseconds is August 1970. Every instant from 1971 to 2500 is on
# the right side of that line in both units.
_MS_THRESHOLD = 20_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_to_datetime(raw: int | None) -> datetime | None:
    """Convert an API timestamp of either unit to an aware UTC datetime.

    Args:
        raw: Unix time in seconds or milliseconds, as the API sent it. Values
            of magnitude ``>= 2 * 10**10`` are read as milliseconds (so any
            instant from 1971 to 2500 reads right in either unit).

    Returns:
        The instant in UTC, exact to the millisecond, or ``None`` when
        ``raw`` is ``None`` or ``0`` ("not set").

    Raises:
        OverflowError: ``raw`` is beyond the years 1 to 9999.
    """
    if not raw:
        return None
    # Integer arithmetic: ``fromtimestamp(raw / 1000)`` goes through a float
    # and is 1 µs off for about one millisecond value in four.
    if abs(raw) >= _MS_THRESHOLD:
        return _EPOCH + timedelta(milliseconds=raw)
    return _EPOCH + timedelta(seconds=raw)


class SimStatus(enum.StrEnum):
    """Known SIM statuses. Others decode as plain ``str``."""

    WAITING_FOR_ASSIGNMENT = "WAITING_FOR_ASSIGNMENT"
    PRE_SERVICE = "PRE_SERVICE"
    IN_SERVICE = "IN_SERVICE"
    TERMINATED = "TERMINATED"


class InventoryStatus(enum.StrEnum):
    """Known inventory statuses. Others (the seed example's ``"Active"``) stay ``str``."""

    ACTIVE = "ACTIVE"
    NOT_ACTIVE = "NOT_ACTIVE"


class PackageStatus(enum.StrEnum):
    """Known package statuses (also the values the ``status`` list filter accepts)."""

    NOT_ACTIVE = "NOT_ACTIVE"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


class TimeUnit(enum.StrEnum):
    """Units of a package template's time allowance."""

    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    CALENDAR_MONTH = "CALENDAR_MONTH"
    YEAR = "YEAR"


class ActivationType(enum.StrEnum):
    """How a package template's packages are activated."""

    AUTO = "AUTO"
    MANUAL = "MANUAL"


class PackageTemplateStatus(enum.StrEnum):
    """Known package template statuses: display strings, not upper-case codes."""

    ACTIVE = "Active"
    NOT_ACTIVE = "Not Active"
    DEACTIVATED = "De-activated"


class EuiccProfileState(enum.StrEnum):
    """Known states of an eSIM's eUICC profile (its life cycle on the SM-DP+)."""

    AVAILABLE = "AVAILABLE"
    CONFIRMED = "CONFIRMED"
    ALLOCATED = "ALLOCATED"
    LINKED = "LINKED"
    DOWNLOADED = "DOWNLOADED"
    RELEASED = "RELEASED"
    INSTALLED = "INSTALLED"
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    ERROR = "ERROR"
    DELETED = "DELETED"
    UNAVAILABLE = "UNAVAILABLE"


class ReuseType(enum.StrEnum):
    """On which devices a released eUICC profile may be downloaded again."""

    NEW_EID_MID = "NEW_EID_MID"
    NEW_EID = "NEW_EID"
    SAME_EID = "SAME_EID"
    SAME_EID_MID = "SAME_EID_MID"


class ServiceState(enum.StrEnum):
    """Whether a SIM's data, voice or SMS service is allowed (PCR profile)."""

    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class Throttling(enum.StrEnum):
    """A SIM's data speed cap (PCR profile)."""

    NO_LIMIT = "NO_LIMIT"
    SPEED_100_KBPS = "SPEED_100_KBPS"
    SPEED_500_KBPS = "SPEED_500_KBPS"
    SPEED_1000_KBPS = "SPEED_1000_KBPS"
    SPEED_2000_KBPS = "SPEED_2000_KBPS"
    SPEED_3000_KBPS = "SPEED_3000_KBPS"
    SPEED_5000_KBPS = "SPEED_5000_KBPS"


class WalletMode(enum.StrEnum):
    """Which wallet a SIM's usage is charged to: its group's or its own."""

    GROUP = "GROUP"
    SIM = "SIM"


class WalletType(enum.StrEnum):
    """What owns a wallet."""

    GROUP = "GROUP"
    INVENTORY = "INVENTORY"
    SIM = "SIM"


@attrs.define(slots=True, kw_only=True)
class Ref:
    """A reference to a group, inventory or company: an id and, if sent, a name.

    ``name`` is ``None`` exactly when the API sent a bare id; an ``{id, name}``
    object without its ``name`` does not decode.
    """

    id: int
    name: str | None = None


@attrs.define(slots=True, kw_only=True)
class Imsi:
    """One IMSI of a SIM and the sponsor (network) that issued it."""

    sponsor_id: int
    imsi: int


@attrs.define(slots=True, kw_only=True)
class Sim:
    """A SIM registry entry (list item or full record; both shapes decode here).

    ``iccid`` and ``sim_status`` are required in both shapes. ``provisioned_date``,
    ``terminated_date``, ``created_date`` and ``modified_date`` are raw Unix
    timestamps (seconds in the documents); use the ``*_at`` properties for
    datetimes.
    """

    iccid: str
    sim_status: SimStatus | str
    group: Ref | None = None
    inventory: Ref | None = None
    company: Ref | None = None
    provisioned_date: int | None = None
    terminated_date: int | None = None
    created_date: int | None = None
    modified_date: int | None = None
    imsis: list[Imsi] | None = None
    mapped_imsi: int | None = None

    @property
    def provisioned_at(self) -> datetime | None:
        """``provisioned_date`` as an aware UTC datetime (``None`` if not set)."""
        return timestamp_to_datetime(self.provisioned_date)

    @property
    def terminated_at(self) -> datetime | None:
        """``terminated_date`` as an aware UTC datetime (``None`` while active)."""
        return timestamp_to_datetime(self.terminated_date)

    @property
    def created_at(self) -> datetime | None:
        """``created_date`` as an aware UTC datetime (``None`` if not set)."""
        return timestamp_to_datetime(self.created_date)

    @property
    def modified_at(self) -> datetime | None:
        """``modified_date`` as an aware UTC datetime (``None`` if not set)."""
        return timestamp_to_datetime(self.modified_date)


@attrs.define(slots=True, kw_only=True)
class Inventory:
    """An eSIM inventory. Timestamps are raw (milliseconds in the documents)."""

    id: int
    name: str
    created_date: int
    modified_date: int
    company: int
    status: InventoryStatus | str
    note: str | None = None
    deleted_date: int | None = None
    parent_inventory: int | None = None
    deactivated_date: int | None = None
    wallet: int | None = None
    whitelist: int | None = None

    @property
    def is_active(self) -> bool:
        """Whether the status says active, whatever its spelling (``ACTIVE``, ``Active``)."""
        return self.status.upper() == "ACTIVE"

    @property
    def created_at(self) -> datetime | None:
        """``created_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.created_date)

    @property
    def modified_at(self) -> datetime | None:
        """``modified_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.modified_date)

    @property
    def deleted_at(self) -> datetime | None:
        """``deleted_date`` as an aware UTC datetime (``None`` unless deleted)."""
        return timestamp_to_datetime(self.deleted_date)

    @property
    def deactivated_at(self) -> datetime | None:
        """``deactivated_date`` as an aware UTC datetime (``None`` while active)."""
        return timestamp_to_datetime(self.deactivated_date)


@attrs.define(slots=True, kw_only=True)
class TimeAllowance:
    """A duration in a calendar unit, e.g. 30 ``DAY``."""

    unit: TimeUnit | str
    duration: int


@attrs.define(slots=True, kw_only=True)
class PackageTemplateInfo:
    """A package template's seven-field summary.

    As embedded in a package's create response, and as the answer to
    ``POST /package-templates``. ``activation_time_allowance`` is in seconds.
    """

    id: int
    name: str
    voice_usage_allowance: int
    data_usage_allowance: int
    sms_usage_allowance: int
    time_allowance: TimeAllowance
    activation_time_allowance: int


@attrs.define(slots=True, kw_only=True)
class PackageTemplate:
    """A package template (``/package-templates``, and a package's detail view).

    Timestamps are raw (milliseconds in the documents); ``0`` means "not set".
    ``data_usage_allowance`` is in bytes, ``activation_time_allowance`` in
    seconds. ``traffic_policy`` is an id (an ``int``).
    """

    id: int
    name: str
    supported_countries: list[str]
    data_usage_allowance: int
    activation_type: ActivationType | str
    created_date: int
    modified_date: int
    time_allowance: TimeAllowance
    status: PackageTemplateStatus | str
    traffic_policy: int | None = None
    voice_usage_allowance: int | None = None
    sms_usage_allowance: int | None = None
    activation_time_allowance: int | None = None
    earliest_activation_date: int | None = None
    earliest_available_date: int | None = None
    latest_available_date: int | None = None
    notes: str | None = None
    deactivated_date: int | None = None
    apn: str | None = None

    @property
    def created_at(self) -> datetime | None:
        """``created_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.created_date)

    @property
    def modified_at(self) -> datetime | None:
        """``modified_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.modified_date)

    @property
    def deactivated_at(self) -> datetime | None:
        """``deactivated_date`` as an aware UTC datetime (``None`` unless de-activated)."""
        return timestamp_to_datetime(self.deactivated_date)


@attrs.define(slots=True, kw_only=True)
class Package:
    """A package on a SIM: list item, detail, or create response.

    ``package_template`` is an ``int`` id in lists, the full
    [`PackageTemplate`][betatel_async.PackageTemplate] in the detail view (``GET /packages/{id}``), and
    a [`PackageTemplateInfo`][betatel_async.PackageTemplateInfo] in the create response (the rule that tells
    the two objects apart is in this module's docstring); use
    `package_template_id` when only the id matters. ``id``, ``sim``,
    ``package_template`` and ``status`` are required in every shape; the
    create response's other fields are optional here because lists leave them
    out. Timestamps are raw (milliseconds in the documents);
    ``time_allowance`` is in seconds.
    """

    id: str
    sim: str
    package_template: PackageTemplate | PackageTemplateInfo | int
    status: PackageStatus | str
    window_activation_start: int | None = None
    window_activation_end: int | None = None
    voice_usage_remaining: int | None = None
    data_usage_remaining: int | None = None
    sms_usage_remaining: int | None = None
    created_date: int | None = None
    expiry_date: int | None = None
    activated_date: int | None = None
    terminated_date: int | None = None
    time_allowance: int | None = None
    apn: str | None = None
    reconciled: bool = False
    """Not from the API: ``True`` when [`Packages.create()`][betatel_async.Packages.create] recovered this
    package by reading it back after an ambiguous failure."""

    @property
    def package_template_id(self) -> int:
        """The template's id, whichever shape ``package_template`` came in."""
        template = self.package_template
        if isinstance(template, int):
            return template
        return template.id

    @property
    def created_at(self) -> datetime | None:
        """``created_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.created_date)

    @property
    def expires_at(self) -> datetime | None:
        """``expiry_date`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.expiry_date)

    @property
    def activated_at(self) -> datetime | None:
        """``activated_date`` as an aware UTC datetime (``None`` if not activated)."""
        return timestamp_to_datetime(self.activated_date)

    @property
    def terminated_at(self) -> datetime | None:
        """``terminated_date`` as an aware UTC datetime (``None`` if not terminated)."""
        return timestamp_to_datetime(self.terminated_date)

    @property
    def window_activation_start_at(self) -> datetime | None:
        """``window_activation_start`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.window_activation_start)

    @property
    def window_activation_end_at(self) -> datetime | None:
        """``window_activation_end`` as an aware UTC datetime."""
        return timestamp_to_datetime(self.window_activation_end)


@attrs.define(slots=True, kw_only=True)
class Country:
    """A country the API knows (``/countries``): templates name countries by ``iso3``."""

    name: str
    iso2: str
    iso3: str


@attrs.define(slots=True, kw_only=True)
class ProfileReusePolicy:
    """Whether and where a released eUICC profile may be downloaded again, and how often."""

    reuse_type: ReuseType | str
    max_count: int


@attrs.define(slots=True, kw_only=True)
class EuiccProfile:
    """The eUICC profile of an eSIM (``GET /euicc-profiles/{iccid}``).

    ``activation_code`` is the LPA activation code a phone scans
    (``LPA:1$smdp.example$MATCHING-ID``). ``imsi`` is text here, unlike a
    SIM's IMSIs. ``last_operation_date`` and ``release_date`` are raw Unix
    timestamps; use the ``*_at`` properties for datetimes. The older
    documented answer wrapped as ``{"profile": {...}}`` is unwrapped by
    `decode_model()`, which every ``get`` uses.
    """

    iccid: str
    imsi: str
    state: EuiccProfileState | str
    last_operation_date: int
    activation_code: str
    reuse_remaining_count: int | None = None
    reuse_enabled: bool | None = None
    profile_reuse_policy: ProfileReusePolicy | None = None
    release_date: int | None = None
    cc_required: bool | None = None
    cc_retries: int | None = None
    eid: str | None = None

    @property
    def last_operation_at(self) -> datetime | None:
        """``last_operation_date`` as an aware UTC datetime (``None`` if not set)."""
        return timestamp_to_datetime(self.last_operation_date)

    @property
    def released_at(self) -> datetime | None:
        """``release_date`` as an aware UTC datetime (``None`` if not released)."""
        return timestamp_to_datetime(self.release_date)


@attrs.define(slots=True, kw_only=True)
class DataProfile:
    """A SIM's data service in its PCR profile: on or off, and its speed cap."""

    state: ServiceState | str
    active_throttling: Throttling | str


@attrs.define(slots=True, kw_only=True)
class ServiceProfile:
    """A SIM's voice or SMS service in its PCR profile: on or off."""

    state: ServiceState | str


@attrs.define(slots=True, kw_only=True)
class WalletOwner:
    """What a wallet belongs to: a group or inventory id, or a SIM's ICCID."""

    group: int | None = None
    inventory: int | None = None
    sim: str | None = None


@attrs.define(slots=True, kw_only=True)
class Wallet:
    """A balance usage is charged to. ``balance`` and ``overdraft`` are integers in the API's unit."""

    id: int
    owner: WalletOwner
    balance: int
    overdraft: int
    wallet_type: WalletType | str


@attrs.define(slots=True, kw_only=True)
class PcrProfile:
    """A SIM's policy and charging profile (``/sim-pcr-profiles/{iccid}``).

    ``sim`` is the ICCID. ``route_policy`` is an id, absent when none is set.
    """

    sim: str
    data: DataProfile
    voice: ServiceProfile
    sms: ServiceProfile
    wallets: list[Wallet]
    wallet_mode: WalletMode | str
    route_policy: int | None = None


@attrs.define(slots=True, kw_only=True)
class ApiStatus:
    """The API's health (``GET /api/v1/status``).

    ``status`` is ``"ok"`` or ``"error"`` as documented, kept as sent;
    ``uptime`` is in seconds.
    """

    status: str
    version: str
    uptime: int | None = None

    @property
    def ok(self) -> bool:
        """Whether ``status`` is exactly ``"ok"``."""
        return self.status == "ok"


@attrs.define(slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing.

    Attributes:
        total: How many items match the filters, as the server said on this page.
        offset: The offset this page starts at.
        count: How many items the server says it returned (``len(items)``
            unless the server is inconsistent).
        items: The decoded items, in listing order.
    """

    total: int
    offset: int
    count: int
    items: list[T]

    def __len__(self) -> int:
        return len(self.items)
