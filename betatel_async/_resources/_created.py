"""What the read-back after an ambiguous create relies on: when the call started, on the server's clock.

Shared by ``packages.create`` and ``package_templates.create``: neither POST is
idempotent, so after a failure that may have been carried out (see
`is_ambiguous()`) they read the listing back and claim only what was made
since the call started.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from .._errors import APIConnectionError, APIError, APIStatusError, ServerError
from .._models import timestamp_to_datetime

__all__ = ["CREATE_CLOCK_SLACK", "MAX_SERVER_CLOCK_SKEW", "CreateClock", "created_since", "is_ambiguous"]

_AMBIGUOUS_STATUSES: Final = frozenset({502, 503, 504})


def is_ambiguous(exc: APIError) -> bool:
    """Whether a failed POST may nonetheless have been carried out by the server."""
    if isinstance(exc, APIConnectionError):
        return exc.kind != "connect"
    return isinstance(exc, ServerError) and exc.status in _AMBIGUOUS_STATUSES


CREATE_CLOCK_SLACK: Final = timedelta(seconds=60)
"""How long before a create call's start (on the server's clock) a package may
have been made and still be read back as this call's: it absorbs the 1-second
resolution of the ``Date`` header and a database clock a little off the web
server's."""


MAX_SERVER_CLOCK_SKEW: Final = timedelta(hours=2)
"""A ``Date`` further than this from the local clock is not believed (a
stored error page, a broken clock): the local clock stands."""


class CreateClock:
    """When a create call started, on the server's clock as far as its answers tell.

    Strategy: the local clock is read as the call starts. The first error
    answer that carries a ``Date`` header gives the server's offset from the
    local clock, which moves that start onto the server's clock; without one,
    the local clock stands. ``Date`` is cut to the second and stamped before
    the answer arrives, so the offset errs early, on the side of not missing
    this call's own package. An offset past `MAX_SERVER_CLOCK_SKEW`
    is not believed: an early start would let an older package pass for
    this call's, so a ``Date`` that far off is more likely a stored page
    than the server's time. (The transport passes on no ``Date`` of an
    answer with an ``Age`` header, a cache's.)
    """

    __slots__ = ("_offset", "_started")

    def __init__(self) -> None:
        self._started = time.time()
        self._offset: float | None = None

    def observe(self, exc: APIError) -> None:
        """Take the server's offset from ``exc``'s ``Date`` header, if it is the first to carry one."""
        if self._offset is not None or not isinstance(exc, APIStatusError) or exc.date is None:
            return
        try:
            server_now = email.utils.parsedate_to_datetime(exc.date)
        except (TypeError, ValueError):  # not an HTTP date: keep the local clock
            return
        if server_now.tzinfo is None:  # "-0000": HTTP dates are GMT all the same
            server_now = server_now.replace(tzinfo=UTC)
        offset = server_now.timestamp() - time.time()
        if abs(offset) <= MAX_SERVER_CLOCK_SKEW.total_seconds():
            self._offset = offset

    def earliest(self) -> datetime:
        """The earliest creation time a package made by this call can carry (aware UTC)."""
        start = self._started + (self._offset or 0.0)
        return datetime.fromtimestamp(start, UTC) - CREATE_CLOCK_SLACK


def created_since(raw: int | None, earliest: datetime) -> bool:
    """Whether an API timestamp (either unit) is at or after ``earliest``; never for an absent or absurd one."""
    try:
        created = timestamp_to_datetime(raw)
    except OverflowError:  # a date past year 9999 says nothing about this call
        return False
    return created is not None and created >= earliest
