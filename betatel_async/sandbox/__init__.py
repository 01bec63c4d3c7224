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

From a shell: ``python -m betatel_async.sandbox --sims 100000 --latency-ms 25``;
``GET /_sandbox/stats`` (`STATS_PATH`) then answers its request counters
(`SandboxStats`) as JSON.
"""

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
from ._cli import main
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
