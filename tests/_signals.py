"""Child processes that stop on Ctrl-C however the test run itself was started."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["default_sigint_in_children"]


@contextlib.contextmanager
def default_sigint_in_children() -> Iterator[None]:
    """Processes started inside the block get SIGINT's default action, as at a terminal.

    A shell starts background jobs with SIGINT ignored (``cmd &`` in a script,
    ``trap "" INT``, CI runners), and an ignored signal stays ignored across
    ``exec``: a child told to stop with SIGINT would then never stop, and
    Python only turns SIGINT into ``KeyboardInterrupt`` when it starts with the
    default action. A *handled* signal is reset to the default on ``exec``, so
    the block installs Python's own handler in this process for the spawn and
    puts back what was there (only the main thread may change handlers).
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
