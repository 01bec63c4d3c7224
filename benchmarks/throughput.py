"""A full SIM scan over loopback: the SDK's typed ``iter()`` against a bare aiohttp + json.loads loop.

The sandbox runs in its own process (``python -m betatel_async.sandbox``), so
its CPU is not ours; it serves pages from per-row JSON encoded once, so it
answers a page with a slice and a ``bytes.join``. Both clients scan the same
listing with the same page size and the same number of requests in flight,
alternating in rounds within one run:

- bare: ``aiohttp.ClientSession`` + ``json.loads``, the first page for
  ``total``, then ``concurrency`` workers taking the next offset; each item
  is touched (counted) as a dict. No types, no checks, no order, no retries.
- ``client.sims.iter()``: typed ``Sim`` objects, in offset order, bounded
  look-ahead, retries, drift checks: the SDK as users call it.
- ``client.sims.pages()``: the same scan, a page at a time (no per-item await),
  to show what the per-item iterator costs.

The client and server CPU columns say who was busy: if the server's CPU is
close to the wall time, the server is the bottleneck and the ratio says little.

Usage::

    python benchmarks/throughput.py            # 100,000 SIMs, pages of 100, 8 in flight, 5 rounds
    python benchmarks/throughput.py --quick    # a smoke run (CI): seconds, not timing
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
from _common import SandboxProcess, environment, median, print_table, ratio_medians

from betatel_async import BetatelClient

SIMS_PATH = "/api/v1/esim/sim-registries"
BARE = "bare aiohttp + json.loads, dicts"
ITER = "betatel_async client.sims.iter(), typed"
PAGES = "betatel_async client.sims.pages(), typed"


async def bare_scan(session: aiohttp.ClientSession, url: str, page_size: int, concurrency: int) -> int:
    """The hand-written loop: dicts, no checks, pages handled in completion order."""

    async def get(offset: int) -> dict[str, object]:
        async with session.get(url, params={"offset": offset, "count": page_size}) as response:
            response.raise_for_status()
            return json.loads(await response.read())  # type: ignore[no-any-return]

    first = await get(0)
    count = 0
    for _ in first["sims"]:  # type: ignore[attr-defined]
        count += 1
    total = first["total"]
    assert isinstance(total, int)
    offsets = iter(range(page_size, total, page_size))

    async def worker() -> None:
        nonlocal count
        for offset in offsets:  # shared: each worker takes the next window
            page = await get(offset)
            for _ in page["sims"]:  # type: ignore[attr-defined]
                count += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count


async def iter_scan(client: BetatelClient, page_size: int, concurrency: int) -> int:
    count = 0
    async with client.sims.iter(page_size=page_size, concurrency=concurrency) as sims:
        async for _ in sims:
            count += 1
    return count


async def pages_scan(client: BetatelClient, page_size: int, concurrency: int) -> int:
    count = 0
    async with client.sims.pages(page_size=page_size, concurrency=concurrency) as pages:
        async for page in pages:
            for _ in page.items:
                count += 1
    return count


async def run(args: argparse.Namespace, sandbox: SandboxProcess) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    headers = {"x-api-key": sandbox.api_key, "x-user-id": sandbox.user_id}
    async with (
        aiohttp.ClientSession(connector=connector, headers=headers) as session,
        BetatelClient(
            api_key=sandbox.api_key,
            user_id=sandbox.user_id,
            base_url=sandbox.url,
            max_concurrency=args.concurrency,
        ) as client,
    ):
        size, conc = args.page_size, args.concurrency
        contenders: dict[str, Callable[[], Awaitable[int]]] = {
            BARE: lambda: bare_scan(session, sandbox.url + SIMS_PATH, size, conc),
            ITER: lambda: iter_scan(client, size, conc),
            PAGES: lambda: pages_scan(client, size, conc),
        }
        for scan in contenders.values():  # warm up: connections open, code paths hot
            if await scan() != args.sims:
                raise SystemExit("a scan did not see every SIM")
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        client_cpu: dict[str, list[float]] = {name: [] for name in contenders}
        server_cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, scan in contenders.items():
                gc.collect()
                cpu0, server0, t0 = time.process_time(), sandbox.cpu_seconds(), time.perf_counter()
                seen = await scan()
                wall[name].append(time.perf_counter() - t0)
                client_cpu[name].append(time.process_time() - cpu0)
                server_cpu[name].append(sandbox.cpu_seconds() - server0)
                if seen != args.sims:
                    raise SystemExit(f"{name} saw {seen} SIMs, not {args.sims}")

    ratios = ratio_medians(wall, BARE)
    print(environment("aiohttp", "orjson"))
    print(
        f"{args.sims} SIMs ({args.shape} shape), pages of {args.page_size}, {args.concurrency} in flight, "
        f"{args.rounds} alternating rounds, gc thresholds {gc.get_threshold()}; medians; "
        "x bare = wall / bare's wall (median of per-round ratios)"
    )
    print()
    rows = [
        [
            name,
            f"{median(wall[name]):.3f}",
            f"{args.sims / median(wall[name]):,.0f}",
            f"{ratios[name]:.2f}",
            f"{median(client_cpu[name]):.3f}",
            f"{median(server_cpu[name]):.3f}",
        ]
        for name in wall
    ]
    print_table(["client", "wall s", "records/s", "x bare", "client CPU s", "server CPU s"], rows)
    print()
    print(f"iter() vs bare: {ratios[ITER]:.2f}x the wall time (target <= 1.2, ideal 1.0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sims", type=int, default=100_000, help="SIMs in the listing (default %(default)s)")
    parser.add_argument("--page-size", type=int, default=100, help="items per request (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default %(default)s)")
    parser.add_argument("--shape", choices=("objects", "ids", "mixed"), default="objects")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        metavar="N",
        help="gc.set_threshold(N, 10, 10) in this (the client) process first, as a bulk export may "
        "(default: Python's own, 700)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 SIMs, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.sims, args.rounds = 2_000, 1
    if args.gc_threshold is not None:
        gc.set_threshold(args.gc_threshold, 10, 10)
    with SandboxProcess("--sims", str(args.sims), "--sim-shape", args.shape) as sandbox:
        asyncio.run(run(args, sandbox))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
