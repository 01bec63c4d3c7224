"""One export: a listing's scan written to a file, atomically and resumably. Private.

Strategy: the scan is ordered, so "the first N items" is a position in the
listing: the checkpoint records N, the key of the N-th item and what the
partial file holds (see `._files`). A resume truncates the partial file
to what the checkpoint claims and starts the scan at ``N - 1``: the first item
it gets is the last one written, fetched again only to check that it is the
one the checkpoint recorded. If it is, nothing before the resume point moved
(the listing may have grown or shrunk after it: those items are simply read
as they are now); if it is not, the export refuses, and says to start anew.

Before the rename, the checkpoint is saved once more marked ``complete``: an
export stopped during the rename is finished by a resume without a request.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, TypedDict

import anyio.to_thread
import attrs

from .._errors import ExportError, InvalidArgumentError, InvalidArgumentTypeError, MalformedResponseError
from .._paginate import PageScan, ScanReport
from ._files import CHECKPOINT_SUFFIX, Checkpoint, RefusalError, Writer, refuse, writer_for
from ._listings import Exported

__all__ = [
    "CHECKPOINT_INTERVAL",
    "ExportFormat",
    "ExportOptions",
    "ExportResult",
    "check_target",
    "run_export",
]

ExportFormat = Literal["jsonl", "csv", "parquet"]
"""An export's file format: JSON Lines, CSV, or Parquet (needs the ``parquet`` extra)."""

_FORMATS: Final = ("jsonl", "csv", "parquet")
_SUFFIXES: Final[dict[str, ExportFormat]] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CHECKPOINT_INTERVAL: Final = 0.5
"""Seconds between checkpoints while an export runs (one more is written when it stops)."""
PARQUET_EXTRA: Final = "pip install 'betatel-async[parquet]'"


class ExportOptions(TypedDict, total=False):
    """The options of ``export()`` (besides the listing's filters).

    Attributes:
        format: ``"jsonl"``, ``"csv"`` or ``"parquet"``; ``None`` (default):
            from the path's suffix (``.jsonl``/``.ndjson``, ``.csv``,
            ``.parquet``/``.pq``).
        resume: Continue the export from the checkpoint beside ``path`` if
            there is one (else start anew). Default ``False``: an unfinished
            export there is discarded.
        page_size: Items per request, 1 to 1000. Default 100.
        concurrency: Requests in flight, at most the client's ``max_concurrency`` (the default).
        on_progress: Called with the live [`ScanReport`][betatel_async.ScanReport] after each page
            (keep it quick); in a resumed export ``items`` counts the items
            already written.
    """

    format: ExportFormat | None
    resume: bool
    page_size: int | None
    concurrency: int | None
    on_progress: Callable[[ScanReport], Any] | None


@attrs.frozen(slots=True, kw_only=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        path: The file written.
        format: Its format.
        items: Items in the file (those of a resumed export's earlier runs included).
        pages: Pages fetched by this run.
        report: This run's scan report.
        resumed_from: Items already written when a resumed export picked up (0 for a fresh one).
    """

    path: Path
    format: ExportFormat
    items: int
    pages: int
    report: ScanReport
    resumed_from: int = 0


def check_target(path: object, fmt: object) -> tuple[Path, ExportFormat]:
    """The target path and the format, checked before any request.

    Raises:
        InvalidArgumentTypeError: ``path`` is not a path.
        InvalidArgumentError: The format is unknown (or cannot be told from
            the suffix), ``path`` is a directory, or Parquet is asked for
            without pyarrow installed. (A directory that does not exist, or
            cannot be written, is the OS's to tell: [`ExportError`][betatel_async.ExportError].)
    """
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentTypeError("path", f"must be a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        raise InvalidArgumentError("path", f"{str(target)!r} is a directory")
    if fmt is None:
        found = _SUFFIXES.get(target.suffix.lower())
        if found is None:
            raise InvalidArgumentError(
                "format",
                f"cannot tell the format from the suffix of {str(target)!r}: name the file "
                f"{', '.join(_SUFFIXES)}, or give format= one of {', '.join(_FORMATS)}",
            )
        fmt = found
    if fmt not in _FORMATS:
        raise InvalidArgumentError("format", f"must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        try:
            import pyarrow
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise InvalidArgumentError(
                "format", f"Parquet needs pyarrow, which is not installed: {PARQUET_EXTRA}"
            ) from None
    return target, fmt


def _check_items(items: list[Any], listing: Exported, offset: int, api_path: str) -> None:
    """Each JSON item is an object carrying its key (nothing without one is ever written)."""
    key, key_type = listing.key, listing.key_type
    for index, item in enumerate(items):
        if type(item) is not dict or type(item.get(key)) is not key_type:
            what = "not an object" if type(item) is not dict else f"without a {key_type.__name__} {key!r}"
            raise MalformedResponseError(
                f"{listing.name} item {offset + index} is {what}",
                json_path=f"$.{listing.items_key}[{index}]" + ("" if type(item) is not dict else f".{key}"),
                method="GET",
                path=api_path,
            )


def _key_of(item: Any, listing: Exported, typed: bool) -> Any:
    return getattr(item, listing.key) if typed else item[listing.key]


OpenScan = Callable[[int, bool], PageScan[Any]]
"""``open_scan(offset, typed)``: the listing's ordered scan from ``offset``."""


async def run_export(
    listing: Exported,
    open_scan: OpenScan,
    *,
    target: Path,
    fmt: ExportFormat,
    filters: dict[str, str | int],
    resume: bool,
    api_path: str,
    ordered: bool = True,
    stream: BinaryIO | None = None,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
) -> ExportResult:
    """Export a listing to ``target`` (or to ``stream``); see [`ExportOptions`][betatel_async.ExportOptions].

    Raises:
        ExportError: A file cannot be written (the checkpoint saved last
            stays), or the checkpoint cannot be continued.
        InvalidArgumentError: The checkpoint belongs to another export (``resume``).
        BetatelError: The listing failed; the checkpoint is saved first.
    """
    writer: Writer = writer_for(fmt, listing, None if stream is not None else target, stream)
    identity = {"listing": listing.name, "filters": dict(sorted(filters.items())), "format": fmt}
    checkpoint = Checkpoint(target.with_name(target.name + CHECKPOINT_SUFFIX), identity)
    resumable = ordered and stream is None
    saved = checkpoint.load() if resume and resumable else None
    written = resumed_from = 0
    last_key: Any = None
    total: int | None = None
    if saved is not None:
        resumed_from = written = saved["items"]
        last_key = saved.get("last_key")
        total = saved.get("total")
        if saved.get("complete"):
            await anyio.to_thread.run_sync(writer.recover, saved)
            await anyio.to_thread.run_sync(checkpoint.remove)
            return ExportResult(
                path=target,
                format=fmt,
                items=written,
                pages=0,
                report=ScanReport(finished=True),
                resumed_from=resumed_from,
            )
        writer.reopen(saved)
    else:
        writer.start()
        if resumable:
            checkpoint.remove()
    start = max(written - 1, 0)
    to_skip = written - start

    def state(complete: bool = False) -> dict[str, Any]:
        synced = writer.sync()
        return {"items": written, "last_key": last_key, "total": total, **synced, "complete": complete}

    def save(complete: bool = False) -> None:
        checkpoint.save(state(complete))

    committed = False
    typed = writer.typed
    try:
        last_saved = time.monotonic()
        async with open_scan(start, typed) as scan:
            report = scan.report
            report.items = start  # progress counts what the file already holds
            async for page in scan:
                items = page.items
                total = report.total
                if not typed:
                    _check_items(items, listing, page.offset, api_path)
                if to_skip:
                    # The item just before the resume point: it must be the one recorded.
                    if _key_of(items[0], listing, typed) != last_key:
                        raise refuse(  # noqa: TRY301 - handled below, on purpose
                            checkpoint.path,
                            f"the listing changed before the resume point (item {written} is "
                            f"{_key_of(items[0], listing, typed)!r}, the checkpoint recorded {last_key!r})",
                        )
                    items = items[1:]
                    to_skip = 0
                    if not items:
                        continue
                writer.write(items)
                written += len(items)
                last_key = _key_of(items[-1], listing, typed)
                if resumable and time.monotonic() - last_saved >= checkpoint_interval:
                    await anyio.to_thread.run_sync(save)
                    last_saved = time.monotonic()
        if to_skip:
            raise refuse(  # noqa: TRY301 - handled below, on purpose
                checkpoint.path,
                f"the listing now has fewer items than the {written} already written",
            )
        if resumable:
            await anyio.to_thread.run_sync(save, True)
        await anyio.to_thread.run_sync(writer.commit)
        committed = True
        if resumable:
            await anyio.to_thread.run_sync(checkpoint.remove)
    except BaseException as exc:
        # Runs on cancellation (Ctrl-C) too, so its file work is synchronous.
        if committed:
            raise
        if isinstance(exc, RefusalError):
            writer.close()  # a refusal: the checkpoint and the partial file stay, the user decides
            raise
        if resumable and (saved is not None or total is not None):
            # If the file cannot be written (the error being handled may be just
            # that), the checkpoint saved last still holds: keep it.
            with contextlib.suppress(ExportError):
                save()
            writer.close()
        else:
            with contextlib.suppress(ExportError):
                writer.discard()
                if resumable:
                    checkpoint.remove()
        raise
    return ExportResult(
        path=target, format=fmt, items=written, pages=report.pages, report=report, resumed_from=resumed_from
    )
