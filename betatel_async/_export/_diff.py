"""What changed between two exports of one listing: items added, removed and changed. Private.

Strategy: memory holds one entry per item of the old export, its key and a
16-byte digest of its canonical JSON (blake2b of ``unstructure(item)``
serialised with sorted keys), never the items themselves. Three passes:

1. The old export: ``key -> digest``.
2. The new export: a key the old one lacks is *added* (the item goes to a
   temporary file); an equal digest marks the key's entry *unchanged*; a
   different one writes the new item to a temporary file and the entry keeps
   its offset there instead of the digest (*changed*).
3. The old export again, only when something was removed or changed (and only
   up to the last such item): an entry still holding a digest was *removed*
   (the old item goes to a temporary file); an entry holding an offset was
   changed, and the old item is written beside the new one, read back from
   that offset.

A key twice in one export is an error: in the old export the first pass sees
it; in the new one an entry already marked tells, and the keys of added items
are kept for that (so memory also holds one key per added item).

Items are compared as the listing's model reads them
(`ExportFile.objects()`), so a field that two formats write differently
(a bare reference id in JSON, a struct in Parquet, text in CSV) is no
difference.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Generic, TypeVar

import attrs
import orjson

from .._converter import _fast
from .._errors import ExportError, InvalidArgumentError, InvalidArgumentTypeError
from ._files import file_errors
from ._listings import LISTINGS, Exported
from ._read import ExportFile, open_export
from ._run import PARQUET_EXTRA

__all__ = ["DiffCounts", "ExportDiff", "ItemChange", "diff"]

T = TypeVar("T")
Key = str | int
"""An item's key: an ICCID, a package or inventory id, an ISO3 code."""

_UNCHANGED: Final = -1
"""The entry of an old key seen in the new export with the same digest (else: the new item's offset)."""
_DIGEST_BYTES: Final = 16
_NOUNS: Final = {
    "sims": "SIMs",
    "inventories": "Inventories",
    "packages": "Packages",
    "package_templates": "Package templates",
    "countries": "Countries",
}
_STATUS_FIELDS: Final = {
    "sims": "sim_status",
    "inventories": "status",
    "packages": "status",
    "package_templates": "status",
}
"""The field whose changes [`ExportDiff.transitions`][betatel_async.ExportDiff.transitions] counts, per listing (countries have none)."""


def _canonical(value: Any) -> bytes:
    # Sorted keys: two readings of one item serialise alike whatever the key
    # order of the file they came from. orjson writes str enums as their value.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _digest(obj: dict[str, Any]) -> bytes:
    return hashlib.blake2b(_canonical(obj), digest_size=_DIGEST_BYTES).digest()


def _changed_fields(fields: Iterable[str], old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The top-level fields whose values differ (nested values compared whole; absent is ``None``)."""
    return [name for name in fields if _canonical(old.get(name)) != _canonical(new.get(name))]


@attrs.frozen(slots=True)
class DiffCounts:
    """How many items a diff found in each class.

    Attributes:
        added: Items whose key is only in the new export.
        removed: Items whose key is only in the old export.
        changed: Items in both whose values differ.
        unchanged: Items in both, equal.
    """

    added: int
    removed: int
    changed: int
    unchanged: int


@attrs.frozen(slots=True)
class ItemChange:
    """One item that is in both exports with different values.

    Attributes:
        key: Its key (ICCID, id or ISO3 code).
        old: The item in the old export, as its model (``Sim``, ``Package``, ...).
        new: The item in the new export.
        fields: The fields that differ, in the model's order, each with its
            ``(old, new)`` values as the model holds them (``None`` for a
            field the item does not carry). Nested values (a reference, the
            IMSIs) are compared whole.
    """

    key: Key
    old: Any
    new: Any
    fields: Mapping[str, tuple[Any, Any]]


class _Store:
    """The temporary directory of a diff's files; removed by `close()` or when garbage. Private."""

    def __init__(self) -> None:
        with file_errors(tempfile.gettempdir(), "create a temporary directory in"):
            self.directory = Path(tempfile.mkdtemp(prefix="betatel-diff-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()


class _Stored(Generic[T]):
    """Items a diff wrote to one of its temporary files, read back on each iteration. Private."""

    def __init__(self, store: _Store, name: str, decode: Callable[[dict[str, Any]], T]) -> None:
        self._store = store
        self._path = store.directory / name
        self._decode = decode

    def __repr__(self) -> str:
        return f"<{self._path.stem} items of a diff in {self._path}>"

    def __iter__(self) -> Iterator[T]:
        return map(self._decode, self.records())

    def records(self) -> Iterator[dict[str, Any]]:
        """The JSON objects of the file, as written (no model in between).

        Raises:
            ValueError: The diff is closed (its temporary files are removed).
        """
        if self._store.closed:
            raise ValueError("the diff is closed: its temporary files are removed")
        return self._read()

    def _read(self) -> Iterator[dict[str, Any]]:
        # The file stays open (and readable) while iterating even if the diff is closed meanwhile.
        with file_errors(self._path, "read"), open(self._path, "rb") as file:
            for line in file:
                yield orjson.loads(line)


@attrs.frozen(slots=True, kw_only=True, eq=False)
class ExportDiff:
    """What changed between two exports of one listing; made by [`diff()`][betatel_async.diff].

    The items are kept in temporary files that the diff owns, read back on
    each iteration: use it as a context manager (or call `close()`) to
    remove them; they are removed when it is garbage collected otherwise.

    Attributes:
        old: The old export.
        new: The new export.
        listing: The listing both hold (``"sims"``, ...); ``None`` when both
            are empty JSON Lines files (nothing tells).
        key: The field that identifies an item (``"iccid"``, ``"id"``, ``"iso3"``).
        counts: How many items were added, removed, changed and unchanged.
        added: The items only in the new export, as models, in its order.
        removed: The items only in the old export, as models, in its order.
        changed: [`ItemChange`][betatel_async.ItemChange] records, in the old export's order.
        fields_changed: Per field, how many changed items changed it (fields
            no item changed left out), in the model's field order.
        status_field: The status field of the listing (``"sim_status"`` for
            SIMs, ``"status"`` for the others but countries, which have none).
        transitions: Per ``(old status, new status)``, how many changed items
            moved so, most first; ``None`` stands for a status the item lacks.
            Empty without a status field.
    """

    old: Path
    new: Path
    listing: str | None
    key: str | None
    counts: DiffCounts
    added: Iterable[Any]
    removed: Iterable[Any]
    changed: Iterable[ItemChange]
    fields_changed: Mapping[str, int]
    status_field: str | None
    transitions: Mapping[tuple[str | None, str | None], int]
    _store: _Store = attrs.field(repr=False, alias="store")

    @property
    def closed(self) -> bool:
        """Whether `close()` removed the temporary files."""
        return self._store.closed

    def close(self) -> None:
        """Remove the temporary files (again: nothing). Iterating the items then raises ``ValueError``."""
        self._store.close()

    def __enter__(self) -> ExportDiff:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def records(self) -> Iterator[dict[str, Any]]:
        """Every difference as a JSON object (what ``betatel-async diff`` writes, one a line).

        Added items first, then removed, then changed::

            {"change": "added", "key": K, "item": {...}}
            {"change": "removed", "key": K, "item": {...}}
            {"change": "changed", "key": K, "fields": {"sim_status": {"old": "IN_SERVICE", "new": "TERMINATED"}}}

        Items and values are as ``unstructure`` gives them (the API's JSON
        shape, as the model reads it); ``None`` stands for an absent field.

        Raises:
            ValueError: The diff is closed.
        """
        key = self.key or ""
        added, removed, changed = (
            _records_of(self.added),
            _records_of(self.removed),
            _records_of(self.changed),
        )
        for obj in added:
            yield {"change": "added", "key": obj[key], "item": obj}
        for obj in removed:
            yield {"change": "removed", "key": obj[key], "item": obj}
        fields = _listing_fields(self.listing)
        for record in changed:
            old, new = record["old"], record["new"]
            yield {
                "change": "changed",
                "key": record["key"],
                "fields": {
                    name: {"old": old.get(name), "new": new.get(name)}
                    for name in _changed_fields(fields, old, new)
                },
            }

    def summary(self) -> list[tuple[str, int]]:
        """The diff in a few labelled counts, for a table or a log.

        Rows, in order: added, removed, changed and unchanged items
        (``("SIMs added", 12)``...); per new status, the changed items that
        moved to it (``("SIMs that moved to TERMINATED", 312)``), most first;
        per transition, the items that moved so (``("SIMs that moved from
        IN_SERVICE to TERMINATED", 300)``); per field, the changed items that
        changed it (``("SIMs whose modified_date changed", 330)``).
        """
        noun = _NOUNS.get(self.listing or "", "Items")
        counts = self.counts
        rows = [
            (f"{noun} added", counts.added),
            (f"{noun} removed", counts.removed),
            (f"{noun} changed", counts.changed),
            (f"{noun} unchanged", counts.unchanged),
        ]
        moved_to: collections.Counter[str | None] = collections.Counter()
        for (_, after), count in self.transitions.items():
            moved_to[after] += count
        rows += [(f"{noun} that moved to {_status(after)}", count) for after, count in moved_to.most_common()]
        rows += [
            (f"{noun} that moved from {_status(before)} to {_status(after)}", count)
            for (before, after), count in self.transitions.items()
        ]
        rows += [(f"{noun} whose {name} changed", count) for name, count in self.fields_changed.items()]
        return rows


def _status(value: str | None) -> str:
    return "(none)" if value is None else value


def _records_of(items: Iterable[Any]) -> Iterator[dict[str, Any]]:
    assert isinstance(items, _Stored)
    return items.records()


def _listing_fields(name: str | None) -> tuple[str, ...]:
    return LISTINGS[name].fields if name is not None else ()


# ---------------------------------------------------------------- building a diff


def _check_path(argument: str, path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentTypeError(argument, f"must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _open(path: Path) -> ExportFile:
    try:
        return open_export(path)
    except ImportError:
        # Only a Parquet file asks for pyarrow.
        reason = f"reading Parquet needs pyarrow, which is not installed: {PARQUET_EXTRA}"
        raise ExportError(f"cannot read {path}: {reason}", path=str(path), reason=reason) from None


def _error(path: Path, reason: str) -> ExportError:
    return ExportError(f"cannot diff {path}: {reason}", path=str(path), reason=reason)


def _keyed(file: ExportFile, listing: Exported) -> Iterator[tuple[Key, dict[str, Any]]]:
    """Each item of ``file`` as ``unstructure`` gives it, with its key."""
    key = listing.key
    for obj in file.objects():
        yield obj[key], obj


def diff(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> ExportDiff:
    """Compare two exports of the same listing, item by item, by key.

    The exports may be in any formats (JSON Lines, CSV, Parquet; told by
    their bytes), mixed: each item is compared as the listing's model reads
    it, so a field that two formats write differently is no difference.
    Memory holds a key and a 16-byte digest per item of the old export (and
    the key of each added item), not the items: the differences go to
    temporary files (in `tempfile.gettempdir()`, so ``TMPDIR``) that the
    returned [`ExportDiff`][betatel_async.ExportDiff] owns; close it to remove them. The old export
    is read twice, the new one once. This is blocking file work: in async
    code, run it in a thread (``await anyio.to_thread.run_sync(diff, old, new)``).

    Args:
        old: The earlier export (a path).
        new: The later export of the same listing.

    Returns:
        The items added, removed and changed, with counts and a summary.

    Raises:
        InvalidArgumentTypeError: ``old`` or ``new`` is not a path.
        InvalidArgumentError: The two files hold different listings (named ``new``).
        ExportError: A file cannot be read, is not an export (Parquet without
            pyarrow installed included), holds an item that does not read as
            its model, or holds a key twice (``.path`` names the file);
            or a temporary file cannot be written.
    """
    old_path, new_path = _check_path("old", old), _check_path("new", new)
    old_file, new_file = _open(old_path), _open(new_path)
    if old_file.listing is not None and new_file.listing is not None and old_file.listing != new_file.listing:
        raise InvalidArgumentError(
            "new",
            f"{str(new_path)!r} holds {new_file.listing.name} but {str(old_path)!r} holds "
            f"{old_file.listing.name}: a diff compares two exports of the same listing",
        )
    listing = old_file.listing or new_file.listing
    store = _Store()
    try:
        return _Differ(store, listing, old_file, new_file).run()
    except BaseException:
        store.close()
        raise


class _Differ:
    """The three passes of [`diff()`][betatel_async.diff] (see the module's docstring). Private."""

    def __init__(self, store: _Store, listing: Exported | None, old: ExportFile, new: ExportFile) -> None:
        self.store = store
        self.listing = listing
        self.old = old
        self.new = new
        self.entries: dict[Key, bytes | int] = {}
        self.counts = DiffCounts(0, 0, 0, 0)
        self.fields_changed: collections.Counter[str] = collections.Counter()
        self.transitions: collections.Counter[tuple[str | None, str | None]] = collections.Counter()

    def _file(self, name: str, mode: str) -> IO[bytes]:
        path = self.store.directory / name
        with file_errors(path):
            return open(path, mode)

    def run(self) -> ExportDiff:
        listing = self.listing
        store = self.store
        for name in ("added.jsonl", "removed.jsonl", "changed.jsonl"):
            self._file(name, "wb").close()
        if listing is not None:
            self._index_old(listing)
            added, changed, unchanged = self._compare_new(listing)
            removed = len(self.entries) - changed - unchanged
            if removed or changed:
                self._collect_old(listing, removed + changed)
            self.counts = DiffCounts(added, removed, changed, unchanged)
        (store.directory / "candidates.jsonl").unlink(missing_ok=True)
        structure = _fast().structure
        model = listing.model if listing is not None else dict

        def item(obj: dict[str, Any]) -> Any:
            return structure(obj, model)

        fields = listing.fields if listing is not None else ()

        def change(record: dict[str, Any]) -> ItemChange:
            old, new = item(record["old"]), item(record["new"])
            names = _changed_fields(fields, record["old"], record["new"])
            return ItemChange(
                record["key"], old, new, {name: (getattr(old, name), getattr(new, name)) for name in names}
            )

        status_field = _STATUS_FIELDS.get(listing.name) if listing is not None else None
        return ExportDiff(
            old=self.old.path,
            new=self.new.path,
            listing=listing.name if listing is not None else None,
            key=listing.key if listing is not None else None,
            counts=self.counts,
            added=_Stored(store, "added.jsonl", item),
            removed=_Stored(store, "removed.jsonl", item),
            changed=_Stored(store, "changed.jsonl", change),
            fields_changed={name: self.fields_changed[name] for name in fields if self.fields_changed[name]},
            status_field=status_field,
            transitions=dict(self.transitions.most_common()),
            store=store,
        )

    def _index_old(self, listing: Exported) -> None:
        """Pass 1: ``key -> digest`` of every old item."""
        entries = self.entries
        for index, (key, obj) in enumerate(_keyed(self.old, listing)):
            if key in entries:
                raise _twice(self.old.path, listing, key, index)
            entries[key] = _digest(obj)

    def _compare_new(self, listing: Exported) -> tuple[int, int, int]:
        """Pass 2: mark each old key seen in the new export; write added and changed new items.

        Returns:
            How many items were added, changed and unchanged.
        """
        entries = self.entries
        added_keys: set[Key] = set()
        changed = unchanged = 0
        with self._file("added.jsonl", "wb") as added, self._file("candidates.jsonl", "wb") as candidates:
            for index, (key, obj) in enumerate(_keyed(self.new, listing)):
                entry = entries.get(key)
                if entry is None:
                    if key in added_keys:
                        raise _twice(self.new.path, listing, key, index)
                    added_keys.add(key)
                    _write(added, obj)
                elif type(entry) is int:
                    raise _twice(self.new.path, listing, key, index)
                elif entry == _digest(obj):
                    entries[key] = _UNCHANGED
                    unchanged += 1
                else:
                    entries[key] = candidates.tell()
                    _write(candidates, obj)
                    changed += 1
        return len(added_keys), changed, unchanged

    def _collect_old(self, listing: Exported, pending: int) -> None:
        """Pass 3: write the old items that were removed, and the changed ones beside their new values."""
        entries = self.entries
        status_field = _STATUS_FIELDS.get(listing.name)
        fields = listing.fields
        with (
            self._file("removed.jsonl", "wb") as removed,
            self._file("changed.jsonl", "wb") as changed,
            self._file("candidates.jsonl", "rb") as candidates,
        ):
            for key, obj in _keyed(self.old, listing):
                entry = entries.get(key)
                if entry is None:
                    raise _error(self.old.path, f"it changed while being read ({key!r} is new)")
                if entry == _UNCHANGED:
                    continue
                if isinstance(entry, bytes):
                    _write(removed, obj)
                else:
                    candidates.seek(entry)
                    new = orjson.loads(candidates.readline())
                    _write(changed, {"key": key, "old": obj, "new": new})
                    self.fields_changed.update(_changed_fields(fields, obj, new))
                    if status_field is not None:
                        before, after = obj.get(status_field), new.get(status_field)
                        if before != after:
                            self.transitions[_text(before), _text(after)] += 1
                pending -= 1
                if not pending:
                    break  # nothing further down the old export is needed
        if pending:
            raise _error(self.old.path, "it changed while being read (items went missing)")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _write(file: IO[bytes], obj: dict[str, Any]) -> None:
    with file_errors(file.name):
        file.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))


def _twice(path: Path, listing: Exported, key: Key, index: int) -> ExportError:
    return _error(
        path, f"{listing.key} {key!r} is there twice (again at item {index}): an export holds each once"
    )
