"""Serving the sandbox on loopback for the length of an ``async with`` block."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from .._validate import loopback_ip
from ._app import Sandbox, create_app
from ._config import SandboxConfig
from ._data import SandboxData

__all__ = ["loopback_address", "serve"]

# How long closing waits for requests still being answered before cancelling
# them: a sandbox is torn down at the end of every test, and a "slow" fault's
# sleep must not hold that up.
_SHUTDOWN_TIMEOUT = 0.5

# Event-loop turns from accepting a connection to aiohttp's knowing it: the
# transport is built one turn after the accept, connection_made runs one turn
# after that; one more to spare. See _stop.
_ACCEPT_TURNS = 3


def loopback_address(host: str) -> str:
    """The address to bind for ``host``, which must be a loopback address.

    Args:
        host: ``"localhost"`` or an IP address in 127.0.0.0/8 or ``::1``, or an
            IPv4-mapped loopback address (``::ffff:127.0.0.1``).

    Returns:
        The address as an IP literal (``"localhost"`` becomes ``"127.0.0.1"``,
        so the port is bound once, on one family; ``::ffff:127.0.0.1`` becomes
        ``"127.0.0.1"``, the address it maps, on every Python version).

    Raises:
        ValueError: Any other host, naming it: the sandbox accepts its
            published credentials from anyone who can reach it.
    """
    if host.lower() == "localhost":
        return "127.0.0.1"
    # Brackets are URL syntax, not part of an address to bind.
    address = loopback_ip(host) if not host.startswith("[") else None
    if address is None:
        raise ValueError(f"host must be a loopback address (127.0.0.0/8, ::1 or localhost), got {host!r}")
    return str(address)


def serve(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data: SandboxData | None = None,
) -> AbstractAsyncContextManager[Sandbox]:
    """Serve a sandbox over HTTP on loopback while the ``async with`` block runs.

    ::

        async with serve(SandboxConfig(sims=1000)) as sandbox:
            async with BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id,
                                     base_url=sandbox.url) as client:
                ...

    On exit the server stops; requests still being answered get
    half a second, then are cancelled. A request whose client disconnects is
    cancelled at once.

    Args:
        config: Default ``SandboxConfig()``.
        host: A loopback address, or ``"localhost"`` (bound as 127.0.0.1).
        port: TCP port; 0 (default) picks a free one, see ``sandbox.url``.
        data: Data to serve instead of generating it from the config.

    Returns:
        An async context manager giving the live `Sandbox`.

    Raises:
        ValueError: ``host`` is not a loopback address (raised by this call).
        OSError: The port cannot be bound (raised on entering the block).
    """
    return _serve(loopback_address(host), port, create_app(config, data))


@contextlib.asynccontextmanager
async def _serve(address: str, port: int, app: web.Application) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox.from_app(app)
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT, access_log=None
    )
    await runner.setup()
    listener: socket.socket | None = None
    try:
        # Our own listening socket, so that stopping can stop reading it first (see _stop).
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        listener = socket.create_server((address, port), family=family)
        await web.SockSite(runner, listener).start()
        bound_port = listener.getsockname()[1]
        url_host = f"[{address}]" if ":" in address else address
        sandbox._url = f"http://{url_host}:{bound_port}"
        yield sandbox
    finally:
        sandbox._url = None
        await _stop(runner, listener)


async def _stop(runner: web.AppRunner, listener: socket.socket | None) -> None:
    """Close every connection and the listener; no socket is left to the garbage collector.

    Strategy: asyncio accepts a connection in one event-loop turn and builds
    its transport in a task one turn later. Closing the server in between
    makes that task fail an assertion in ``Server._attach`` (CPython
    gh-109564, in 3.11 to 3.13), and the accepted socket is left open until
    garbage collection warns about it. So the listener stops being read
    first (the server stays open), the turns that build the accepted
    connections' transports and hand them to aiohttp pass, and only then
    does aiohttp close the server and shut every connection down.
    """
    if listener is not None and listener.fileno() != -1:
        with contextlib.suppress(NotImplementedError):  # a loop without add_reader (Windows' proactor)
            asyncio.get_running_loop().remove_reader(listener.fileno())
        for _ in range(_ACCEPT_TURNS):
            await asyncio.sleep(0)
    await runner.cleanup()
    if listener is not None:
        listener.close()  # already closed by the server it was handed to, unless starting that failed
