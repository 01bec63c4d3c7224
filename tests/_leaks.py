"""Everything an exception shows or carries, as text: to look for a secret in it."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Iterator


def exception_texts(exc: BaseException) -> Iterator[str]:
    """str, repr, attributes, args, traceback text and pickle of ``exc`` and of every exception it leads to.

    Follows ``__cause__``, ``__context__``, exception groups and attributes
    holding exceptions, through the whole chain.
    """
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current)) if hasattr(current, "__dict__") else ""
        yield "".join(traceback.format_exception(current))
        yield pickle.dumps(current).decode("latin-1")
        yield repr(vars(pickle.loads(pickle.dumps(current))))
        linked = [current.__cause__, current.__context__]
        if isinstance(current, BaseExceptionGroup):
            linked += current.exceptions
        linked += [v for v in vars(current).values() if isinstance(v, BaseException)]
        stack += [e for e in linked if e is not None]


def leaks(secret: str, texts: Iterator[str] | list[str], *, piece: int = 6) -> list[str]:
    """The texts holding ``secret``, or any ``piece`` characters of it in a row, in any letter case."""
    secret = secret.lower()
    pieces = {secret[i : i + piece] for i in range(len(secret) - piece + 1)}
    return [text for text in texts if any(p in text.lower() for p in pieces)]
