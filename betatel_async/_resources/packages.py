"""``client.packages``: packages on SIMs; list, get, create, activate, terminate."""

from __future__ import annotations

import builtins
import functools
import operator
from typing import Final, TypedDict, Unpack

from .._converter import decode_model
from .._errors import (
    ActionRejectedError,
    APIConnectionError,
    APIError,
    ConflictError,
    MalformedResponseError,
    ServerError,
)
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
from ._listing import Listing, ListingResource, ScanOptions, SnapshotOptions
from ._paths import PATHS

__all__ = ["PACKAGES", "PackageFilters", "Packages"]

PACKAGE_STATUSES: Final = frozenset(s.value for s in PackageStatus)
_AMBIGUOUS_STATUSES: Final = frozenset({502, 503, 504})


def _is_ambiguous(exc: APIError) -> bool:
    """Whether a failed POST may nonetheless have been carried out by the server."""
    if isinstance(exc, APIConnectionError):
        return exc.kind != "connect"
    return isinstance(exc, ServerError) and exc.status in _AMBIGUOUS_STATUSES


class PackageFilters(TypedDict, total=False):
    """The filters of the package listing.

    Attributes:
        inventory: Only packages of this inventory id (>= 0).
        package_template: Only packages of this template id (>= 0).
        sim: Only packages of this SIM (ICCID, 18 to 22 digits).
        status: Only packages in this status: ``NOT_ACTIVE``, ``ACTIVE``,
            ``SUSPENDED`` or ``TERMINATED`` (a :class:`PackageStatus` works too).
    """

    inventory: int | None
    package_template: int | None
    sim: str | None
    status: str | None


class _Scan(PackageFilters, ScanOptions, total=False):
    """The arguments of ``packages.pages()`` and ``packages.iter()``."""


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
                see :class:`PackageFilters`.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, filters)

    def pages(self, **kwargs: Unpack[_Scan]) -> PageScan[Package]:
        """Every page of packages, fetched concurrently: filters as :meth:`list`,
        options as :class:`ScanOptions`. See :meth:`Sims.pages`."""
        return self._pages(kwargs)

    def iter(self, **kwargs: Unpack[_Scan]) -> ItemScan[Package]:
        """Every package, fetched concurrently. Arguments as :meth:`pages`; see :meth:`Sims.iter`."""
        return self._iter(kwargs)

    async def all(self, **kwargs: Unpack[_Snapshot]) -> builtins.list[Package]:
        """Every package as a list: a consistent snapshot. Filters as :meth:`list`,
        options as :class:`SnapshotOptions`; see :meth:`Sims.all`."""
        return await self._all(kwargs)

    async def get(self, id: str) -> Package:
        """One package by id, in its detail shape (``package_template`` as an object).

        Raises:
            InvalidArgumentError: ``id`` is empty or not path-safe.
            NotFoundError: No such package.
        """
        path = PATHS["package"].format(id=path_segment("id", id))
        response = await self._transport.request("GET", path)
        return decode_model(response.data, Package, method="GET", path=self._transport.url_path(path))

    async def create(self, *, sim: str, package_template: int, time_allowance: int | None = None) -> Package:
        """Create a package on a SIM, exactly once.

        A create is not idempotent, so it is retried automatically only when
        the connection could not be opened (the request never left). After an
        ambiguous failure (a timeout or disconnect once the request was sent,
        or a 502/503/504), it is sent once more; if that meets 409 (or fails
        ambiguously too), the SIM's packages are read back and the live one
        from ``package_template`` is returned with ``reconciled=True``. A 409
        on the first attempt is a real conflict and is raised at once.

        Args:
            sim: ICCID of the SIM (18 to 22 digits; no Luhn check).
            package_template: Id of the package template (>= 0).
            time_allowance: Optional time allowance in seconds (>= 0).

        Returns:
            The created package (create-response shape, ``package_template``
            as an object), or the reconciled one.

        Raises:
            ConflictError: The SIM already has a package (409).
            BadRequestError: The API rejected the request (400).
            APIError: Any other failure.
        """
        body: dict[str, str | int] = {
            "sim": check_iccid("sim", sim),
            "package_template": check_int("package_template", package_template),
        }
        if time_allowance is not None:
            body["time_allowance"] = check_int("time_allowance", time_allowance)
        path = PATHS["packages"]
        try:
            response = await self._transport.request("POST", path, json=body, idempotent=False)
        except APIError as exc:
            if not _is_ambiguous(exc):
                raise
            try:
                response = await self._transport.request("POST", path, json=body, idempotent=False)
            except APIError as again:
                # 409: the first attempt (or the retry, before its answer was
                # lost) created it. Read it back; anything else is raised.
                if not (isinstance(again, ConflictError) or _is_ambiguous(again)):
                    raise
                found = await self._find_created(sim, package_template)
                if found is None:
                    raise
                return found
        return decode_model(
            response.data,
            Package,
            method="POST",
            path=self._transport.url_path(path),
            status=response.status,
        )

    async def _find_created(self, sim: str, package_template: int) -> Package | None:
        """The SIM's live package from ``package_template``, read back after an ambiguous create."""
        page = await self.list(sim=sim, count=MAX_PAGE_SIZE)
        for pkg in page.items:
            if (
                pkg.sim == sim
                and pkg.package_template_id == package_template
                and pkg.status != PackageStatus.TERMINATED
            ):
                pkg.reconciled = True
                return pkg
        return None

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
        """Terminate a package. As :meth:`activate`, with target status ``TERMINATED``."""
        await self._action("terminate", id, PackageStatus.TERMINATED)

    async def _action(self, action: str, package_id: str, target: PackageStatus) -> None:
        segment = path_segment("id", package_id)
        path = PATHS[action].format(id=segment)
        try:
            response = await self._transport.request("POST", path, idempotent=False)
        except APIError as exc:
            if not _is_ambiguous(exc):
                raise
            # The action may have happened before the failure: look before repeating it.
            current = await self.get(package_id)
            if current.status == target:
                return
            response = await self._transport.request("POST", path, idempotent=False)
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
