"""The benchmark scripts run (``--quick``: a smoke run of seconds).

A smoke run's figures say nothing about speed and no test compares them with
anything; the test checks only that each table is filled with numbers (or
"n/a", where a contender has no such figure or the SDK lacks an option).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from ._signals import default_sigint_in_children

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.mark.parametrize(
    "script", ["decode.py", "throughput.py", "fanout.py", "importtime.py", "export.py", "tail.py"]
)
def test_benchmark_script_runs_and_prints_a_table_of_numbers(script: str) -> None:
    command = [sys.executable, str(BENCHMARKS / script), "--quick"]
    # The scripts stop their sandbox process with SIGINT: it must not inherit an ignored one.
    with default_sigint_in_children():
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=BENCHMARKS)  # noqa: S603
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    rules = [i for i, line in enumerate(lines) if set(line) <= {"|", "-"}]
    assert rules, done.stdout
    headers = {i - 1 for i in rules}
    assert all(lines[i].count("|") >= 3 for i in headers)
    rows = [line for i, line in enumerate(lines) if i not in headers and i not in rules]
    assert rows, done.stdout
    numbers = 0
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if not cells[0].replace(".", "").isdigit():  # the first column names the contender
            cells = cells[1:]
        assert cells, row
        figures = [_number(cell) for cell in cells if cell != "n/a"]
        assert all(math.isfinite(figure) and figure >= 0 for figure in figures), row
        numbers += len(figures)
    assert numbers, done.stdout  # "n/a" alone is no table of figures
