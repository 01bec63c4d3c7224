"""``python -m betatel_async.sandbox``: see `betatel_async.sandbox._cli`."""

from ._cli import main

raise SystemExit(main())
