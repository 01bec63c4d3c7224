"""Asyncio client for the Betatel eSIM API.

Typed models, concurrent offset pagination that is complete and in order in
bounded memory, retries with backoff, typed errors, and an embedded sandbox
server (:mod:`betatel_async.sandbox`) to test against.
"""

import logging

from ._client import DEFAULT_BASE_URL, BetatelClient, ClientState
from ._converter import unstructure
from ._errors import (
    ActionRejectedError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BetatelError,
    ClientClosedError,
    ConflictError,
    DriftError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ScanError,
    ServerError,
)
from ._models import (
    ActivationType,
    Imsi,
    Inventory,
    InventoryStatus,
    Package,
    PackageStatus,
    PackageTemplate,
    PackageTemplateInfo,
    Page,
    Ref,
    Sim,
    SimStatus,
    TimeAllowance,
    TimeUnit,
    timestamp_to_datetime,
)
from ._paginate import DriftPolicy, ItemScan, PageScan, ScanReport
from ._resources import PATHS, Inventories, Packages, Sims
from ._retry import AdaptiveLimit, RetryBudget, RetryPolicy
from ._status import HolderStatus, NetworkCounts, SimStatusReport, StatusAccumulator
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "PATHS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "ActionRejectedError",
    "ActivationType",
    "AdaptiveLimit",
    "AuthenticationError",
    "BadRequestError",
    "BetatelClient",
    "BetatelError",
    "ClientClosedError",
    "ClientState",
    "ConflictError",
    "DriftError",
    "DriftPolicy",
    "HolderStatus",
    "Imsi",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "Inventories",
    "Inventory",
    "InventoryStatus",
    "ItemScan",
    "MalformedResponseError",
    "NetworkCounts",
    "NotFoundError",
    "Package",
    "PackageStatus",
    "PackageTemplate",
    "PackageTemplateInfo",
    "Packages",
    "Page",
    "PageScan",
    "PermissionDeniedError",
    "RateLimitError",
    "Ref",
    "RetryBudget",
    "RetryPolicy",
    "ScanError",
    "ScanReport",
    "ServerError",
    "Sim",
    "SimStatus",
    "SimStatusReport",
    "Sims",
    "StatusAccumulator",
    "TimeAllowance",
    "TimeUnit",
    "__version__",
    "timestamp_to_datetime",
    "unstructure",
]

# The logging HOWTO's rule for libraries: without it, an application that set
# up no logging gets every retry's WARNING printed on stderr by logging's
# last-resort handler (over the CLI's progress bar too).
logging.getLogger(__name__).addHandler(logging.NullHandler())
