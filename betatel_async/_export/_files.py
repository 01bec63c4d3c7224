"""The files of an export: the checkpoint, and one writer per format. Private.

Strategy: a writer writes beside its target (``X.partial``: a file for JSON
Lines and CSV, a directory of part files for Parquet) and renames onto the
target only in `Writer.commit()`, after an fsync, so a failed export
never leaves a file that looks complete. `Writer.sync()` makes what was
written durable and returns what the checkpoint may then claim (bytes, or
closed part files); the checkpoint is replaced atomically after it, so it
never claims what the disk may not hold. Every ``OSError`` leaves as an
[`ExportError`][betatel_async.ExportError] naming the path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol, TypeGuard

import orjson

from .._converter import unstructure
from .._errors import ExportError
from ._csv import columns_for, encode_rows
from ._listings import Exported

__all__ = [
    "CHECKPOINT_SUFFIX",
    "PARTIAL_SUFFIX",
    "Checkpoint",
    "RefusalError",
    "Writer",
    "file_errors",
    "refuse",
    "writer_for",
]

PARTIAL_SUFFIX: Final = ".partial"
CHECKPOINT_SUFFIX: Final = ".checkpoint.json"
CHECKPOINT_VERSION: Final = 2
ROW_GROUP_ROWS: Final = 65_536
"""Parquet rows buffered (as Arrow arrays) before they are written as one row group."""


@contextlib.contextmanager
def file_errors(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` raised inside into an [`ExportError`][betatel_async.ExportError] naming ``path``."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ExportError(f"cannot {action} {path}: {reason}", path=str(path), reason=reason) from exc


class RefusalError(ExportError):
    """A checkpoint that cannot be continued: the user must start anew. Private.

    Its checkpoint and partial file are left as they are, for the user to decide about.
    """


def refuse(path: Path, reason: str) -> RefusalError:
    """The error of a checkpoint that cannot be continued: the user must start anew."""
    return RefusalError(
        f"cannot resume {path}: {reason}; export without resume to start anew", path=str(path), reason=reason
    )


def count(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer >= 0."""
    return type(value) is int and value >= 0


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (where the platform can)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Checkpoint:
    """``X.checkpoint.json``: what was asked, how far the export got. Private.

    Holds ``version``, the export's identity (listing, filters, format),
    ``items`` written, ``last_key`` (the key of the last of them), ``total``
    (as last seen, for the reader's information) and the writer's state
    (``bytes``, or ``parts``).
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity

    def load(self) -> dict[str, Any] | None:
        """The saved checkpoint, its identity checked; ``None`` if there is none.

        Raises:
            InvalidArgumentError: It belongs to another export (``resume``).
            ExportError: It cannot be read, or is not a checkpoint.
        """
        from .._errors import InvalidArgumentError

        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            raise refuse(self.path, "the checkpoint is damaged") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ExportError(
                f"cannot read {self.path}: {reason}", path=str(self.path), reason=reason
            ) from exc
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            raise refuse(self.path, "it is not a checkpoint this version can resume")
        identity = {key: data.get(key) for key in self.identity}
        if identity != self.identity:
            raise InvalidArgumentError(
                "resume",
                f"the checkpoint {self.path} belongs to another export ({_describe(identity)}); "
                "resume that one, or export without resume to start anew",
            )
        if not (count(data.get("items")) and (data.get("total") is None or count(data.get("total")))):
            raise refuse(self.path, "the checkpoint is damaged")
        return data

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint atomically (and durably) with ``state``."""
        data = {"version": CHECKPOINT_VERSION, **self.identity, **state}
        temporary = self.path.with_name(self.path.name + ".tmp")
        with file_errors(temporary):
            with open(temporary, "wb") as file:
                file.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)

    def remove(self) -> None:
        with file_errors(self.path, "remove"):
            self.path.unlink(missing_ok=True)


def _describe(identity: dict[str, Any]) -> str:
    filters = ", ".join(f"{name}={value!r}" for name, value in (identity.get("filters") or {}).items())
    return f"{identity.get('listing')}({filters}) as {identity.get('format')}"


class Writer(Protocol):
    """Writes one export's items beside its target. Private."""

    typed: bool
    """Whether it takes typed items (``False``: the API's JSON values)."""

    partial: Path

    def start(self) -> None:
        """Create a new partial file (or directory), dropping an old one."""

    def reopen(self, saved: dict[str, Any]) -> None:
        """Continue the partial file from a checkpoint; what was written after it is dropped."""

    def write(self, items: list[Any]) -> None:
        """Append items."""

    def sync(self) -> dict[str, Any]:
        """Make what was written durable; the state the checkpoint may claim."""

    def commit(self) -> None:
        """Finish the file and rename it onto the target, durably."""

    def recover(self, saved: dict[str, Any]) -> None:
        """Finish an export whose checkpoint says it was complete (stopped while renaming)."""

    def close(self) -> None:
        """Let go of open files, keeping the partial one for a resume."""

    def discard(self) -> None:
        """Remove the partial file (or directory)."""


class _Encoder(Protocol):
    typed: bool

    def header(self) -> bytes: ...

    def encode(self, items: list[Any]) -> bytes: ...


class JsonLinesEncoder:
    """Each item's JSON as the API sent it: the decoded dict dumped by orjson (keys in their order). Private."""

    typed = False

    def header(self) -> bytes:
        return b""

    def encode(self, items: list[Any]) -> bytes:
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        return b"".join([dumps(item, option=option) for item in items])


class CsvEncoder:
    """CSV rows of the typed items (see `._csv`). Private."""

    typed = True

    def __init__(self, listing: Exported) -> None:
        self._columns = columns_for(listing.model)

    def header(self) -> bytes:
        return encode_rows(self._columns, (), with_header=True)

    def encode(self, items: list[Any]) -> bytes:
        return encode_rows(self._columns, unstructure(items))


class ByteWriter:
    """JSON Lines or CSV into ``X.partial``; the checkpoint records its length in bytes. Private."""

    def __init__(self, target: Path, encoder: _Encoder) -> None:
        self.target = target
        self.partial = target.with_name(target.name + PARTIAL_SUFFIX)
        self.typed = encoder.typed
        self._encoder = encoder
        self._file: BinaryIO | None = None
        self._size = 0

    def start(self) -> None:
        with file_errors(self.partial):
            self._file = open(self.partial, "wb")  # noqa: SIM115 - closed by close() or commit()
            header = self._encoder.header()
            self._file.write(header)
        self._size = len(header)

    def reopen(self, saved: dict[str, Any]) -> None:
        size = saved.get("bytes")
        if not count(size):
            raise refuse(self.partial, "the checkpoint is damaged")
        try:
            file = open(self.partial, "r+b")  # noqa: SIM115 - closed by close() or commit()
        except FileNotFoundError:
            raise refuse(self.partial, "the partial file is gone") from None
        except OSError as exc:
            with file_errors(self.partial):
                raise
            raise AssertionError from exc  # pragma: no cover - file_errors raised
        actual = os.fstat(file.fileno()).st_size
        if actual < size:
            file.close()
            raise refuse(
                self.partial, f"it holds {actual} bytes, fewer than the {size} the checkpoint recorded"
            )
        # Bytes past the checkpoint were written after it was saved: they are written again.
        with file_errors(self.partial):
            file.truncate(size)
            file.seek(size)
        self._file = file
        self._size = size

    def write(self, items: list[Any]) -> None:
        assert self._file is not None
        chunk = self._encoder.encode(items)
        with file_errors(self.partial):
            self._file.write(chunk)
        self._size += len(chunk)

    def sync(self) -> dict[str, Any]:
        assert self._file is not None
        with file_errors(self.partial):
            self._file.flush()
            os.fsync(self._file.fileno())
        return {"bytes": self._size}

    def commit(self) -> None:
        assert self._file is not None
        with file_errors(self.partial):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        with file_errors(f"{self.partial} to {self.target}", "rename"):
            os.replace(self.partial, self.target)
        fsync_dir(self.target.parent)

    def recover(self, saved: dict[str, Any]) -> None:
        if self.partial.exists():  # stopped before the rename
            self.reopen(saved)
            self.commit()
        elif not self.target.exists():
            raise refuse(self.partial, "the partial file is gone")

    def close(self) -> None:
        if self._file is not None:
            # Closing flushes the buffer again, and fails again if writing it failed before.
            with contextlib.suppress(OSError):
                self._file.close()

    def discard(self) -> None:
        self.close()
        with file_errors(self.partial, "remove"):
            self.partial.unlink(missing_ok=True)


class StreamWriter:
    """JSON Lines or CSV to a stream (standard output): no partial file, no checkpoint. Private."""

    def __init__(self, stream: BinaryIO, name: str, encoder: _Encoder) -> None:
        self.partial = Path(name)
        self.typed = encoder.typed
        self._stream = stream
        self._name = name
        self._encoder = encoder

    def start(self) -> None:
        with file_errors(self._name):
            self._stream.write(self._encoder.header())

    def reopen(self, saved: dict[str, Any]) -> None:  # pragma: no cover - a stream is never resumed
        raise AssertionError("a stream cannot be resumed")

    def write(self, items: list[Any]) -> None:
        chunk = self._encoder.encode(items)
        with file_errors(self._name):
            self._stream.write(chunk)

    def sync(self) -> dict[str, Any]:
        return {}

    def recover(self, saved: dict[str, Any]) -> None:  # pragma: no cover - a stream is never resumed
        raise AssertionError("a stream cannot be resumed")

    def commit(self) -> None:
        with file_errors(self._name):
            self._stream.flush()

    def close(self) -> None:
        pass

    def discard(self) -> None:
        pass


class ParquetWriter:
    """Parquet part files under ``X.partial/``, merged onto ``X`` when complete. Private.

    Strategy: pages are turned into Arrow record batches as they come and
    written as a row group every `ROW_GROUP_ROWS` rows, so memory holds
    at most one row group whatever ``total`` is. A Parquet file is readable
    only once closed (its footer is at the end), so each checkpoint closes the
    part file being written and records how many are closed; the next page
    starts a new part. `commit()` streams the parts' row groups into one
    file (a single part is renamed as it is).
    """

    typed = True

    def __init__(self, target: Path, listing: Exported) -> None:
        from . import _arrow

        self._arrow = _arrow
        self.target = target
        self.listing = listing
        self.partial = target.with_name(target.name + PARTIAL_SUFFIX)
        self._schema = _arrow.schema_for(listing)
        self._parts = 0  # part files closed (and durable)
        self._writer: Any = None  # pyarrow.parquet.ParquetWriter of the open part
        self._batches: list[Any] = []
        self._rows = 0

    def _part(self, index: int) -> Path:
        return self.partial / f"part-{index:05d}.parquet"

    def start(self) -> None:
        with file_errors(self.partial):
            if self.partial.is_dir():
                shutil.rmtree(self.partial)
            elif self.partial.exists() or self.partial.is_symlink():
                self.partial.unlink()
            self.partial.mkdir()

    def reopen(self, saved: dict[str, Any]) -> None:
        parts = saved.get("parts")
        if not count(parts):
            raise refuse(self.partial, "the checkpoint is damaged")
        if not self.partial.is_dir():
            raise refuse(self.partial, "the directory of part files is gone")
        missing = [index for index in range(parts) if not self._part(index).is_file()]
        if missing:
            raise refuse(self._part(missing[0]), "a part file the checkpoint recorded is gone")
        # Parts past the checkpoint were written after it was saved: they are written again.
        with file_errors(self.partial):
            for path in self.partial.iterdir():
                if path.name.startswith("part-") and int(path.stem[5:] or -1) >= parts:
                    path.unlink()
        self._parts = parts

    def write(self, items: list[Any]) -> None:
        self._batches.append(self._arrow.to_batch(self.listing, self._schema, unstructure(items)))
        self._rows += len(items)
        if self._rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._batches:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._part(self._parts)
        with file_errors(path):
            if self._writer is None:
                self._writer = pq.ParquetWriter(path, self._schema)
            self._writer.write_table(pa.Table.from_batches(self._batches, schema=self._schema))
        self._batches = []
        self._rows = 0

    def sync(self) -> dict[str, Any]:
        self._flush()
        if self._writer is not None:
            path = self._part(self._parts)
            writer, self._writer = self._writer, None
            with file_errors(path):
                writer.close()
                with open(path, "rb") as file:
                    os.fsync(file.fileno())
            fsync_dir(self.partial)
            self._parts += 1
        return {"parts": self._parts}

    def commit(self) -> None:
        import pyarrow.parquet as pq

        self.sync()
        parts = [self._part(index) for index in range(self._parts)]
        if len(parts) == 1:
            source = parts[0]
        else:
            source = self.partial / "merged.parquet"
            # The parts' schema as Parquet stores it (list items are named
            # "element" there): the row groups read back carry that one.
            schema = pq.read_schema(parts[0]) if parts else self._schema
            with file_errors(source):
                with pq.ParquetWriter(source, schema) as merged:
                    for part in parts:
                        file = pq.ParquetFile(part)
                        for index in range(file.num_row_groups):
                            merged.write_table(file.read_row_group(index))
                with open(source, "rb") as file:
                    os.fsync(file.fileno())
        with file_errors(f"{source} to {self.target}", "rename"):
            os.replace(source, self.target)
        fsync_dir(self.target.parent)
        with file_errors(self.partial, "remove"):
            shutil.rmtree(self.partial)

    def recover(self, saved: dict[str, Any]) -> None:
        parts = saved.get("parts")
        whole = count(parts) and all(self._part(index).is_file() for index in range(parts))
        if self.partial.is_dir() and whole:
            self.reopen(saved)  # stopped before the rename: merge (again) and rename
            self.commit()
        elif self.target.exists():  # renamed; the part files may be left
            with file_errors(self.partial, "remove"):
                shutil.rmtree(self.partial, ignore_errors=True)
        else:
            raise refuse(self.partial, "the part files are gone")

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            # The open part was never recorded: it is dropped on resume.
            with contextlib.suppress(OSError):
                writer.close()

    def discard(self) -> None:
        self.close()
        if self.partial.exists():
            with file_errors(self.partial, "remove"):
                shutil.rmtree(self.partial)


def writer_for(fmt: str, listing: Exported, target: Path | None, stream: BinaryIO | None = None) -> Writer:
    """The writer of a format: to ``target`` (beside it), or to ``stream`` (JSON Lines, CSV)."""
    if fmt == "parquet":
        assert target is not None
        return ParquetWriter(target, listing)
    encoder: _Encoder = JsonLinesEncoder() if fmt == "jsonl" else CsvEncoder(listing)
    if stream is not None:
        return StreamWriter(stream, "standard output", encoder)
    assert target is not None
    return ByteWriter(target, encoder)
