"""``client.package_templates``: what a package is made from; list, get, create."""

from __future__ import annotations

import builtins
import operator
import os
from collections.abc import Sequence
from typing import Any, Final, TypedDict, Unpack

from .._converter import decode_model
from .._errors import (
    APIError,
    APIStatusError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MalformedResponseError,
)
from .._export import ExportResult
from .._models import (
    ActivationType,
    PackageTemplate,
    PackageTemplateInfo,
    Page,
    TimeAllowance,
    TimeUnit,
)
from .._paginate import ItemScan, PageScan
from .._validate import (
    check_country_codes,
    check_given_choice,
    check_int,
    check_optional_id,
    check_text,
)
from ._created import CreateClock, created_since, is_ambiguous
from ._listing import ExportOptions, Listing, ListingResource, ScanOptions, SnapshotOptions
from ._paths import PATHS

__all__ = ["PACKAGE_TEMPLATES", "PackageTemplateFilters", "PackageTemplates"]

ACTIVATION_TYPES: Final = frozenset(a.value for a in ActivationType)
TIME_UNITS: Final = frozenset(u.value for u in TimeUnit)


class PackageTemplateFilters(TypedDict, total=False):
    """The filters of the package template listing.

    Attributes:
        inventory: Only the templates of this inventory id (>= 0).
    """

    inventory: int | None


class _Scan(PackageTemplateFilters, ScanOptions, total=False):
    """The arguments of ``package_templates.pages()`` and ``package_templates.iter()``."""


class _Export(PackageTemplateFilters, ExportOptions, total=False):
    """The arguments of ``package_templates.export()`` besides the path."""


class _Snapshot(PackageTemplateFilters, SnapshotOptions, total=False):
    """The arguments of ``package_templates.all()``."""


PACKAGE_TEMPLATES: Final = Listing(
    path_key="package_templates",
    items_key="package_templates",
    model=PackageTemplate,
    key=operator.attrgetter("id"),
    filters={"inventory": check_optional_id},
)


def _may_have_created(exc: APIError) -> bool:
    """Whether a failed POST may nonetheless have created the template."""
    # A 2xx whose body did not decode: made, only its description is lost.
    return isinstance(exc, MalformedResponseError) or is_ambiguous(exc)


def _explain(exc: APIError, why: str) -> APIError:
    """``exc`` with ``why`` added to its message."""
    exc.args = (f"{exc.args[0]} ({why})", *exc.args[1:])
    if isinstance(exc, APIStatusError):
        exc.message = f"{exc.message} ({why})"
    return exc


class PackageTemplates(ListingResource[PackageTemplate]):
    """``client.package_templates``: list, get and create package templates."""

    _listing = PACKAGE_TEMPLATES

    async def list(
        self, *, offset: int = 0, count: int | None = None, **filters: Unpack[PackageTemplateFilters]
    ) -> Page[PackageTemplate]:
        """One page of package templates.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose.
            **filters: ``inventory``: only the templates of this inventory id.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, filters)

    def pages(self, **kwargs: Unpack[_Scan]) -> PageScan[PackageTemplate]:
        """Every page of templates, fetched concurrently: filters as `list()`,
        options as [`ScanOptions`][betatel_async.ScanOptions]. See [`Sims.pages()`][betatel_async.Sims.pages]."""
        return self._pages(kwargs)

    def iter(self, **kwargs: Unpack[_Scan]) -> ItemScan[PackageTemplate]:
        """Every template, fetched concurrently. Arguments as `pages()`; see [`Sims.iter()`][betatel_async.Sims.iter]."""
        return self._iter(kwargs)

    async def all(self, **kwargs: Unpack[_Snapshot]) -> builtins.list[PackageTemplate]:
        """Every template as a list: a consistent snapshot. Filters as `list()`,
        options as [`SnapshotOptions`][betatel_async.SnapshotOptions]; see [`Sims.all()`][betatel_async.Sims.all]."""
        return await self._all(kwargs)

    async def get(self, template_id: int) -> PackageTemplate:
        """One package template by id.

        Raises:
            InvalidArgumentError: ``template_id`` is not an int >= 0 (before any request).
            NotFoundError: No such template.
            MalformedResponseError: The answer lacks a required field or has
                one of the wrong type (named).
        """
        path = PATHS["package_template"].format(id=check_int("template_id", template_id))
        response = await self._transport.request("GET", path, template=PATHS["package_template"])
        return decode_model(response.data, PackageTemplate, method="GET", path=self._transport.url_path(path))

    async def create(
        self,
        *,
        name: str,
        supported_countries: Sequence[str],
        activation_type: ActivationType | str,
        data_usage_allowance: int,
        time_allowance: TimeAllowance,
        activation_time_allowance: int,
        earliest_available_date: int,
        latest_available_date: int,
        inventory: int,
    ) -> PackageTemplateInfo:
        """Create a package template.

        A create is not idempotent, and the API takes no idempotency key, so
        it is retried automatically only when the connection could not be
        opened (the request never left). After an ambiguous failure (a
        timeout or disconnect once the request was sent, a 502/503/504, or a
        2xx whose body is cut short or not the documented shape), it is not
        sent again: the inventory's templates are read back (every page) and
        the one named ``name`` whose ``created_date`` is no earlier than 60 s
        before this call started (on the server's clock: the ``Date`` header
        of the error answer, else the local clock) is returned. If there is no
        such template, or more than one, the original error is raised, its
        message saying why.

        What it cannot promise: two creates with the same ``name`` and
        ``inventory`` running at once cannot be told apart by the read-back
        (it then finds two and raises); after a failure without an answer
        (no ``Date`` header to read the server's clock from), a server clock
        more than 60 s ahead of this machine's could let an older template of
        the same name pass for the new one. Use a unique ``name`` per
        template to be safe.

        Args:
            name: The template's name (non-blank).
            supported_countries: ISO 3166-1 alpha-3 codes, upper case, at
                least one, no repeats (``["FRA", "DEU"]``); see
                ``client.countries``.
            activation_type: ``AUTO`` or ``MANUAL``.
            data_usage_allowance: Bytes of data (int >= 0).
            time_allowance: How long a package lasts once active: a
                [`TimeAllowance`][betatel_async.TimeAllowance] with a ``unit`` (``SECOND`` ...
                ``YEAR``) and a ``duration`` (int >= 1).
            activation_time_allowance: Seconds a package may wait to be
                activated (int >= 0).
            earliest_available_date: Unix time from which the template can be
                sold (int >= 0), sent as given: use the unit your account's
                templates show (milliseconds in the API's examples).
            latest_available_date: Unix time until which it can be sold (int
                >= 0; 0: no end), not before ``earliest_available_date``.
            inventory: The id of the inventory that owns the template (>= 0).

        Returns:
            The created template's summary (the create answer's fields).

        Raises:
            InvalidArgumentError: A bad argument (named), before any request.
            BadRequestError: The API refused the template (400).
            APIError: Any other failure, after the read-back described above.
        """
        body = {
            "name": check_text("name", name),
            "supported_countries": check_country_codes("supported_countries", supported_countries),
            "activation_type": check_given_choice("activation_type", activation_type, ACTIVATION_TYPES),
            "data_usage_allowance": check_int("data_usage_allowance", data_usage_allowance),
            "time_allowance": _time_allowance(time_allowance),
            "activation_time_allowance": check_int("activation_time_allowance", activation_time_allowance),
            "earliest_available_date": check_int("earliest_available_date", earliest_available_date),
            "latest_available_date": check_int("latest_available_date", latest_available_date),
            "inventory": check_int("inventory", inventory),
        }
        if 0 < latest_available_date < earliest_available_date:
            raise InvalidArgumentError("latest_available_date", "must not be before earliest_available_date")
        clock = CreateClock()
        path = PATHS["package_templates"]
        try:
            response = await self._transport.request("POST", path, json=body, idempotent=False)
            return decode_model(
                response.data,
                PackageTemplateInfo,
                method="POST",
                path=self._transport.url_path(path),
                status=response.status,
            )
        except APIError as exc:
            clock.observe(exc)
            if not _may_have_created(exc):
                raise
            return await self._find_created(body, clock, exc)

    async def _find_created(
        self, body: dict[str, Any], clock: CreateClock, error: APIError
    ) -> PackageTemplateInfo:
        """The template an ambiguous create of ``body`` made, read back; else ``error``, explained.

        A template is this call's only if it was created since the call
        started and every field of ``body`` it carries is what was sent (a
        template of the same name made by someone else with other values is
        not claimed).
        """
        name, inventory = body["name"], body["inventory"]
        try:
            templates = await self.all(inventory=inventory)
        except APIError as lookup:
            raise _explain(error, f"reading the templates back failed too: {lookup}") from lookup
        since = clock.earliest()
        matches = [t for t in templates if _as_sent(t, body) and created_since(t.created_date, since)]
        if len(matches) != 1:
            why = (
                f"no template named {name!r} created since the call started, with the values sent, "
                f"was found in inventory {inventory}"
                if not matches
                else f"{len(matches)} templates named {name!r} were created in inventory {inventory} "
                "since the call started: cannot tell which is this call's"
            )
            raise _explain(error, why)
        t = matches[0]
        return PackageTemplateInfo(
            id=t.id,
            name=t.name,
            # Not from the listing, which may leave them out: a template made
            # by a create has no voice or SMS allowance (its body has none),
            # and the activation time allowance it was sent (checked against
            # the listing's when that carries one).
            voice_usage_allowance=t.voice_usage_allowance or 0,
            data_usage_allowance=t.data_usage_allowance,
            sms_usage_allowance=t.sms_usage_allowance or 0,
            time_allowance=t.time_allowance,
            activation_time_allowance=(
                body["activation_time_allowance"]
                if t.activation_time_allowance is None
                else t.activation_time_allowance
            ),
        )

    async def export(self, path: str | os.PathLike[str], **kwargs: Unpack[_Export]) -> ExportResult:
        """Export every package template to a file, in listing order: atomic and resumable.

        Args, return value and errors as `Sims.export()`.
        """
        return await self._export(path, kwargs)


def _as_sent(template: PackageTemplate, body: dict[str, Any]) -> bool:
    """Whether every field of a create's ``body`` that ``template`` carries holds the value sent."""
    if template.name != body["name"]:
        return False
    if sorted(template.supported_countries) != sorted(body["supported_countries"]):
        return False
    allowance = template.time_allowance
    if (allowance.unit, allowance.duration) != (
        body["time_allowance"]["unit"],
        body["time_allowance"]["duration"],
    ):
        return False
    for field in (
        "activation_type",
        "data_usage_allowance",
        "activation_time_allowance",
        "earliest_available_date",
        "latest_available_date",
    ):
        value = getattr(template, field)
        if value is not None and value != body[field]:  # optional in a listing: absent says nothing
            return False
    return True


def _time_allowance(value: object) -> dict[str, object]:
    if not isinstance(value, TimeAllowance):
        raise InvalidArgumentTypeError(
            "time_allowance", f"expected a TimeAllowance, got {type(value).__name__}"
        )
    return {
        "unit": check_given_choice("time_allowance.unit", value.unit, TIME_UNITS),
        "duration": check_int("time_allowance.duration", value.duration, minimum=1),
    }
