"""Terminal output with rich: the export's progress bar and the status table.

rich is imported inside the functions, so that commands which print only JSON
(and ``--help``) do not pay for importing it.

Text from the server (company, inventory and group names, statuses) is printed
literally: as `rich.text.Text`, never as a string rich would read as
markup, and with its control characters removed (`printable()`), so that no
escape sequence the server sends reaches the terminal.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._paginate import ScanReport
from .._status import NONE_KEY, SimStatusReport

if TYPE_CHECKING:  # only for annotations; imported for real where used
    from rich.console import Console
    from rich.text import Text

__all__ = ["ScanProgress", "printable", "render_status", "stdout_console"]

_PIPE_WIDTH = 200
"""Width of a table written to a pipe or file: wide enough that no column is folded."""

_CONTROLS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])
"""C0, DEL and C1: ESC (0x1B) and CSI (0x9B) start terminal escape sequences, and
CR, BS or a newline would let one name overwrite or fake the lines around it."""


def printable(text: str) -> str:
    """``text`` without control characters (C0, DEL, C1), for one line of a terminal."""
    return text.translate(_CONTROLS)


class ScanProgress:
    """A progress bar on stderr (items of total, rate, ETA) fed by a scan's ``on_progress``.

    Quiet (it draws nothing and imports nothing) unless ``enabled``; the CLI
    enables it when stderr is a terminal.
    """

    def __init__(self, description: str, *, enabled: bool) -> None:
        self._description = description
        self._enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ScanProgress:
        if not self._enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class _RateColumn(ProgressColumn):
            def render(self, task: Task) -> Text:
                speed = task.finished_speed or task.speed
                return Text("" if speed is None else f"{speed:,.0f} items/s", style="progress.data.speed")

        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def update(self, report: ScanReport) -> None:
        """The scan's ``on_progress`` callback: runs in the scan's task, so it only records numbers."""
        if self._progress is not None:
            self._progress.update(self._task, completed=report.items, total=report.total)


def stdout_console() -> Console:
    """A rich console on standard output, wide enough for tables when it is not a terminal."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(file=sys.stdout, width=width)


def _holder_label(ident: int | None, name: str | None) -> Text:
    from rich.text import Text

    if ident is None:
        return Text("(none)")
    return Text(f"{printable(name)} ({ident})" if name else str(ident))


def render_status(report: SimStatusReport, console: Console) -> None:
    """Print the report as a table: per holder, one row for all its SIMs and one per network.

    Names and statuses are printed as the server sent them, less control characters.
    """
    from rich.table import Table
    from rich.text import Text

    statuses = list(report.by_status)
    table = Table(
        title=f"SIM inventory: {report.total} SIMs",
        caption=(
            "Rows 'all' count each SIM once; a SIM with IMSIs of several networks "
            f"counts once under each network. Network '{NONE_KEY}': no IMSI sponsor. "
            f"Generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC."
        ),
        show_footer=True,
    )
    table.add_column("Company", footer="All holders")
    table.add_column("Inventory")
    table.add_column("Network", footer="all")
    for status in statuses:
        table.add_column(
            Text(printable(status)), justify="right", footer=str(report.by_status.get(status, 0))
        )
    table.add_column("Total", justify="right", footer=str(report.total))

    def counts(by_status: dict[str, int], total: int) -> list[str]:
        return [str(by_status.get(status, 0)) for status in statuses] + [str(total)]

    for holder in report.holders:
        table.add_row(
            _holder_label(holder.company_id, holder.company_name),
            _holder_label(holder.inventory_id, holder.inventory_name),
            "all",
            *counts(holder.by_status, holder.total),
            style="bold",
        )
        for network, network_counts in holder.by_network.items():
            table.add_row(
                "", "", Text(printable(network)), *counts(network_counts.by_status, network_counts.total)
            )
        table.add_section()
    for network, network_counts in report.by_network.items():
        table.add_row(
            "All holders",
            "",
            Text(printable(network)),
            *counts(network_counts.by_status, network_counts.total),
            style="dim",
        )
    console.print(table)
