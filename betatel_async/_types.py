"""Small public types shared by the resources."""

from __future__ import annotations

from typing import Final, Literal, final

__all__ = ["NOT_GIVEN", "NotGiven"]


@final
class NotGiven:
    """The type of [`NOT_GIVEN`][betatel_async.NOT_GIVEN]: an argument left out, where ``None`` is a value.

    ``client.pcr_profiles.update(iccid, route_policy=None)`` clears the route
    policy; leaving ``route_policy`` out (its default, ``NOT_GIVEN``) keeps it.
    There is one instance; it is falsy.
    """

    __slots__ = ()
    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
"""An argument left out (see [`NotGiven`][betatel_async.NotGiven])."""
