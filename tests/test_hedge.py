"""Hedged page requests over loopback HTTP: a late page gets a second request, and the first answer wins."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import anyio
import pytest

import betatel_async as bt
from betatel_async._scan_machine import NoHedgeBudget
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio

STALL = 20.0
"""Seconds a stalled answer waits: far past the test, so only a hedge can finish the scan."""


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(
        SandboxConfig(sims=200, seed=5, latency=0.005, faults=FaultConfig(slow_seconds=STALL))
    ) as sb:
        yield sb


def make_client(sandbox: Sandbox, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        **{"max_concurrency": 4, **options},  # type: ignore[arg-type]
    )


def _stall(sandbox: Sandbox, offset: int, seconds: float, *, hedge_fault: str = "ok") -> list[int]:
    """Make the first request for ``offset`` answer ``seconds`` late, and a second one fault
    with ``hedge_fault``; returns the offset of each SIM listing request, as they arrive."""
    seen: list[int] = []

    def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
        if not path.endswith("/sim-registries"):
            return
        asked = int(query.get("offset", "0"))
        # Called just before the request's fault is drawn: the script's entry is its own.
        if asked == offset:
            kind = "slow" if asked not in seen else hedge_fault
            sandbox.config.faults = FaultConfig(script=[kind], slow_seconds=seconds)
        seen.append(asked)

    sandbox.on_request = on_request
    return seen


def _iccids(sandbox: Sandbox) -> list[str]:
    return [s["iccid"] for s in sandbox.data.sims_list()]


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_stalled_page_is_hedged_and_the_hedge_answer_is_the_page_handed_on(
    sandbox: Sandbox, ordered: bool
) -> None:
    async with make_client(sandbox) as client:
        await client.sims.all(page_size=10)  # the listing's latencies and total are learned
        # A page of the next scan stalls: only its hedge can answer in time.
        offsets = _stall(sandbox, 30, STALL)
        with anyio.fail_after(STALL / 2):  # a hang fails here instead of stalling the suite
            async with client.sims.iter(page_size=10, ordered=ordered) as scan:
                got = [sim.iccid async for sim in scan]
        # The same client, on the connections the scan left in its pool.
        after = [sim.iccid for sim in (await client.sims.list(count=10)).items]
    expected = _iccids(sandbox)
    assert got == expected if ordered else sorted(got) == sorted(expected)
    report = scan.report
    assert report.hedges >= 1
    assert report.hedges_won >= 1
    assert report.pages == 20  # one answer digested per window, the loser's never
    assert offsets.count(30) == 2  # the stalled request and its hedge
    assert after == expected[:10]  # the cancelled loser left no connection half-read


@pytest.mark.parametrize("where", ["client", "with_options", "scan"])
async def test_hedge_false_sends_each_window_once(sandbox: Sandbox, where: str) -> None:
    options = {"hedge": False} if where == "client" else {}
    async with make_client(sandbox, **options) as client:
        await client.sims.all(page_size=10)
        # A page answers late, but not so late that the scan cannot wait for it.
        offsets = _stall(sandbox, 30, 0.5)
        view = client.with_options(hedge=False) if where == "with_options" else client
        scan_options = {"hedge": False} if where == "scan" else {}
        async with view.sims.iter(page_size=10, **scan_options) as scan:  # type: ignore[call-overload]
            got = [sim.iccid async for sim in scan]
    assert got == _iccids(sandbox)
    assert scan.report.hedges == 0
    assert sorted(offsets) == list(range(0, 200, 10))


async def test_the_same_late_page_is_hedged_by_default(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The scenario of the previous test with the defaults: the late page is hedged, and the scan's log line says so."""
    caplog.set_level(logging.INFO, logger="betatel_async")
    async with make_client(sandbox) as client:
        await client.sims.all(page_size=10)
        offsets = _stall(sandbox, 30, 0.5)
        async with client.sims.iter(page_size=10) as scan:
            got = [sim.iccid async for sim in scan]
    assert got == _iccids(sandbox)
    assert scan.report.hedges >= 1
    assert len(offsets) == 20 + scan.report.hedges
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scan GET")]
    assert len(lines) == 2  # the first scan's and this one's
    assert f"{scan.report.hedges} hedges ({scan.report.hedges_won} won)" in lines[-1]
    assert "200 items, 20 pages" in lines[-1]


async def test_no_hedge_when_the_retry_budget_cannot_pay(sandbox: Sandbox) -> None:
    async with make_client(sandbox, retry_budget=bt.RetryBudget(capacity=4)) as client:
        await client.sims.all(page_size=10)
        offsets = _stall(sandbox, 30, 0.5)
        async with client.sims.iter(page_size=10) as scan:
            got = [sim.iccid async for sim in scan]
    assert got == _iccids(sandbox)
    assert scan.report.hedges == 0
    assert sorted(offsets) == list(range(0, 200, 10))


async def test_a_failed_hedge_does_not_fail_the_scan(sandbox: Sandbox) -> None:
    async with make_client(sandbox, retry=bt.RetryPolicy.none()) as client:
        await client.sims.all(page_size=10)
        # The page is late, its hedge fails (never retried): the late answer counts.
        offsets = _stall(sandbox, 30, 0.5, hedge_fault="500")
        async with client.sims.iter(page_size=10) as scan:
            got = [sim.iccid async for sim in scan]
    assert got == _iccids(sandbox)
    assert offsets.count(30) == 2
    assert scan.report.hedges == 1
    assert scan.report.hedges_won == 0


def test_hedge_must_be_a_bool() -> None:
    with pytest.raises(bt.InvalidArgumentTypeError, match="hedge"):
        bt.BetatelClient(api_key="k" * 20, user_id="u", hedge="yes")  # type: ignore[arg-type]


async def test_a_hedge_is_not_sent_while_every_slot_of_the_client_is_taken(sandbox: Sandbox) -> None:
    """A hedge that would wait for a slot of max_concurrency would come too late: it is refused
    unsent (NoHedgeBudget), its budget untouched; with a slot free it goes out."""
    async with make_client(sandbox, max_concurrency=2) as client:
        transport = client._transport
        path = "/api/v1/esim/sim-registries"
        before = sandbox.stats.total
        available = transport.budget.available
        async with transport.limiter, transport.limiter:  # every slot taken
            # Refused at once: without the check it would wait for a slot (fail_after: a hang fails here).
            with anyio.fail_after(5), pytest.raises(NoHedgeBudget):
                await transport.request("GET", path, params={"offset": 0, "count": 1}, hedge=True)
            assert sandbox.stats.total == before
            assert transport.budget.available == available
        response = await transport.request("GET", path, params={"offset": 0, "count": 1}, hedge=True)
        assert response.status == 200
        assert sandbox.stats.total == before + 1
