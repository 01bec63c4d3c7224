"""Scan promises pinned over real loopback HTTP: servers that lie, throttle or change, and bounds.

Each test here fails when the rule it names is broken in the scan engine
(issue 13, section 2). The lying servers are the sandbox with
``FaultConfig(ignore_offset=True)``, or small ``aiohttp.web`` handlers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import anyio
import orjson
import pytest
from aiohttp import web

import betatel_async as bt
from betatel_async._scan_machine import PRECONNECT_MAX
from betatel_async._status import SimStatusReport, StatusAccumulator
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

from ._servers import web_server

pytestmark = pytest.mark.anyio

SIMS_PATH = "/api/v1/esim/sim-registries"


def _offset(query: Mapping[str, str]) -> int:
    return int(query.get("offset", "0"))


def _iccids(sandbox: Sandbox) -> list[str]:
    return [s["iccid"] for s in sandbox.data.sims_list()]


def _client(url: str, **kwargs: Any) -> bt.BetatelClient:
    return bt.BetatelClient(api_key="sandbox-key", user_id="sandbox-user", base_url=url, **kwargs)


def _without_time(report: SimStatusReport) -> dict[str, Any]:
    data = report.to_dict()
    del data["generated_at"]
    return data


# -- a server that ignores offset -----------------------------------------------------------

ScanMode = Literal["all", "status", "iter", "iter_unordered", "iter_restart", "pages"]


async def _scan(client: bt.BetatelClient, mode: ScanMode, got: list[str]) -> None:
    """Scan the SIMs with ``mode`` at 100 a page, appending each ICCID handed out to ``got``."""
    if mode == "all":
        got.extend(sim.iccid for sim in await client.sims.all(page_size=100))
    elif mode == "status":
        report = await client.sims.status(page_size=100)
        got.extend(["?"] * report.total)  # counted, not handed out: only how many matters
    elif mode == "pages":
        async with client.sims.pages(page_size=100) as pages:
            async for page in pages:
                got.extend(sim.iccid for sim in page.items)
    else:
        scan = client.sims.iter(
            page_size=100,
            ordered=mode != "iter_unordered",
            on_drift="restart" if mode == "iter_restart" else "raise",
        )
        async with scan:
            async for sim in scan:
                got.append(sim.iccid)


@pytest.mark.parametrize("mode", ["all", "status", "iter", "iter_unordered", "iter_restart", "pages"])
async def test_a_server_that_ignores_offset_fails_the_scan_naming_both_offsets(mode: ScanMode) -> None:
    """Every window is answered with the first page (envelope ``offset: 0``): a ScanError, not 300 items.

    Before it, nothing past the first page is handed out, and nothing twice.
    """
    async with serve(SandboxConfig(sims=300, seed=2, faults=FaultConfig(ignore_offset=True))) as sandbox:
        first_page = _iccids(sandbox)[:100]
        got: list[str] = []
        async with _client(sandbox.url, max_concurrency=4) as client:
            with pytest.raises(bt.ScanError) as info:
                await _scan(client, mode, got)
    assert not isinstance(info.value, bt.DriftError)  # total never changed: not drift
    numbers = set(re.findall(r"\d+", str(info.value)))
    assert numbers & {"100", "200"}, str(info.value)  # the offset asked
    assert "0" in numbers, str(info.value)  # the offset answered
    if mode != "status":
        assert len(got) == len(set(got))
        assert set(got) <= set(first_page)
    assert len(got) <= 100


# -- the API documents' own example ---------------------------------------------------------

# Verbatim from the API documents (betatel-get-sim-registries.txt): note
# "count": 20 beside one SIM. Nothing may check count against the items.
DOCUMENTED_SIMS_PAGE = b"""{
"total": 250,
"offset": 0,
"count": 20,
"sims": [
{
"iccid": "89148000004012345678",
"sim_status": "WAITING_FOR_ASSIGNMENT",
"group": {
"id": 1001,
"name": "Premium Group"
},
"inventory": {
"id": 12345,
"name": "US East Inventory"
},
"company": {
"id": 100,
"name": "Acme Corp"
},
"provisioned_date": 1640995200,
"terminated_date": 0,
"imsis": [
{
"sponsor_id": 200,
"imsi": 310260123456789
}
],
"mapped_imsi": 310260123456789
}
]
}"""


@pytest.fixture
def documented_page() -> dict[str, Any]:
    page: dict[str, Any] = orjson.loads(DOCUMENTED_SIMS_PAGE)
    return page


def _documented_server(example: dict[str, Any], total: int) -> Callable[[web.Request], Any]:
    """Answers each offset below ``total`` as the documents do: one SIM, ``count`` 20, offset honest."""

    async def handler(request: web.Request) -> web.Response:
        offset = _offset(request.query)
        page = dict(example, total=total, offset=offset)
        if offset >= total:
            page["sims"] = []
        elif offset > 0:  # offset 0 keeps the documented ICCID; the others are its neighbours
            sim = dict(example["sims"][0], iccid=f"8914800000401{offset:07d}")
            page["sims"] = [sim]
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    return handler


async def test_the_documented_envelope_with_count_20_beside_one_item_scans_fine(
    documented_page: dict[str, Any],
) -> None:
    """Total 1 (the document's example with its total set to its one item): every scan yields that SIM."""
    async with web_server(_documented_server(documented_page, total=1)) as url, _client(url) as client:
        assert [s.iccid for s in await client.sims.all()] == ["89148000004012345678"]
        assert [s.iccid async for s in client.sims.iter(on_drift="restart")] == ["89148000004012345678"]
        async with client.sims.pages() as pages:
            assert [(p.offset, p.count, len(p.items)) async for p in pages] == [(0, 20, 1)]
        assert (await client.sims.status()).total == 1


async def test_the_documented_page_of_one_sim_in_250_is_a_capped_page_not_an_error(
    documented_page: dict[str, Any],
) -> None:
    """The document's example as it stands (total 250): the server caps pages at one; 250 SIMs come."""
    async with web_server(_documented_server(documented_page, total=250)) as url, _client(url) as client:
        scan = client.sims.iter(on_drift="restart")
        got = [s.iccid async for s in scan]
    assert len(got) == len(set(got)) == 250
    assert got[0] == "89148000004012345678"
    assert scan.report.page_cap == 1


# -- a repeated key under on_drift="restart" ------------------------------------------------


def _repeating_server(total: int, repeat: tuple[int, int]) -> Callable[[web.Request], Any]:
    """Honest offsets and a constant total, but the SIM at ``repeat[0]`` has the ICCID of ``repeat[1]``."""
    iccids = [f"891480000040{i:08d}" for i in range(total)]
    iccids[repeat[0]] = iccids[repeat[1]]

    async def handler(request: web.Request) -> web.Response:
        offset = _offset(request.query)
        count = int(request.query.get("count", "100"))
        sims = [{"iccid": iccid, "sim_status": "IN_SERVICE"} for iccid in iccids[offset : offset + count]]
        page = {"total": total, "offset": offset, "count": len(sims), "sims": sims}
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    return handler


@pytest.mark.parametrize("ordered", [True, False])
async def test_restart_scan_ending_with_fewer_distinct_keys_than_total_is_a_scan_error(ordered: bool) -> None:
    """300 SIMs, the one at offset 150 sharing the ICCID at offset 3: dedupe must not hide it as 299."""
    async with web_server(_repeating_server(300, repeat=(150, 3))) as url, _client(url) as client:
        got: list[str] = []
        with pytest.raises(bt.ScanError):
            async with client.sims.iter(page_size=100, ordered=ordered, on_drift="restart") as scan:
                async for sim in scan:
                    got.append(sim.iccid)
    assert len(got) == len(set(got))  # nothing handed out twice before the error


# -- the adaptive limit (the client-wide one is pinned in test_scan.py) ----------------------


async def test_a_burst_of_429s_lowers_the_requests_in_flight_at_the_server() -> None:
    """The first wave after the first page is all throttled; the windows sent after it stay below 16.

    Strategy: no clock. The server answers 429 to the first attempt of each
    of the first 16 windows after the first page (the scan's whole first
    wave), then answers everything, each answer 30 ms after its request. At
    the arrival of each later window's first attempt it records how many
    requests it is handling. A scan that obeys the adaptive limit (halved by
    the burst, grown by one per round of successes) has fewer than 16 in
    flight whenever it sends one; a scan that ignores it refills all 16.
    """
    concurrency, page_size = 16, 10
    async with serve(SandboxConfig(sims=page_size * (1 + 2 * concurrency), seed=5, latency=0.03)) as sandbox:
        seen: set[int] = set()
        throttled = 0
        in_flight_after_burst: list[int] = []

        def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
            nonlocal throttled
            if not path.endswith("/sim-registries"):
                return
            offset = _offset(query)
            first_attempt = offset not in seen
            seen.add(offset)
            if offset == 0 or not first_attempt:
                return
            if throttled < concurrency:
                throttled += 1
                sandbox.config.faults.script.append("429")  # taken by this very request
            else:
                in_flight_after_burst.append(sandbox.stats.in_flight)

        sandbox.on_request = on_request
        async with _client(
            sandbox.url,
            max_concurrency=concurrency,
            retry=bt.RetryPolicy(backoff_base=0.001),  # retries go at once: the wave stays a wave
        ) as client:
            got = [s.iccid async for s in client.sims.iter(page_size=page_size, concurrency=concurrency)]
        assert got == _iccids(sandbox)
    assert throttled == concurrency
    assert len(in_flight_after_burst) == concurrency  # the windows past the first wave
    assert max(in_flight_after_burst) < concurrency


# -- status() starts over on drift -----------------------------------------------------------


def _mutate_after(sandbox: Sandbox, n_requests: int, action: Callable[[], object]) -> list[int]:
    """Run ``action`` as the ``n_requests``-th SIM listing request arrives; the offsets asked, in order."""
    offsets: list[int] = []

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        if path.endswith("/sim-registries"):
            offsets.append(_offset(query))
            if len(offsets) == n_requests:
                action()

    sandbox.on_request = on_request
    return offsets


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.delete_sims(7), id="delete-first-7"),
        pytest.param(lambda d: d.insert_sims(5, at="start"), id="insert-5-at-start"),
        pytest.param(lambda d: d.insert_sims(4, at=777), id="insert-4-at-777"),
    ],
)
async def test_status_counts_the_final_listing_after_drift_by_starting_over(
    change: Callable[[Any], object],
) -> None:
    async with serve(SandboxConfig(sims=2000, seed=3)) as sandbox:
        async with _client(sandbox.url, max_concurrency=8) as client:
            offsets = _mutate_after(sandbox, 6, lambda: change(sandbox.data))
            report = await client.sims.status(page_size=50, concurrency=3)
            sandbox.on_request = None
            final = await client.sims.all(page_size=1000)
    assert [s.iccid for s in final] == _iccids(sandbox)  # the listing did not change after status()
    expected = StatusAccumulator()
    for sim in final:
        expected.add(sim)
    assert report.total == len(final)
    assert _without_time(report) == _without_time(expected.result())
    assert offsets.count(0) == 2  # it started over, once


# -- bounds on the scan's own tasks --------------------------------------------------------------


async def _tasks_during_a_scan(client: bt.BetatelClient, sandbox: Sandbox) -> tuple[int, int]:
    """The most workers of the scan, and the most tasks alive beyond those before the scan,
    sampled from inside an ``iter()`` of every SIM.

    Sampled as the server handles each request, as each page is handed on
    (``on_progress``) and in the loop body.
    """
    before = len(asyncio.all_tasks())
    most_workers = most_tasks = 0

    def sample(*_: object) -> None:
        nonlocal most_workers, most_tasks
        alive = asyncio.all_tasks()
        most_tasks = max(most_tasks, len(alive) - before)
        most_workers = max(most_workers, sum(1 for t in alive if "ScanDriver._work" in repr(t.get_coro())))

    sandbox.on_request = sample
    scan = client.sims.iter(concurrency=client.max_concurrency, on_progress=sample)
    got = []
    async with scan:
        async for sim in scan:
            sample()
            got.append(sim.iccid)
    assert got == _iccids(sandbox)
    assert scan.report.requests == 1
    return most_workers, most_tasks


async def test_a_huge_concurrency_on_a_tiny_listing_starts_no_more_tasks_than_windows() -> None:
    """max_concurrency 200,000 on 3 SIMs: one window to fetch, so one worker, and a handful of tasks.

    Besides the window's worker, the tasks counted are the loopback server's
    own and, for a fresh listing, those opening the first wave's connections
    ahead (at most ``PRECONNECT_MAX`` connections, whatever the concurrency,
    a few tasks each between client and server); it counts no time.
    """
    async with serve(SandboxConfig(sims=3, seed=1)) as sandbox:
        async with _client(sandbox.url, max_concurrency=200_000) as client:
            workers, tasks = await _tasks_during_a_scan(client, sandbox)  # a fresh listing
            assert workers == 1
            assert tasks <= 1 + 8 + 3 * PRECONNECT_MAX
            workers, tasks = await _tasks_during_a_scan(client, sandbox)  # its total remembered
            assert workers == 1
            assert tasks <= 1 + 8


# -- a short-page server, offsets checked ------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
async def test_pages_of_a_capped_server_start_where_their_windows_were_asked(ordered: bool) -> None:
    """Remainder windows of short pages are answered at the offset asked: checking offsets passes them."""
    async with serve(SandboxConfig(sims=300, seed=6, page_cap=30)) as sandbox:
        asked: list[int] = []
        sandbox.on_request = lambda method, path, query: asked.append(_offset(query))
        async with _client(sandbox.url, max_concurrency=4) as client:
            with anyio.fail_after(10):  # a scan that stalls on a gap fails here instead of hanging
                async with client.sims.pages(page_size=100, ordered=ordered) as pages:
                    got = [(page.offset, [s.iccid for s in page.items]) async for page in pages]
        everything = _iccids(sandbox)
    got.sort()
    position = 0
    for offset, items in got:  # each page starts where the one before it ended
        assert offset == position
        position += len(items)
    assert {offset for offset, _ in got} <= set(asked)
    assert len(got) > 300 // 100  # the remainders were asked for
    assert [iccid for _, items in got for iccid in items] == everything


# -- a page whose items do not build ------------------------------------------------------------


@pytest.mark.parametrize("on_drift", ["raise", "restart"])
@pytest.mark.parametrize("pages", [1, 3])
async def test_a_page_whose_items_are_not_sims_fails_the_scan_with_malformed_response(
    documented_page: dict[str, Any], on_drift: str, pages: int
) -> None:
    """The last page's item is a bare number: MalformedResponseError, nothing of that page yielded
    (with one page, the scan's end must not pass for a complete scan)."""
    total = pages

    async def handler(request: web.Request) -> web.Response:
        offset = _offset(request.query)
        sim = dict(documented_page["sims"][0], iccid=f"8914800000401{offset:07d}")
        item: Any = 12345 if offset == total - 1 else sim
        page = dict(documented_page, total=total, offset=offset, sims=[item] if offset < total else [])
        return web.Response(body=orjson.dumps(page), content_type="application/json")

    async with web_server(handler) as url, _client(url) as client:
        got: list[str] = []
        with pytest.raises(bt.MalformedResponseError):
            async with client.sims.iter(page_size=1, on_drift=on_drift) as scan:  # type: ignore[call-overload]
                async for sim in scan:
                    got.append(sim.iccid)
        assert len(got) == total - 1
        assert scan.report.items == total - 1
