"""What a call's HTTP answer looked like: [`RawResponse`][betatel_async.RawResponse], and how a call's answers are recorded.

Strategy: ``client.with_raw_response`` does not run a second implementation
of the resources. Its methods are the plain methods wrapped by
`raw_method()`, which opens a `Recording` in a context variable for
the length of the call; the transport hands every answer of the call to it
(`record_answer()`, `record_failure()`), and the wrapper then builds
the [`RawResponse`][betatel_async.RawResponse] from the answer recorded last and the result the
plain method returned. A plain call finds no recording and pays one context
variable lookup per request. A context variable, not an attribute of the
transport, because calls on one client run concurrently, and the scans a call
starts (a create's read-back) run in tasks that inherit the call's context.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Generic, ParamSpec, TypeVar, final

import attrs
from multidict import CIMultiDictProxy

from ._errors import request_id_of

if TYPE_CHECKING:
    from ._transport import Response

__all__ = [
    "RawResponse",
    "Recording",
    "json_parser",
    "raw_method",
    "raw_response",
    "record_answer",
    "record_failure",
]

T = TypeVar("T")
P = ParamSpec("P")


@final
@attrs.frozen(slots=True, repr=False)
class RawResponse(Generic[T]):
    """The HTTP answer behind a call, and the call's result.

    Returned by the methods of ``client.with_raw_response`` and by
    ``client.request()``. For a call made of several requests (a create read
    back after an ambiguous failure, a PCR update's read, write and read
    again), ``status``, ``headers``, ``content`` and ``request_id`` are those of
    the answer the result came from: the last successful answer of the call
    (after a read-back, the read-back's last page); ``attempts`` and
    ``elapsed`` cover the whole call.

    Attributes:
        status: The HTTP status (2xx: an error status raises, as in a plain call).
        headers: The response's headers: read-only, case-insensitive, a name
            may repeat (``headers.getall("Set-Cookie")``).
        content: The response body as received (after decompression), ``b""``
            when empty.
        attempts: Requests the call made, retries and read-backs included
            (1: one request, answered at once).
        elapsed: Seconds from the call's start to its result, waits between
            retries included.
    """

    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    content: bytes = attrs.field(repr=False)
    attempts: int
    elapsed: float
    _parse: Callable[[], T] = attrs.field(repr=False, alias="parse")

    @property
    def request_id(self) -> str | None:
        """The server's id of the request: the first non-empty ``X-Request-Id`` or ``Request-Id`` header, else ``None``."""
        return request_id_of(self.headers)

    def __repr__(self) -> str:
        # Neither headers nor body: a server may echo what it was sent.
        return (
            f"RawResponse(status={self.status}, request_id={self.request_id!r}, "
            f"attempts={self.attempts}, elapsed={self.elapsed:.3f}, content=<{len(self.content)} bytes>)"
        )

    def parse(self) -> T:
        """The call's result: for ``with_raw_response`` the very object the plain call returns.

        For ``client.request()`` the JSON body, parsed on each call (``None``
        for an empty body).

        Raises:
            MalformedResponseError: ``client.request()`` only: the body is not JSON.
        """
        return self._parse()


def raw_response(
    answer: Response, parse: Callable[[], T], *, attempts: int, elapsed: float
) -> RawResponse[T]:
    """The [`RawResponse`][betatel_async.RawResponse] of a call whose result came from ``answer``."""
    return RawResponse(
        status=answer.status,
        headers=answer.headers,
        content=answer.content,
        attempts=attempts,
        elapsed=elapsed,
        parse=parse,
    )


class Recording:
    """The answers of one call made through ``with_raw_response``. Private.

    Attributes:
        answer: The last successful answer, or ``None`` before one.
        attempts: Requests made so far, answered or failed (a request
            cancelled in flight is not counted).
    """

    __slots__ = ("answer", "attempts")

    def __init__(self) -> None:
        self.answer: Response | None = None
        self.attempts = 0


_RECORDING: Final[ContextVar[Recording | None]] = ContextVar("betatel_async_recording", default=None)


def record_answer(response: Response) -> None:
    """Tell the call being recorded, if any, of a successful answer (it becomes the call's answer)."""
    recording = _RECORDING.get()
    if recording is not None:
        recording.answer = response
        recording.attempts += response.attempts


def record_failure(attempts: int) -> None:
    """Tell the call being recorded, if any, of a request that failed after ``attempts`` attempts."""
    recording = _RECORDING.get()
    if recording is not None:
        recording.attempts += attempts


def raw_method(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[RawResponse[T]]]:
    """``method``, returning the [`RawResponse`][betatel_async.RawResponse] of its call instead of its result.

    The call runs exactly as the plain one (checks, retries, read-backs,
    decoding) and raises what it raises; the raw response's ``parse()``
    returns the result it made.
    """

    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        recording = Recording()
        token = _RECORDING.set(recording)
        started = time.monotonic()
        try:
            result = await method(*args, **kwargs)
        finally:
            _RECORDING.reset(token)
        answer = recording.answer
        if answer is None:  # every method of the raw view returns only after an answer
            raise RuntimeError(f"{method.__qualname__} returned without an answer to record")
        parse = functools.partial(_given, result)
        return raw_response(answer, parse, attempts=recording.attempts, elapsed=time.monotonic() - started)

    functools.update_wrapper(call, method, assigned=("__module__", "__name__", "__qualname__"))
    call.__doc__ = (
        f"``{method.__qualname__}``, returning the call's [`RawResponse`][betatel_async.RawResponse]."
    )
    return call


def _given(value: T) -> T:
    return value


def json_parser(content: bytes, decode: Callable[[bytes], Any]) -> Callable[[], Any]:
    """A ``parse`` for [`RawResponse`][betatel_async.RawResponse]: ``None`` for an empty body, else ``decode(content)``."""
    return functools.partial(decode, content) if content else functools.partial(_given, None)
