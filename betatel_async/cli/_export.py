"""``betatel-async export``: a thin caller of the library's ``export()``, and file errors as click errors.

The export itself (atomic, resumable, JSON Lines, CSV or Parquet) is
`betatel_async._export`; this module adds what only a command line has:
standard output as a target, the messages about an unfinished export, and
`OutputError` for the other commands' files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import click

from .._client import BetatelClient
from .._export import CHECKPOINT_SUFFIX, PARTIAL_SUFFIX, ExportFormat, ExportResult
from .._paginate import ScanReport
from .._resources._listing import ListingResource

__all__ = ["CHECKPOINT_SUFFIX", "PARTIAL_SUFFIX", "STDOUT", "OutputError", "output_errors", "run_export"]

STDOUT: Final = "standard output"
"""The name `output_errors()` gives standard output in its messages."""


class OutputError(click.ClickException):
    """A file (or standard output) could not be written: its path and the OS's reason (exit status 1)."""


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str], action: str = "write") -> Iterator[None]:
    """Turn an `OSError` raised inside into an `OutputError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot {action} {path}: {exc.strerror or exc}") from exc


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _stdout() -> BinaryIO:
    # Text already printed must come out before the bytes written beneath it.
    sys.stdout.flush()
    return sys.stdout.buffer


def _announce(output: str, *, resume: bool) -> None:
    """Say what happens to an unfinished export (or that there is none to resume)."""
    checkpoint = Path(output + CHECKPOINT_SUFFIX)
    if not resume and checkpoint.exists():
        _echo(
            f"Discarding the unfinished export in {output}{PARTIAL_SUFFIX} (run with --resume to continue it)."
        )
    elif resume and not checkpoint.exists():
        _echo(f"No checkpoint beside {output}: starting a new export.")


async def run_export(
    client: BetatelClient,
    resource: str,
    filters: dict[str, str | int],
    *,
    fmt: ExportFormat,
    output: str,
    page_size: int | None,
    concurrency: int | None,
    ordered: bool,
    resume: bool,
    on_progress: Callable[[ScanReport], Any],
) -> ExportResult:
    """Export one listing to ``output`` (``"-"``: standard output) with the library's ``export()``.

    Raises:
        InvalidArgumentError: A bad argument, or the checkpoint belongs to another export.
        ExportError: A file cannot be written, or the checkpoint cannot be continued.
        BetatelError: The listing failed; the checkpoint is saved first.
    """
    listing: ListingResource[Any] = getattr(client, resource)
    options: dict[str, object] = {
        **filters,
        "format": fmt,
        "resume": resume,
        "page_size": page_size,
        "concurrency": concurrency,
        "on_progress": on_progress,
    }
    if output == "-":
        return await listing._export(STDOUT, options, ordered=ordered, stream=_stdout())
    _announce(output, resume=resume)
    return await listing._export(output, options, ordered=ordered)
