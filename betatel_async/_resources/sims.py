"""``client.sims``: the SIM registry, and its status report."""

from __future__ import annotations

import builtins
import operator
import os
from typing import Final, TypedDict, Unpack

from .._converter import decode_model
from .._export import ExportResult
from .._models import Page, Sim
from .._paginate import ItemScan, PageScan
from .._status import SimStatusReport, StatusAccumulator
from .._validate import check_iccid, check_optional_id, path_segment
from ._listing import ExportOptions, Listing, ListingResource, ScanOptions, SnapshotOptions
from ._paths import PATHS

__all__ = ["SIMS", "SimFilters", "Sims"]


class SimFilters(TypedDict, total=False):
    """The filters of the SIM listing (ids >= 0).

    Attributes:
        company: Only SIMs of this company id.
        inventory: Only SIMs of this inventory id.
        group: Only SIMs of this group id.
    """

    company: int | None
    inventory: int | None
    group: int | None


class _Scan(SimFilters, ScanOptions, total=False):
    """The arguments of ``sims.pages()`` and ``sims.iter()``."""


class _Export(SimFilters, ExportOptions, total=False):
    """The arguments of ``sims.export()`` besides the path."""


class _Snapshot(SimFilters, SnapshotOptions, total=False):
    """The arguments of ``sims.all()`` and ``sims.status()``."""


SIMS: Final = Listing(
    path_key="sims",
    items_key="sims",
    model=Sim,
    key=operator.attrgetter("iccid"),
    filters={"company": check_optional_id, "inventory": check_optional_id, "group": check_optional_id},
)


def _count(accumulator: StatusAccumulator, sims: builtins.list[Sim]) -> None:
    for sim in sims:
        accumulator.add(sim)


class Sims(ListingResource[Sim]):
    """``client.sims``: the SIM registry."""

    _listing = SIMS

    async def list(
        self, *, offset: int = 0, count: int | None = None, **filters: Unpack[SimFilters]
    ) -> Page[Sim]:
        """One page of SIMs.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose (100).
            **filters: ``company``, ``inventory``, ``group``: see `SimFilters`.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, filters)

    async def get(self, iccid: str) -> Sim:
        """One SIM by ICCID (``GET /sim-registries/{iccid}``).

        Raises:
            InvalidArgumentError: ``iccid`` is not 18 to 22 digits.
            NotFoundError: No such SIM.
        """
        segment = path_segment("iccid", check_iccid("iccid", iccid))
        path = PATHS["sim"].format(iccid=segment)
        response = await self._transport.request("GET", path, template=PATHS["sim"])
        return decode_model(response.data, Sim, method="GET", path=self._transport.url_path(path))

    def pages(self, **kwargs: Unpack[_Scan]) -> PageScan[Sim]:
        """Every page of SIMs, fetched concurrently.

        The first page tells ``total``; the remaining windows are fetched
        concurrently. Pages come in offset order (or as they complete with
        ``ordered=False``); no window starts more than ``2 * concurrency``
        pages ahead of the consumer.

        Args:
            **kwargs: The filters of `list()` (`SimFilters`) and the
                scan's options ([`ScanOptions`][betatel_async.ScanOptions]: ``page_size``,
                ``concurrency``, ``ordered``, ``on_drift``, ``max_restarts``,
                ``on_progress``, ``offset``).

        Returns:
            An async iterator of pages; use ``async with`` to close it early.

        Raises:
            InvalidArgumentError: A bad filter or option (named), before any request.
            InvalidArgumentTypeError: A keyword that is neither a filter nor an option.
        """
        return self._pages(kwargs)

    def iter(self, **kwargs: Unpack[_Scan]) -> ItemScan[Sim]:
        """Every SIM, fetched concurrently, in offset order by default.

        Takes the arguments of `pages()`. Memory stays bounded whatever
        ``total`` is. If you may stop early, close the iterator promptly with
        ``async with client.sims.iter() as sims:`` (or ``contextlib.aclosing``).

        Raises:
            DriftError: The listing changed during the scan (``on_drift="raise"``).
            APIError: A page request failed after retries; the scan's other
                requests are cancelled.
        """
        return self._iter(kwargs)

    async def all(self, **kwargs: Unpack[_Snapshot]) -> builtins.list[Sim]:
        """Every SIM as a list, in offset order: a consistent snapshot.

        If the listing changes during the scan, the partial result is
        discarded and the scan starts over (up to ``max_restarts`` times), so
        the list is exactly the listing as it stood during one whole pass.

        Args:
            **kwargs: The filters of `list()` (`SimFilters`) and
                [`SnapshotOptions`][betatel_async.SnapshotOptions] (``page_size``, ``concurrency``,
                ``max_restarts``, ``on_progress``).

        Raises:
            DriftError: The listing kept changing through every restart.
            APIError: A page request failed after retries.
        """
        return await self._all(kwargs)

    async def status(self, **kwargs: Unpack[_Snapshot]) -> SimStatusReport:
        """SIM inventory statistics, in the manner of TelecomX's ``/sim/status``.

        Computed from one concurrent scan of the SIM registry (arguments as
        `all()`): one row per holder (company, and inventory within it)
        with counts per network (IMSI sponsor), per SIM status and per group.
        Totals are the sums of the counts. If the registry changes during the
        scan, the counts are thrown away and the scan starts over (as
        `all()`), so the report describes one consistent pass.

        Raises:
            DriftError: The registry kept changing through every restart.
            APIError: A page request failed after retries.
        """
        accumulator = await self._snapshot(kwargs, StatusAccumulator, _count)
        return accumulator.result()

    async def export(self, path: str | os.PathLike[str], **kwargs: Unpack[_Export]) -> ExportResult:
        """Export every SIM to a file, in listing order: atomic and resumable.

        The format is ``format``, or the path's suffix (``.jsonl``/``.ndjson``,
        ``.csv``, ``.parquet``/``.pq``). JSON Lines holds each item's JSON as the
        API sent it; CSV and Parquet hold the typed items (Parquet needs the
        ``parquet`` extra). See the guide "Exports" (``docs/pages/exports.md``).

        Args:
            path: The file to write. It is written as ``PATH.partial`` beside it
                and renamed onto ``path`` (after an fsync) only once complete;
                ``PATH.checkpoint.json`` records the progress meanwhile.
            **kwargs: The filters of `list()` (`SimFilters`) and [`ExportOptions`][betatel_async.ExportOptions] (``format``, ``resume``,
                ``page_size``, ``concurrency``, ``on_progress``).

        Returns:
            What was written: path, format, items, pages, the scan's report,
            and ``resumed_from``.

        Raises:
            InvalidArgumentError: A bad filter or option, an unknown format, a
                path that is a directory, Parquet without pyarrow (all named,
                before any request), or ``resume`` with the checkpoint of
                another export.
            ExportError: The file cannot be written (the checkpoint saved last
                stays, so ``resume=True`` continues), or the listing changed
                before the resume point (start anew).
            APIError: A page request failed after retries (the checkpoint is saved first).
            DriftError: The listing changed during the scan (resume to continue).
        """
        return await self._export(path, kwargs)
