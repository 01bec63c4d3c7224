"""Reading an export back, whatever its format: the listing it holds, and its items one by one. Private.

Strategy: each format is read as a stream of the API's JSON objects (a
line, a CSV row, a Parquet row group at a time: never the whole file), and
each object goes through the listing's model, so every format reads back
the same: `ExportFile.items()` gives the models, `ExportFile.objects()`
gives ``unstructure`` of them. A field written differently by two formats
(a bare reference id in JSON, a struct in Parquet) therefore reads the same.

The format is told by the file's first bytes (``PAR1`` is Parquet, ``{``
or nothing at all JSON Lines, anything else CSV), the listing by the metadata Parquet files
carry or else by the field names (see `._listings.detect()`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from .._converter import _fast, unstructure
from .._errors import ExportError
from ._csv import columns_for, decode_row
from ._listings import Exported, detect
from ._run import ExportFormat

__all__ = ["ExportFile", "open_export", "sniff_format"]

_PARQUET_MAGIC: Final = b"PAR1"
_BATCH_ROWS: Final = 8192


def _error(path: Path, reason: str) -> ExportError:
    return ExportError(f"cannot read {path}: {reason}", path=str(path), reason=reason)


def sniff_format(path: str | os.PathLike[str]) -> ExportFormat:
    """The format of an export file, from its first bytes.

    Raises:
        ExportError: The file cannot be read.
    """
    target = Path(path)
    try:
        with open(target, "rb") as file:
            head = file.read(4)
    except OSError as exc:
        raise _error(target, exc.strerror or str(exc)) from exc
    if head == _PARQUET_MAGIC:
        return "parquet"
    # An empty file is the JSON Lines export of an empty listing: CSV has a
    # header line and Parquet its magic bytes even then.
    if not head or head.lstrip()[:1] == b"{":
        return "jsonl"
    return "csv"


@attrs.frozen(slots=True)
class ExportFile:
    """One export file: its format, the listing it holds, and its items (read on demand). Private.

    Attributes:
        path: The file.
        format: ``"jsonl"``, ``"csv"`` or ``"parquet"``.
        listing: The listing it holds (model, key field), or ``None`` for an
            empty JSON Lines file (nothing tells).
    """

    path: Path
    format: ExportFormat
    listing: Exported | None

    def raw(self) -> Iterator[dict[str, Any]]:
        """The JSON objects as the file holds them, one by one."""
        if self.format == "jsonl":
            return _jsonl_objects(self.path)
        if self.format == "csv":
            return _csv_objects(self.path)
        return _parquet_objects(self.path)

    def items(self) -> Iterator[Any]:
        """Each item as the listing's model (``Sim``, ``Package``, ...), in file order.

        Raises:
            ExportError: The file is not an export of one listing, or an item
                does not read as its model (the message names the row).
        """
        listing = self.listing
        if listing is None:
            return
        structure, model = _fast().structure, listing.model
        for index, obj in enumerate(self.raw()):
            try:
                yield structure(obj, model)
            except Exception as exc:  # noqa: BLE001 - cattrs raises several kinds; each is "not this model"
                raise _error(self.path, f"item {index} is not a {model.__name__}: {exc}") from None

    def objects(self) -> Iterator[dict[str, Any]]:
        """Each item as ``unstructure(model)`` gives it: the same whatever the format."""
        for item in self.items():
            yield unstructure(item)


def open_export(path: str | os.PathLike[str], *, format: ExportFormat | None = None) -> ExportFile:
    """The export file at ``path``: its format (told by its bytes unless given) and its listing.

    Raises:
        ExportError: The file cannot be read, or holds no listing's items.
    """
    target = Path(path)
    fmt = format or sniff_format(target)
    listing: Exported | None
    if fmt == "parquet":
        listing = _parquet_listing(target)
    elif fmt == "csv":
        listing = _csv_listing(target)
    else:
        first = next(_jsonl_objects(target), None)
        listing = None if first is None else detect(first)
        if first is not None and listing is None:
            raise _error(target, f"its first item's fields ({', '.join(first)}) are no listing's")
    return ExportFile(target, fmt, listing)


def _jsonl_objects(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise _error(path, f"line {number} is not JSON: {exc}") from None
                if type(obj) is not dict:
                    raise _error(path, f"line {number} is not a JSON object")
                yield obj
    except OSError as exc:
        raise _error(path, exc.strerror or str(exc)) from exc


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            return next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, str(exc)) from exc


def _csv_listing(path: Path) -> Exported:
    header = _csv_header(path)
    fields = {name.rsplit(".", 1)[0] if name.endswith((".id", ".name")) else name for name in header}
    listing = detect(fields)
    if listing is None or [c.name for c in columns_for(listing.model)] != header:
        raise _error(path, f"its header ({', '.join(header)}) is no listing's")
    return listing


def _csv_objects(path: Path) -> Iterator[dict[str, Any]]:
    listing = _csv_listing(path)
    columns = columns_for(listing.model)
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = csv.reader(file)
            next(rows, None)
            for number, row in enumerate(rows, 2):
                try:
                    yield decode_row(columns, row)
                except ValueError as exc:
                    raise _error(path, f"row {number}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, str(exc)) from exc


def _parquet_listing(path: Path) -> Exported:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._arrow import listing_in

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        # A damaged file is ArrowInvalid (a ValueError), not an OSError.
        raise _error(path, str(exc)) from exc
    listing = listing_in(schema) or detect(schema.names)
    if listing is None:
        raise _error(path, f"its columns ({', '.join(schema.names)}) are no listing's")
    return listing


def _parquet_objects(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._arrow import rows_from

    listing = _parquet_listing(path)
    try:
        with pq.ParquetFile(path) as file:
            yield from rows_from(listing, file.iter_batches(batch_size=_BATCH_ROWS))
    except (OSError, pa.ArrowException) as exc:
        raise _error(path, str(exc)) from exc
