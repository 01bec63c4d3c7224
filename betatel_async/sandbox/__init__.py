"""A local server that behaves like the Betatel eSIM API, for tests, benchmarks and demos.

It serves deterministic fake data (from a seed) over real HTTP on loopback,
enforces the API's credentials, validation and state rules, and can add
latency, cap page sizes and inject faults (429/5xx, dropped connections,
truncated or malformed bodies, stalls, a create committed but not answered)::

    from betatel_async.sandbox import SandboxConfig, serve

    async with serve(SandboxConfig(sims=10_000, latency=0.01)) as sandbox:
        ...  # point a client at sandbox.url with sandbox.api_key / sandbox.user_id
        sandbox.config.faults.script = ["503", "reset"]  # the next two API requests fail
        sandbox.data.insert_sims(5, at="start")  # every offset shifts by 5

From a shell (needs click, from the ``cli`` extra):
``python -m betatel_async.sandbox --sims 100000 --latency-ms 25``, or
``betatel-async sandbox ...``;
``GET /_sandbox/stats`` (`STATS_PATH`) then answers its request counters
(`SandboxStats`) as JSON.
"""

from collections.abc import Sequence

from ._app import (
    API_PREFIX,
    API_VERSION,
    STATS_PATH,
    STATUS_PATH,
    OnRequest,
    Sandbox,
    SandboxStats,
    create_app,
)
from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_USER_ID,
    FAULT_KINDS,
    ActionResponse,
    FaultConfig,
    QrResponse,
    SandboxConfig,
    SimShape,
)
from ._data import (
    ICCID_PREFIX,
    PACKAGE_STATUSES,
    SIM_STATUSES,
    Resource,
    Row,
    SandboxData,
    SandboxError,
)
from ._server import serve

__all__ = [
    "API_PREFIX",
    "API_VERSION",
    "DEFAULT_API_KEY",
    "DEFAULT_USER_ID",
    "FAULT_KINDS",
    "ICCID_PREFIX",
    "PACKAGE_STATUSES",
    "SIM_STATUSES",
    "STATS_PATH",
    "STATUS_PATH",
    "ActionResponse",
    "FaultConfig",
    "OnRequest",
    "QrResponse",
    "Resource",
    "Row",
    "Sandbox",
    "SandboxConfig",
    "SandboxData",
    "SandboxError",
    "SandboxStats",
    "SimShape",
    "create_app",
    "main",
    "serve",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox's command line (``python -m betatel_async.sandbox``): serve until Ctrl-C.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after Ctrl-C, 1 if the port cannot be bound, 2 for
        bad arguments.

    Raises:
        SystemExit: click is not installed (it comes with the ``cli`` extra).
    """
    # Imported here: the sandbox itself (and the pytest plugin that serves it) needs no click.
    try:
        from ._cli import main as run
    except ModuleNotFoundError as exc:
        if exc.name != "click":
            raise
        raise SystemExit("the sandbox's command line needs click: pip install 'betatel-async[cli]'") from None
    return run(argv)
