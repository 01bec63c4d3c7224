"""Export of the SIM registry to each format against the scan alone: items/s, peak RSS, file size.

The sandbox runs in its own process; each contender runs in a fresh child
process of its own, so that no two share a peak resident set size (read with
``resource.getrusage`` in the child, ``ru_maxrss``). Contenders:

- scan: ``client.sims.pages()`` with typed items, each page dropped: the baseline.
- jsonl, csv, parquet: ``client.sims.export(path)`` (Parquet needs pyarrow).

Usage::

    python benchmarks/export.py                 # 1,000,000 SIMs, pages of 1000, 8 in flight
    python benchmarks/export.py --sims 100000   # the same at 100,000 (peak RSS should match)
    python benchmarks/export.py --quick         # a smoke run (CI): seconds, not timing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SandboxProcess, environment, print_table

from betatel_async import BetatelClient

MODES = ("scan", "jsonl", "csv", "parquet")


async def child(
    mode: str, url: str, key: str, user: str, out: str, page_size: int, concurrency: int
) -> dict[str, float]:
    async with BetatelClient(api_key=key, user_id=user, base_url=url, max_concurrency=concurrency) as client:
        started = time.perf_counter()
        items = 0
        if mode == "scan":
            async with client.sims.pages(page_size=page_size) as pages:
                async for page in pages:
                    items += len(page.items)
        else:
            result = await client.sims.export(out, format=mode, page_size=page_size)  # type: ignore[arg-type]
            items = result.items
        seconds = time.perf_counter() - started
    # ru_maxrss is in KiB on Linux.
    return {
        "items": items,
        "seconds": seconds,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(mode: str, sandbox: SandboxProcess, out: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable, __file__, "--child", mode, "--url", sandbox.url, "--key", sandbox.api_key,
        "--user", sandbox.user_id, "--out", str(out), "--page-size", str(args.page_size),
        "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 - this script
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sims", type=int, default=1_000_000, help="SIMs in the listing (default %(default)s)"
    )
    parser.add_argument("--page-size", type=int, default=1000, help="items per request (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 SIMs")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    for name in ("--url", "--key", "--user", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        figures = asyncio.run(
            child(args.child, args.url, args.key, args.user, args.out, args.page_size, args.concurrency)
        )
        print(json.dumps(figures))
        return 0
    if args.quick:
        args.sims = 2000
    print(environment("aiohttp", "orjson", "pyarrow"))
    print(
        f"{args.sims:,} SIMs, pages of {args.page_size}, {args.concurrency} in flight; one fresh process each\n"
    )
    rows = []
    with SandboxProcess("--sims", str(args.sims)) as sandbox, tempfile.TemporaryDirectory() as where:
        base = 0.0
        for mode in MODES:
            out = Path(where) / f"sims.{mode if mode != 'scan' else 'none'}"
            figures = run_child(mode, sandbox, out, args)
            assert figures["items"] == args.sims, figures
            size = out.stat().st_size if mode != "scan" else 0
            rate = figures["items"] / figures["seconds"]
            base = base or rate
            rows.append(
                [
                    mode,
                    f"{rate:,.0f}",
                    f"{rate / base:.2f}",
                    f"{figures['rss_mib']:.0f}",
                    f"{size / 1e6:.1f}",
                ]
            )
            out.unlink(missing_ok=True)
    print_table(["contender", "items/s", "x scan", "peak RSS MiB", "file MB"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
