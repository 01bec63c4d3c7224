"""``python -m betatel_async.cli``: the same as the ``betatel-async`` command."""

from ._app import main

raise SystemExit(main())
