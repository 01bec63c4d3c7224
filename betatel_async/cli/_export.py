"""``betatel-async export``: a listing to JSON Lines or CSV, atomically, resumably.

Strategy: the export writes to ``FILE.partial`` beside the output and renames
it onto ``FILE`` (after an fsync) only once every item is in it, so a failed
export never leaves a truncated file that looks complete. An ordered export
also keeps ``FILE.checkpoint.json`` up to date: what was asked (resource,
filters, format, where from), the listing's ``total``, how many items the
partial file holds, its length in bytes and the key of its last item. The
partial file is fsynced before each checkpoint is (atomically) replaced, so
the checkpoint never claims bytes the file may not have.

A file that cannot be written (no permission, disk full, "File too large")
raises :class:`OutputError`: one line with the path and the OS's reason. The
checkpoint saved last stays as it was, and still holds: a failed write is
never recorded in it.

``--resume`` truncates the partial file to the checkpointed length and
continues the same ordered listing, skipping the items already written. It
refuses to splice two different listings: the command must match, ``total``
must not have changed, and the item just before the resume point must be the
one the checkpoint recorded last.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, TypeGuard

import anyio.to_thread
import attrs
import click
import orjson

from .._client import BetatelClient
from .._converter import unstructure
from .._models import Country, Inventory, Package, PackageTemplate, Sim
from .._paginate import PageScan, ScanReport
from ._csv import columns_for, encode_rows

__all__ = [
    "CHECKPOINT_SUFFIX",
    "PARTIAL_SUFFIX",
    "RESOURCES",
    "STDOUT",
    "ExportOptions",
    "ExportResult",
    "OutputError",
    "output_errors",
    "run_export",
]

Format = Literal["jsonl", "csv"]
PARTIAL_SUFFIX: Final = ".partial"
CHECKPOINT_SUFFIX: Final = ".checkpoint.json"
CHECKPOINT_VERSION: Final = 1
CHECKPOINT_INTERVAL: Final = 0.5
"""Seconds between checkpoints while an export runs (one more is written when it stops)."""


class OutputError(click.ClickException):
    """A file (or standard output) could not be written: its path and the OS's reason (exit status 1)."""


STDOUT: Final = "standard output"
"""The name :func:`output_errors` gives standard output in its messages."""


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """Turn an :class:`OSError` raised inside into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot {action} {path}: {exc.strerror or exc}") from exc


@attrs.frozen(slots=True)
class _Resource:
    model: type[Any]
    key: Callable[[Any], Hashable]


RESOURCES: Final[dict[str, _Resource]] = {
    "sims": _Resource(Sim, lambda sim: sim.iccid),
    "inventories": _Resource(Inventory, lambda inventory: inventory.id),
    "packages": _Resource(Package, lambda package: package.id),
    "package_templates": _Resource(PackageTemplate, lambda template: template.id),
    "countries": _Resource(Country, lambda country: country.iso3),
}


@attrs.frozen(slots=True, kw_only=True)
class ExportOptions:
    """What one ``export`` command asked for.

    Attributes:
        resource: ``"sims"``, ``"inventories"`` or ``"packages"``.
        filters: The listing's filters that were given (name to value).
        format: ``"jsonl"`` or ``"csv"``.
        output: The output path, or ``"-"`` for standard output.
        source: Where the data comes from (base URL and user, or the sandbox's
            seed); part of the checkpoint's identity.
        page_size: Items per request (``None``: the SDK's default).
        concurrency: Requests in flight (``None``: the client's limit).
        ordered: Offset order (required for checkpoints and ``resume``).
        resume: Continue from the checkpoint beside ``output``, if there is one.
    """

    resource: str
    filters: dict[str, str | int]
    format: Format
    output: str
    source: str
    page_size: int | None = None
    concurrency: int | None = None
    ordered: bool = True
    resume: bool = False


@attrs.define(slots=True, kw_only=True)
class ExportResult:
    """What an export did."""

    written: int = 0
    skipped: int = 0
    report: ScanReport | None = None


class _Checkpoint:
    """The checkpoint file beside the output. Private."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.total: int | None = None
        self.items = 0
        self.bytes = 0
        self.last_key: Any = None

    def load(self) -> dict[str, Any] | None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise click.ClickException(f"cannot read the checkpoint {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            raise click.ClickException(f"{self.path} is not a checkpoint this version can resume")
        return data

    def save(self) -> None:
        data = {
            "version": CHECKPOINT_VERSION,
            **self.identity,
            "total": self.total,
            "items": self.items,
            "bytes": self.bytes,
            "last_key": self.last_key,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        with output_errors(temporary):
            with open(temporary, "wb") as file:
                file.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)

    def remove(self) -> None:
        with output_errors(self.path, "remove"):
            self.path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Encoder:
    """Bytes for a page of items in the chosen format. Private."""

    def __init__(self, resource: _Resource, fmt: Format) -> None:
        self._columns = columns_for(resource.model) if fmt == "csv" else None

    def header(self) -> bytes:
        if self._columns is None:
            return b""
        return encode_rows(self._columns, (), with_header=True)

    def encode(self, items: list[Any]) -> bytes:
        if self._columns is None:
            option = orjson.OPT_APPEND_NEWLINE
            return b"".join(orjson.dumps(unstructure(item), option=option) for item in items)
        return encode_rows(self._columns, [unstructure(item) for item in items])


def _identity(options: ExportOptions) -> dict[str, Any]:
    return {
        "resource": options.resource,
        "filters": dict(sorted(options.filters.items())),
        "format": options.format,
        "source": options.source,
    }


def _describe(identity: dict[str, Any]) -> str:
    filters = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in identity["filters"].items())
    return f"export {identity['resource']} {filters} --format {identity['format']} from {identity['source']}"


def _scan(
    client: BetatelClient, options: ExportOptions, on_progress: Callable[[ScanReport], Any], offset: int = 0
) -> PageScan[Any]:
    listing = getattr(client, options.resource)
    scan: PageScan[Any] = listing.pages(
        **options.filters,
        page_size=options.page_size,
        concurrency=options.concurrency,
        ordered=options.ordered,
        on_progress=on_progress,
        offset=offset,
    )
    return scan


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _stdout() -> BinaryIO:
    # Text already printed must come out before the bytes written beneath it.
    sys.stdout.flush()
    return sys.stdout.buffer


async def run_export(
    client: BetatelClient,
    options: ExportOptions,
    *,
    on_progress: Callable[[ScanReport], Any],
    result: ExportResult,
) -> None:
    """Run one export; ``result`` is filled in as it goes (also when it fails).

    Raises:
        click.ClickException: The checkpoint cannot be resumed (exit status 1).
        click.UsageError: The checkpoint belongs to another command (exit status 2).
        OutputError: A file or standard output could not be written (exit status 1); the
            checkpoint saved last stays.
        BetatelError: The listing failed; the checkpoint is saved first.
    """
    resource = RESOURCES[options.resource]
    encoder = _Encoder(resource, options.format)
    if options.output == "-":
        stream = _stdout()
        with output_errors(STDOUT):
            stream.write(encoder.header())
        async with _scan(client, options, on_progress) as scan:
            result.report = scan.report
            async for page in scan:
                chunk = encoder.encode(page.items)
                with output_errors(STDOUT):
                    stream.write(chunk)
                result.written += len(page.items)
        with output_errors(STDOUT):
            stream.flush()
        return
    await _export_to_file(client, options, resource, encoder, on_progress, result)


class _Refusal(click.ClickException):
    """The checkpoint cannot be continued against this listing (exit status 1). Private."""


class _PartialFile:
    """``FILE.partial`` and its checkpoint: blocking file operations, kept out of the coroutine. Private.

    Writing one page is a copy into the OS's cache (microseconds), so it is done
    on the event loop's thread; only :meth:`save` (two fsyncs) is worth a thread.
    """

    def __init__(self, output: Path, checkpoint: _Checkpoint) -> None:
        self.output = output
        self.path = output.with_name(output.name + PARTIAL_SUFFIX)
        self.checkpoint = checkpoint
        self._file: BinaryIO | None = None
        self.committed = False

    def create(self, header: bytes) -> None:
        with output_errors(self.path):
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close() or commit()
            self._file.write(header)
        self.checkpoint.bytes = len(header)

    def reopen(self, saved: dict[str, Any]) -> None:
        """Open the partial file at the checkpointed length, after checking the checkpoint."""
        checkpoint = self.checkpoint
        identity = {key: saved.get(key) for key in checkpoint.identity}
        if identity != checkpoint.identity:
            raise click.UsageError(
                f"the checkpoint {checkpoint.path} belongs to another export "
                f"({_describe(identity)}); run that command to resume it, or drop --resume to start over"
            )
        total, items, size = saved.get("total"), saved.get("items"), saved.get("bytes")
        if not (_count(total) and _count(items) and _count(size)):
            raise _Refusal(f"the checkpoint {checkpoint.path} is damaged; run without --resume to start over")
        try:
            file = open(self.path, "r+b")  # noqa: SIM115 - closed by close() or commit()
        except FileNotFoundError:
            raise _Refusal(
                f"{self.path} is gone, so the export cannot resume; run without --resume to start over"
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        actual = os.fstat(file.fileno()).st_size
        if actual < size:
            file.close()
            raise _Refusal(
                f"{self.path} holds {actual} bytes, fewer than the {size} the checkpoint recorded; "
                "run without --resume to start over"
            )
        # Bytes past the checkpoint were written after it was saved: they are written again.
        with output_errors(self.path):
            file.truncate(size)
            file.seek(size)
        self._file = file
        checkpoint.total = total
        checkpoint.items = items
        checkpoint.bytes = size
        checkpoint.last_key = saved.get("last_key")

    def write(self, chunk: bytes, n_items: int, last_key: Any) -> None:
        assert self._file is not None
        with output_errors(self.path):
            self._file.write(chunk)
        self.checkpoint.items += n_items
        self.checkpoint.bytes += len(chunk)
        self.checkpoint.last_key = last_key

    def save(self) -> None:
        """Make the written bytes durable, then record them in the checkpoint."""
        if self._file is not None and not self._file.closed:
            with output_errors(self.path):
                self._file.flush()
                os.fsync(self._file.fileno())
        self.checkpoint.save()

    def commit(self) -> None:
        """Durably rename the complete file onto the output; drop the checkpoint."""
        assert self._file is not None
        with output_errors(self.path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        with output_errors(f"{self.path} to {self.output}", "rename"):
            os.replace(self.path, self.output)
        self.committed = True
        _fsync_dir(self.output.parent)
        self.checkpoint.remove()

    def discard(self) -> None:
        self.close()
        with output_errors(self.path, "remove"):
            self.path.unlink(missing_ok=True)
        self.checkpoint.remove()

    def close(self) -> None:
        """Close the file; bytes it could not write are dropped (no checkpoint records them)."""
        if self._file is not None:
            # Closing flushes the buffer again, and fails again if writing it failed before.
            with contextlib.suppress(OSError):
                self._file.close()


def _count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0


async def _export_to_file(
    client: BetatelClient,
    options: ExportOptions,
    resource: _Resource,
    encoder: _Encoder,
    on_progress: Callable[[ScanReport], Any],
    result: ExportResult,
) -> None:
    output = Path(options.output)
    checkpoint = _Checkpoint(output.with_name(output.name + CHECKPOINT_SUFFIX), _identity(options))
    partial = _PartialFile(output, checkpoint)
    # Without --resume an old checkpoint is discarded unread: it may be damaged.
    saved = checkpoint.load() if options.resume else None
    to_skip = 0
    start = 0
    expected_total: int | None = None
    if saved is not None:
        partial.reopen(saved)
        # Start the scan at the last item written, not at 0: that one item is
        # fetched again only to check it is the one the checkpoint recorded.
        start = max(checkpoint.items - 1, 0)
        to_skip = checkpoint.items - start
        result.skipped += start
        expected_total = checkpoint.total
        _echo(f"Resuming {output}: {checkpoint.items} items already written; skipping them.")
    else:
        if checkpoint.path.exists():
            _echo(
                f"Discarding the unfinished export in {partial.path} "
                "(run with --resume to continue one instead)."
            )
        elif options.resume:
            _echo(f"No checkpoint beside {output}: starting a new export.")
        checkpoint.remove()
        partial.create(encoder.header())
    # Only an ordered export can be resumed: an unordered one has no "first N items".
    resumable = options.ordered
    try:
        last_saved = time.monotonic()
        async with _scan(client, options, on_progress, start) as scan:
            result.report = scan.report
            first = True
            async for page in scan:
                items = page.items
                if first:
                    # The first page tells the listing's total: the one to resume against.
                    _check_total(scan.report.total, expected_total, checkpoint)
                    first = False
                if to_skip:
                    items = _skip(items, to_skip, resource, checkpoint)
                    skipped = len(page.items) - len(items)
                    to_skip -= skipped
                    result.skipped += skipped
                    if not items:
                        continue
                partial.write(encoder.encode(items), len(items), resource.key(items[-1]))
                result.written += len(items)
                if resumable and time.monotonic() - last_saved >= CHECKPOINT_INTERVAL:
                    await anyio.to_thread.run_sync(partial.save)
                    last_saved = time.monotonic()
        if to_skip:
            raise _Refusal(  # noqa: TRY301 - handled by the except clause below, on purpose
                f"the listing has fewer items than the checkpoint's {checkpoint.items}: "
                "it changed since; run without --resume to start over"
            )
        await anyio.to_thread.run_sync(partial.commit)
    except _Refusal:
        # Leave the checkpoint and what it records of the partial file: the user decides.
        partial.close()
        raise
    except BaseException:
        # Runs on cancellation (Ctrl-C) too, so it does its file work synchronously.
        if partial.committed:
            raise
        if resumable and checkpoint.total is not None:
            # If the file cannot be written (the error being handled may be just that),
            # the checkpoint saved last still holds: keep it, and report the first error.
            with contextlib.suppress(OutputError):
                partial.save()
            partial.close()
        else:
            with contextlib.suppress(OutputError):
                partial.discard()
        raise


def _check_total(total: int | None, expected: int | None, checkpoint: _Checkpoint) -> None:
    if expected is not None and total != expected:
        raise _Refusal(
            f"the listing changed since the checkpoint (total was {expected}, now {total}): "
            "the partial export cannot be continued; run without --resume to start over"
        )
    checkpoint.total = total


def _skip(items: list[Any], to_skip: int, resource: _Resource, checkpoint: _Checkpoint) -> list[Any]:
    """Drop the items already written; check the last of them is the one recorded."""
    n = min(to_skip, len(items))
    if n == to_skip and n and resource.key(items[n - 1]) != checkpoint.last_key:
        raise _Refusal(
            f"the listing changed since the checkpoint (item {checkpoint.items} is "
            f"{resource.key(items[n - 1])!r}, the checkpoint recorded {checkpoint.last_key!r}); "
            "run without --resume to start over"
        )
    return items[n:]
