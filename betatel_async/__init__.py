"""Asyncio client for the Betatel eSIM API.

Typed models, concurrent offset pagination that is complete and in order in
bounded memory, retries with backoff, typed errors, and an embedded sandbox
server (`betatel_async.sandbox`) to test against.

Strategy: importing the package imports none of the client until a public
name is first asked for. pytest loads ``betatel_async.pytest_plugin`` (an
entry point) in every test run of every project that installs us, and that
imports this package first; the client (aiohttp, cattrs, the models) takes
longer to import than pytest itself. The first public name asked for
(``BetatelClient``, ``from betatel_async import *``, ``dir()``) imports
``_public``, which holds every public name, and copies them all here, so later
look-ups are plain attribute reads that never reach ``__getattr__``.
"""

import importlib
import logging
import typing

from ._version import __version__ as __version__

if typing.TYPE_CHECKING:
    from ._public import *  # noqa: F403 - the public names, as type checkers and IDEs see them
    from ._public import __all__ as __all__
else:
    # Defined for the interpreter only: a module __getattr__ seen by a type
    # checker makes every attribute of the package valid (typos included).
    def _load_public_names() -> list[str]:
        public = importlib.import_module("._public", __name__)
        names: list[str] = public.__all__
        namespace = globals()
        for name in names:
            namespace[name] = getattr(public, name)
        namespace["__all__"] = names
        return names

    def __getattr__(name: str) -> object:
        # Private and dunder names are never public ones: answering them without
        # the import keeps probes such as pytest's and inspect's (__wrapped__,
        # __file__ checks) from loading the client.
        if name.startswith("_") and name != "__all__":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        names = _load_public_names()
        if name == "__all__":
            return names
        if name in names:
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_load_public_names()))


# The logging HOWTO's rule for libraries: without it, an application that set
# up no logging gets every retry's WARNING printed on stderr by logging's
# last-resort handler (over the CLI's progress bar too).
logging.getLogger(__name__).addHandler(logging.NullHandler())
