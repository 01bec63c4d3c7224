"""A listing described as data, and ``list/pages/iter/all`` written once on that description.

Strategy: what differs between two listings is data (a path, the envelope key
of its items, the model, an item's natural key, the filters and how each is
checked), so it is a frozen `Listing`. What a listing can do is written
once: `ListingQuery` reads one listing with given filters through the
transport (a page for ``list()``, a fetch function for a scan), and `ListingResource`
holds the one implementation of ``list``, ``pages``, ``iter`` and ``all``,
which each resource exposes through thin typed methods (mypy needs one per
resource to know its filters). The scan options are grouped in the TypedDicts
[`ScanOptions`][betatel_async.ScanOptions] and [`SnapshotOptions`][betatel_async.SnapshotOptions], so no keyword list is
forwarded by hand through several signatures.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Generic, TypedDict, TypeVar, cast

import attrs

from .._converter import check_page, structure_page
from .._errors import InvalidArgumentError, InvalidArgumentTypeError
from .._export import (
    CHECKPOINT_INTERVAL,
    LISTINGS,
    ExportFormat,
    ExportOptions,
    ExportResult,
    check_target,
    run_export,
)
from .._models import Page
from .._paginate import ItemScan, PageScan, ScanDriver
from .._scan_machine import DriftPolicy, Latencies, Policy, ScanReport, Window
from .._validate import MAX_PAGE_SIZE, check_choice, check_int
from ._paths import PATHS

if TYPE_CHECKING:  # the client imports this module; no models here, so cattrs is unaffected
    from .._transport import Response, Transport

__all__ = [
    "Check",
    "ExportOptions",
    "Listing",
    "ListingQuery",
    "ListingResource",
    "ScanOptions",
    "SnapshotOptions",
]

T = TypeVar("T")
A = TypeVar("A")

DEFAULT_SCAN_PAGE_SIZE: Final = 100
LOOKAHEAD_FACTOR: Final = 2
"""Ordered scans start no window more than ``LOOKAHEAD_FACTOR * concurrency``
pages past the consumer's position."""

Check = Callable[[str, object], "str | int | None"]
"""A filter's check: ``check(name, value)`` returns the value to send (``None``:
not sent) or raises ``InvalidArgumentError``/``InvalidArgumentTypeError`` naming ``name``."""


class SnapshotOptions(TypedDict, total=False):
    """The options of a scan that returns one consistent pass (``all()``, ``sims.status()``).

    Attributes:
        page_size: Items per request, 1 to 1000. Default 100.
        concurrency: Requests in flight for this scan, at most the client's
            ``max_concurrency`` (the default).
        max_restarts: How many times the scan may start over when the
            listing changes under it (>= 0). Default 3.
        on_progress: Called with the live [`ScanReport`][betatel_async.ScanReport] after each
            page is handed on (keep it quick: it runs in the scan's task).
        hedge: Send a second request for a page whose request is late
            (default: the client's ``hedge``, on unless turned off).
    """

    page_size: int | None
    concurrency: int | None
    max_restarts: int
    on_progress: Callable[[ScanReport], Any] | None
    hedge: bool | None


class ScanOptions(SnapshotOptions, total=False):
    """The options of a streaming scan (``pages()``, ``iter()``): those of
    [`SnapshotOptions`][betatel_async.SnapshotOptions], and:

    Attributes:
        ordered: Offset order (default ``True``) or completion order.
        on_drift: What to do if the listing changes during the scan:
            ``"raise"`` (default) or ``"restart"``; see [`DriftPolicy`][betatel_async.DriftPolicy].
        offset: Start the scan at this offset (>= 0) instead of 0, e.g. to
            resume an export; ``total`` still counts the whole listing.
    """

    ordered: bool
    on_drift: DriftPolicy
    offset: int


_SNAPSHOT_OPTIONS: Final = SnapshotOptions.__optional_keys__
_SCAN_OPTIONS: Final = ScanOptions.__optional_keys__
_EXPORT_OPTIONS: Final = ExportOptions.__optional_keys__


@attrs.frozen
class Listing(Generic[T]):
    """One listing of the API, described as data. Private.

    Pure: nothing here calls back into a resource or the transport, so a scan
    engine can run on it with any fetch function.

    Attributes:
        path_key: The key of its path in [`PATHS`][betatel_async.PATHS].
        items_key: The envelope key of its items (``{"total", ..., items_key: [...]}``).
        model: The class of its items.
        key: An item's natural key, unique in the listing (dedupe after a restart).
        filters: Its query filters, by name, each with its `Check`.
    """

    path_key: str
    items_key: str
    model: type[T]
    key: Callable[[T], Hashable]
    filters: Mapping[str, Check] = attrs.field(factory=dict)

    @property
    def path(self) -> str:
        """The API path, relative to the base URL."""
        return PATHS[self.path_key]

    def params(self, values: Mapping[str, object]) -> dict[str, str | int]:
        """The query for the filters given, each checked; a ``None`` value is not sent.

        Raises:
            InvalidArgumentTypeError: A name that is not one of the filters
                (or a value of the wrong type).
            InvalidArgumentError: A value out of range.
        """
        params: dict[str, str | int] = {}
        for name, value in values.items():
            check = self.filters.get(name)
            if check is None:
                raise InvalidArgumentTypeError(name, "unexpected keyword argument")
            checked = check(name, value)
            if checked is not None:
                params[name] = checked
        return params

    def which(self, params: Mapping[str, str | int]) -> Hashable:
        """The listing ``params`` select, as a key of the totals seen (offset and count left out)."""
        return (self.path_key, tuple(sorted(params.items())))


class ListingQuery(Generic[T]):
    """One listing with its filters, read through one transport. Private.

    ``list()`` reads a page with `page()`; a scan is given `fetch()`,
    `saw_total()` and `expected_total()` (and the `Listing`, as data).
    """

    __slots__ = ("_listing", "_params", "_transport", "_which", "path")

    def __init__(self, listing: Listing[T], params: dict[str, str | int], transport: Transport) -> None:
        self._listing = listing
        self._params = params
        self._transport = transport
        self.path = transport.url_path(listing.path)  # as error messages name it
        self._which = listing.which(params)

    def _request(
        self,
        offset: int,
        count: int | None,
        on_retry: Callable[[], None] | None,
        *,
        parse: bool,
        hedge: bool = False,
    ) -> Awaitable[Response]:
        query = dict(self._params)
        query["offset"] = offset
        if count is not None:
            query["count"] = count
        return self._transport.request(
            "GET", self._listing.path, params=query, on_retry=on_retry, parse=parse, hedge=hedge
        )

    async def page(self, offset: int, count: int | None) -> Page[T]:
        """One typed page (``count`` ``None``: the server's default size)."""
        response = await self._request(offset, count, None, parse=True)
        listing = self._listing
        checked = check_page(response.data, listing.items_key, method="GET", path=self.path)
        self.saw_total(checked.total)
        return structure_page(checked, listing.items_key, listing.model, method="GET", path=self.path)

    async def fetch(self, window: Window, on_retry: Callable[[], None], hedge: bool = False) -> bytes:
        """The body of the answer to ``window`` (a 2xx, after retries), not parsed (see ``FetchPage``)."""
        response = await self._request(window.offset, window.count, on_retry, parse=False, hedge=hedge)
        body: bytes = response.data
        return body

    def expected_total(self) -> int | None:
        """The listing's ``total`` as this client saw it last, or ``None``."""
        return self._transport.totals.get(self._which)

    def saw_total(self, total: int) -> None:
        """Remember the ``total`` a page of this listing reported (``list()`` and scans alike)."""
        self._transport.totals.set(self._which, total)

    def latencies(self) -> Latencies:
        """The latencies of this listing's answers as this client saw them (kept for the next scans)."""
        memory = self._transport.latencies
        latencies = memory.get(self._which)
        if latencies is None:
            latencies = Latencies()
        memory.set(self._which, latencies)  # the most recently used
        return latencies


@attrs.frozen
class _ScanSettings:
    """A scan's options, checked, with their defaults filled in. Private."""

    page_size: int
    concurrency: int
    ordered: bool
    on_drift: Policy
    max_restarts: int
    on_progress: Callable[[ScanReport], Any] | None
    offset: int
    hedge: bool


def _split(
    kwargs: Mapping[str, object], options: frozenset[str]
) -> tuple[dict[str, object], dict[str, object]]:
    """The filters and the options among a call's keyword arguments."""
    filters: dict[str, object] = {}
    chosen: dict[str, object] = {}
    for name, value in kwargs.items():
        (chosen if name in options else filters)[name] = value
    return filters, chosen


class ListingResource(Generic[T]):
    """``list``, ``pages``, ``iter`` and ``all`` of one `Listing`, written once. Private.

    A resource sets ``_listing`` and exposes these through thin typed methods.
    """

    _listing: Listing[T]

    def __init__(self, transport: Transport, max_concurrency: int) -> None:
        self._transport = transport
        self._max_concurrency = max_concurrency

    def _query(self, filters: Mapping[str, object]) -> ListingQuery[T]:
        return ListingQuery(self._listing, self._listing.params(filters), self._transport)

    async def _list(self, offset: int, count: int | None, filters: Mapping[str, object]) -> Page[T]:
        check_int("offset", offset)
        if count is not None:
            check_int("count", count, minimum=1, maximum=MAX_PAGE_SIZE)
        return await self._query(filters).page(offset, count)

    def _settings(self, options: ScanOptions) -> _ScanSettings:
        page_size = options.get("page_size")
        concurrency = options.get("concurrency")
        ordered = options.get("ordered", True)
        on_drift = options.get("on_drift", "raise")
        on_progress = options.get("on_progress")
        if not isinstance(ordered, bool):
            raise InvalidArgumentError("ordered", f"must be True or False, got {ordered!r}")
        check_choice("on_drift", on_drift, ("raise", "restart"))
        if on_progress is not None and not callable(on_progress):
            raise InvalidArgumentError("on_progress", "must be callable")
        hedge = options.get("hedge")
        if hedge is None:
            hedge = self._transport.hedge
        elif not isinstance(hedge, bool):
            raise InvalidArgumentError("hedge", f"must be True, False or None, got {hedge!r}")
        return _ScanSettings(
            page_size=(
                DEFAULT_SCAN_PAGE_SIZE
                if page_size is None
                else check_int("page_size", page_size, minimum=1, maximum=MAX_PAGE_SIZE)
            ),
            concurrency=(
                self._max_concurrency
                if concurrency is None
                else check_int("concurrency", concurrency, minimum=1, maximum=self._max_concurrency)
            ),
            ordered=ordered,
            on_drift=on_drift,
            max_restarts=check_int("max_restarts", options.get("max_restarts", 3)),
            on_progress=on_progress,
            offset=check_int("offset", options.get("offset", 0)),
            hedge=hedge,
        )

    def _scan(
        self,
        query: ListingQuery[T],
        settings: _ScanSettings,
        on_restart: Callable[[], None] | None = None,
        *,
        typed: bool = True,
    ) -> PageScan[T]:
        limit = settings.concurrency
        adaptive = self._transport.adaptive
        return PageScan(
            ScanDriver(
                self._listing,
                path=query.path,
                fetch=query.fetch,
                remember=query.saw_total,
                expected_total=query.expected_total(),
                concurrency=lambda: min(limit, adaptive.current),
                page_size=settings.page_size,
                lookahead=LOOKAHEAD_FACTOR * limit * settings.page_size,
                ordered=settings.ordered,
                start=settings.offset,
                on_drift=settings.on_drift,
                max_restarts=settings.max_restarts,
                on_restart=on_restart,
                on_progress=settings.on_progress,
                typed=typed,
                hedge=settings.hedge,
                latencies=query.latencies(),
                preconnect=self._transport.preconnect,
                telemetry=self._transport.telemetry,
            )
        )

    def _pages(self, kwargs: Mapping[str, object]) -> PageScan[T]:
        filters, options = _split(kwargs, _SCAN_OPTIONS)
        query = self._query(filters)
        return self._scan(query, self._settings(cast(ScanOptions, options)))

    def _iter(self, kwargs: Mapping[str, object]) -> ItemScan[T]:
        return ItemScan(self._pages(kwargs))

    async def _all(self, kwargs: Mapping[str, object]) -> list[T]:
        return await self._snapshot(kwargs, list, list.extend)

    async def _snapshot(
        self,
        kwargs: Mapping[str, object],
        start: Callable[[], A],
        add: Callable[[A, list[T]], object],
    ) -> A:
        """One whole pass over the listing folded into ``add(start(), items)``, started over on drift.

        Strategy: a snapshot. If the listing changes during the scan, the
        partial result is thrown away and the scan starts over, so the result
        is one whole pass during which every page agreed on total.
        """
        filters, options = _split(kwargs, _SNAPSHOT_OPTIONS)
        query = self._query(filters)
        settings = self._settings(cast(ScanOptions, options))
        result = [start()]

        def discard() -> None:  # the listing changed: the scan starts over, and so does the fold
            result[0] = start()

        async with self._scan(query, attrs.evolve(settings, on_drift="snapshot"), discard) as scan:
            async for page in scan:
                add(result[0], page.items)
        return result[0]

    # -- export (see betatel_async._export) -------------------------------------------------

    async def _export(
        self,
        path: str | os.PathLike[str],
        kwargs: Mapping[str, object],
        *,
        ordered: bool = True,
        stream: BinaryIO | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> ExportResult:
        """The one implementation of ``export()``: every argument checked before any request.

        ``ordered``, ``stream`` and ``checkpoint_interval`` are for the CLI
        (``--unordered``, standard output) and tests, not the public API.
        """
        filters, options = _split(kwargs, _EXPORT_OPTIONS)
        if stream is None:
            target, fmt = check_target(path, options.get("format"))
        else:
            target, fmt = Path(os.fspath(path)), cast(ExportFormat, options.get("format") or "jsonl")
        resume = options.get("resume", False)
        if not isinstance(resume, bool):
            raise InvalidArgumentError("resume", f"must be True or False, got {resume!r}")
        params = self._listing.params(filters)
        query = ListingQuery(self._listing, params, self._transport)
        scan_options = {
            name: options[name] for name in ("page_size", "concurrency", "on_progress") if name in options
        }
        settings = self._settings(cast(ScanOptions, {**scan_options, "ordered": ordered}))

        def open_scan(offset: int, typed: bool) -> PageScan[Any]:
            return self._scan(query, attrs.evolve(settings, offset=offset), typed=typed)

        return await run_export(
            LISTINGS[self._listing.path_key],
            open_scan,
            target=target,
            fmt=fmt,
            filters=params,
            resume=resume,
            api_path=self._transport.url_path(self._listing.path),
            ordered=ordered,
            stream=stream,
            checkpoint_interval=checkpoint_interval,
        )
