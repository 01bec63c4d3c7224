"""The benchmark scripts run (``--quick``: a smoke run; its figures mean nothing and are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", ["decode.py", "throughput.py", "fanout.py", "importtime.py"])
def test_benchmark_script_runs_and_prints_its_table(script: str) -> None:
    command = [sys.executable, str(BENCHMARKS / script), "--quick"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=BENCHMARKS)  # noqa: S603
    assert done.returncode == 0, done.stderr
    header, rule = [line for line in done.stdout.splitlines() if line.startswith("|")][:2]
    assert header.count("|") >= 3
    assert set(rule) <= {"|", "-"}
