"""Bulk export of a listing to JSON Lines, CSV or Parquet, and reading an export back. Private.

``client.<listing>.export()`` runs `run_export()`; the CLI's ``export``
commands call it too; [`diff()`][betatel_async.diff] compares two exports. Importing this package does not import pyarrow: only
asking for Parquet does.
"""

from ._diff import DiffCounts, ExportDiff, ItemChange, diff
from ._files import CHECKPOINT_SUFFIX, PARTIAL_SUFFIX
from ._listings import LISTINGS, Exported
from ._run import CHECKPOINT_INTERVAL, ExportFormat, ExportOptions, ExportResult, check_target, run_export

__all__ = [
    "CHECKPOINT_INTERVAL",
    "CHECKPOINT_SUFFIX",
    "LISTINGS",
    "PARTIAL_SUFFIX",
    "DiffCounts",
    "ExportDiff",
    "ExportFormat",
    "ExportOptions",
    "ExportResult",
    "Exported",
    "ItemChange",
    "check_target",
    "diff",
    "run_export",
]
