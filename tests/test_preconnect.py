"""Opening connections ahead (``Transport.preconnect``), counted where they land: at the server.

The sandbox sits behind a TCP proxy that counts the connections it accepts and
the requests that pass, so a test sees how many connections the client opened
and whether the next requests reused them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest

import betatel_async as bt
from betatel_async.sandbox import Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio

HOLD_LIMIT = 10.0  # seconds a held answer waits at most (a failure bound, not a timing assertion)


class CountingProxy:
    """A TCP proxy on loopback in front of ``target``: counts the connections it accepts.

    ``hold_first_answer_until(n)``: the bytes of the first connection's answer
    are held back until ``n`` connections were accepted (or ``HOLD_LIMIT``
    passed: ``held_too_long`` is then set), so that a test sees what the
    client did while its first request was in flight.
    """

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self._target = (host, int(port))
        self.accepted = 0
        self._accepted_changed = asyncio.Event()
        self._hold_until: int | None = None
        self.held_too_long = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    def hold_first_answer_until(self, count: int) -> None:
        self._hold_until = count

    async def wait_accepted(self, count: int) -> None:
        """Until the proxy accepted ``count`` connections (the client's connect returns before the accept runs)."""
        with anyio.fail_after(HOLD_LIMIT):
            while self.accepted < count:
                self._accepted_changed.clear()
                await self._accepted_changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        number = self.accepted
        self._accepted_changed.set()
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, reader, upstream_writer, False)
                tg.start_soon(self._pipe, upstream_reader, writer, number == 1)
        except* (ConnectionError, OSError):
            pass  # one side went away: the test is over for this connection
        finally:
            upstream_writer.close()
            writer.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: bool) -> None:
        while data := await reader.read(65536):
            if hold and self._hold_until is not None:
                hold = False
                try:
                    await self.wait_accepted(self._hold_until)
                except TimeoutError:
                    self.held_too_long = True
            writer.write(data)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=300, seed=5)) as sb:
        yield sb


@pytest.fixture
async def proxy(sandbox: Sandbox) -> AsyncIterator[CountingProxy]:
    async with CountingProxy(sandbox.url) as p:
        yield p


def client_of(sandbox: Sandbox, url: str, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=url,
        **options,  # type: ignore[arg-type]
    )


async def requests_at_once(client: bt.BetatelClient, sandbox: Sandbox, count: int) -> None:
    """``count`` requests in flight together (each needs a connection of its own)."""
    arrived = 0
    everyone = asyncio.Event()

    def on_request(method: str, path: str, query: object) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            everyone.set()

    sandbox.on_request = on_request
    sandbox.config.latency = 0.05  # long enough for the others to arrive: nobody is answered before
    try:
        await asyncio.gather(*(client.sims.list(count=1) for _ in range(count)))
    finally:
        sandbox.on_request = None
        sandbox.config.latency = 0.0
    assert everyone.is_set()


async def test_preconnect_opens_the_missing_connections_and_the_next_requests_reuse_them(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    async with client_of(sandbox, proxy.url, max_concurrency=8) as client:
        await client._transport.preconnect(5)
        await proxy.wait_accepted(5)
        assert sandbox.stats.total == 0  # nothing was sent on them
        await requests_at_once(client, sandbox, 5)
        assert sandbox.stats.total == 5
        await client._transport.preconnect(5)  # the pool holds them: none more
        await requests_at_once(client, sandbox, 5)
        await anyio.wait_all_tasks_blocked()
        assert proxy.accepted == 5


async def test_preconnect_counts_the_connections_idle_and_in_use(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    async with client_of(sandbox, proxy.url, max_concurrency=8) as client:
        await requests_at_once(client, sandbox, 2)  # two idle connections
        arrived = asyncio.Event()
        sandbox.on_request = lambda method, path, query: arrived.set()
        sandbox.config.latency = 0.2
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.sims.list)  # takes one of them: one idle, one in use
            await arrived.wait()
            sandbox.on_request = None
            await client._transport.preconnect(6)  # 2 there: opens 4
        sandbox.config.latency = 0.0
        await proxy.wait_accepted(6)
        await requests_at_once(client, sandbox, 6)
        await anyio.wait_all_tasks_blocked()
        assert proxy.accepted == 6


async def test_preconnect_opens_none_when_the_pool_holds_enough(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    async with client_of(sandbox, proxy.url, max_concurrency=8) as client:
        await requests_at_once(client, sandbox, 4)
        await client._transport.preconnect(3)
        await client._transport.preconnect(4)
        await anyio.wait_all_tasks_blocked()
        assert proxy.accepted == 4


async def test_preconnect_stays_within_the_connectors_limit(sandbox: Sandbox, proxy: CountingProxy) -> None:
    async with client_of(sandbox, proxy.url, max_concurrency=3) as client:
        await client._transport.preconnect(10)
        await proxy.wait_accepted(3)
        await requests_at_once(client, sandbox, 3)
        await anyio.wait_all_tasks_blocked()
        assert proxy.accepted == 3


async def test_preconnect_never_waits_for_a_free_slot_of_the_connector(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    """Every connection the connector allows is in use: it returns at once, ahead of no request."""
    async with client_of(sandbox, proxy.url, max_concurrency=3) as client:
        arrived = 0
        all_there = asyncio.Event()

        def on_request(method: str, path: str, query: object) -> None:
            nonlocal arrived
            arrived += 1
            if arrived == 3:
                all_there.set()

        sandbox.on_request = on_request
        sandbox.config.latency = 3 * HOLD_LIMIT  # the 3 requests stay in flight until cancelled
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(client.sims.list)
            await all_there.wait()
            with anyio.fail_after(HOLD_LIMIT):  # well before any of them is answered
                await client._transport.preconnect(10)
            tg.cancel_scope.cancel()
    assert proxy.accepted == 3


async def test_preconnect_to_a_refused_port_returns_quietly() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with bt.BetatelClient(
        api_key="k" * 16, user_id="u", base_url=f"http://127.0.0.1:{port}", retry=bt.RetryPolicy.none()
    ) as client:
        await client._transport.preconnect(4)
        with pytest.raises(bt.APIConnectionError) as caught:  # the request reports it, as always
            await client.sims.list()
        assert caught.value.kind == "connect"


async def test_preconnect_on_a_closed_client_opens_nothing(sandbox: Sandbox, proxy: CountingProxy) -> None:
    client = client_of(sandbox, proxy.url, max_concurrency=8)
    async with client:
        pass
    await client._transport.preconnect(4)
    await anyio.wait_all_tasks_blocked()
    assert proxy.accepted == 0


async def test_closing_the_client_ends_a_preconnect_in_flight(sandbox: Sandbox, proxy: CountingProxy) -> None:
    client = client_of(sandbox, proxy.url, max_concurrency=8)
    ended = anyio.Event()

    async def preconnect() -> None:
        try:
            await client._transport.preconnect(8)
        finally:
            ended.set()

    async with client, anyio.create_task_group() as tg:
        tg.start_soon(preconnect)
        await anyio.lowlevel.checkpoint()  # under way: its connections are being opened
        await client.aclose()
        assert ended.is_set()  # aclose() returned once it had ended; nothing left open (warnings are errors)


async def test_a_request_whose_connection_is_being_opened_goes_before_the_connections_opened_ahead(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    """Opening many connections takes the event loop a while: preconnect waits until the request's is open."""
    in_use_when_open: list[int] = []
    trace = aiohttp.TraceConfig()

    async def on_connection_create_end(
        session: aiohttp.ClientSession, context: object, params: object
    ) -> None:
        connector = session.connector
        assert connector is not None
        in_use_when_open.append(len(connector._acquired))  # the request's own, and any opened ahead

    trace.on_connection_create_end.append(on_connection_create_end)
    async with client_of(sandbox, proxy.url, max_concurrency=8, trace_configs=[trace]) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.sims.list)
            tg.start_soon(client._transport.preconnect, 6)
        await proxy.wait_accepted(6)
    assert in_use_when_open == [1]


async def test_cancelling_a_preconnect_leaves_the_client_working(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    async with client_of(sandbox, proxy.url, max_concurrency=8) as client:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await client._transport.preconnect(8)
        await requests_at_once(client, sandbox, 2)
        assert sandbox.stats.total == 2


async def test_a_caller_supplied_session_gets_no_connections_ahead(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        client_of(sandbox, proxy.url, max_concurrency=8, session=session) as client,
    ):
        await client._transport.preconnect(4)
        await anyio.wait_all_tasks_blocked()
        assert proxy.accepted == 0
        await client.sims.list()  # the session still serves the client's requests
        assert proxy.accepted == 1


async def test_a_fresh_clients_scan_opens_its_connections_while_the_first_page_is_in_flight(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    """The first page's answer is held until the scan's 4 connections are open: it is, and no more are opened."""
    proxy.hold_first_answer_until(4)
    async with client_of(sandbox, proxy.url, max_concurrency=8, remember_totals=False) as client:
        sims = await client.sims.all(page_size=20, concurrency=4)
    assert len(sims) == 300
    assert not proxy.held_too_long
    assert proxy.accepted == 4
    assert sandbox.stats.total == 15


async def test_a_scan_planned_on_a_remembered_total_opens_no_connections_ahead(
    sandbox: Sandbox, proxy: CountingProxy
) -> None:
    """Its first wave (3 pages) goes out at once, each request on a connection of its own: 3, not the 4 workers."""
    async with client_of(sandbox, proxy.url, max_concurrency=8) as client:
        await client.sims.list(count=1)  # the total is remembered
        sandbox.config.latency = 0.05  # the scan lasts long enough for a preconnect to act
        await client.sims.all(page_size=100, concurrency=4)
        await anyio.wait_all_tasks_blocked()
    assert proxy.accepted == 3
