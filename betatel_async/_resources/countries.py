"""``client.countries``: the countries the API knows, by name and ISO 3166-1 codes."""

from __future__ import annotations

import builtins
import operator
import os
from typing import Final, Unpack

from .._export import ExportResult
from .._models import Country, Page
from .._paginate import ItemScan, PageScan
from ._listing import ExportOptions, Listing, ListingResource, ScanOptions, SnapshotOptions

__all__ = ["COUNTRIES", "Countries"]

COUNTRIES: Final = Listing(
    path_key="countries",
    items_key="countries",
    model=Country,
    # Templates name their countries by alpha-3 code.
    key=operator.attrgetter("iso3"),
)


class Countries(ListingResource[Country]):
    """``client.countries``: ``Country(name, iso2, iso3)``; the listing takes no filter."""

    _listing = COUNTRIES

    async def list(self, *, offset: int = 0, count: int | None = None) -> Page[Country]:
        """One page of countries.

        Args:
            offset: Items to skip (>= 0). Default 0.
            count: Items to return, 1 to 1000; ``None`` lets the server choose.

        Raises:
            InvalidArgumentError: An argument is out of range (before any request).
            APIError: The request failed.
        """
        return await self._list(offset, count, {})

    def pages(self, **options: Unpack[ScanOptions]) -> PageScan[Country]:
        """Every page of countries, fetched concurrently: options as [`ScanOptions`][betatel_async.ScanOptions].
        See [`Sims.pages()`][betatel_async.Sims.pages]."""
        return self._pages(options)

    def iter(self, **options: Unpack[ScanOptions]) -> ItemScan[Country]:
        """Every country, fetched concurrently. Options as `pages()`; see [`Sims.iter()`][betatel_async.Sims.iter]."""
        return self._iter(options)

    async def all(self, **options: Unpack[SnapshotOptions]) -> builtins.list[Country]:
        """Every country as a list: a consistent snapshot. Options as
        [`SnapshotOptions`][betatel_async.SnapshotOptions]; see [`Sims.all()`][betatel_async.Sims.all]."""
        return await self._all(options)

    async def export(self, path: str | os.PathLike[str], **kwargs: Unpack[ExportOptions]) -> ExportResult:
        """Export every country to a file, in listing order: atomic and resumable.

        Args, return value and errors as `Sims.export()`.
        """
        return await self._export(path, kwargs)
