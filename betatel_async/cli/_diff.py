"""``betatel-async diff OLD NEW``: what changed between two exports, as JSON Lines and a summary table.

A thin caller of [`betatel_async.diff()`][betatel_async.diff]: the differences are written one
JSON object a line ([`ExportDiff.records()`][betatel_async.ExportDiff.records]), the summary
([`ExportDiff.summary()`][betatel_async.ExportDiff.summary]) is printed as a table on standard error when the
JSON Lines go to standard output, else on standard output. A file that cannot
be read is an [`ExportError`][betatel_async.ExportError], which the group turns into
one ``Error:`` line (exit status 1).
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click
import orjson

from .._export import ExportDiff, diff
from ._app import cli
from ._export import STDOUT, output_errors
from ._render import printable

if TYPE_CHECKING:  # only for annotations; imported for real where used
    from rich.console import Console

__all__ = ["diff_command", "render_diff"]

_DIFF_HELP = (
    "Compare two exports of the same listing (JSON Lines, CSV or Parquet, in any mix) by key: "
    "ICCID for SIMs, id for inventories, packages and package templates, ISO3 for countries. "
    "Items are compared as the SDK's models read them, so a field two formats write differently "
    "is no difference.\n\n"
    'Writes one JSON object per difference: {"change": "added" or "removed", "key": K, "item": '
    '{...}}, or {"change": "changed", "key": K, "fields": {NAME: {"old": ..., "new": ...}}}; '
    "then prints a summary table (counts, status transitions such as 'SIMs that moved to "
    "TERMINATED', and how many items changed each field): on standard error when the JSON Lines "
    "go to standard output, else on standard output."
)


@cli.command("diff", help=_DIFF_HELP, short_help="What changed between two exports of a listing.")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Where the JSON Lines of the differences go: a file, or - for standard output.",
)
def diff_command(*, old: str, new: str, output: str) -> None:
    """Compare two exports of the same listing."""
    with diff(old, new) as result:
        if output == "-":
            with output_errors(STDOUT):
                sys.stdout.flush()
                _write_records(result, sys.stdout.buffer)
            render_diff(result, _console(stderr=True))
        else:
            with output_errors(output), open(output, "wb") as file:
                _write_records(result, file)
            with output_errors(STDOUT):
                render_diff(result, _console(stderr=False))


def _write_records(result: ExportDiff, out: IO[bytes]) -> None:
    for record in result.records():
        out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    out.flush()


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    from ._render import stdout_console

    return Console(stderr=True) if stderr else stdout_console()


def render_diff(result: ExportDiff, console: Console) -> None:
    """Print the diff's summary as a table; status values and paths without control characters."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(printable(f"{result.listing or 'Nothing'}: {result.old} -> {result.new}")),
        show_header=True,
    )
    table.add_column("What")
    table.add_column("Items", justify="right")
    for label, count in result.summary():
        table.add_row(Text(printable(label)), str(count))
    console.print(table)
