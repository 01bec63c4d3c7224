"""Serving the sandbox on loopback for the length of an ``async with`` block."""

from __future__ import annotations

import contextlib
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
    try:
        await web.TCPSite(runner, address, port).start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{address}]" if ":" in address else address
        sandbox._url = f"http://{url_host}:{bound_port}"
        yield sandbox
    finally:
        sandbox._url = None
        await runner.cleanup()
