"""The exceptions betatel_async raises.

Every exception the SDK raises on purpose derives from [`BetatelError`][betatel_async.BetatelError],
so ``except BetatelError`` catches them all; aiohttp's exceptions and bare
``ExceptionGroup``\\ s never escape. The tree, one class per way a caller
reacts differently::

    BetatelError
    ├── InvalidArgumentError (also ValueError)      bad value, raised before any request
    ├── InvalidArgumentTypeError (also TypeError)   bad type, raised before any request
    ├── ClientClosedError (also RuntimeError)       the client was closed, or is of another event loop
    ├── APIError                                    something went wrong talking to the API
    │   ├── APIConnectionError                      no usable response: refused, reset, cut short
    │   │   └── APITimeoutError                     connect or read timed out
    │   ├── MalformedResponseError                  not JSON, too large, or not as documented (never retried)
    │   ├── APIStatusError                          an HTTP error status (has .status, .message)
    │   │   ├── BadRequestError                     400
    │   │   ├── AuthenticationError                 401
    │   │   ├── PermissionDeniedError               403
    │   │   ├── NotFoundError                       404
    │   │   ├── ConflictError                       409
    │   │   ├── RateLimitError                      429
    │   │   └── ServerError                         5xx
    │   └── ActionRejectedError                     activate/terminate answered ``false``
    ├── ScanError                                   a listing scan could not be completed exactly
    │   └── DriftError                              the listing changed during the scan
    └── ExportError                                 an export's file cannot be written, or resumed

No exception carries request headers, so the API key never appears in ``str``,
``repr``, a traceback or a pickled exception: text from the server (a message,
an error's ``body``, the values of the response ``headers`` an error keeps) has
the key redacted (in any letter case) before it is cut to 500 characters, and
aiohttp's exceptions, which hold the request's headers, are never chained (an
``APIConnectionError``'s ``__cause__`` is a text summary of one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "ActionRejectedError",
    "AuthenticationError",
    "BadRequestError",
    "BetatelError",
    "ClientClosedError",
    "ConflictError",
    "DriftError",
    "ExportError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScanError",
    "ServerError",
    "request_id_of",
    "status_error_class",
]

REQUEST_ID_HEADERS: Final = ("X-Request-Id", "Request-Id")
"""The headers that may carry the server's id of a request, in the order they are looked up."""


def request_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The first non-empty ``X-Request-Id`` or ``Request-Id`` in ``headers`` (any letter case), else ``None``.

    Shared by [`APIError.request_id`][betatel_async.APIError.request_id] and ``RawResponse.request_id``.
    """
    if headers is None:
        return None
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


class BetatelError(Exception):
    """Base class of every error raised by betatel_async."""


class InvalidArgumentError(BetatelError, ValueError):
    """An argument has a bad value; raised before any request is sent.

    Attributes:
        argument: The name of the offending argument, as the caller spelled it.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.argument, str(self).split(": ", 1)[1]))


class InvalidArgumentTypeError(BetatelError, TypeError):
    """An argument has the wrong type; raised before any request is sent.

    Attributes:
        argument: The name of the offending argument.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.argument, str(self).split(": ", 1)[1]))


class ClientClosedError(BetatelError, RuntimeError):
    """The client is closed, or was closed while the call was in flight, or belongs to another event loop.

    ``aclose()`` (or the end of ``async with``) ends the calls and scans in
    flight on the client at once with this error. A client is bound to the
    event loop it was first used in: used from another one (a second
    ``asyncio.run()``), it raises this; create the client inside the event
    loop that uses it.
    """


class APIError(BetatelError):
    """A request to the API failed.

    Attributes:
        method: HTTP method of the failed request (``"GET"``, ``"POST"``).
        path: URL path of the request, without query string or host.
        attempts: How many attempts were made before giving up (1 = no retry).
        body: What the server answered, when the error is about an answer
            (an error status, a success body that is not JSON): the parsed
            JSON if the body's text is at most 500 characters, else its text
            cut to 500 characters; the API key redacted in every string either
            way. ``None`` when no body was read (no answer, a body past
            ``max_body_size``) or it was empty.
        headers: The response's headers (read-only, case-insensitive, values
            with the key redacted), or ``None`` when there was no response.
            Never the request's headers.
    """

    body: Any
    headers: CIMultiDictProxy[str] | None

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        attempts: int = 1,
        body: Any = None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.attempts = attempts
        self.body = body
        self.headers = headers

    @property
    def request_id(self) -> str | None:
        """The server's id of the failed request: its ``X-Request-Id`` (else ``Request-Id``) header, or ``None``.

        Quote it when asking the API's support about a failure.
        """
        return request_id_of(self.headers)

    def __str__(self) -> str:
        text = super().__str__()
        where = f" ({self.method} {self.path})" if self.method else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{text}{where}{tries}"

    def __reduce__(self) -> tuple[object, ...]:
        state = dict(self.__dict__)
        if self.headers is not None:  # a proxy does not pickle; the dict under it does
            state["headers"] = CIMultiDict(self.headers)
        return (_rebuild, (type(self), self.args, state))


def _rebuild(cls: type[BaseException], args: tuple[object, ...], state: dict[str, object]) -> BaseException:
    """Unpickle an exception without calling its ``__init__`` (keyword-only arguments)."""
    exc = cls.__new__(cls)
    exc.args = args
    headers = state.get("headers")
    if isinstance(headers, CIMultiDict):
        state = {**state, "headers": CIMultiDictProxy(headers)}
    exc.__dict__.update(state)
    return exc


class APIConnectionError(APIError):
    """No usable response: connection refused or reset, or the body was cut short.

    Attributes:
        kind: ``"connect"`` (the request never reached the server),
            ``"disconnect"`` (dropped after the request may have been sent),
            ``"truncated"`` (the response body ended early) or ``"timeout"``.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "disconnect",
        method: str = "",
        path: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message, method=method, path=path, attempts=attempts)
        self.kind = kind


class APITimeoutError(APIConnectionError):
    """Connecting, or waiting for the response, took longer than the configured timeout."""

    def __init__(self, message: str, *, method: str = "", path: str = "", attempts: int = 1) -> None:
        super().__init__(message, kind="timeout", method=method, path=path, attempts=attempts)


class MalformedResponseError(APIError):
    """A response body that is not what the API documents: not JSON, larger than
    ``max_body_size``, or of the wrong shape. Never retried (asking again gets the same).

    Attributes:
        json_path: Where in the body the problem is, e.g. ``$.sims[3].imsis[0].imsi``
            (``$`` when the body as a whole is wrong, e.g. not JSON).
        status: The HTTP status of the response.
    """

    def __init__(
        self,
        message: str,
        *,
        json_path: str = "$",
        status: int = 200,
        method: str = "",
        path: str = "",
        attempts: int = 1,
        body: Any = None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path, attempts=attempts, body=body, headers=headers)
        self.json_path = json_path
        self.status = status


class APIStatusError(APIError):
    """The API answered with an error status.

    Attributes:
        status: The HTTP status code.
        message: The server's ``message`` from the error body, or the reason phrase.
        retry_after: Seconds the server asked us to wait (``Retry-After``), if it said.
        date: The response's ``Date`` header as sent (the time on the server's
            clock, e.g. ``"Tue, 15 Nov 1994 08:12:31 GMT"``), or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        path: str = "",
        attempts: int = 1,
        retry_after: float | None = None,
        date: str | None = None,
        body: Any = None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        super().__init__(
            f"HTTP {status}: {message}",
            method=method,
            path=path,
            attempts=attempts,
            body=body,
            headers=headers,
        )
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.date = date


class BadRequestError(APIStatusError):
    """400: the API rejected the parameters or body."""


class AuthenticationError(APIStatusError):
    """401: the API key or user id is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the credentials are valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no such package (or SIM)."""


class ConflictError(APIStatusError):
    """409: a package already exists for this SIM."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` says how long the server asked to wait."""


class ServerError(APIStatusError):
    """5xx: the API failed."""


class ActionRejectedError(APIError):
    """Activate or terminate answered with a JSON ``false``: the API did not do it."""


class ScanError(BetatelError):
    """A listing scan could not produce every item exactly once."""


class DriftError(ScanError):
    """The listing changed while it was being scanned, and the drift policy says to stop.

    Offset pagination over a changing listing can repeat or skip items, so the
    scan refuses to hand back a result it cannot vouch for.

    Attributes:
        total_before: ``total`` reported by the first page of the (last) pass.
        total_after: The different ``total`` a later page reported.
        offset: Offset of the page that reported the change.
        items_yielded: Items already handed to the caller before the error.
        duplicates_dropped: Items skipped because their key was already yielded.
        restarts: How many times the scan started over before giving up.
    """

    def __init__(
        self,
        *,
        total_before: int,
        total_after: int,
        offset: int,
        items_yielded: int = 0,
        duplicates_dropped: int = 0,
        restarts: int = 0,
    ) -> None:
        change = total_after - total_before
        super().__init__(
            f"listing changed during the scan: total was {total_before}, the page at offset "
            f"{offset} says {total_after} ({change:+d}); {items_yielded} items yielded, "
            f"{duplicates_dropped} duplicates dropped, {restarts} restarts"
        )
        self.total_before = total_before
        self.total_after = total_after
        self.offset = offset
        self.items_yielded = items_yielded
        self.duplicates_dropped = duplicates_dropped
        self.restarts = restarts

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class ExportError(BetatelError):
    """An export's file cannot be written, or its checkpoint cannot be resumed.

    Raised by ``client.<listing>.export()``. When writing fails (no permission,
    disk full, "File too large", a parent that is a file), the checkpoint saved
    last is left as it was and still holds: ``resume=True`` continues from it.

    Attributes:
        path: The file that cannot be written or resumed (as a string).
        reason: Why: the operating system's reason (``"Permission denied"``), or
            why the checkpoint cannot be continued.
    """

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status (``APIStatusError`` if none is specific)."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIStatusError)
