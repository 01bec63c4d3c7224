"""pytest fixtures to test your own code against the Betatel sandbox, with no setup.

Installed with betatel-async and loaded by pytest through the ``pytest11``
entry point, so a test only names the fixtures::

    import pytest

    pytestmark = pytest.mark.anyio


    async def test_my_code_lists_every_sim(betatel_client):
        assert len(await betatel_client.sims.all()) == 1000

Fixtures (each test gets its own; nothing is shared between tests):

- ``betatel_sandbox_config``: the `SandboxConfig` the sandbox is served with.
  Default ``SandboxConfig()`` (1000 SIMs, seed 0, no latency, no faults).
  Override it in your module or ``conftest.py``, or parametrize it, to choose
  another.
- ``betatel_sandbox``: a `Sandbox` served on loopback with that config
  (``.url``, ``.api_key``, ``.user_id``, ``.data``, ``.stats``, ``.config``),
  stopped after the test.
- ``betatel_client``: a `BetatelClient` bound to that sandbox (its URL and
  credentials, every other option at its default), closed after the test.

The sandbox and the client are async fixtures run by **anyio's pytest
plugin** (anyio is a dependency of betatel-async and its plugin loads by
itself): the test must be ``async def`` and marked ``@pytest.mark.anyio``
(or the module's ``pytestmark``, or ``anyio_mode = "auto"``), and run on the
asyncio backend (aiohttp runs only there; anyio also offers trio where it is
installed, so define an ``anyio_backend`` fixture returning ``"asyncio"``).
A test that uses them otherwise fails at setup saying which of these is
missing.

Strategy: pytest imports this module in every test run of every project that
installs betatel-async, used or not. It imports nothing but pytest at import
time; the sandbox (aiohttp.web) and the client are imported by the fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from betatel_async import BetatelClient
    from betatel_async.sandbox import Sandbox, SandboxConfig

__all__ = ["betatel_client", "betatel_sandbox", "betatel_sandbox_config"]

_HOW_TO_RUN = (
    "mark the test @pytest.mark.anyio (or set pytestmark = pytest.mark.anyio in its module, "
    'or anyio_mode = "auto" in the pytest configuration) and make it async def'
)


@pytest.fixture
def _betatel_runs_on_anyio_asyncio(request: pytest.FixtureRequest) -> None:
    """Fail at setup, saying what to change, where the async fixtures cannot run."""
    if not request.config.pluginmanager.has_plugin("anyio"):
        pytest.fail(
            "betatel_sandbox and betatel_client are async fixtures run by anyio's pytest plugin, "
            "which is not loaded here (was it disabled with -p no:anyio?). Load it, then "
            + _HOW_TO_RUN
            + ".",
            pytrace=False,
        )
    if "anyio_backend" not in request.fixturenames:
        pytest.fail(
            f"{request.node.name} uses betatel_sandbox or betatel_client, async fixtures run by "
            f"anyio's pytest plugin, but anyio does not run this test: {_HOW_TO_RUN}.",
            pytrace=False,
        )
    backend = request.getfixturevalue("anyio_backend")
    name = backend if isinstance(backend, str) else backend[0]
    if name != "asyncio":
        pytest.fail(
            f"betatel_sandbox and betatel_client run on asyncio only (aiohttp), and "
            f"{request.node.name} runs on {name!r}: define an anyio_backend fixture "
            'returning "asyncio" (in conftest.py, or in the test module).',
            pytrace=False,
        )


@pytest.fixture
def betatel_sandbox_config() -> SandboxConfig:
    """The config ``betatel_sandbox`` is served with: ``SandboxConfig()`` unless overridden."""
    from betatel_async.sandbox import SandboxConfig

    return SandboxConfig()


@pytest.fixture
async def betatel_sandbox(
    _betatel_runs_on_anyio_asyncio: None, betatel_sandbox_config: SandboxConfig
) -> AsyncIterator[Sandbox]:
    """A sandbox served on loopback (a free port) with ``betatel_sandbox_config``, stopped after the test."""
    from betatel_async.sandbox import serve

    async with serve(betatel_sandbox_config) as sandbox:
        yield sandbox


@pytest.fixture
async def betatel_client(betatel_sandbox: Sandbox) -> AsyncIterator[BetatelClient]:
    """A ``BetatelClient`` on ``betatel_sandbox`` (its URL and credentials), closed after the test."""
    from betatel_async import BetatelClient

    async with BetatelClient(
        api_key=betatel_sandbox.api_key, user_id=betatel_sandbox.user_id, base_url=betatel_sandbox.url
    ) as client:
        yield client
