"""Concurrent scans against the sandbox: complete, ordered, bounded, drift-safe, cancellable."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=2000, seed=3)) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[bt.BetatelClient]:
    async with bt.BetatelClient(
        api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, max_concurrency=8
    ) as c:
        yield c


def iccids(sandbox: Sandbox) -> list[str]:
    return [s["iccid"] for s in sandbox.data.sims_list()]


def _offset(query: Mapping[str, str]) -> int:
    return int(query.get("offset", "0"))


async def test_iter_yields_every_sim_once_in_offset_order(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    scan = client.sims.iter(page_size=37, concurrency=8)
    got = [sim.iccid async for sim in scan]
    assert got == iccids(sandbox)
    report = scan.report
    assert report.finished
    assert report.items == 2000
    assert report.pages == -(-2000 // 37)
    assert report.totals_seen == [2000]
    assert report.duplicates_dropped == 0


async def test_all_returns_the_same_as_sequential_pages(client: bt.BetatelClient) -> None:
    sequential: list[str] = []
    offset = 0
    while True:
        page = await client.sims.list(offset=offset, count=100)
        sequential += [s.iccid for s in page.items]
        offset += len(page.items)
        if offset >= page.total:
            break
    assert [s.iccid for s in await client.sims.all(page_size=100)] == sequential


async def test_filtered_scan_matches_the_filtered_listing(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    first = sandbox.data.sims_list()[0]["company"]
    company = first["id"] if isinstance(first, dict) else first
    sims = await client.sims.all(company=company, page_size=50)
    assert sims
    assert all(s.company is not None and s.company.id == company for s in sims)
    assert len(sims) == (await client.sims.list(company=company, count=1)).total


async def test_inventories_and_packages_scan_completely(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    invs = await client.inventories.all(page_size=3)
    assert [i.id for i in invs] == [i["id"] for i in sandbox.data.inventories_list()]
    pkgs = await client.packages.all(page_size=33)
    assert [p.id for p in pkgs] == [p["id"] for p in sandbox.data.packages_list()]


async def test_empty_listing_scans_to_nothing(client: bt.BetatelClient) -> None:
    assert await client.packages.all(sim="89148000004012345678") == []


async def test_unordered_scan_yields_every_item_exactly_once(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.latency = 0.002
    got = [s.iccid async for s in client.sims.iter(page_size=50, ordered=False)]
    assert len(got) == 2000
    assert sorted(got) == sorted(iccids(sandbox))


@pytest.mark.parametrize("cap", [1, 7, 64])
async def test_a_server_that_caps_pages_leaves_no_gap(
    client: bt.BetatelClient, sandbox: Sandbox, cap: int
) -> None:
    sandbox.config.page_cap = cap
    scan = client.sims.iter(page_size=100)
    got = [s.iccid async for s in scan]
    assert got == iccids(sandbox)
    assert scan.report.page_cap == cap


async def test_pages_are_handed_on_in_offset_order(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    sandbox.config.page_cap = 30
    offsets = []
    async with client.sims.pages(page_size=100) as pages:
        async for page in pages:
            offsets.append((page.offset, len(page.items)))
    position = 0
    for offset, n in offsets:
        assert offset == position
        position += n
    assert position == 2000


async def test_scan_concurrency_is_capped_by_the_client(sandbox: Sandbox) -> None:
    """Two scans share the client's limit, counted at the server, with a connection pool larger than it.

    The caller's session allows 64 connections, so the pool cannot hide a
    limiter that lets more than ``max_concurrency`` requests out.
    """
    sandbox.config.latency = 0.02
    sandbox.stats.max_in_flight = 0

    async def sim_scan(client: bt.BetatelClient) -> None:
        async for _ in client.sims.iter(page_size=40, concurrency=8):
            pass

    connector = aiohttp.TCPConnector(limit=64, limit_per_host=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with bt.BetatelClient(
            api_key=sandbox.api_key,
            user_id=sandbox.user_id,
            base_url=sandbox.url,
            max_concurrency=8,
            session=session,
        ) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sim_scan, client)
                tg.start_soon(sim_scan, client)
    peak = sandbox.stats.max_in_flight
    assert peak <= 8  # two scans share the client's eight
    assert peak > 1  # and the scans did run concurrently


async def test_slow_consumer_keeps_lookahead_bounded(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    """No window starts more than 2 x concurrency pages past what the consumer took."""
    consumed = 0
    worst_ahead = 0
    page_size, concurrency = 20, 4

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        nonlocal worst_ahead
        if path.endswith("/sim-registries"):
            worst_ahead = max(worst_ahead, _offset(query) - consumed)

    sandbox.on_request = on_request
    async for _ in client.sims.iter(page_size=page_size, concurrency=concurrency):
        consumed += 1
        if consumed % 50 == 0:
            await anyio.sleep(0.001)
    assert consumed == 2000
    assert worst_ahead <= 2 * concurrency * page_size


async def test_streaming_memory_does_not_grow_with_total() -> None:
    async with serve(SandboxConfig(sims=60_000, seed=1)) as sb:
        async with bt.BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url) as client:
            gc.collect()
            tracemalloc.start()
            try:
                n = 0
                async for _ in client.sims.iter(page_size=500):
                    n += 1
                _, stream_peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                gc.collect()
                base, _ = tracemalloc.get_traced_memory()
                everything = await client.sims.all(page_size=500)
                _, all_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert n == len(everything) == 60_000
    # tracemalloc also sees the in-process sandbox's allocations in both runs.
    assert stream_peak < 0.15 * (all_peak - base) + base


# -- drift --------------------------------------------------------------------------


def _mutate_after(sandbox: Sandbox, n_requests: int, action) -> None:  # type: ignore[no-untyped-def]
    count = 0

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        nonlocal count
        if path.endswith("/sim-registries"):
            count += 1
            if count == n_requests:
                action()

    sandbox.on_request = on_request


@pytest.mark.parametrize("where", ["start", "end", 1000])
async def test_insert_mid_scan_raises_drift_by_default(
    client: bt.BetatelClient, sandbox: Sandbox, where: str | int
) -> None:
    _mutate_after(sandbox, 5, lambda: sandbox.data.insert_sims(3, at=where))
    got: list[str] = []
    with pytest.raises(bt.DriftError) as info:
        async for sim in client.sims.iter(page_size=50, concurrency=2):
            got.append(sim.iccid)
    err = info.value
    assert (err.total_before, err.total_after) == (2000, 2003)
    assert err.items_yielded == len(got)
    assert len(set(got)) == len(got)


async def test_delete_mid_scan_raises_drift_by_default(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    _mutate_after(sandbox, 4, lambda: sandbox.data.delete_sims(7))
    with pytest.raises(bt.DriftError) as info:
        async for _ in client.sims.iter(page_size=50, concurrency=2):
            pass
    assert (info.value.total_before, info.value.total_after) == (2000, 1993)


@pytest.mark.parametrize(
    "change",
    [lambda d: d.insert_sims(5, at="start"), lambda d: d.delete_sims(9), lambda d: d.insert_sims(4, at=777)],
)
async def test_all_returns_exactly_the_final_listing_after_drift(
    client: bt.BetatelClient, sandbox: Sandbox, change
) -> None:
    _mutate_after(sandbox, 6, lambda: change(sandbox.data))
    sims = await client.sims.all(page_size=50, concurrency=3)
    assert [s.iccid for s in sims] == iccids(sandbox)


async def test_restart_policy_yields_every_final_item_once(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    _mutate_after(sandbox, 6, lambda: sandbox.data.insert_sims(5, at="start"))
    scan = client.sims.iter(page_size=50, concurrency=3, on_drift="restart")
    got = [s.iccid async for s in scan]
    assert len(got) == len(set(got))
    assert set(got) == set(iccids(sandbox))
    assert scan.report.restarts == 1
    assert scan.report.totals_seen == [2000, 2005]
    assert scan.report.duplicates_dropped > 0


async def test_a_listing_that_never_settles_gives_up_with_drift(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    count = 0

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        nonlocal count
        count += 1
        if count % 3 == 0:
            sandbox.data.insert_sims(1, at="end")

    sandbox.on_request = on_request
    with pytest.raises(bt.DriftError) as info:
        await client.sims.all(page_size=100, max_restarts=2)
    assert info.value.restarts == 2


# -- errors, cancellation, cleanup --------------------------------------------------


def _tasks_besides_me() -> set[asyncio.Task[object]]:
    """Live tasks running SDK code (the in-process sandbox's own tasks are not counted)."""
    tasks = set()
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if ("betatel_async" in filename and "sandbox" not in filename) or "anyio" in filename:
            tasks.add(task)
    return tasks


async def test_error_in_one_window_is_one_sdk_error_and_the_client_survives(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    before = _tasks_besides_me()
    sandbox.config.faults = FaultConfig(script=["ok", "ok", "ok", "404"])
    with pytest.raises(bt.NotFoundError):
        async for _ in client.sims.iter(page_size=50):
            pass
    await anyio.lowlevel.checkpoint()
    assert _tasks_besides_me() <= before
    sandbox.config.faults = FaultConfig()
    assert len(await client.sims.all(page_size=500)) == 2000


async def test_break_out_of_async_for_cancels_the_scan(client: bt.BetatelClient, sandbox: Sandbox) -> None:
    sandbox.config.latency = 0.05
    before = _tasks_besides_me()
    async with client.sims.iter(page_size=10) as scan:
        async for _ in scan:
            break
    assert _tasks_besides_me() <= before
    assert not scan.report.finished
    assert len((await client.sims.list(count=3)).items) == 3


async def test_plain_break_without_async_with_is_cleaned_up_when_dropped(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.latency = 0.05
    before = _tasks_besides_me()
    async for _ in client.sims.iter(page_size=10):
        break
    # The iterator is unreachable now; the event loop's async-generator
    # finaliser closes it, which cancels the scan's requests.
    gc.collect()
    for _ in range(20):
        if _tasks_besides_me() <= before:
            break
        await anyio.sleep(0.01)
    assert _tasks_besides_me() <= before


async def test_abandoned_iterator_is_cleaned_up_by_aclosing(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.latency = 0.05
    before = _tasks_besides_me()
    async with aclosing(client.sims.iter(page_size=10)) as scan:
        await scan.__anext__()
    assert _tasks_besides_me() <= before


async def test_cancelling_the_consumer_cancels_requests_in_flight(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.latency = 5.0  # requests would hang for seconds if not cancelled
    before = _tasks_besides_me()
    with anyio.move_on_after(0.2) as scope:
        async for _ in client.sims.iter(page_size=10):
            pass
    assert scope.cancelled_caught
    assert _tasks_besides_me() <= before
    sandbox.config.latency = 0.0
    assert len((await client.sims.list(count=5)).items) == 5


async def test_progress_callback_sees_the_report_grow(client: bt.BetatelClient) -> None:
    seen: list[tuple[int, int | None]] = []
    await client.sims.all(page_size=250, on_progress=lambda r: seen.append((r.items, r.total)))
    assert [items for items, _ in seen] == [250 * i for i in range(1, 9)] + [2000]
    assert all(total == 2000 for _, total in seen)


async def test_retries_in_a_scan_are_counted_in_the_report(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    sandbox.config.faults = FaultConfig(script=["ok", "503", "ok", "500", "502"])
    scan = client.sims.iter(page_size=200, concurrency=1)
    got = [s.iccid async for s in scan]
    assert got == iccids(sandbox)
    assert scan.report.retries == 3


@pytest.mark.parametrize("start", [0, 1, 999, 1999, 2000, 5000])
async def test_a_scan_may_start_at_an_offset(client: bt.BetatelClient, sandbox: Sandbox, start: int) -> None:
    sandbox.config.page_cap = 33
    scan = client.sims.iter(page_size=70, offset=start)
    assert [s.iccid async for s in scan] == iccids(sandbox)[start:]
    assert scan.report.total == 2000


async def test_a_negative_start_offset_is_refused(client: bt.BetatelClient) -> None:
    with pytest.raises(bt.InvalidArgumentError, match="^offset:"):
        client.sims.iter(offset=-1)


def _stray_cancel(
    fetch: Callable[[Any, Any, bool], Awaitable[bytes]], at: int
) -> Callable[[Any, Any, bool], Awaitable[bytes]]:
    """``fetch``, except that a window from offset ``at`` on ends in a ``CancelledError`` nobody asked for."""

    async def stray(window: Any, on_retry: Any, hedge: bool) -> bytes:
        if window.offset >= at:
            raise asyncio.CancelledError
        return await fetch(window, on_retry, hedge)

    return stray


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_stray_cancellation_in_a_worker_ends_the_scan_with_an_error_not_a_hang(
    client: bt.BetatelClient, ordered: bool
) -> None:
    scan = client.sims.pages(page_size=50, concurrency=4, ordered=ordered)
    driver = scan._driver
    driver._fetch = _stray_cancel(driver._fetch, at=500)
    offsets: list[int] = []
    with anyio.fail_after(5):  # a hang fails here instead of stalling the suite
        with pytest.raises(bt.ScanError, match="cancelled, but not by the scan"):
            async with scan:
                async for page in scan:
                    offsets.append(page.offset)
    assert all(offset < 500 for offset in offsets)
    if ordered:  # the pages that came before the failure, in order
        assert offsets == list(range(0, 50 * len(offsets), 50))
    # The client is still usable, and nothing of the scan is left running.
    assert (await client.sims.list(count=1)).total == 2000
    assert [t for t in asyncio.all_tasks() if "ScanDriver" in repr(t)] == []


def _record_answers_before_each_request(sandbox: Sandbox) -> list[tuple[int, int]]:
    """(offset, answers the sandbox had sent when the request came) for each SIM listing request."""
    seen: list[tuple[int, int]] = []

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        if path.endswith("/sim-registries"):
            seen.append((_offset(query), sandbox.stats.by_status[200]))

    sandbox.on_request = on_request
    return seen


async def test_a_listing_scanned_before_starts_with_a_full_wave(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    """The first scan waits for the first page's total; the next one plans on the total remembered."""
    sandbox.config.latency = 0.2  # far more than sending eight requests takes
    first = _record_answers_before_each_request(sandbox)
    scan = client.sims.iter(page_size=100, concurrency=8)
    assert [sim.iccid async for sim in scan] == iccids(sandbox)
    answered = first[0][1]
    assert first[0][0] == 0
    assert first[1][1] == answered + 1  # the second request waited for the first answer

    second = _record_answers_before_each_request(sandbox)
    rescan = client.sims.iter(page_size=100, concurrency=8)
    assert [sim.iccid async for sim in rescan] == iccids(sandbox)
    answered = second[0][1]
    wave = second[:8]
    assert sorted(offset for offset, _ in wave) == list(range(0, 800, 100))
    assert {answers for _, answers in wave} == {answered}  # all sent before any answer came
    assert len(second) == len(first) == 20  # no request more than needed
    assert rescan.report.pages_discarded == 0


async def test_a_listing_that_shrank_since_its_last_scan_yields_exactly_what_is_left(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    assert len(await client.sims.all(page_size=100)) == 2000
    sandbox.data.delete_sims(1550)  # 450 left: the remembered total is far too high
    scan = client.sims.iter(page_size=100, concurrency=8)
    assert [sim.iccid async for sim in scan] == iccids(sandbox)
    report = scan.report
    assert report.items == 450
    assert report.totals_seen == [450]
    # One wave of eight was guessed (0 to 700): the pages at 500, 600 and 700 were not needed.
    assert report.pages_discarded == 3
    assert report.pages <= 5 + 3


@pytest.mark.parametrize("fault", ["500", "reset", "slow"])
async def test_requests_past_a_shrunk_listing_end_may_fail_without_failing_the_scan(
    sandbox: Sandbox, fault: str
) -> None:
    async with bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        max_concurrency=8,
        retry=bt.RetryPolicy.none(),
        timeout=1,
    ) as client:
        await client.sims.list(count=1)  # remembers 2000
        sandbox.data.delete_sims(1550)  # 450 left

        def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
            if path.endswith("/sim-registries") and _offset(query) >= 450:
                sandbox.config.faults.script.append(fault)  # only requests past the new end fail

        sandbox.on_request = on_request
        scan = client.sims.iter(page_size=100, concurrency=8)
        async with scan:
            assert [sim.iccid async for sim in scan] == iccids(sandbox)
        assert scan.report.pages_discarded == 3
        assert (await client.sims.list(count=1)).total == 450  # the client is still usable


async def test_a_listing_that_grew_since_its_last_scan_yields_every_item(
    client: bt.BetatelClient, sandbox: Sandbox
) -> None:
    await client.sims.list(count=1)  # a page remembers the listing's total too
    sandbox.data.insert_sims(333, at="end")
    scan = client.sims.iter(page_size=100, concurrency=8, ordered=False)
    assert sorted([sim.iccid async for sim in scan]) == iccids(sandbox)
    assert scan.report.pages_discarded == 0
    assert scan.report.totals_seen == [2333]


async def test_remember_totals_false_starts_every_scan_with_one_request(sandbox: Sandbox) -> None:
    sandbox.config.latency = 0.05
    async with bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        max_concurrency=8,
        remember_totals=False,
    ) as client:
        await client.sims.all(page_size=100)
        seen = _record_answers_before_each_request(sandbox)
        await client.sims.all(page_size=100)
    assert seen[1][1] == seen[0][1] + 1


@pytest.mark.parametrize("on_drift", ["raise", "restart"])
async def test_a_change_after_every_needed_page_was_answered_is_not_drift(
    client: bt.BetatelClient, sandbox: Sandbox, on_drift: bt.DriftPolicy
) -> None:
    """Guesses past the end are dropped unread: the listing as it was when its pages were answered."""
    await client.sims.list(count=1)  # remembers 2000
    sandbox.data.delete_sims(1800)  # 200 left
    before = iccids(sandbox)
    grown: list[str] = []
    arrived: set[int] = set()

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        # Both pages the scan needs are answered from the listing of 200; a
        # guess past the end that comes after them, from the listing grown to 700.
        if path.endswith("/sim-registries"):
            arrived.add(_offset(query))
            if _offset(query) >= 200 and {0, 100} <= arrived and not grown:
                grown.extend(sandbox.data.insert_sims(500, at="end"))

    sandbox.on_request = on_request
    scan = client.sims.iter(page_size=100, concurrency=8, on_drift=on_drift)
    async with scan:
        assert [sim.iccid async for sim in scan] == before
    assert scan.report.totals_seen == [200]
    assert scan.report.restarts == 0
    assert scan.report.pages_discarded == 6


async def test_guesses_past_a_shrunk_end_are_cancelled_not_waited_for(sandbox: Sandbox) -> None:
    """Slow requests past the end hold no request slot: the capped first page's remainders still go out."""
    async with bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        max_concurrency=8,
        retry=bt.RetryPolicy(max_attempts=2, backoff_base=0.01),
    ) as client:
        await client.sims.list(count=1)  # remembers 2000
        sandbox.data.delete_sims(1940)  # 60 left
        sandbox.config.page_cap = 20  # the rest of the first page is fetched in two remainders
        sandbox.config.faults.slow_seconds = 30.0
        throttled: list[int] = []

        def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
            if not path.endswith("/sim-registries"):
                return
            if _offset(query) == 0 and not throttled:
                throttled.append(0)
                sandbox.config.faults.script.append("429")  # halves the client's limit: 8 -> 4
            else:
                sandbox.config.faults.script.append("slow" if _offset(query) >= 100 else "ok")

        sandbox.on_request = on_request
        scan = client.sims.iter(page_size=100, concurrency=8)
        with anyio.fail_after(10):  # a scan waiting for the 30 s guesses fails here
            async with scan:
                assert [sim.iccid async for sim in scan] == iccids(sandbox)
        assert scan.report.pages_discarded == 7
        assert scan.report.page_cap == 20
