"""Typed models of the Betatel eSIM API's JSON.

Strategy: every model keeps exactly what the API sent, so that structuring then
unstructuring gives the API's JSON back (for the keys we know; unknown keys are
ignored on input because the API will grow).

- Optional fields default to ``None``, meaning "absent from the JSON", and are
  left out again on output.
- Timestamps are kept as the raw integer (lossless). The API mixes units
  (inventories and packages in milliseconds, SIMs in seconds), so the
  ``*_at`` accessors infer the unit from the magnitude and return an aware UTC
  ``datetime``; ``0`` and absent mean "not set" and give ``None``.
- Status fields are open sets: a known value decodes to its enum member (which
  is also a ``str``), an unknown one stays a plain ``str`` with its text intact.
- References (``group``, ``inventory``, ``company`` of a SIM) come either as
  ``{"id", "name"}`` objects or as bare integer ids; both decode to :class:`Ref`
  (``name`` is ``None`` for a bare id, and a bare id is written back as one).

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
    "Imsi",
    "Inventory",
    "InventoryStatus",
    "Package",
    "PackageStatus",
    "PackageTemplate",
    "PackageTemplateInfo",
    "Page",
    "Ref",
    "Sim",
    "SimStatus",
    "TimeAllowance",
    "TimeUnit",
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


@attrs.define(slots=True, kw_only=True)
class Ref:
    """A reference to a group, inventory or company: an id and, if sent, a name."""

    id: int
    name: str | None = None


@attrs.define(slots=True, kw_only=True)
class Imsi:
    """One IMSI of a SIM and the sponsor (network) that issued it."""

    sponsor_id: int | None = None
    imsi: int | None = None


@attrs.define(slots=True, kw_only=True)
class Sim:
    """A SIM registry entry (list item or full record; both shapes decode here).

    ``provisioned_date``, ``terminated_date``, ``created_date`` and
    ``modified_date`` are raw Unix timestamps (seconds in the documents);
    use the ``*_at`` properties for datetimes.
    """

    iccid: str
    sim_status: SimStatus | str | None = None
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
    name: str | None = None
    created_date: int | None = None
    modified_date: int | None = None
    company: int | None = None
    status: InventoryStatus | str | None = None
    note: str | None = None
    deleted_date: int | None = None
    parent_inventory: int | None = None
    deactivated_date: int | None = None
    wallet: int | None = None
    whitelist: int | None = None

    @property
    def is_active(self) -> bool:
        """Whether the status says active, whatever its spelling (``ACTIVE``, ``Active``)."""
        return isinstance(self.status, str) and self.status.upper() == "ACTIVE"

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

    unit: TimeUnit | str | None = None
    duration: int | None = None


@attrs.define(slots=True, kw_only=True)
class PackageTemplateInfo:
    """The package template as embedded in a package's detail or create response."""

    id: int
    name: str | None = None
    voice_usage_allowance: int | None = None
    data_usage_allowance: int | None = None
    sms_usage_allowance: int | None = None
    time_allowance: TimeAllowance | None = None
    activation_time_allowance: TimeAllowance | int | None = None


@attrs.define(slots=True, kw_only=True)
class Package:
    """A package on a SIM: list item, detail, or create response.

    ``package_template`` is an ``int`` id in lists and a
    :class:`PackageTemplateInfo` in the detail and create responses; use
    :attr:`package_template_id` when only the id matters. Timestamps are raw
    (milliseconds in the documents); ``time_allowance`` is in seconds.
    """

    id: str
    sim: str | None = None
    package_template: PackageTemplateInfo | int | None = None
    status: PackageStatus | str | None = None
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
    """Not from the API: ``True`` when :meth:`Packages.create` recovered this
    package by reading it back after an ambiguous failure."""

    @property
    def package_template_id(self) -> int | None:
        """The template's id, whichever shape ``package_template`` came in."""
        template = self.package_template
        if isinstance(template, PackageTemplateInfo):
            return template.id
        return template

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
class PackageTemplate:
    """A package template (``/package-templates``)."""

    id: int
    name: str | None = None
    supported_countries: list[str] | None = None
    data_usage_allowance: int | None = None
    activation_type: ActivationType | str | None = None
    created_date: int | None = None
    modified_date: int | None = None
    time_allowance: TimeAllowance | None = None
    status: str | None = None
    traffic_policy: str | None = None
    voice_usage_allowance: int | None = None
    sms_usage_allowance: int | None = None
    activation_time_allowance: TimeAllowance | int | None = None
    earliest_activation_date: int | None = None
    earliest_available_date: int | None = None
    latest_available_date: int | None = None
    notes: str | None = None
    deactivated_date: int | None = None
    apn: str | None = None


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
