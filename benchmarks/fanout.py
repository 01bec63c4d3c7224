"""Latency-bound scans: wall time against the ideal ``L * (1 + ceil((P - 1) / C))``, at several concurrencies.

The sandbox runs in its own process and waits a fixed latency ``L`` before
answering each request. A scan of ``P`` pages fetches the first page alone (it
teaches ``total``), then the other ``P - 1`` in waves of ``C``; nothing can do
better than the ideal above. For each latency and concurrency the scan
(``client.sims.iter()``, every item consumed, in order) runs several times,
the concurrencies interleaved; the table gives the median wall time, its ratio
to the ideal, and the speedup over ``C = 1`` at the same latency. For
reference, the bare aiohttp + ``json.loads`` loop of ``throughput.py`` runs the
same scans in between: the ideal ignores the fixed cost of a request (the
server's timer overshoot, the round trip, parsing), which no client avoids.
The column "wall/ideal at C=1's per-request time" puts that cost back: it
uses, in place of ``L``, the mean time of a request measured by the ``C = 1``
scan of the same run, so what remains is the fan-out's own overhead.

Two kinds of scan are measured. A *first* scan of a listing (a client made
with ``remember_totals=False``) learns ``total`` from its first page, alone,
as the ideal assumes. A *repeated* scan (a client that scanned the listing
before) plans its first wave on the total it remembers, so its floor is
``L * ceil(P / C)``: the second table gives its ratio to both.

Usage::

    python benchmarks/fanout.py                      # 240 pages, 25 ms, C = 1 4 16 32, 3 rounds
    python benchmarks/fanout.py --latency-ms 25 100  # several latencies in one run
    python benchmarks/fanout.py --quick              # a smoke run (CI): seconds, not timing
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from functools import partial

import aiohttp
from _common import SandboxProcess, environment, median, print_table
from throughput import SIMS_PATH, bare_scan

from betatel_async import BetatelClient


def ideal(latency: float, pages: int, concurrency: int) -> float:
    """The least wall time of a scan: the first page alone, then waves of ``concurrency``."""
    return latency * (1 + math.ceil((pages - 1) / concurrency))


async def scan(client: BetatelClient, page_size: int, concurrency: int) -> int:
    count = 0
    async with client.sims.iter(page_size=page_size, concurrency=concurrency) as sims:
        async for _ in sims:
            count += 1
    return count


Times = dict[int, list[float]]


async def measure(
    sandbox: SandboxProcess, *, sims: int, page_size: int, concurrencies: list[int], rounds: int
) -> tuple[Times, Times, Times]:
    """Wall times per concurrency: the SDK's first and repeated scans, and the bare loop of ``throughput.py``."""
    first: Times = {c: [] for c in concurrencies}
    repeated: Times = {c: [] for c in concurrencies}
    bare: Times = {c: [] for c in concurrencies}
    headers = {"x-api-key": sandbox.api_key, "x-user-id": sandbox.user_id}
    connector = aiohttp.TCPConnector(limit=max(concurrencies))
    options = {
        "api_key": sandbox.api_key,
        "user_id": sandbox.user_id,
        "base_url": sandbox.url,
        "max_concurrency": max(concurrencies),
    }
    async with (
        aiohttp.ClientSession(headers=headers, connector=connector) as session,
        BetatelClient(**options, remember_totals=False) as cold,  # type: ignore[arg-type]
        BetatelClient(**options) as warm,  # type: ignore[arg-type]
    ):
        url = sandbox.url + SIMS_PATH
        for client in (cold, warm):  # warm up: connections open (and the total seen)
            await scan(client, page_size, max(concurrencies))
        await bare_scan(session, url, page_size, max(concurrencies))
        for _ in range(rounds):
            for concurrency in concurrencies:
                seen = []
                for times, run in (
                    (first, partial(scan, cold, page_size, concurrency)),
                    (repeated, partial(scan, warm, page_size, concurrency)),
                    (bare, partial(bare_scan, session, url, page_size, concurrency)),
                ):
                    started = time.perf_counter()
                    seen.append(await run())
                    times[concurrency].append(time.perf_counter() - started)
                if seen != [sims] * 3:
                    raise SystemExit(f"scans at C={concurrency} saw {seen} SIMs, not {sims}")
    return first, repeated, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=240, help="pages per scan (default %(default)s)")
    parser.add_argument("--page-size", type=int, default=100, help="items per page (default %(default)s)")
    parser.add_argument(
        "--latency-ms", type=float, nargs="+", default=[25.0], help="server latencies, ms (default 25)"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4, 16, 32], help="default: 1 4 16 32"
    )
    parser.add_argument("--rounds", type=int, default=3, help="scans per cell (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 24 pages, 5 ms, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.latency_ms, args.rounds = 24, [5.0], 1
    if 1 not in args.concurrency:
        args.concurrency.insert(0, 1)  # the speedup's baseline
    sims = args.pages * args.page_size

    rows = []
    repeat_rows = []
    checks = []
    for latency_ms in args.latency_ms:
        latency = latency_ms / 1000
        with SandboxProcess("--sims", str(sims), "--latency-ms", str(latency_ms)) as sandbox:
            times, repeated, bare = asyncio.run(
                measure(
                    sandbox,
                    sims=sims,
                    page_size=args.page_size,
                    concurrencies=args.concurrency,
                    rounds=args.rounds,
                )
            )
        sequential = median(times[1])
        per_request = sequential / args.pages  # L plus what one request really costs here
        for concurrency in args.concurrency:
            wall = median(times[concurrency])
            best = ideal(latency, args.pages, concurrency)
            speedup = sequential / wall
            rows.append(
                [
                    f"{latency_ms:g}",
                    str(concurrency),
                    f"{wall:.3f}",
                    f"{best:.3f}",
                    f"{wall / best:.3f}",
                    f"{wall / ideal(per_request, args.pages, concurrency):.3f}",
                    f"{speedup:.1f}",
                    f"{speedup / concurrency:.2f}",
                    f"{median(bare[concurrency]) / best:.3f}",
                ]
            )
            again = median(repeated[concurrency])
            floor = latency * math.ceil(args.pages / concurrency)
            repeat_rows.append(
                [
                    f"{latency_ms:g}",
                    str(concurrency),
                    f"{again:.3f}",
                    f"{again / best:.3f}",
                    f"{floor:.3f}",
                    f"{again / floor:.3f}",
                    f"{wall / again:.2f}",
                ]
            )
            if concurrency == 16:
                checks.append(
                    f"L = {latency_ms:g} ms, C = 16: first scan wall/ideal {wall / best:.3f} (target <= 1.10), "
                    f"speedup {speedup:.1f} = {speedup / 16:.2f} C (target >= 0.8 C); "
                    f"repeated scan wall/ideal {again / best:.3f}"
                )

    print(environment("aiohttp"))
    print(
        f"{args.pages} pages of {args.page_size} SIMs per scan, client.sims.iter() consumed in order; "
        f"median of {args.rounds} scans per cell, concurrencies interleaved"
    )
    print()
    print("First scan of the listing (remember_totals=False: the first page alone teaches total):")
    print_table(
        [
            "latency ms",
            "C",
            "wall s",
            "ideal s",
            "wall/ideal",
            "wall/ideal at C=1's per-request time",
            "speedup vs C=1",
            "speedup / C",
            "bare loop wall/ideal",
        ],
        rows,
    )
    print()
    print("Repeated scan (the client remembers the listing's total: the first wave goes out at once):")
    print_table(
        [
            "latency ms",
            "C",
            "wall s",
            "wall/ideal",
            "floor L*ceil(P/C) s",
            "wall/floor",
            "speedup vs first scan",
        ],
        repeat_rows,
    )
    if checks:
        print()
        print("\n".join(checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
