"""Response bodies over loopback HTTP: the size limit (after decompression), and malformed vs truncated.

The scan tests go through the public API only (``iter()``), so they hold
whatever the scan engine looks like inside.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import anyio
import orjson
import pytest
from aiohttp import web

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

from ._servers import raw_server, read_request_head, web_server

pytestmark = pytest.mark.anyio

LIMIT = 100_000
EMPTY_PAGE = orjson.dumps({"total": 0, "offset": 0, "count": 0, "sims": []})


def padded_page(size: int) -> bytes:
    """A valid empty page of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    return EMPTY_PAGE + b" " * (size - len(EMPTY_PAGE))


# Compressed once: about 10 KB on the wire, 10 MB once inflated, and valid
# JSON, so only the limit can make reading it fail.
GZIP_BOMB = gzip.compress(padded_page(10_000_000), compresslevel=9)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=3000, seed=3)) as sb:
        yield sb


def client_for(url: str, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(api_key="k", user_id="u", base_url=url, **options)  # type: ignore[arg-type]


def sandbox_client(sandbox: Sandbox, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        **options,  # type: ignore[arg-type]
    )


def assert_says_the_limit(err: bt.MalformedResponseError, limit: int) -> None:
    text = str(err)
    assert "max_body_size" in text
    assert str(limit) in text
    assert err.attempts == 1  # never retried: asking again gets the same body


# -- the limit -------------------------------------------------------------------------------


async def test_a_gzip_bomb_fails_once_inflated_past_the_limit() -> None:
    hits = 0

    async def bomb(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(
            body=GZIP_BOMB, headers={"Content-Encoding": "gzip"}, content_type="application/json"
        )

    async with web_server(bomb) as url, client_for(url, max_body_size=LIMIT) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
    assert_says_the_limit(info.value, LIMIT)
    assert hits == 1


async def test_the_default_limit_is_32_mib() -> None:
    bomb = gzip.compress(padded_page(32 * 1024 * 1024 + 1), compresslevel=9)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"}, content_type="application/json")

    async with web_server(handler) as url, client_for(url) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
    assert_says_the_limit(info.value, 32 * 1024 * 1024)


async def test_a_huge_chunked_body_is_not_read_past_the_limit() -> None:
    """No Content-Length: the client counts as it reads, and stops reading (the server's writes fail)."""
    sent = 0
    total = 64 * 1024 * 1024
    finished = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        body = padded_page(total)
        chunk = 64 * 1024
        try:
            for start in range(0, total, chunk):
                await response.write(body[start : start + chunk])
                sent += chunk
            await response.write_eof()
        finally:
            finished.set()
        return response

    async with web_server(stream) as url, client_for(url, max_body_size=LIMIT) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
        with anyio.fail_after(10):
            await finished.wait()
    assert_says_the_limit(info.value, LIMIT)
    assert sent < total  # the client hung up instead of taking it all


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not(chunked: bool) -> None:
    size = LIMIT

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        body = padded_page(size)
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async with web_server(handler) as url, client_for(url, max_body_size=LIMIT) as client:
        assert (await client.sims.list()).total == 0
        size = LIMIT + 1
        with pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
    assert_says_the_limit(info.value, LIMIT)


async def test_a_content_length_past_the_limit_is_refused_before_the_body_arrives() -> None:
    """The header claims 10 GB and the server sends nothing more: refused at once, not waited for."""

    async def lying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
        )
        writer.write(EMPTY_PAGE)
        await writer.drain()
        await reader.read()  # until the client hangs up

    async with raw_server(lying) as url, client_for(url, max_body_size=LIMIT, timeout=20) as client:
        with anyio.fail_after(10), pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
    assert_says_the_limit(info.value, LIMIT)


async def test_error_bodies_are_read_only_as_far_as_a_message_needs() -> None:
    """A 16 MB error body makes neither a 16 MB read nor a 16 MB exception string."""
    total = 16 * 1024 * 1024
    body = orjson.dumps({"message": "x" * total, "statusCode": 400})
    sent = 0
    finished = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(status=400, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = 64 * 1024
        try:
            for start in range(0, len(body), chunk):
                await response.write(body[start : start + chunk])
                sent += chunk
            await response.write_eof()
        finally:
            finished.set()
        return response

    async with web_server(handler) as url, client_for(url) as client:
        with pytest.raises(bt.BadRequestError) as info:
            await client.sims.list()
        with anyio.fail_after(10):
            await finished.wait()
    assert info.value.message.startswith('{"message":"xxx')  # its first bytes, as text
    assert len(info.value.message) <= 1000
    assert len(str(info.value)) <= 1200
    assert sent < total  # the client hung up after the first bytes


async def test_a_json_message_is_capped_too() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": "y" * 20_000, "statusCode": 404}, status=404)

    async with web_server(handler) as url, client_for(url) as client:
        with pytest.raises(bt.NotFoundError) as info:
            await client.packages.get("p")
    assert info.value.message.startswith("yyyy")
    assert len(info.value.message) <= 1000


async def test_a_scan_fails_on_a_page_past_the_limit(sandbox: Sandbox) -> None:
    """Pages of 1,000 SIMs are about 400 KB; the limit is 100 KB."""
    async with sandbox_client(sandbox, max_body_size=LIMIT) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            async with client.sims.iter(page_size=1000) as sims:
                async for _ in sims:
                    pass
        assert_says_the_limit(info.value, LIMIT)
        assert len(await client.sims.all(page_size=100)) == 3000  # small pages fit


async def test_with_options_sets_the_limit_for_its_calls_only(sandbox: Sandbox) -> None:
    async with sandbox_client(sandbox) as client:
        small = client.with_options(max_body_size=LIMIT)
        with pytest.raises(bt.MalformedResponseError) as info:
            await small.sims.list(count=1000)
        assert_says_the_limit(info.value, LIMIT)
        assert len((await client.sims.list(count=1000)).items) == 1000


async def test_a_scan_fails_on_a_gzip_bomb_page() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=GZIP_BOMB, headers={"Content-Encoding": "gzip"}, content_type="application/json"
        )

    async with web_server(handler) as url, client_for(url, max_body_size=LIMIT) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            async with client.sims.iter() as sims:
                async for _ in sims:
                    pass
    assert_says_the_limit(info.value, LIMIT)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, bt.InvalidArgumentError),
        (-1, bt.InvalidArgumentError),
        (1.5, bt.InvalidArgumentTypeError),
        ("1", bt.InvalidArgumentTypeError),
        (True, bt.InvalidArgumentTypeError),
    ],
)
def test_a_bad_max_body_size_is_refused_naming_it(value: object, error: type[bt.BetatelError]) -> None:
    with pytest.raises(error, match="^max_body_size:"):
        bt.BetatelClient(api_key="k", user_id="u", max_body_size=value)  # type: ignore[arg-type]
    client = bt.BetatelClient(api_key="k", user_id="u")
    with pytest.raises(error, match="^max_body_size:"):
        client.with_options(max_body_size=value)  # type: ignore[arg-type]


# -- malformed vs truncated ------------------------------------------------------------------


async def test_a_complete_non_json_answer_is_malformed_at_once(sandbox: Sandbox) -> None:
    """A proxy's HTML page is not retried (it is what the server meant to send)."""
    hits = 0

    async def proxy_page(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")

    async with web_server(proxy_page) as url, client_for(url) as client:
        with pytest.raises(bt.MalformedResponseError) as info:
            await client.sims.list()
    assert hits == 1
    assert info.value.attempts == 1
    assert "not JSON" in str(info.value)


async def test_the_sandbox_malformed_fault_fails_a_call_without_retry(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["malformed"])
    async with sandbox_client(sandbox) as client:
        with pytest.raises(bt.MalformedResponseError):
            await client.sims.list(count=5)
    assert sandbox.stats.total == 1


async def test_the_sandbox_truncated_fault_is_retried(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["truncated"])
    fast = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)
    async with sandbox_client(sandbox, retry=fast) as client:
        page = await client.sims.list(count=5)
    assert len(page.items) == 5
    assert sandbox.stats.total == 2


async def test_a_connection_dropped_mid_body_is_truncated_and_retried() -> None:
    """Chunked, no Content-Length, the connection closed halfway: cut short, and a GET is sent again."""
    hits = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal hits
        hits += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(EMPTY_PAGE[:10])
        if hits == 1:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(EMPTY_PAGE[10:])
        await response.write_eof()
        return response

    fast = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)
    async with web_server(handler) as url, client_for(url, retry=fast) as client:
        assert (await client.sims.list()).total == 0
    assert hits == 2


async def test_a_body_cut_short_fails_as_truncated_once_retries_are_spent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        writer.write(EMPTY_PAGE[:20])
        await writer.drain()

    async with raw_server(handler) as url, client_for(url, retry=bt.RetryPolicy.none()) as client:
        with pytest.raises(bt.APIConnectionError) as info:
            await client.sims.list()
    assert info.value.kind == "truncated"


async def test_a_scan_fails_on_a_complete_non_json_page_without_fetching_it_again(sandbox: Sandbox) -> None:
    offsets: list[str] = []
    sandbox.on_request = lambda method, path, query: offsets.append(query["offset"])
    sandbox.config.faults = FaultConfig(script=["ok", "malformed"])
    async with sandbox_client(sandbox) as client:
        with pytest.raises(bt.MalformedResponseError, match="offset 100"):
            async with client.sims.iter(page_size=100, concurrency=1) as sims:
                async for _ in sims:
                    pass
    assert offsets[:2] == ["0", "100"]
    assert len(offsets) == len(set(offsets))  # no page asked for twice


async def test_a_scan_retries_a_page_cut_short(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["ok", "truncated"])
    fast = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)
    expected = [s["iccid"] for s in sandbox.data.sims_list()]
    async with sandbox_client(sandbox, retry=fast) as client:
        async with client.sims.iter(page_size=500, concurrency=1) as sims:
            got = [sim.iccid async for sim in sims]
    assert got == expected
    assert sims.report.retries == 1
