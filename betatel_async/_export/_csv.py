"""CSV rows from the API's JSON objects, and back, losslessly.

Strategy: the columns come from the model's attrs fields (so a field added to
a model gets a column), and each column is one of three kinds:

- text (fields typed ``str``, or an open enum ``| str``): the text itself;
  text that is empty or begins with ``"`` is written as a JSON string literal
  (``""``, ``"\\"quoted\\""``), so that an empty cell can mean "absent".
  So is text that begins with ``= + - @``, a tab or a carriage return
  (``"=1+2"``): a spreadsheet would run such a cell as a formula (CSV
  injection), and one that begins with ``"`` is text to it.
- ref ([`Ref`][betatel_async.Ref] fields: ``group``, ``inventory``,
  ``company``): two columns, ``group.id`` (JSON) and ``group.name`` (text).
  A reference without a name is a bare id in the JSON and comes back as one.
- json (everything else: numbers, ``imsis``, ``package_template``): the JSON
  text of the value (``12``, ``[{"sponsor_id":200,"imsi":...}]``).

An empty cell is a field absent from the JSON. Read with the ``csv`` module
(``newline=""``) and `decode_row()`, every row gives back exactly the
object of the JSON Lines export.
"""

from __future__ import annotations

import csv
import io
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import orjson

from .._converter import _LOCAL_FIELDS
from .._models import Ref

__all__ = ["CSV_HELP", "Column", "columns_for", "decode_row", "encode_rows", "header"]

CSV_HELP: Final = (
    "CSV has a header row and one column per field; group, inventory and company "
    "become X.id and X.name; numbers, lists and objects (imsis, package_template) "
    "are JSON text; an empty cell is an absent field, and text that is empty or "
    'starts with " is written as a JSON string, as is text starting with = + - @, '
    "a tab or a carriage return (so that no spreadsheet runs it as a formula). "
    "Read back with the csv module, each row gives exactly the values of the jsonl export."
)

Kind = Literal["text", "json", "ref_id", "ref_name"]


@attrs.frozen(slots=True)
class Column:
    """One CSV column: its header, the JSON field it comes from, and how it is written."""

    name: str
    field: str
    kind: Kind


def _field_kind(hint: Any) -> Literal["text", "json", "ref"]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    else:
        options = [hint]
    if options == [Ref]:
        return "ref"
    if all(isinstance(arg, type) and issubclass(arg, str) for arg in options):
        return "text"
    return "json"


def columns_for(model: type[Any]) -> list[Column]:
    """The CSV columns of a model, in field order (SDK-only fields left out)."""
    hints = typing.get_type_hints(model)
    local = _LOCAL_FIELDS.get(model, ())
    columns: list[Column] = []
    for field in attrs.fields(model):
        if field.name in local:
            continue
        kind = _field_kind(hints[field.name])
        if kind == "ref":
            columns.append(Column(f"{field.name}.id", field.name, "ref_id"))
            columns.append(Column(f"{field.name}.name", field.name, "ref_name"))
        else:
            columns.append(Column(field.name, field.name, kind))
    return columns


_ESCAPED_FIRST: Final = frozenset('"=+-@\t\r')
"""First characters that make a text cell a JSON string literal: ``"`` (it reads back
as one), and those that make spreadsheets evaluate the cell (OWASP's list for CSV injection)."""


def _text_cell(value: str) -> str:
    if not value or value[0] in _ESCAPED_FIRST:
        return orjson.dumps(value).decode()
    return value


def _cell(column: Column, obj: Mapping[str, Any]) -> str:
    value = obj.get(column.field)
    if value is None:
        return ""
    kind = column.kind
    if kind == "text":
        return _text_cell(value)
    if kind == "json":
        return orjson.dumps(value).decode()
    # A reference is a bare id or an {id, name} object in the API's JSON.
    if kind == "ref_id":
        return orjson.dumps(value["id"] if isinstance(value, dict) else value).decode()
    name = value.get("name") if isinstance(value, dict) else None
    return "" if name is None else _text_cell(name)


def header(columns: Sequence[Column]) -> bytes:
    """The header line, encoded."""
    return encode_rows(columns, (), with_header=True)


def encode_rows(
    columns: Sequence[Column], objects: Iterable[Mapping[str, Any]], *, with_header: bool = False
) -> bytes:
    """CSV lines (``\\r\\n``-terminated, UTF-8) for JSON objects of one resource."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if with_header:
        writer.writerow([column.name for column in columns])
    writer.writerows([_cell(column, obj) for column in columns] for obj in objects)
    return buffer.getvalue().encode()


def _parse_text(cell: str) -> str:
    if cell[0] == '"':
        text = orjson.loads(cell)
        if not isinstance(text, str):
            raise ValueError(f"expected a JSON string, got {cell!r}")
        return text
    return cell


def decode_row(columns: Sequence[Column], row: Sequence[str]) -> dict[str, Any]:
    """The JSON object a CSV row was written from (the inverse of `encode_rows()`).

    Raises:
        ValueError: The row does not have one cell per column, or a cell is not
            what its column holds.
    """
    if len(row) != len(columns):
        raise ValueError(f"expected {len(columns)} cells, got {len(row)}")
    obj: dict[str, Any] = {}
    for column, cell in zip(columns, row, strict=True):
        if not cell:
            continue
        if column.kind == "text":
            obj[column.field] = _parse_text(cell)
        elif column.kind == "json" or column.kind == "ref_id":
            obj[column.field] = orjson.loads(cell)
        else:
            ident = obj.get(column.field)
            if ident is None:
                raise ValueError(f"{column.name} is set but the id is not")
            obj[column.field] = {"id": ident, "name": _parse_text(cell)}
    return obj
