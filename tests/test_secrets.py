"""The API key never leaves in an exception, its chain or the logs, however a hostile server echoes it.

Servers here echo the ``x-api-key`` they receive: in error bodies (JSON and
not), in several letter cases, around the place where messages are cut; and
in a malformed status line, which makes aiohttp raise an exception holding
the request's headers.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest
from aiohttp import web

import betatel_async as bt

from ._leaks import exception_texts, leaks
from ._servers import raw_server, read_request_head, web_server

pytestmark = pytest.mark.anyio

SECRET = "sk-Zq8Vw3Lm5Rt1Xy7Np2"

CASES = {
    "sent": lambda key: key,
    "upper": str.upper,
    "lower": str.lower,
    "swapped": str.swapcase,
}
# Where the echo starts, in bytes (ASCII: in characters too): around 200,
# where messages used to be cut, and around the cap of 500 characters.
OFFSETS = [0, 190, 195, 200, 205, 210, 490, 495, 500]


def echo_body(request: web.Request) -> web.Response:
    """The path says how: /api/v1/esim/packages/<json|text>-<case>-<offset>."""
    form, case, offset = request.match_info["tail"].rsplit("/", 1)[-1].split("-")
    echo = CASES[case](request.headers["x-api-key"])
    text = "." * int(offset) + echo + " was refused" + "." * 400
    if form == "json":
        # The message starts after '{"message":"' (12 bytes): the echo sits at the offset in the body.
        text = text[12:] if int(offset) >= 12 else text
        return web.json_response({"message": text, "statusCode": 403}, status=403)
    return web.Response(status=403, text=text, content_type="text/plain")


async def handler(request: web.Request) -> web.Response:
    return echo_body(request)


async def test_an_echoed_key_is_redacted_in_every_case_and_place_before_the_message_is_cut() -> None:
    errors: list[tuple[int, bt.APIStatusError]] = []
    async with web_server(handler) as url:
        async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=url) as client:
            for form in ("json", "text"):
                for case in CASES:
                    for offset in OFFSETS:
                        with pytest.raises(bt.PermissionDeniedError) as info:
                            await client.packages.get(f"{form}-{case}-{offset}")
                        errors.append((offset, info.value))
    assert len(errors) == 2 * len(CASES) * len(OFFSETS)
    for offset, err in errors:
        if offset <= 210:  # well inside the cap: the echo is there, redacted
            assert "***" in err.message
        assert leaks(SECRET, list(exception_texts(err))) == [], err.message


async def test_the_key_echoed_right_at_the_cap_leaves_no_part_of_itself() -> None:
    """The cut falls inside the echo: redacting first means no piece survives the cut."""
    async with web_server(handler) as url:
        async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=url) as client:
            with pytest.raises(bt.PermissionDeniedError) as info:
                await client.packages.get("text-upper-490")
    assert "***" in info.value.message
    assert leaks(SECRET, [info.value.message], piece=3) == []


async def bad_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers a status line aiohttp cannot parse, echoing the key in it (upper-cased)."""
    headers = await read_request_head(reader)
    writer.write(b"HTTP/1.1 2x0 " + headers["x-api-key"].upper().encode() + b"\r\n\r\n")
    await writer.drain()


async def test_a_bad_status_line_leaves_the_key_in_no_exception_of_the_chain() -> None:
    """aiohttp's exception holds the request headers (request_info): it must not be chained."""
    async with raw_server(bad_status_line) as url:
        async with bt.BetatelClient(
            api_key=SECRET, user_id="u", base_url=url, retry=bt.RetryPolicy.none()
        ) as client:
            with pytest.raises(bt.APIConnectionError) as info:
                await client.sims.list()
    err = info.value
    assert "invalid HTTP response" in str(err)
    assert "***" in str(err)  # the echo in the status line, redacted
    assert err.__cause__ is not None  # what aiohttp said is still there, as text
    assert "ClientResponseError" in str(err.__cause__)
    texts = list(exception_texts(err))
    assert leaks(SECRET, texts) == []


async def test_a_complete_non_json_success_body_carries_no_copy_of_itself() -> None:
    """The JSON decoder's exception holds the whole document: it is not chained either."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"<html>{request.headers['x-api-key']}</html>", content_type="text/html")

    async with web_server(page) as url:
        async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=url) as client:
            with pytest.raises(bt.MalformedResponseError) as listed:
                await client.sims.list()
            with pytest.raises(bt.MalformedResponseError) as scanned:
                await client.sims.all()
    for info in (listed, scanned):
        assert leaks(SECRET, list(exception_texts(info.value))) == []


async def test_logs_at_debug_never_hold_the_key_echoed_by_failing_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="betatel_async")
    fast = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)
    async with raw_server(bad_status_line) as raw_url, web_server(handler) as url:
        for base in (raw_url, url):
            async with bt.BetatelClient(api_key=SECRET, user_id="u", base_url=base, retry=fast) as client:
                with pytest.raises(bt.APIError):
                    await client.packages.get("text-swapped-195")
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # the bad status line was retried
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    assert leaks(SECRET, texts) == []


def test_retries_print_nothing_when_the_application_set_up_no_logging() -> None:
    """The library's logger has a NullHandler: logging's last-resort handler never prints its WARNINGs."""
    code = textwrap.dedent(
        """
        import asyncio
        import betatel_async as bt
        from betatel_async.sandbox import FaultConfig, SandboxConfig, serve

        async def main():
            async with serve(SandboxConfig(sims=10)) as sandbox:
                sandbox.config.faults = FaultConfig(script=["503"])
                fast = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)
                async with bt.BetatelClient(
                    api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, retry=fast
                ) as client:
                    page = await client.sims.list(count=1)
                print(len(page.items), sandbox.stats.total)

        asyncio.run(main())
        """
    )
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["1", "2"]  # one retry happened
    assert done.stderr == ""
