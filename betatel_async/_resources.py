"""The API's resources: inventories, SIMs and packages.

Each method checks its arguments (raising before any request), builds the
query or body, calls the transport and structures the answer. Every API path
is in :data:`PATHS`, so a correction is a one-line change.
"""

from __future__ import annotations

import builtins
import email.utils
import time
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import orjson

from ._converter import check_page, decode_model, structure_page
from ._errors import (
    ActionRejectedError,
    APIConnectionError,
    APIError,
    APIStatusError,
    ConflictError,
    DriftError,
    InvalidArgumentError,
    MalformedResponseError,
    ServerError,
)
from ._models import Inventory, Package, PackageStatus, Page, Sim, timestamp_to_datetime
from ._paginate import DriftPolicy, ItemScan, PageScan, ScanReport, ScanRunner, Window
from ._status import SimStatusReport, StatusAccumulator
from ._validate import (
    MAX_PAGE_SIZE,
    check_choice,
    check_iccid,
    check_int,
    check_optional_id,
    path_segment,
)

if TYPE_CHECKING:  # the client imports this module; no models here, so cattrs is unaffected
    from ._transport import Response, Transport

__all__ = ["PATHS", "Inventories", "Packages", "Sims"]

T = TypeVar("T")

PATHS: Final = {
    "inventories": "/api/v1/esim/inventories",
    "sims": "/api/v1/esim/sim-registries",
    "sim": "/api/v1/esim/sim-registries/{iccid}",
    "packages": "/api/v1/esim/packages",
    "package": "/api/v1/esim/packages/{id}",
    "activate": "/api/v1/esim/packages/{id}/activate",
    "terminate": "/api/v1/esim/packages/{id}/terminate",
}
"""Every API path the SDK calls, relative to the base URL."""

DEFAULT_SCAN_PAGE_SIZE: Final = 100
LOOKAHEAD_FACTOR: Final = 2
"""Ordered scans start no window more than ``LOOKAHEAD_FACTOR * concurrency``
pages past the consumer's position."""

PACKAGE_STATUSES: Final = frozenset(s.value for s in PackageStatus)
_AMBIGUOUS_STATUSES: Final = frozenset({502, 503, 504})


def _is_ambiguous(exc: APIError) -> bool:
    """Whether a failed POST may nonetheless have been carried out by the server."""
    if isinstance(exc, APIConnectionError):
        return exc.kind != "connect"
    return isinstance(exc, ServerError) and exc.status in _AMBIGUOUS_STATUSES


class _Listing(Generic[T]):
    """Shared machinery of a listed resource. Private."""

    _path_key: str
    _items_key: str
    _model: type[T]

    def __init__(self, transport: Transport, max_concurrency: int) -> None:
        self._transport = transport
        self._max_concurrency = max_concurrency

    def _key(self, item: T) -> Hashable:
        raise NotImplementedError

    async def _list(
        self,
        params: dict[str, str | int],
        *,
        offset: int,
        count: int | None,
        on_retry: Callable[[], None] | None = None,
    ) -> Page[T]:
        return self._structure(await self._list_raw(params, offset=offset, count=count, on_retry=on_retry))

    async def _list_raw(
        self,
        params: dict[str, str | int],
        *,
        offset: int,
        count: int | None,
        on_retry: Callable[[], None] | None = None,
    ) -> Page[Any]:
        """One page, its envelope checked and its items still JSON values."""
        response = await self._get_page(params, offset, count, on_retry, parse=True)
        page = check_page(response.data, self._items_key, method="GET", path=self._full_path)
        self._transport.totals.set(self._which(params), page.total)
        return page

    def _which(self, params: dict[str, str | int]) -> Hashable:
        """The listing ``params`` select, as a key of the totals seen (offset and count left out)."""
        return (self._path_key, tuple(sorted(params.items())))

    def _get_page(
        self,
        params: dict[str, str | int],
        offset: int,
        count: int | None,
        on_retry: Callable[[], None] | None,
        *,
        parse: bool,
    ) -> Awaitable[Response]:
        query = dict(params)
        query["offset"] = offset
        if count is not None:
            query["count"] = count
        return self._transport.request(
            "GET", PATHS[self._path_key], params=query, on_retry=on_retry, parse=parse
        )

    @property
    def _full_path(self) -> str:
        return self._transport.url_path(PATHS[self._path_key])

    def _structure(self, page: Page[Any]) -> Page[T]:
        """The typed items of a page from :meth:`_list_raw`, built in place."""
        return structure_page(page, self._items_key, self._model, method="GET", path=self._full_path)

    def _pages(
        self,
        params: dict[str, str | int],
        *,
        page_size: int | None,
        concurrency: int | None,
        ordered: bool,
        on_drift: DriftPolicy,
        max_restarts: int,
        on_progress: Callable[[ScanReport], Any] | None,
        offset: int = 0,
    ) -> PageScan[T]:
        size = (
            DEFAULT_SCAN_PAGE_SIZE
            if page_size is None
            else check_int("page_size", page_size, minimum=1, maximum=MAX_PAGE_SIZE)
        )
        limit = (
            self._max_concurrency
            if concurrency is None
            else check_int("concurrency", concurrency, minimum=1, maximum=self._max_concurrency)
        )
        if not isinstance(ordered, bool):
            raise InvalidArgumentError("ordered", f"must be True or False, got {ordered!r}")
        check_choice("on_drift", on_drift, ("raise", "restart"))
        check_int("max_restarts", max_restarts, minimum=0)
        if on_progress is not None and not callable(on_progress):
            raise InvalidArgumentError("on_progress", "must be callable")
        adaptive = self._transport.adaptive

        return PageScan(
            ScanRunner(
                _ListingPages(self, params),
                page_size=size,
                workers=limit,
                concurrency=lambda: min(limit, adaptive.current),
                ordered=ordered,
                on_drift=on_drift,
                max_restarts=max_restarts,
                on_progress=on_progress,
                lookahead=LOOKAHEAD_FACTOR * limit * size,
                start=check_int("offset", offset),
            )
        )

    async def _all(self, make_scan: Callable[[], PageScan[T]], max_restarts: int) -> builtins.list[T]:
        # Strategy: a snapshot. If the listing changes during the scan, the
        # partial result is thrown away and the scan starts over, so the list
        # returned is one whole pass during which every page agreed on total.
        restarts = 0
        while True:
            items: list[T] = []
            try:
                async with make_scan() as scan:
                    async for page in scan:
                        items.extend(page.items)
            except DriftError as exc:
                restarts += 1
                if restarts > max_restarts:
                    exc.restarts = restarts - 1
                    raise
                continue
            return items


class _ListingPages(Generic[T]):
    """The pages of one listing, for a scan (a :class:`PageSource`). Private."""

    __slots__ = ("_listing", "_params", "_totals", "_which")

    def __init__(self, listing: _Listing[T], params: dict[str, str | int]) -> None:
        self._listing = listing
        self._params = params
        self._totals = listing._transport.totals
        self._which = listing._which(params)

    async def fetch(self, window: Window, on_retry: Callable[[], None]) -> bytes:
        response = await self._listing._get_page(
            self._params, window.offset, window.count, on_retry, parse=False
        )
        body: bytes = response.data
        return body

    def read(self, body: bytes) -> Page[Any] | None:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None
        return check_page(data, self._listing._items_key, method="GET", path=self._listing._full_path)

    async def refetch(self, window: Window, on_retry: Callable[[], None]) -> Page[Any]:
        listing = self._listing
        return await listing._list_raw(
            self._params, offset=window.offset, count=window.count, on_retry=on_retry
        )

    def finish(self, page: Page[Any]) -> Page[T]:
        return self._listing._structure(page)

    def key(self, item: T) -> Hashable:
        return self._listing._key(item)

    def expected_total(self) -> int | None:
        return self._totals.get(self._which)

    def saw_total(self, total: int) -> None:
        self._totals.set(self._which, total)


def _filters(**values: str | int | None) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


class Inventories(_Listing[Inventory]):
    """``client.inventories``: the eSIM inventories of the account."""

    _path_key = "inventories"
    _items_key = "inventories"
    _model = Inventory

    def _key(self, item: Inventory) -> Hashable:
        return item.id

    async def list(self, *, offset: int = 0, count: int | None = None) -> Page[Inventory]:
        """One page of inventories.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose (20).

        Raises:
            InvalidArgumentError: ``offset`` or ``count`` out of range (before any request).
            APIError: The request failed.
        """
        check_int("offset", offset)
        if count is not None:
            check_int("count", count, minimum=1, maximum=MAX_PAGE_SIZE)
        return await self._list({}, offset=offset, count=count)

    def pages(
        self,
        *,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> PageScan[Inventory]:
        """Every page of inventories, fetched concurrently. See :meth:`Sims.pages`."""
        return self._pages(
            {},
            page_size=page_size,
            concurrency=concurrency,
            ordered=ordered,
            on_drift=on_drift,
            max_restarts=max_restarts,
            on_progress=on_progress,
            offset=offset,
        )

    def iter(
        self,
        *,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> ItemScan[Inventory]:
        """Every inventory, fetched concurrently. See :meth:`Sims.iter`."""
        return ItemScan(
            self.pages(
                page_size=page_size,
                concurrency=concurrency,
                ordered=ordered,
                on_drift=on_drift,
                max_restarts=max_restarts,
                on_progress=on_progress,
                offset=offset,
            )
        )

    async def all(
        self,
        *,
        page_size: int | None = None,
        concurrency: int | None = None,
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
    ) -> builtins.list[Inventory]:
        """Every inventory as a list: a consistent snapshot. See :meth:`Sims.all`."""
        return await self._all(
            lambda: self.pages(
                page_size=page_size,
                concurrency=concurrency,
                max_restarts=0,
                on_progress=on_progress,
            ),
            check_int("max_restarts", max_restarts),
        )


class Sims(_Listing[Sim]):
    """``client.sims``: the SIM registry."""

    _path_key = "sims"
    _items_key = "sims"
    _model = Sim

    def _key(self, item: Sim) -> Hashable:
        return item.iccid

    @staticmethod
    def _params(company: int | None, inventory: int | None, group: int | None) -> dict[str, str | int]:
        return _filters(
            company=check_optional_id("company", company),
            inventory=check_optional_id("inventory", inventory),
            group=check_optional_id("group", group),
        )

    async def list(
        self,
        *,
        offset: int = 0,
        count: int | None = None,
        company: int | None = None,
        inventory: int | None = None,
        group: int | None = None,
    ) -> Page[Sim]:
        """One page of SIMs.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose (100).
            company: Only SIMs of this company id.
            inventory: Only SIMs of this inventory id.
            group: Only SIMs of this group id.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        check_int("offset", offset)
        if count is not None:
            check_int("count", count, minimum=1, maximum=MAX_PAGE_SIZE)
        return await self._list(self._params(company, inventory, group), offset=offset, count=count)

    async def get(self, iccid: str) -> Sim:
        """One SIM by ICCID (``GET /sim-registries/{iccid}``).

        Raises:
            InvalidArgumentError: ``iccid`` is not 18 to 22 digits.
            NotFoundError: No such SIM.
        """
        segment = path_segment("iccid", check_iccid("iccid", iccid))
        path = PATHS["sim"].format(iccid=segment)
        response = await self._transport.request("GET", path)
        return decode_model(response.data, Sim, method="GET", path=self._transport.url_path(path))

    def pages(
        self,
        *,
        company: int | None = None,
        inventory: int | None = None,
        group: int | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> PageScan[Sim]:
        """Every page of SIMs, fetched concurrently.

        The first page tells ``total``; the remaining windows are fetched
        concurrently. Pages come in offset order (or as they complete with
        ``ordered=False``); no window starts more than ``2 * concurrency``
        pages ahead of the consumer.

        Args:
            company: Filter, as :meth:`list`.
            inventory: Filter, as :meth:`list`.
            group: Filter, as :meth:`list`.
            page_size: Items per request, 1 to 1000. Default 100.
            concurrency: Requests in flight for this scan, at most the
                client's ``max_concurrency`` (the default).
            ordered: Offset order (default) or completion order.
            on_drift: What to do if the listing changes during the scan:
                ``"raise"`` (default) or ``"restart"``; see :data:`DriftPolicy`.
            max_restarts: Restarts allowed with ``on_drift="restart"``. Default 3.
            offset: Start the scan at this offset (>= 0) instead of 0, e.g. to
                resume an export; ``total`` still counts the whole listing.
            on_progress: Called with the live :class:`ScanReport` after each
                page is handed on (keep it quick: it runs in the scan's task).

        Returns:
            An async iterator of pages; use ``async with`` to close it early.
        """
        return self._pages(
            self._params(company, inventory, group),
            page_size=page_size,
            concurrency=concurrency,
            ordered=ordered,
            on_drift=on_drift,
            max_restarts=max_restarts,
            on_progress=on_progress,
            offset=offset,
        )

    def iter(
        self,
        *,
        company: int | None = None,
        inventory: int | None = None,
        group: int | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> ItemScan[Sim]:
        """Every SIM, fetched concurrently, in offset order by default.

        Takes the arguments of :meth:`pages`. Memory stays bounded whatever
        ``total`` is. If you may stop early, close the iterator promptly with
        ``async with client.sims.iter() as sims:`` (or ``contextlib.aclosing``).

        Raises:
            DriftError: The listing changed during the scan (``on_drift="raise"``).
            APIError: A page request failed after retries; the scan's other
                requests are cancelled.
        """
        return ItemScan(
            self.pages(
                company=company,
                inventory=inventory,
                group=group,
                page_size=page_size,
                concurrency=concurrency,
                ordered=ordered,
                on_drift=on_drift,
                max_restarts=max_restarts,
                on_progress=on_progress,
                offset=offset,
            )
        )

    async def all(
        self,
        *,
        company: int | None = None,
        inventory: int | None = None,
        group: int | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
    ) -> builtins.list[Sim]:
        """Every SIM as a list, in offset order: a consistent snapshot.

        If the listing changes during the scan, the partial result is
        discarded and the scan starts over (up to ``max_restarts`` times), so
        the list is exactly the listing as it stood during one whole pass.

        Raises:
            DriftError: The listing kept changing through every restart.
            APIError: A page request failed after retries.
        """
        return await self._all(
            lambda: self.pages(
                company=company,
                inventory=inventory,
                group=group,
                page_size=page_size,
                concurrency=concurrency,
                max_restarts=0,
                on_progress=on_progress,
            ),
            check_int("max_restarts", max_restarts),
        )

    async def status(
        self,
        *,
        company: int | None = None,
        inventory: int | None = None,
        group: int | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
    ) -> SimStatusReport:
        """SIM inventory statistics, in the manner of TelecomX's ``/sim/status``.

        Computed from one concurrent scan of the SIM registry (filters as
        :meth:`list`): one row per holder (company, and inventory within it)
        with counts per network (IMSI sponsor), per SIM status and per group.
        Totals are the sums of the counts. If the registry changes during the
        scan, the counts are thrown away and the scan starts over (as
        :meth:`all`), so the report describes one consistent pass.

        Raises:
            DriftError: The registry kept changing through every restart.
            APIError: A page request failed after retries.
        """
        restarts_left = check_int("max_restarts", max_restarts)
        while True:
            accumulator = StatusAccumulator()
            try:
                async with self.pages(
                    company=company,
                    inventory=inventory,
                    group=group,
                    page_size=page_size,
                    concurrency=concurrency,
                    max_restarts=0,
                    on_progress=on_progress,
                ) as scan:
                    async for page in scan:
                        for sim in page.items:
                            accumulator.add(sim)
            except DriftError:
                if restarts_left == 0:
                    raise
                restarts_left -= 1
                continue
            return accumulator.result()


CREATE_CLOCK_SLACK: Final = timedelta(seconds=60)
"""How long before a create call's start (on the server's clock) a package may
have been made and still be read back as this call's: it absorbs the 1-second
resolution of the ``Date`` header and a database clock a little off the web
server's."""


class _CreateClock:
    """When a create call started, on the server's clock as far as its answers tell. Private.

    Strategy: the local clock is read as the call starts. The first error
    answer that carries a ``Date`` header gives the server's offset from the
    local clock, which moves that start onto the server's clock; without one,
    the local clock stands. ``Date`` is cut to the second and stamped before
    the answer arrives, so the offset errs early, on the side of not missing
    this call's own package.
    """

    __slots__ = ("_offset", "_started")

    def __init__(self) -> None:
        self._started = time.time()
        self._offset: float | None = None

    def observe(self, exc: APIError) -> None:
        """Take the server's offset from ``exc``'s ``Date`` header, if it is the first to carry one."""
        if self._offset is not None or not isinstance(exc, APIStatusError) or exc.date is None:
            return
        try:
            server_now = email.utils.parsedate_to_datetime(exc.date)
        except (TypeError, ValueError):  # not an HTTP date: keep the local clock
            return
        if server_now.tzinfo is None:  # "-0000": HTTP dates are GMT all the same
            server_now = server_now.replace(tzinfo=UTC)
        self._offset = server_now.timestamp() - time.time()

    def earliest(self) -> datetime:
        """The earliest creation time a package made by this call can carry (aware UTC)."""
        start = self._started + (self._offset or 0.0)
        return datetime.fromtimestamp(start, UTC) - CREATE_CLOCK_SLACK


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
    try:
        created = timestamp_to_datetime(pkg.created_date)
    except OverflowError:
        return False
    return created is not None and created >= earliest


class Packages(_Listing[Package]):
    """``client.packages``: packages on SIMs; create, activate, terminate."""

    _path_key = "packages"
    _items_key = "packages"
    _model = Package

    def _key(self, item: Package) -> Hashable:
        return item.id

    @staticmethod
    def _params(
        inventory: int | None, package_template: int | None, sim: str | None, status: str | None
    ) -> dict[str, str | int]:
        return _filters(
            inventory=check_optional_id("inventory", inventory),
            package_template=check_optional_id("package_template", package_template),
            sim=None if sim is None else check_iccid("sim", sim),
            status=check_choice("status", status, PACKAGE_STATUSES),
        )

    async def list(
        self,
        *,
        offset: int = 0,
        count: int | None = None,
        inventory: int | None = None,
        package_template: int | None = None,
        sim: str | None = None,
        status: str | None = None,
    ) -> Page[Package]:
        """One page of packages.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose.
            inventory: Only packages of this inventory id.
            package_template: Only packages of this template id.
            sim: Only packages of this SIM (ICCID).
            status: Only packages in this status: ``NOT_ACTIVE``, ``ACTIVE``,
                ``SUSPENDED`` or ``TERMINATED`` (a :class:`PackageStatus` works too).

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        check_int("offset", offset)
        if count is not None:
            check_int("count", count, minimum=1, maximum=MAX_PAGE_SIZE)
        return await self._list(
            self._params(inventory, package_template, sim, status), offset=offset, count=count
        )

    def pages(
        self,
        *,
        inventory: int | None = None,
        package_template: int | None = None,
        sim: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> PageScan[Package]:
        """Every page of packages, fetched concurrently. See :meth:`Sims.pages`."""
        return self._pages(
            self._params(inventory, package_template, sim, status),
            page_size=page_size,
            concurrency=concurrency,
            ordered=ordered,
            on_drift=on_drift,
            max_restarts=max_restarts,
            on_progress=on_progress,
            offset=offset,
        )

    def iter(
        self,
        *,
        inventory: int | None = None,
        package_template: int | None = None,
        sim: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        ordered: bool = True,
        on_drift: DriftPolicy = "raise",
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
        offset: int = 0,
    ) -> ItemScan[Package]:
        """Every package, fetched concurrently. See :meth:`Sims.iter`."""
        return ItemScan(
            self.pages(
                inventory=inventory,
                package_template=package_template,
                sim=sim,
                status=status,
                page_size=page_size,
                concurrency=concurrency,
                ordered=ordered,
                on_drift=on_drift,
                max_restarts=max_restarts,
                on_progress=on_progress,
                offset=offset,
            )
        )

    async def all(
        self,
        *,
        inventory: int | None = None,
        package_template: int | None = None,
        sim: str | None = None,
        status: str | None = None,
        page_size: int | None = None,
        concurrency: int | None = None,
        max_restarts: int = 3,
        on_progress: Callable[[ScanReport], Any] | None = None,
    ) -> builtins.list[Package]:
        """Every package as a list: a consistent snapshot. See :meth:`Sims.all`."""
        return await self._all(
            lambda: self.pages(
                inventory=inventory,
                package_template=package_template,
                sim=sim,
                status=status,
                page_size=page_size,
                concurrency=concurrency,
                max_restarts=0,
                on_progress=on_progress,
            ),
            check_int("max_restarts", max_restarts),
        )

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
        :data:`CREATE_CLOCK_SLACK` (60 s) before this call started, on the
        server's clock (the ``Date`` header of the first error answer that
        has one, else the local clock). Exactly one such package is returned
        with ``reconciled=True``. None, or more than one (which the one-live-
        package rule forbids: no telling which is this call's), raises the
        failure that led to the read-back, with a note saying what was found.
        So a package that existed before the call is never returned: its
        409 is raised as :class:`ConflictError`. ``reconciled=True`` means "a
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
        clock = _CreateClock()
        try:
            return await self._send_create(body)
        except MalformedResponseError as exc:
            # A 2xx whose body is not a package: made, only its description is lost.
            return await self._read_back(exc, sim, package_template, clock)
        except APIError as exc:
            clock.observe(exc)
            if not _is_ambiguous(exc):
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
            if not (isinstance(again, ConflictError) or _is_ambiguous(again)):
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
        self, error: APIError, sim: str, package_template: int, clock: _CreateClock
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
        clock: _CreateClock,
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
        checked here (:func:`_may_be_created_by`), so a server ignoring a filter
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
