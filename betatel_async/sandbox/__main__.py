"""``python -m betatel_async.sandbox``: see `betatel_async.sandbox._cli`."""

from . import main

raise SystemExit(main())
