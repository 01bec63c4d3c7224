"""Helpers shared by the benchmarks: sample pages, interleaved timing, tables, the environment.

Strategy against noise: every benchmark measures its contenders in
interleaved rounds (A B C, A B C, ...), never one after the other, so a change
in machine load hits every contender alike; it reports medians over rounds,
and ratios computed within each round before taking their median.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from betatel_async.sandbox import DEFAULT_API_KEY, DEFAULT_USER_ID, STATS_PATH, SandboxData, SimShape

__all__ = [
    "SandboxProcess",
    "environment",
    "interleaved",
    "median",
    "print_table",
    "ratio_medians",
    "sim_pages",
]


def sim_pages(*, pages: int, per_page: int, shape: SimShape = "mixed", seed: int = 0) -> list[bytes]:
    """List-SIM response bodies exactly as the sandbox serves them.

    ``shape="mixed"`` alternates ``{id, name}`` references and bare ids (about
    350 bytes per SIM); ``"objects"`` is about 410, ``"ids"`` about 310.
    """
    data = SandboxData(sims=pages * per_page, seed=seed)
    bodies = []
    for number in range(pages):
        offset = number * per_page
        total, items = data.page("sims", offset=offset, count=per_page, shape=shape)
        head = b'{"total":%d,"offset":%d,"count":%d,"sims":[' % (total, offset, len(items))
        bodies.append(b"".join((head, b",".join(items), b"]}")))
    return bodies


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Run every contender once per round, in turn; return each one's wall times in seconds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio_medians(
    times: dict[str, list[float]],
    baseline: str,
    *,
    average: Callable[[Sequence[float]], float] = statistics.median,
) -> dict[str, float]:
    """Per contender: the median (or ``average``) over rounds of its time / the baseline's, round by round."""
    base = times[baseline]
    return {name: average([t / b for t, b in zip(ts, base, strict=True)]) for name, ts in times.items()}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table (it pastes into the README as is)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(*packages: str) -> str:
    """One line saying what this ran on."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    return f"CPython {platform.python_version()} on {sys.platform}, {os.cpu_count()} CPUs{load}; {versions}"


class SandboxProcess:
    """A sandbox serving in its own process (``python -m betatel_async.sandbox``), so its CPU is not ours.

    Use as a context manager; ``url``, ``api_key`` and ``user_id`` are set on entry.
    ``cpu_seconds()`` reads the server's user + system CPU time so far (Linux);
    ``stats()`` its request counters.
    """

    def __init__(self, *args: str) -> None:
        self.args = args
        self.url = ""
        self.api_key = DEFAULT_API_KEY
        self.user_id = DEFAULT_USER_ID
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        command = [sys.executable, "-m", "betatel_async.sandbox", "--port", "0", *self.args]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            match = re.search(r"serving at (http://\S+)", line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self.__exit__()
            raise RuntimeError(f"the sandbox did not start: {' '.join(command)}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        proc.send_signal(signal.SIGINT)  # the sandbox's own way to stop: Ctrl-C
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def cpu_seconds(self) -> float:
        """The server process's CPU time (user + system) so far, or NaN where /proc is missing."""
        if self._proc is None:
            return math.nan
        try:
            with open(f"/proc/{self._proc.pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            return math.nan
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    def stats(self) -> dict[str, Any]:
        """The server's request counters so far, as ``GET /_sandbox/stats`` answers them (see ``SandboxStats``).

        A blocking call: make it between runs, not while one is being timed.
        """
        # A plain http:// URL the sandbox printed itself, on loopback.
        with urllib.request.urlopen(self.url + STATS_PATH, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())  # type: ignore[no-any-return]
