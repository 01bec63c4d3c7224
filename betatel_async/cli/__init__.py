"""The ``betatel-async`` command line (needs the ``cli`` extra: click and rich).

``betatel-async --help`` lists the commands; ``python -m betatel_async.cli``
runs the same. Importing `betatel_async` never imports this package.
"""

from . import _api_commands, _diff  # noqa: F401  (register their commands on the group)
from ._app import cli, main

__all__ = ["cli", "main"]
