"""``client.inventories``: the eSIM inventories of the account."""

from __future__ import annotations

import builtins
import operator
import os
from typing import Final, TypedDict, Unpack

from .._export import ExportResult
from .._models import Inventory, Page
from .._paginate import ItemScan, PageScan
from .._validate import check_optional_id
from ._listing import ExportOptions, Listing, ListingResource, ScanOptions, SnapshotOptions

__all__ = ["INVENTORIES", "Inventories", "InventoryFilters"]


class InventoryFilters(TypedDict, total=False):
    """The filters of the inventories listing.

    Attributes:
        company: Only inventories of this company id (>= 0).
    """

    company: int | None


class _Scan(InventoryFilters, ScanOptions, total=False):
    """The arguments of ``inventories.pages()`` and ``inventories.iter()``."""


class _Export(InventoryFilters, ExportOptions, total=False):
    """The arguments of ``inventories.export()`` besides the path."""


class _Snapshot(InventoryFilters, SnapshotOptions, total=False):
    """The arguments of ``inventories.all()``."""


INVENTORIES: Final = Listing(
    path_key="inventories",
    items_key="inventories",
    model=Inventory,
    key=operator.attrgetter("id"),
    filters={"company": check_optional_id},
)


class Inventories(ListingResource[Inventory]):
    """``client.inventories``: the eSIM inventories of the account."""

    _listing = INVENTORIES

    async def list(
        self, *, offset: int = 0, count: int | None = None, **filters: Unpack[InventoryFilters]
    ) -> Page[Inventory]:
        """One page of inventories.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose (20).
            **filters: ``company``: only inventories of this company id.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, filters)

    def pages(self, **kwargs: Unpack[_Scan]) -> PageScan[Inventory]:
        """Every page of inventories, fetched concurrently: filters as `list()`,
        options as [`ScanOptions`][betatel_async.ScanOptions]. See [`Sims.pages()`][betatel_async.Sims.pages]."""
        return self._pages(kwargs)

    def iter(self, **kwargs: Unpack[_Scan]) -> ItemScan[Inventory]:
        """Every inventory, fetched concurrently. Arguments as `pages()`; see [`Sims.iter()`][betatel_async.Sims.iter]."""
        return self._iter(kwargs)

    async def all(self, **kwargs: Unpack[_Snapshot]) -> builtins.list[Inventory]:
        """Every inventory as a list: a consistent snapshot. Filters as `list()`,
        options as [`SnapshotOptions`][betatel_async.SnapshotOptions]; see [`Sims.all()`][betatel_async.Sims.all]."""
        return await self._all(kwargs)

    async def export(self, path: str | os.PathLike[str], **kwargs: Unpack[_Export]) -> ExportResult:
        """Export every inventory to a file, in listing order: atomic and resumable.

        Args, return value and errors as `Sims.export()`.
        """
        return await self._export(path, kwargs)
