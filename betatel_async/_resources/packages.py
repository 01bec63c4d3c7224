"""``client.packages``: packages on SIMs; list, get, create, activate, terminate."""

from __future__ import annotations

import builtins
import functools
import operator
import os
from datetime import datetime
from typing import Final, TypedDict, Unpack

from .._converter import decode_model
from .._errors import (
    ActionRejectedError,
    APIError,
    ConflictError,
    MalformedResponseError,
)
from .._export import ExportResult
from .._models import Package, PackageStatus, Page
from .._paginate import ItemScan, PageScan
from .._validate import (
    MAX_PAGE_SIZE,
    check_choice,
    check_iccid,
    check_int,
    check_optional_iccid,
    check_optional_id,
    path_segment,
)
from ._created import CreateClock, created_since, is_ambiguous
from ._listing import ExportOptions, Listing, ListingResource, ScanOptions, SnapshotOptions
from ._paths import PATHS

__all__ = ["PACKAGES", "PackageFilters", "Packages"]

PACKAGE_STATUSES: Final = frozenset(s.value for s in PackageStatus)


def _may_be_created_by(pkg: Package, sim: str, package_template: int, earliest: datetime) -> bool:
    """Whether ``pkg`` can be the package a create call (``sim``, ``package_template``) made.

    It must be on that SIM, from that template, live (not ``TERMINATED``) and
    created at or after ``earliest``, ``created_date`` read in either unit. A
    package without a creation time (or an absurd one) is never claimed.
    """
    if pkg.sim != sim or pkg.package_template_id != package_template:
        return False
    if pkg.status == PackageStatus.TERMINATED:
        return False
    return created_since(pkg.created_date, earliest)


class PackageFilters(TypedDict, total=False):
    """The filters of the package listing.

    Attributes:
        inventory: Only packages of this inventory id (>= 0).
        package_template: Only packages of this template id (>= 0).
        sim: Only packages of this SIM (ICCID, 18 to 22 digits).
        status: Only packages in this status: ``NOT_ACTIVE``, ``ACTIVE``,
            ``SUSPENDED`` or ``TERMINATED`` (a [`PackageStatus`][betatel_async.PackageStatus] works too).
    """

    inventory: int | None
    package_template: int | None
    sim: str | None
    status: str | None


class _Scan(PackageFilters, ScanOptions, total=False):
    """The arguments of ``packages.pages()`` and ``packages.iter()``."""


class _Export(PackageFilters, ExportOptions, total=False):
    """The arguments of ``packages.export()`` besides the path."""


class _Snapshot(PackageFilters, SnapshotOptions, total=False):
    """The arguments of ``packages.all()``."""


PACKAGES: Final = Listing(
    path_key="packages",
    items_key="packages",
    model=Package,
    key=operator.attrgetter("id"),
    filters={
        "inventory": check_optional_id,
        "package_template": check_optional_id,
        "sim": check_optional_iccid,
        "status": functools.partial(check_choice, choices=PACKAGE_STATUSES),
    },
)


class Packages(ListingResource[Package]):
    """``client.packages``: packages on SIMs; create, activate, terminate."""

    _listing = PACKAGES

    async def list(
        self, *, offset: int = 0, count: int | None = None, **filters: Unpack[PackageFilters]
    ) -> Page[Package]:
        """One page of packages.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose.
            **filters: ``inventory``, ``package_template``, ``sim``, ``status``:
                see `PackageFilters`.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, filters)

    def pages(self, **kwargs: Unpack[_Scan]) -> PageScan[Package]:
        """Every page of packages, fetched concurrently: filters as `list()`,
        options as [`ScanOptions`][betatel_async.ScanOptions]. See [`Sims.pages()`][betatel_async.Sims.pages]."""
        return self._pages(kwargs)

    def iter(self, **kwargs: Unpack[_Scan]) -> ItemScan[Package]:
        """Every package, fetched concurrently. Arguments as `pages()`; see [`Sims.iter()`][betatel_async.Sims.iter]."""
        return self._iter(kwargs)

    async def all(self, **kwargs: Unpack[_Snapshot]) -> builtins.list[Package]:
        """Every package as a list: a consistent snapshot. Filters as `list()`,
        options as [`SnapshotOptions`][betatel_async.SnapshotOptions]; see [`Sims.all()`][betatel_async.Sims.all]."""
        return await self._all(kwargs)

    async def get(self, id: str) -> Package:
        """One package by id, in its detail shape (``package_template`` as an object).

        Raises:
            InvalidArgumentError: ``id`` is empty or not path-safe.
            NotFoundError: No such package.
        """
        path = PATHS["package"].format(id=path_segment("id", id))
        response = await self._transport.request("GET", path, template=PATHS["package"])
        return decode_model(response.data, Package, method="GET", path=self._transport.url_path(path))

    async def create(self, *, sim: str, package_template: int, time_allowance: int | None = None) -> Package:
        """Create a package on a SIM, exactly once.

        Rests on the API's rule that a SIM has at most one live (not
        ``TERMINATED``) package, a second create answering 409. A create is not
        idempotent, so it is retried automatically only when the connection
        could not be opened (the request never left). After an ambiguous
        failure (a timeout or disconnect once the request was sent, a body cut
        short, or a 502/503/504), the SIM's packages are read back first; if
        none is this call's, the create is sent once more, and if that meets
        409 (or fails ambiguously too) they are read back again. A 2xx whose
        body is not a package is read back at once (the package was made).

        A read-back reads every page of the SIM's packages and claims only a
        live package from ``package_template`` created no earlier than
        `CREATE_CLOCK_SLACK` (60 s) before this call started, on the
        server's clock (the ``Date`` header of the first error answer that
        has one, else the local clock). Exactly one such package is returned
        with ``reconciled=True``. None, or more than one (which the one-live-
        package rule forbids: no telling which is this call's), raises the
        failure that led to the read-back, with a note saying what was found.
        So a package that existed before the call is never returned: its
        409 is raised as [`ConflictError`][betatel_async.ConflictError]. ``reconciled=True`` means "a
        live package from this template made on this SIM during this call";
        another caller creating the same at the same moment is not told apart.

        Args:
            sim: ICCID of the SIM (18 to 22 digits; no Luhn check).
            package_template: Id of the package template (>= 0).
            time_allowance: Optional time allowance in seconds (>= 0).

        Returns:
            The created package (create-response shape, ``package_template``
            as an object), or the reconciled one (list shape, ``package_template``
            an id, ``reconciled=True``).

        Raises:
            ConflictError: The SIM already had a live package (409), including
                when this create is a re-run of one that succeeded.
            BadRequestError: The API rejected the request (400).
            APIConnectionError: Both attempts failed without an answer and no
                package of this call was found: the outcome is unknown (a
                server still working on the request may make it later).
            MalformedResponseError: A 2xx answer that is not a package, and
                the package could not be found.
            APIError: Any other failure, including one of the read-back.
        """
        body: dict[str, str | int] = {
            "sim": check_iccid("sim", sim),
            "package_template": check_int("package_template", package_template),
        }
        if time_allowance is not None:
            body["time_allowance"] = check_int("time_allowance", time_allowance)
        clock = CreateClock()
        try:
            return await self._send_create(body)
        except MalformedResponseError as exc:
            # A 2xx whose body is not a package: made, only its description is lost.
            return await self._read_back(exc, sim, package_template, clock)
        except APIError as exc:
            clock.observe(exc)
            if not is_ambiguous(exc):
                raise
            first = exc
        # The first attempt may have been carried out: look before sending it again,
        # so the guarantee leans on the 409 rule only when the server is slower still.
        found = await self._find_created(sim, package_template, clock.earliest())
        if found:
            return self._claim(found, first, sim, package_template, clock)
        try:
            return await self._send_create(body)
        except MalformedResponseError as exc:
            return await self._read_back(exc, sim, package_template, clock)
        except APIError as again:
            clock.observe(again)
            # 409: either an attempt of this call made it (the first one, late;
            # or this one, its answer lost), or the SIM had a live package
            # already: the read-back tells them apart by creation time.
            if not (isinstance(again, ConflictError) or is_ambiguous(again)):
                raise
            return await self._read_back(again, sim, package_template, clock)

    async def _send_create(self, body: dict[str, str | int]) -> Package:
        """POST the create once (no retry once sent) and decode its answer."""
        path = PATHS["packages"]
        response = await self._transport.request("POST", path, json=body, idempotent=False)
        return decode_model(
            response.data,
            Package,
            method="POST",
            path=self._transport.url_path(path),
            status=response.status,
        )

    async def _read_back(
        self, error: APIError, sim: str, package_template: int, clock: CreateClock
    ) -> Package:
        """This call's package, read back after ``error``; else ``error`` is raised."""
        found = await self._find_created(sim, package_template, clock.earliest())
        return self._claim(found, error, sim, package_template, clock)

    @staticmethod
    def _claim(
        found: builtins.list[Package],
        error: APIError,
        sim: str,
        package_template: int,
        clock: CreateClock,
    ) -> Package:
        """The one package found, marked ``reconciled``; ``error`` (with a note) if not exactly one."""
        if len(found) == 1:
            found[0].reconciled = True
            return found[0]
        since = clock.earliest().isoformat(timespec="seconds")
        if found:
            ids = ", ".join(sorted(pkg.id for pkg in found))
            error.add_note(
                f"read back: {len(found)} live packages from template {package_template} were "
                f"created on SIM {sim} since {since} ({ids}); the API should allow only one, "
                "so none is claimed as this call's"
            )
        else:
            error.add_note(
                f"read back: no live package from template {package_template} was created on "
                f"SIM {sim} since {since}"
            )
        raise error

    async def _find_created(
        self, sim: str, package_template: int, earliest: datetime
    ) -> builtins.list[Package]:
        """The SIM's packages that a create since ``earliest`` may have made, from every page.

        Only the SIM is filtered on the server; template, status and time are
        checked here (`_may_be_created_by()`), so a server ignoring a filter
        cannot hand over another package.
        """
        packages = await self.all(sim=sim, page_size=MAX_PAGE_SIZE)
        return [pkg for pkg in packages if _may_be_created_by(pkg, sim, package_template, earliest)]

    async def activate(self, id: str) -> None:
        """Activate a package.

        The API answers 204 or a JSON boolean; ``false`` raises. After an
        ambiguous failure the package is read back: already ``ACTIVE`` is success.

        Raises:
            ActionRejectedError: The API answered ``false``.
            BadRequestError: The package cannot be activated (400).
            NotFoundError: No such package.
        """
        await self._action("activate", id, PackageStatus.ACTIVE)

    async def terminate(self, id: str) -> None:
        """Terminate a package. As `activate()`, with target status ``TERMINATED``."""
        await self._action("terminate", id, PackageStatus.TERMINATED)

    async def _action(self, action: str, package_id: str, target: PackageStatus) -> None:
        segment = path_segment("id", package_id)
        path = PATHS[action].format(id=segment)
        try:
            response = await self._transport.request("POST", path, idempotent=False, template=PATHS[action])
        except APIError as exc:
            if not is_ambiguous(exc):
                raise
            # The action may have happened before the failure: look before repeating it.
            current = await self.get(package_id)
            if current.status == target:
                return
            response = await self._transport.request("POST", path, idempotent=False, template=PATHS[action])
        data = response.data
        if data is None or data is True:
            return
        full_path = self._transport.url_path(path)
        if data is False:
            raise ActionRejectedError(
                f"the API declined to {action} the package", method="POST", path=full_path
            )
        raise MalformedResponseError(
            f"{action} answered {type(data).__name__}, expected no content or a boolean",
            status=response.status,
            method="POST",
            path=full_path,
        )

    async def export(self, path: str | os.PathLike[str], **kwargs: Unpack[_Export]) -> ExportResult:
        """Export every package to a file, in listing order: atomic and resumable.

        Args, return value and errors as `Sims.export()`.
        """
        return await self._export(path, kwargs)
