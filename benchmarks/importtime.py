"""Import time of ``betatel_async`` against its dependencies alone, in fresh interpreters.

Each round starts one interpreter per contender (``python -X importtime -c
"import ..."``) and reads the cumulative time of the top-level import from
``-X importtime``'s report, so interpreter start-up is not counted. The
contenders alternate; the table gives medians and the ratio to ``aiohttp``
alone (what any aiohttp client pays). The SDK's own share is the difference
to importing its dependencies (aiohttp, anyio, attrs, cattrs, orjson) without it.

Usage::

    python benchmarks/importtime.py            # 15 rounds
    python benchmarks/importtime.py --quick    # a smoke run (CI): 1 round
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _common import environment, median, print_table

CONTENDERS = {
    "aiohttp": "import aiohttp",
    "aiohttp, anyio, attrs, cattrs, orjson": "import aiohttp, anyio, attrs, cattrs, orjson",
    "betatel_async": "import betatel_async",
}


def import_seconds(statement: str) -> float:
    """The cumulative import time of ``statement``'s modules, in seconds."""
    command = [sys.executable, "-X", "importtime", "-c", statement]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 - our own statements
    total = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  ") and cumulative.strip().isdigit():  # a top-level import
            total += int(cumulative)
    return total / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rounds", type=int, default=15, help="interpreters per contender (default %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name, statement in CONTENDERS.items():
            times[name].append(import_seconds(statement))
    base = median(times["aiohttp"])
    deps = median(times["aiohttp, anyio, attrs, cattrs, orjson"])
    ours = median(times["betatel_async"])
    print(environment("aiohttp", "anyio", "attrs", "cattrs", "orjson"))
    print(f"median of {rounds} fresh interpreters per row, contenders alternated")
    print()
    rows = [[name, f"{median(ts) * 1000:.1f}", f"{median(ts) / base:.2f}"] for name, ts in times.items()]
    print_table(["import", "ms", "x aiohttp"], rows)
    print()
    print(f"betatel_async's own share: {(ours - deps) * 1000:.1f} ms over its dependencies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
