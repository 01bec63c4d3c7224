"""The Arrow schema of a listing, derived from its attrs model, and rows to and from it. Private.

Strategy: one `Column` per API field of the model, each with the
Arrow type the field's type hint calls for and two small functions that
convert between the API's JSON value (what [`unstructure()`][betatel_async.unstructure]
gives) and the value Arrow stores:

- ``int``, ``bool``, ``str`` and open enums (``SimStatus | str``): int64,
  bool, string (an enum member is its text; unknown text stays as it came).
- timestamps (the fields listed in `TIMESTAMPS`): a UTC timestamp
  column in the unit the API documents for the model (seconds for SIMs,
  milliseconds for the rest). The raw integer is stored as is, so a value of
  the other magnitude comes back unchanged too. Parquet has no seconds unit:
  a SIM's timestamps are stored as milliseconds (pyarrow multiplies them),
  and read back in seconds.
- [`Ref`][betatel_async.Ref]: ``struct<id: int64, name: string>``; a bare id
  is a struct whose ``name`` is null, and reads back as the bare id.
- nested models (``time_allowance``, each of ``imsis``): structs of their
  fields; lists: Arrow lists.
- anything else (``package_template``: an id, or one of two objects): its
  JSON text, a string column marked ``betatel_async.kind: json``.

A null is a field absent from the JSON (the models leave out ``None``
fields), so read back, every row is exactly ``unstructure(item)``.

Only imported when Parquet is asked for: it imports pyarrow.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import attrs
import orjson
import pyarrow as pa

from .._models import Inventory, Package, PackageTemplate, Ref, Sim
from ._listings import LISTINGS, Exported

__all__ = [
    "LISTING_KEY",
    "TIMESTAMPS",
    "Column",
    "columns_for",
    "listing_in",
    "rows_from",
    "schema_for",
    "to_batch",
]

LISTING_KEY: Final = b"betatel_async.listing"
"""The Parquet schema metadata key naming the listing a file holds (``b"sims"``)."""
_KIND_KEY: Final = b"betatel_async.kind"

TIMESTAMPS: Final[dict[type, tuple[str, frozenset[str]]]] = {
    Sim: ("s", frozenset({"provisioned_date", "terminated_date", "created_date", "modified_date"})),
    Inventory: ("ms", frozenset({"created_date", "modified_date", "deleted_date", "deactivated_date"})),
    Package: (
        "ms",
        frozenset(
            {
                "window_activation_start",
                "window_activation_end",
                "created_date",
                "expiry_date",
                "activated_date",
                "terminated_date",
            }
        ),
    ),
    PackageTemplate: (
        "ms",
        frozenset(
            {
                "created_date",
                "modified_date",
                "earliest_activation_date",
                "earliest_available_date",
                "latest_available_date",
                "deactivated_date",
            }
        ),
    ),
}
"""Per model, the unit the API documents for its timestamps and the fields that are timestamps."""

Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


@attrs.frozen(slots=True)
class Column:
    """One Parquet column: its Arrow field, and the conversions of a non-null value. Private."""

    name: str
    field: pa.Field
    to_arrow: Convert | None  # None: stored as the JSON value is
    from_arrow: Convert | None


def _options(hint: Any) -> tuple[list[Any], bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = list(typing.get_args(hint))
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _is_text(options: Sequence[Any]) -> bool:
    # str, or an open enum: ``SimStatus | str``.
    return all(isinstance(a, type) and issubclass(a, str | enum.Enum) for a in options) and str in options


def _type_of(hint: Any) -> tuple[pa.DataType, Convert | None, Convert | None, bool]:
    """The Arrow type of a hint, the conversions of a non-null value, and whether it is JSON text."""
    options, _ = _options(hint)
    if options == [bool]:
        return pa.bool_(), None, None, False
    if options == [int]:
        return pa.int64(), None, None, False
    if _is_text(options):
        return pa.string(), None, None, False
    if options == [Ref]:
        return (
            pa.struct([("id", pa.int64()), ("name", pa.string())]),
            lambda v: v if type(v) is dict else {"id": v, "name": None},
            lambda v: v["id"] if v["name"] is None else v,
            False,
        )
    if len(options) == 1 and typing.get_origin(options[0]) is list:
        (item,) = typing.get_args(options[0])
        item_type, to_arrow, from_arrow, _ = _type_of(item)
        return (
            pa.list_(item_type),
            None if to_arrow is None else (lambda v: [None if x is None else to_arrow(x) for x in v]),
            None if from_arrow is None else (lambda v: [None if x is None else from_arrow(x) for x in v]),
            False,
        )
    if len(options) == 1 and attrs.has(options[0]):
        fields = _columns(options[0])
        return pa.struct([c.field for c in fields]), _struct_to(fields), _struct_from(fields), False
    return pa.string(), _json_text, orjson.loads, True


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _struct_to(columns: Sequence[Column]) -> Convert | None:
    if all(c.to_arrow is None for c in columns):
        return None  # a dict of the JSON values is what Arrow takes

    def convert(value: dict[str, Any]) -> dict[str, Any]:
        return {c.name: _to(c, value.get(c.name)) for c in columns}

    return convert


def _struct_from(columns: Sequence[Column]) -> Convert:
    def convert(value: dict[str, Any]) -> dict[str, Any]:
        # A null member is a field absent from the JSON.
        return {c.name: _from(c, v) for c in columns if (v := value[c.name]) is not None}

    return convert


def _to(column: Column, value: Any) -> Any:
    return value if value is None or column.to_arrow is None else column.to_arrow(value)


def _from(column: Column, value: Any) -> Any:
    return value if column.from_arrow is None else column.from_arrow(value)


def _columns(model: type[Any]) -> list[Column]:
    hints = typing.get_type_hints(model)
    unit, stamps = TIMESTAMPS.get(model, ("s", frozenset()))

    local = _local(model)
    columns = []
    for f in attrs.fields(model):
        if f.name in local:
            continue
        nullable = f.default is not attrs.NOTHING
        if f.name in stamps:
            arrow_type: pa.DataType = pa.timestamp(unit, tz="UTC")
            to_arrow = from_arrow = None
            metadata = None
        else:
            arrow_type, to_arrow, from_arrow, json = _type_of(hints[f.name])
            metadata = {_KIND_KEY: b"json"} if json else None
        field = pa.field(f.name, arrow_type, nullable=nullable, metadata=metadata)
        columns.append(Column(f.name, field, to_arrow, from_arrow))
    return columns


def _local(model: type[Any]) -> tuple[str, ...]:
    from .._converter import _LOCAL_FIELDS

    return _LOCAL_FIELDS.get(model, ())


_CACHE: dict[str, list[Column]] = {}


def columns_for(listing: Exported) -> list[Column]:
    """The columns of a listing's model, in field order (cached)."""
    columns = _CACHE.get(listing.name)
    if columns is None:
        columns = _CACHE[listing.name] = _columns(listing.model)
    return columns


def schema_for(listing: Exported) -> pa.Schema:
    """The Arrow schema of a listing's export, its name in the metadata (`LISTING_KEY`)."""
    return pa.schema([c.field for c in columns_for(listing)], metadata={LISTING_KEY: listing.name.encode()})


def to_batch(listing: Exported, schema: pa.Schema, objects: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """A record batch of the API's JSON objects (``unstructure`` of the items)."""
    arrays = []
    for column in columns_for(listing):
        name, convert = column.name, column.to_arrow
        if convert is None:
            values = [obj.get(name) for obj in objects]
        else:
            values = [None if (v := obj.get(name)) is None else convert(v) for obj in objects]
        arrays.append(pa.array(values, type=column.field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def rows_from(listing: Exported, batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    """The JSON objects of each row (``unstructure`` of the item), batch by batch."""
    columns = columns_for(listing)
    for batch in batches:
        # Timestamps as the raw integers they were written from. Parquet has no
        # seconds unit (a SIM's column is stored in milliseconds): back to the
        # model's unit first, exactly (a safe cast refuses to drop a remainder).
        names = batch.schema.names
        by_name = {c.name: c for c in columns}
        arrays = [
            a.cast(by_name[name].field.type).cast(pa.int64())
            if pa.types.is_timestamp(a.type) and name in by_name
            else a
            for name, a in zip(names, batch.columns, strict=True)
        ]
        plain = pa.RecordBatch.from_arrays(arrays, names=names)
        for row in plain.to_pylist():
            yield {
                name: _from(by_name[name], value)
                for name, value in row.items()
                if value is not None and name in by_name
            }


def listing_in(schema: pa.Schema) -> Exported | None:
    """The listing a Parquet file's schema metadata names, if any."""
    name = (schema.metadata or {}).get(LISTING_KEY)
    return None if name is None else LISTINGS.get(name.decode())
