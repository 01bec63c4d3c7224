"""Closing a client with calls and scans in flight, and a client used from a second event loop.

``anyio.fail_after`` in these tests is a guard against a hang, never the
subject of an assertion: what is asserted is how each call ended.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio

SLOW = 30.0  # the sandbox's time to answer: far past any guard below


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=500, seed=11)) as sb:
        yield sb


def make_client(sandbox: Sandbox, **options: object) -> bt.BetatelClient:
    """Without retries unless asked: a call cut by the session closing under it fails with
    ``APIConnectionError``; only one that ``aclose()`` cancelled ends with ``ClientClosedError``."""
    options.setdefault("retry", bt.RetryPolicy.none())
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        **options,  # type: ignore[arg-type]
    )


def arrivals(sandbox: Sandbox, n: int) -> anyio.Event:
    """Set once ``n`` more requests have reached the sandbox."""
    event = anyio.Event()
    seen = 0

    def on_request(method: str, path: str, query: dict[str, str]) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            event.set()

    sandbox.on_request = on_request
    return event


def sdk_tasks() -> list[asyncio.Task[object]]:
    """Tasks still running code of the SDK (not of the sandbox, nor of the test)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "betatel_async" in filename and "sandbox" not in filename and not task.done():
            found.append(task)
    return found


async def test_closing_ends_concurrent_calls_at_once_with_client_closed_error(sandbox: Sandbox) -> None:
    sandbox.config.latency = SLOW
    outcomes: list[BaseException | object] = []
    client = make_client(sandbox, max_concurrency=8)

    async def call() -> None:
        try:
            outcomes.append(await client.sims.list(count=1))
        except bt.BetatelError as exc:
            outcomes.append(exc)

    arrived = arrivals(sandbox, 8)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(call)
            await arrived.wait()
            await client.aclose()
    assert len(outcomes) == 8
    assert all(isinstance(o, bt.ClientClosedError) for o in outcomes), outcomes
    assert "closed while GET" in str(outcomes[0])
    assert client.state is bt.ClientState.CLOSED
    assert not sdk_tasks()
    gc.collect()  # an unclosed session or transport would warn now (warnings are errors)


async def test_closing_ends_a_running_scan(sandbox: Sandbox) -> None:
    client = make_client(sandbox)
    got: list[bt.Sim] = []
    slowed = anyio.Event()

    async def consume() -> None:
        with pytest.raises(bt.ClientClosedError):
            async with client.sims.iter(page_size=50, concurrency=4) as sims:
                async for sim in sims:
                    got.append(sim)
                    if len(got) == 50:  # the pages not yet asked for now take SLOW to come
                        sandbox.config.latency = SLOW
                        slowed.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await slowed.wait()
            await arrivals(sandbox, 1).wait()
            await client.aclose()
    assert len(got) < 500
    assert not sdk_tasks()
    gc.collect()


async def test_closing_ends_a_call_waiting_to_retry(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="betatel_async")  # retries log at INFO
    sandbox.config.faults = FaultConfig(script=["429"], retry_after=25)
    client = make_client(sandbox, retry=bt.RetryPolicy())
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await client.sims.list(count=1)
        except bt.BetatelError as exc:
            outcome.append(exc)

    waiting = anyio.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("retrying"):  # logged just before the wait
                waiting.set()

    handler = OnRetry()
    logging.getLogger("betatel_async").addHandler(handler)
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await waiting.wait()
                await client.aclose()
    finally:
        logging.getLogger("betatel_async").removeHandler(handler)
    assert len(outcome) == 1
    assert isinstance(outcome[0], bt.ClientClosedError)
    assert sandbox.stats.total == 1


async def test_closing_ends_calls_made_through_a_with_options_view(sandbox: Sandbox) -> None:
    sandbox.config.latency = SLOW
    client = make_client(sandbox)
    view = client.with_options(timeout=60)
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await view.sims.list(count=1)
        except bt.BetatelError as exc:
            outcome.append(exc)

    arrived = arrivals(sandbox, 1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await arrived.wait()
            await view.aclose()  # a view closes nothing
            assert sandbox.stats.in_flight == 1
            await client.aclose()
    assert len(outcome) == 1
    assert isinstance(outcome[0], bt.ClientClosedError)


async def test_the_callers_cancellation_is_not_turned_into_client_closed_error(sandbox: Sandbox) -> None:
    sandbox.config.latency = SLOW
    async with make_client(sandbox) as client:
        with anyio.fail_after(10):
            with anyio.move_on_after(0.2) as scope:
                await client.sims.list(count=1)
            assert scope.cancelled_caught  # the cancellation reached the caller's scope

            arrived = arrivals(sandbox, 1)
            task = asyncio.get_running_loop().create_task(client.sims.list(count=1))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        sandbox.config.latency = 0
        assert len((await client.sims.list(count=2)).items) == 2  # the client is still usable
        assert client.state is bt.ClientState.OPEN


async def test_a_call_after_close_fails_at_once(sandbox: Sandbox) -> None:
    client = make_client(sandbox)
    await client.sims.list(count=1)
    await client.aclose()
    with pytest.raises(bt.ClientClosedError, match="closed"):
        await client.with_options(timeout=5).sims.list(count=1)


def test_a_client_used_in_a_second_event_loop_says_to_create_it_there() -> None:
    """``asyncio.run()`` twice with one client: the second loop cannot use the first loop's session."""

    async def first() -> bt.BetatelClient:
        async with serve(SandboxConfig(sims=10)) as sandbox:
            client = make_client(sandbox)
            await client.sims.list(count=1)  # opens the session in this loop; never closed
        return client

    client = asyncio.run(first())

    async def second() -> None:
        with pytest.raises(
            bt.ClientClosedError, match="create the client inside the event loop that uses it"
        ):
            await client.sims.list(count=1)
        async with serve(SandboxConfig(sims=10)) as sandbox, make_client(sandbox) as fresh:
            assert len((await fresh.sims.list(count=1)).items) == 1
        await client.aclose()  # lets the old session go (it cannot be closed from here), no error

    # The first loop's session was never closed: aiohttp warns when it is
    # collected, rightly, but that is not what this test is about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(second())
        gc.collect()
    assert client.state is bt.ClientState.CLOSED


def test_a_client_on_a_callers_session_used_in_a_second_event_loop_says_so_too() -> None:
    async def first() -> bt.BetatelClient:
        async with serve(SandboxConfig(sims=10)) as sandbox, aiohttp.ClientSession() as session:
            client = make_client(sandbox, session=session)
            await client.sims.list(count=1)
        return client

    client = asyncio.run(first())

    async def second() -> None:
        with pytest.raises(
            bt.ClientClosedError, match="create the client inside the event loop that uses it"
        ):
            await client.sims.list(count=1)
        await client.aclose()

    asyncio.run(second())
