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

Three kinds of scan are measured. A *first* scan of a listing (a client made
with ``remember_totals=False``, its connections open from earlier scans)
learns ``total`` from its first page, alone, as the ideal assumes. A
*repeated* scan (a client that scanned the listing before) plans its first
wave on the total it remembers, so its floor is ``L * ceil(P / C)``: the
second table gives its ratio to both. A *fresh client's* scan is what a
one-shot export job runs: each round makes a new client
(``remember_totals=False``, no connection open), timed from before the client
is made until the scan's last item (closing it is not timed); the bare loop
runs its counterpart with a new aiohttp session per round, timed alike. The
third table gives both against the same ideal, and each against its
counterpart on open connections (the SDK's first scan, the bare loop's warm
session).

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
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
import attrs
from _common import SandboxProcess, environment, median, print_table
from throughput import SIMS_PATH, bare_scan

from betatel_async import BetatelClient


def ideal(latency: float, pages: int, concurrency: int) -> float:
    """The least wall time of a scan: the first page alone, then waves of ``concurrency``."""
    return latency * (1 + math.ceil((pages - 1) / concurrency))


HEDGED = {"hedges": 0, "pages": 0}
"""Hedges the SDK's scans sent, and their pages, over the whole run (none straggles here)."""


async def scan(client: BetatelClient, page_size: int, concurrency: int) -> int:
    count = 0
    async with client.sims.iter(page_size=page_size, concurrency=concurrency) as sims:
        async for _ in sims:
            count += 1
    HEDGED["hedges"] += sims.report.hedges
    HEDGED["pages"] += sims.report.pages
    return count


Times = dict[int, list[float]]


async def fresh_scan(options: dict[str, object], page_size: int, concurrency: int) -> tuple[int, float]:
    """A one-shot job's scan: a new client (nothing remembered, no connection open), timed from before it is made.

    The clock stops at the scan's last item: closing the client is not timed
    (the job's output does not wait for it).
    """
    started = time.perf_counter()
    async with BetatelClient(**options, remember_totals=False) as client:  # type: ignore[arg-type]
        count = await scan(client, page_size, concurrency)
        return count, time.perf_counter() - started


async def fresh_bare_scan(
    url: str, headers: dict[str, str], limit: int, page_size: int, concurrency: int
) -> tuple[int, float]:
    """The bare loop's counterpart of :func:`fresh_scan`: a new aiohttp session per scan, timed alike."""
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        count = await bare_scan(session, url, page_size, concurrency)
        return count, time.perf_counter() - started


async def open_connections(
    clients: tuple[BetatelClient, ...], session: aiohttp.ClientSession, url: str, count: int
) -> None:
    """Make sure ``count`` connections are open in the long-lived clients' and session's pools: not timed.

    aiohttp closes a connection idle for 15 s (its connector's default
    ``keepalive_timeout``), and a round's ``C = 1`` scans keep the others
    idle for longer than that: without this, a *first* scan after them opens
    most of its connections anew, like a fresh client.
    """

    async def get() -> None:
        async with session.get(url, params={"offset": 0, "count": 1}) as response:
            await response.read()

    # Concurrent requests each need a connection of their own.
    lists = [client.sims.list(count=1) for client in clients for _ in range(count)]
    await asyncio.gather(*lists, *(get() for _ in range(count)))


async def timed(run: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    started = time.perf_counter()
    count = await run()
    return count, time.perf_counter() - started


@attrs.define
class Measured:
    """Wall times per concurrency, one list per contender."""

    fresh: Times
    first: Times
    repeated: Times
    bare: Times
    fresh_bare: Times


async def measure(
    sandbox: SandboxProcess, *, sims: int, page_size: int, concurrencies: list[int], rounds: int
) -> Measured:
    """Wall times per concurrency: the SDK's fresh, first and repeated scans, and the bare loop's (fresh and warm)."""
    times = Measured(*({c: [] for c in concurrencies} for _ in range(5)))
    headers = {"x-api-key": sandbox.api_key, "x-user-id": sandbox.user_id}
    limit = max(concurrencies)
    connector = aiohttp.TCPConnector(limit=limit)
    options: dict[str, object] = {
        "api_key": sandbox.api_key,
        "user_id": sandbox.user_id,
        "base_url": sandbox.url,
        "max_concurrency": limit,
    }
    async with (
        aiohttp.ClientSession(headers=headers, connector=connector) as session,
        BetatelClient(**options, remember_totals=False) as cold,  # type: ignore[arg-type]
        BetatelClient(**options) as warm,  # type: ignore[arg-type]
    ):
        url = sandbox.url + SIMS_PATH
        for client in (cold, warm):  # warm up: connections open (and the total seen)
            await scan(client, page_size, limit)
        await bare_scan(session, url, page_size, limit)
        await fresh_scan(
            options, page_size, limit
        )  # the first new client of the process pays imports, caches
        for _ in range(rounds):
            for concurrency in concurrencies:
                await open_connections((cold, warm), session, url, concurrency)
                seen = []
                for cell, run in (
                    (times.fresh, partial(fresh_scan, options, page_size, concurrency)),
                    (times.first, partial(timed, partial(scan, cold, page_size, concurrency))),
                    (times.repeated, partial(timed, partial(scan, warm, page_size, concurrency))),
                    (times.bare, partial(timed, partial(bare_scan, session, url, page_size, concurrency))),
                    (times.fresh_bare, partial(fresh_bare_scan, url, headers, limit, page_size, concurrency)),
                ):
                    count, seconds = await run()
                    seen.append(count)
                    cell[concurrency].append(seconds)
                if seen != [sims] * len(seen):
                    raise SystemExit(f"scans at C={concurrency} saw {seen} SIMs, not {sims}")
    return times


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
    fresh_rows = []
    checks = []
    for latency_ms in args.latency_ms:
        latency = latency_ms / 1000
        with SandboxProcess("--sims", str(sims), "--latency-ms", str(latency_ms)) as sandbox:
            measured = asyncio.run(
                measure(
                    sandbox,
                    sims=sims,
                    page_size=args.page_size,
                    concurrencies=args.concurrency,
                    rounds=args.rounds,
                )
            )
        times, repeated, bare = measured.first, measured.repeated, measured.bare
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
            fresh = median(measured.fresh[concurrency])
            fresh_rows.append(
                [
                    f"{latency_ms:g}",
                    str(concurrency),
                    f"{fresh:.3f}",
                    f"{best:.3f}",
                    f"{fresh / best:.3f}",
                    f"{median(measured.fresh_bare[concurrency]) / best:.3f}",
                    f"{fresh / wall:.3f}",
                    f"{median(measured.fresh_bare[concurrency]) / median(bare[concurrency]):.3f}",
                ]
            )
            if concurrency == 16:
                checks.append(
                    f"L = {latency_ms:g} ms, C = 16: fresh client's scan wall/ideal {fresh / best:.3f} "
                    f"(target <= 1.15; bare loop, fresh session: "
                    f"{median(measured.fresh_bare[concurrency]) / best:.3f}); "
                    f"first scan wall/ideal {wall / best:.3f} (target <= 1.10), "
                    f"speedup {speedup:.1f} = {speedup / 16:.2f} C (target >= 0.8 C); "
                    f"repeated scan wall/ideal {again / best:.3f} (target <= 1.10)"
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
    print()
    print(
        "Fresh client (a one-shot job: a new client, nothing remembered, no connection open; "
        "timed from before the client is made to the last item):"
    )
    print_table(
        [
            "latency ms",
            "C",
            "wall s",
            "ideal s",
            "wall/ideal",
            "bare loop, fresh session, wall/ideal",
            "x first scan",
            "bare: x its warm session",
        ],
        fresh_rows,
    )
    hedges, pages = HEDGED["hedges"], HEDGED["pages"]
    checks.append(
        f"hedges sent by the SDK's scans: {hedges} for {pages} pages "
        f"({100 * hedges / max(pages, 1):.2f}%; target <= 1% with no straggler)"
    )
    print()
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
