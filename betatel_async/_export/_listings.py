"""The listings an export can hold: name, model, key. Private.

A file says which listing it holds by its field names (JSON Lines keys, CSV
header) or, in Parquet, by the schema's metadata; `listing_of()` and
`detect()` go from either to the `Exported` description.
"""

from __future__ import annotations

import typing
from collections.abc import Collection
from typing import Any, Final

import attrs

from .._converter import _LOCAL_FIELDS
from .._models import Country, Inventory, Package, PackageTemplate, Sim

__all__ = ["LISTINGS", "Exported", "detect", "listing_of"]


@attrs.frozen(slots=True)
class Exported:
    """One listing as an export sees it. Private.

    Attributes:
        name: The listing's name (``"sims"``), as the client's attribute.
        items_key: The envelope key of its items in the API's pages.
        model: The class of its items.
        key: The field that is an item's natural key (``"iccid"``, ``"id"``, ``"iso3"``).
    """

    name: str
    items_key: str
    model: type[Any]
    key: str

    @property
    def key_type(self) -> type:
        """The type of the key field's JSON value (``str`` or ``int``)."""
        hint = typing.get_type_hints(self.model)[self.key]
        assert hint in (str, int), hint
        return typing.cast(type, hint)

    @property
    def fields(self) -> tuple[str, ...]:
        """The API's fields of the model, in order (the SDK's own fields left out)."""
        local = _LOCAL_FIELDS.get(self.model, ())
        return tuple(f.name for f in attrs.fields(self.model) if f.name not in local)

    @property
    def required(self) -> frozenset[str]:
        """The fields every item carries (no default in the model)."""
        return frozenset(f.name for f in attrs.fields(self.model) if f.default is attrs.NOTHING)


LISTINGS: Final[dict[str, Exported]] = {
    listing.name: listing
    for listing in (
        Exported("sims", "sims", Sim, "iccid"),
        Exported("inventories", "inventories", Inventory, "id"),
        Exported("packages", "packages", Package, "id"),
        Exported("package_templates", "package_templates", PackageTemplate, "id"),
        Exported("countries", "countries", Country, "iso3"),
    )
}


def listing_of(model: type[Any]) -> Exported:
    """The listing whose items are ``model``.

    Raises:
        KeyError: No listing holds that model.
    """
    for listing in LISTINGS.values():
        if listing.model is model:
            return listing
    raise KeyError(model)


def detect(names: Collection[str]) -> Exported | None:
    """The listing whose items carry these field names, or ``None`` if it is not clear which.

    A listing fits when ``names`` holds every field it requires. Keys the
    models do not know are allowed (the API grows), so when several fit, the
    one that knows every name is taken.
    """
    given = set(names)
    fits = [listing for listing in LISTINGS.values() if listing.required <= given]
    if len(fits) > 1:
        fits = [listing for listing in fits if given <= set(listing.fields)]
    return fits[0] if len(fits) == 1 else None
