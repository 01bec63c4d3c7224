"""The API's resources, one module per namespace, on one listing base (``_listing``).

Each method checks its arguments (raising before any request), builds the
query or body, calls the transport and structures the answer. Every API path
is in [`PATHS`][betatel_async.PATHS], so a correction is a one-line change.
"""

from ._listing import Listing, ScanOptions, SnapshotOptions
from ._paths import PATHS
from .countries import Countries
from .euicc_profiles import EuiccProfiles
from .inventories import Inventories
from .package_templates import PackageTemplates
from .packages import Packages
from .pcr_profiles import PcrProfiles
from .sims import Sims

__all__ = [
    "PATHS",
    "Countries",
    "EuiccProfiles",
    "Inventories",
    "Listing",
    "PackageTemplates",
    "Packages",
    "PcrProfiles",
    "ScanOptions",
    "Sims",
    "SnapshotOptions",
]
