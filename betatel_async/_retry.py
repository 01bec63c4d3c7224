"""Retry decisions: when to retry, how long to wait, and how much retrying to allow.

Nothing here does I/O, reads a clock or draws random numbers on its own: the
transport passes in what happened (status, error kind, elapsed time, a
``Retry-After`` value) and a ``rand`` callable, and gets back a decision. That
makes every rule testable over thousands of generated cases in milliseconds.

Strategy: one failed attempt goes through three independent gates, in order.

1. `decide()` answers "may this request be sent again, and after how long?"
   from the [`RetryPolicy`][betatel_async.RetryPolicy]: only failures that are safe to repeat are
   retried (anything idempotent on transient errors and retryable statuses; a
   non-idempotent create only when the connection was never established), the
   wait is capped exponential backoff with full jitter, never shorter than the
   server's ``Retry-After``, and the attempt count and overall deadline bound it.
2. [`RetryBudget`][betatel_async.RetryBudget] answers "can the client as a whole afford another
   retry?": a token bucket shared by every call on a client, drained by retries
   and refilled by successes (botocore's standard-mode retry quota). When the
   API is down for everyone, retries stop after a short warm-up instead of
   tripling the load.
3. [`AdaptiveLimit`][betatel_async.AdaptiveLimit] is separate from retries: AIMD state a scan uses to
   shrink its concurrency on 429s and grow it back on successes.

The transport uses them like this::

    decision = decide(policy=policy, attempt=n, ..., rand=rng.random)
    if decision.retry and budget.acquire(kind):
        cost = budget.cost(kind)      # remembered for the refund
        await sleep(decision.delay)   # and send again
    ...
    budget.release_success(cost)      # on the eventual 2xx (None if no retry)

``Retry-After`` values come from `parse_retry_after()` (delay-seconds or an
HTTP-date), `parse_retry_after_ms()` (the non-standard ``retry-after-ms``)
or `retry_after_from_headers()` (both, ``retry-after-ms`` first).
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

import attrs

from ._errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "ERROR_KINDS",
    "AdaptiveLimit",
    "RetryBudget",
    "RetryDecision",
    "RetryPolicy",
    "decide",
    "parse_retry_after",
    "parse_retry_after_ms",
    "retry_after_from_headers",
]

DEFAULT_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses an idempotent request is retried on by default: request timeout,
rate limited, and the transient server and gateway errors."""

ERROR_KINDS: Final = frozenset({"connect", "timeout", "disconnect", "truncated", "malformed"})
"""The failure kinds `decide()` understands when no usable response arrived:

- ``"connect"``: the connection was never established; the request certainly
  did not reach the server.
- ``"timeout"``: no answer in time; the server may have acted on the request.
- ``"disconnect"``: the connection dropped after the request may have been sent.
- ``"truncated"``: the response body was cut short (fewer bytes than its
  ``Content-Length``, or the connection dropped mid-body).
- ``"malformed"``: the response body is complete but not the JSON it should
  be, or larger than the client's ``max_body_size``.
"""

# Failures worth repeating for a request that is safe to repeat. "malformed" is
# not among them: a complete body that is not JSON is most often a proxy's
# error page or a server bug, and asking again returns the same thing.
_TRANSIENT_KINDS: Final = frozenset({"connect", "timeout", "disconnect", "truncated"})

# delay-seconds as RFC 9110 writes it (1*DIGIT), plus an optional fraction,
# which some servers send. ASCII digits only: float() would also accept "nan",
# "inf", "1e3", "1_000", "+5" and non-ASCII digits, none of which is a delay.
_DELAY_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


# -- policy -------------------------------------------------------------------


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_attempts(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise InvalidArgumentTypeError(attribute.name, f"expected an int, got {type(value).__name__}")
    if value < 1:
        raise InvalidArgumentError(attribute.name, f"must be >= 1, got {value}")


def _check_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    """A finite, non-negative number of seconds."""
    if not _is_real(value):
        raise InvalidArgumentTypeError(
            attribute.name, f"expected a number of seconds, got {type(value).__name__}"
        )
    if not (0 <= value < math.inf):
        raise InvalidArgumentError(attribute.name, f"must be finite and >= 0, got {value!r}")


def _check_seconds_or_inf(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    """A non-negative number of seconds; ``math.inf`` allowed (no cap)."""
    if not _is_real(value):
        raise InvalidArgumentTypeError(
            attribute.name, f"expected a number of seconds, got {type(value).__name__}"
        )
    if not value >= 0:  # also rejects NaN
        raise InvalidArgumentError(attribute.name, f"must be >= 0, got {value!r}")


def _check_deadline(_: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    if not _is_real(value):
        raise InvalidArgumentTypeError(
            attribute.name, f"expected a number of seconds or None, got {type(value).__name__}"
        )
    if not value > 0:  # also rejects NaN
        raise InvalidArgumentError(attribute.name, f"must be > 0 or None, got {value!r}")


def _to_status_set(value: Iterable[int]) -> frozenset[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentTypeError(
            "retry_statuses", f"expected a set of ints, got {type(value).__name__}"
        )
    return frozenset(value)


def _check_statuses(_: object, attribute: attrs.Attribute[frozenset[int]], value: frozenset[int]) -> None:
    for status in value:
        if type(status) is not int:
            raise InvalidArgumentTypeError(attribute.name, f"expected ints, got {type(status).__name__}")
        # A 1xx/2xx/3xx is never a failure to retry; a typo like 5003 is caught here.
        if not 400 <= status <= 599:
            raise InvalidArgumentError(attribute.name, f"must hold error statuses (400-599), got {status}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How one request is retried: attempt count, backoff, Retry-After and deadline.

    Immutable and validated on construction; bad values raise
    [`InvalidArgumentError`][betatel_async.InvalidArgumentError] (a ``ValueError``) or
    [`InvalidArgumentTypeError`][betatel_async.InvalidArgumentTypeError] (a ``TypeError``) naming
    the field. To change one setting, use ``attrs.evolve``, which validates
    again::

        policy = attrs.evolve(RetryPolicy(), max_attempts=5, deadline=60.0)

    Attributes:
        max_attempts: Total attempts including the first (>= 1; 1 = never
            retry). Default 3.
        backoff_base: Ceiling of the first backoff, in seconds (>= 0). The
            ceiling doubles with each failed attempt. Default 0.5.
        backoff_max: Largest backoff ceiling, in seconds (>= 0). Default 8.0.
        max_retry_after: Longest ``Retry-After`` the client waits for, in
            seconds (>= 0; ``math.inf`` = any). A longer one is not waited for:
            the call fails at once, and the error carries the value.
            Default 30.0.
        deadline: Overall budget in seconds across all attempts and waits of
            one call (> 0), or ``None`` (default) for no limit beyond
            ``max_attempts``. A retry whose wait would end past the deadline is
            not made. Each attempt's own timeout is the transport's business.
        retry_statuses: HTTP statuses (400-599) on which an idempotent request
            is retried. Default 408, 429, 500, 502, 503, 504. Any iterable of
            ints is accepted and stored as a ``frozenset``.
    """

    max_attempts: int = attrs.field(default=3, validator=_check_attempts)
    backoff_base: float = attrs.field(default=0.5, validator=_check_seconds)
    backoff_max: float = attrs.field(default=8.0, validator=_check_seconds)
    max_retry_after: float = attrs.field(default=30.0, validator=_check_seconds_or_inf)
    deadline: float | None = attrs.field(default=None, validator=_check_deadline)
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=_to_status_set, validator=_check_statuses
    )

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries (``max_attempts=1``)."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        """The wait before the next attempt: capped exponential backoff, full jitter.

        ``rand() * min(backoff_max, backoff_base * 2 ** (attempt - 1))``, as in
        the AWS Architecture Blog's "Exponential Backoff and Jitter": spreading
        each wait uniformly over ``[0, ceiling]`` keeps clients that failed
        together from retrying together.

        Args:
            attempt: The number of the attempt that just failed, 1-based.
            rand: Returns a float in ``[0.0, 1.0]``, e.g. ``random.Random().random``.

        Returns:
            Seconds to wait, in ``[0, min(backoff_max, backoff_base * 2 ** (attempt - 1))]``.

        Raises:
            InvalidArgumentError: ``attempt`` < 1 or ``rand()`` outside ``[0, 1]``.
        """
        if type(attempt) is not int or attempt < 1:
            raise InvalidArgumentError("attempt", f"must be an int >= 1, got {attempt!r}")
        r = rand()
        if not 0.0 <= r <= 1.0:
            raise InvalidArgumentError("rand", f"must return a float in [0, 1], got {r!r}")
        try:
            ceiling = min(self.backoff_max, math.ldexp(self.backoff_base, attempt - 1))
        except OverflowError:  # base * 2**(attempt-1) is past any float: capped
            ceiling = self.backoff_max
        return r * ceiling


# -- Retry-After --------------------------------------------------------------


def _non_negative_number(text: str) -> float | None:
    text = text.strip()
    if not _DELAY_SECONDS.fullmatch(text):
        return None
    value = float(text)
    # A digit string too long for a float becomes inf: no usable hint.
    return value if math.isfinite(value) else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from a ``Retry-After`` header value.

    Accepts delay-seconds (``"120"``; a fraction such as ``"1.5"`` too) and an
    HTTP-date in any form `email.utils.parsedate_to_datetime()` reads
    (IMF-fixdate, RFC 850, asctime; a date without a zone is taken as UTC).
    Surrounding whitespace is ignored.

    Args:
        value: The header value, or ``None`` when the header is absent.
        now: The current time, timezone-aware, against which an HTTP-date is
            measured. Default: the current UTC time.

    Returns:
        Seconds (finite, >= 0), ``0.0`` for an HTTP-date in the past, or
        ``None`` when there is no usable value: absent, empty, negative, not a
        number or date (``"nan"``, ``"inf"``, ``"1e3"`` and ``"+5"`` count as
        garbage), or a number too large for a float.

    Raises:
        InvalidArgumentError: ``now`` is a naive datetime.
    """
    if value is None:
        return None
    seconds = _non_negative_number(value)
    if seconds is not None:
        return seconds
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgumentError("now", "must be timezone-aware")
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_retry_after_ms(value: str | None) -> float | None:
    """Seconds to wait, from the non-standard ``retry-after-ms`` header.

    Some APIs (OpenAI's among them) send the wait in milliseconds this way.

    Args:
        value: The header value in milliseconds (``"1500"``; a fraction is
            accepted), or ``None`` when the header is absent.

    Returns:
        The wait in **seconds** (``"1500"`` gives ``1.5``), or ``None`` for an
        absent, empty, negative or non-numeric value.
    """
    if value is None:
        return None
    milliseconds = _non_negative_number(value)
    return None if milliseconds is None else milliseconds / 1000.0


def retry_after_from_headers(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from a response's ``retry-after-ms`` or ``Retry-After``.

    ``retry-after-ms`` wins when it holds a usable value (it is the more
    precise); otherwise ``Retry-After`` is parsed by `parse_retry_after()`.

    Args:
        headers: The response headers. Lookups use the names as written here
            (``"retry-after-ms"``, ``"Retry-After"``), so pass a
            case-insensitive mapping such as aiohttp's ``response.headers``.
        now: As for `parse_retry_after()`.

    Returns:
        Seconds (finite, >= 0), or ``None`` if neither header is usable.
    """
    seconds = parse_retry_after_ms(headers.get("retry-after-ms"))
    if seconds is not None:
        return seconds
    return parse_retry_after(headers.get("Retry-After"), now=now)


# -- decide -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RetryDecision:
    """What to do after a failed attempt.

    Attributes:
        retry: Whether to send the request again (subject to the client's
            [`RetryBudget`][betatel_async.RetryBudget]).
        delay: Seconds to wait before the next attempt; ``0.0`` when
            ``retry`` is false.
        reason: One line for logs and error reports saying why, e.g.
            ``"retry: status 503"`` or ``"no retry: attempts exhausted (3 of 3)"``.
    """

    retry: bool
    delay: float
    reason: str


def _give_up(reason: str) -> RetryDecision:
    return RetryDecision(retry=False, delay=0.0, reason=f"no retry: {reason}")


def _cause(
    *,
    method: str,
    status: int | None,
    error_kind: str | None,
    idempotent: bool,
    request_sent: bool | None,
    retry_statuses: frozenset[int],
) -> tuple[bool, str]:
    """Whether the failure itself is worth retrying, and how to say so."""
    what = f"status {status}" if status is not None else (error_kind or "no failure")
    if not idempotent:
        # Repeating a create that reached the server could make a second
        # package. Only a connection that never opened proves it did not; a
        # transport that knows otherwise (request_sent=True) overrides the kind.
        if status is None and error_kind == "connect" and request_sent is not True:
            return True, "connect"
        return False, f"{method} is not idempotent and may have reached the server ({what})"
    if status is not None and status in retry_statuses:
        return True, what
    if status is not None and status >= 400:
        # A definitive answer (400, 401, 403, 404, 409, ...): asking again
        # gets the same one, even if its body was cut short.
        return False, f"{what} is not retryable"
    if error_kind in _TRANSIENT_KINDS:
        return True, error_kind
    if error_kind == "malformed":
        return False, "malformed response"
    return False, f"not a failure ({what})"


def decide(
    *,
    policy: RetryPolicy,
    attempt: int,
    method: str,
    status: int | None,
    error_kind: str | None,
    retry_after: float | None,
    elapsed: float,
    rand: Callable[[], float],
    idempotent: bool,
    request_sent: bool | None,
) -> RetryDecision:
    """Decide whether a failed attempt is retried, and after how long.

    The rules, in order:

    1. **Is the failure retryable?** A non-idempotent request (a create) is
       retried only on ``error_kind="connect"`` with no response, unless
       ``request_sent`` is ``True``: anything else may have created something,
       and reconciling that is the resources layer's job. An idempotent request
       is retried on a status in ``policy.retry_statuses``, and, when the status
       (if any) is not an error, on ``"connect"``, ``"timeout"``,
       ``"disconnect"`` and ``"truncated"``. Other error statuses (400, 401,
       403, 404, 409, ...) and ``"malformed"`` are never retried.
    2. **Attempts:** no retry once ``attempt >= policy.max_attempts``.
    3. **Retry-After:** no retry if ``retry_after > policy.max_retry_after``
       (the caller fails with the value instead of waiting).
    4. **Delay** = ``policy.backoff(attempt, rand)``, raised to ``retry_after``
       when that is longer: the server's hint is a lower bound.
    5. **Deadline:** no retry if ``elapsed + delay > policy.deadline``.

    ``rand`` is called only when a delay is computed (step 4).

    Args:
        policy: The retry policy of this call.
        attempt: Number of the attempt that just failed, 1-based.
        method: HTTP method, used in the reason text (``"POST"``).
        status: HTTP status of the response, or ``None`` if none was received.
        error_kind: One of `ERROR_KINDS` if the attempt failed without a
            usable response, else ``None``.
        retry_after: The server's ``Retry-After`` in seconds (>= 0), or ``None``.
        elapsed: Seconds since the first attempt started (>= 0).
        rand: Returns a float in ``[0.0, 1.0]``; see [`RetryPolicy.backoff()`][betatel_async.RetryPolicy.backoff].
        idempotent: Whether repeating the request is harmless (GET; activate
            and terminate when the caller says so).
        request_sent: What the transport knows of whether the request reached
            the wire: ``True`` vetoes retrying a non-idempotent request even on
            ``"connect"``; ``False`` and ``None`` defer to ``error_kind``.

    Returns:
        The decision; ``delay`` is ``0.0`` when ``retry`` is false.

    Raises:
        InvalidArgumentError: ``attempt`` < 1, ``elapsed`` negative or not
            finite, ``retry_after`` negative or not finite, or an unknown
            ``error_kind``.
    """
    if type(attempt) is not int or attempt < 1:
        raise InvalidArgumentError("attempt", f"must be an int >= 1, got {attempt!r}")
    if not 0 <= elapsed < math.inf:
        raise InvalidArgumentError("elapsed", f"must be finite and >= 0, got {elapsed!r}")
    if retry_after is not None and not 0 <= retry_after < math.inf:
        raise InvalidArgumentError("retry_after", f"must be finite and >= 0 or None, got {retry_after!r}")
    if error_kind is not None and error_kind not in ERROR_KINDS:
        raise InvalidArgumentError(
            "error_kind", f"must be one of {sorted(ERROR_KINDS)} or None, got {error_kind!r}"
        )

    retryable, why = _cause(
        method=method.upper(),
        status=status,
        error_kind=error_kind,
        idempotent=idempotent,
        request_sent=request_sent,
        retry_statuses=policy.retry_statuses,
    )
    if not retryable:
        return _give_up(why)
    if attempt >= policy.max_attempts:
        return _give_up(f"attempts exhausted ({attempt} of {policy.max_attempts}) after {why}")
    if retry_after is not None and retry_after > policy.max_retry_after:
        return _give_up(f"Retry-After {retry_after:g} s exceeds max_retry_after {policy.max_retry_after:g} s")
    delay = policy.backoff(attempt, rand)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if policy.deadline is not None and elapsed + delay > policy.deadline:
        return _give_up(
            f"waiting {delay:.3g} s after {elapsed:.3g} s would pass the "
            f"{policy.deadline:g} s deadline ({why})"
        )
    return RetryDecision(retry=True, delay=delay, reason=f"retry: {why}")


# -- client-wide retry budget -------------------------------------------------


def _check_positive_int(name: str, value: object) -> int:
    if type(value) is not int:
        raise InvalidArgumentTypeError(name, f"expected an int, got {type(value).__name__}")
    if value < 1:
        raise InvalidArgumentError(name, f"must be >= 1, got {value}")
    return value


class RetryBudget:
    """A client-wide retry quota: a token bucket that retries drain and successes refill.

    Mirrors the retry quota of botocore's "standard" retry mode
    (``botocore/retries/quota.py`` and ``standard.py``):

    - The bucket starts full, at ``capacity`` tokens (500).
    - Every retry must first `acquire()` its cost: ``retry_cost`` (5), or
      ``timeout_retry_cost`` (10) when the failure was a timeout, which held a
      connection and server capacity for the whole timeout. If the bucket holds
      less, the retry is not made and the call fails with its last error.
    - A failed attempt that is not retried refunds nothing.
    - A successful call refunds, via `release_success()`, the cost of its
      last retry if it was retried (the retry paid off, so it was free), or
      ``success_refund`` (1) if it succeeded on the first attempt. The bucket
      never holds more than ``capacity``.

    The arithmetic, with the defaults. When the API answers 503 to everything,
    nothing succeeds, so nothing is refunded: the bucket pays for at most
    ``capacity / retry_cost = 500 / 5 = 100`` retries (50 if they are all
    timeouts), then every call makes exactly one attempt. N logical calls with
    ``max_attempts=3`` therefore send at most ``N + 100`` requests instead of
    ``3 N``: that is at most 1.5 N once N >= 200, and the excess is the
    warm-up of at most 100 retries. In steady state the outage adds no load at
    all. When some calls still succeed on their first attempt, each refunds 1
    token, which pays for a fifth of a retry: ``s`` first-try successes fund at
    most ``s / 5`` retries of failing calls, so the sustained rate stays under
    1.2 requests per call, plus the warm-up. A retry that then succeeds gets its
    cost back, so retries that work are never rationed. After an outage, every
    clean call puts one token back; 500 of them refill an empty bucket.

    Used from asyncio tasks on one event loop: the methods never await, so each
    runs to completion without interleaving and needs no lock. Not thread-safe.

    Args:
        capacity: Tokens when full (>= 1). Default 500.
        retry_cost: Tokens one retry costs (>= 1). Default 5.
        timeout_retry_cost: Tokens a retry after a timeout costs (>= 1). Default 10.
        success_refund: Tokens a call that succeeded without retrying puts back
            (>= 1). Default 1.

    Raises:
        InvalidArgumentError: An argument is below 1.
        InvalidArgumentTypeError: An argument is not an int.
    """

    __slots__ = ("_available", "_capacity", "_retry_cost", "_success_refund", "_timeout_retry_cost")

    def __init__(
        self,
        *,
        capacity: int = 500,
        retry_cost: int = 5,
        timeout_retry_cost: int = 10,
        success_refund: int = 1,
    ) -> None:
        self._capacity = _check_positive_int("capacity", capacity)
        self._retry_cost = _check_positive_int("retry_cost", retry_cost)
        self._timeout_retry_cost = _check_positive_int("timeout_retry_cost", timeout_retry_cost)
        self._success_refund = _check_positive_int("success_refund", success_refund)
        self._available = capacity

    def __repr__(self) -> str:
        return f"RetryBudget(available={self._available}, capacity={self._capacity})"

    @property
    def available(self) -> int:
        """Tokens in the bucket now, in ``[0, capacity]``."""
        return self._available

    @property
    def capacity(self) -> int:
        """Tokens when full."""
        return self._capacity

    def cost(self, kind: str) -> int:
        """Tokens a retry after a failure of this kind costs.

        Args:
            kind: ``"timeout"`` costs ``timeout_retry_cost``; any other kind
                (``"connect"``, ``"disconnect"``, ``"truncated"``, a status, or
                a caller's own label such as ``"error"``) costs ``retry_cost``.
        """
        return self._timeout_retry_cost if kind == "timeout" else self._retry_cost

    def acquire(self, kind: str) -> bool:
        """Take the cost of one retry from the bucket, if it holds enough.

        Call it only once `decide()` has said to retry, and remember
        ``cost(kind)`` to pass to `release_success()` later.

        Args:
            kind: The failure being retried; see `cost()`.

        Returns:
            ``True`` if the tokens were taken and the retry may go ahead;
            ``False`` if the budget is exhausted (nothing is taken): don't retry.
        """
        amount = self.cost(kind)
        if amount > self._available:
            return False
        self._available -= amount
        return True

    def release_success(self, retried_cost: int | None) -> None:
        """Refund tokens after a call succeeded (a 2xx response).

        Args:
            retried_cost: The cost acquired for the call's last retry, or
                ``None`` if the call succeeded on its first attempt (then
                ``success_refund`` is put back). The bucket is capped at
                ``capacity``.

        Raises:
            InvalidArgumentError: ``retried_cost`` is negative.
        """
        if retried_cost is None:
            amount = self._success_refund
        elif retried_cost < 0:
            raise InvalidArgumentError("retried_cost", f"must be >= 0, got {retried_cost}")
        else:
            amount = retried_cost
        self._available = min(self._capacity, self._available + amount)


# -- adaptive concurrency -----------------------------------------------------


class AdaptiveLimit:
    """Concurrency for a scan that backs off on throttling: AIMD, without a clock.

    Starts at ``limit``. A throttle (429) halves `current` (never below
    1); ``current`` consecutive successes add 1 (never above ``limit``), so
    growth takes about one round of requests per step, as TCP's congestion
    window does.

    A scan has up to ``current`` requests in flight, so one overload shows up
    as a burst of 429s from the same wave. Only the first of them counts: after
    a decrease, throttles are ignored until the limit has grown once or
    ``limit`` successes have been seen since the decrease. An ignored throttle
    still resets the run of consecutive successes.

    Used from asyncio tasks on one event loop; the methods never await.

    Args:
        limit: The ceiling, and the starting value (>= 1).

    Raises:
        InvalidArgumentError: ``limit`` < 1.
        InvalidArgumentTypeError: ``limit`` is not an int.
    """

    __slots__ = ("_armed", "_current", "_limit", "_since_decrease", "_streak")

    def __init__(self, limit: int) -> None:
        self._limit = _check_positive_int("limit", limit)
        self._current = limit
        self._streak = 0  # consecutive successes since the last change or throttle
        self._since_decrease = 0  # successes since the last decrease
        self._armed = True  # whether the next throttle may decrease

    def __repr__(self) -> str:
        return f"AdaptiveLimit(current={self._current}, limit={self._limit})"

    @property
    def limit(self) -> int:
        """The ceiling."""
        return self._limit

    @property
    def current(self) -> int:
        """How many requests may be in flight now, in ``[1, limit]``."""
        return self._current

    def on_throttle(self) -> bool:
        """Record a throttled response (429): halve, once per window.

        Returns:
            ``True`` if `current` went down.
        """
        self._streak = 0
        if not self._armed:
            return False
        before = self._current
        self._current = max(1, before // 2)
        self._armed = False
        self._since_decrease = 0
        return self._current < before

    def on_success(self) -> bool:
        """Record a successful response: +1 after ``current`` successes in a row.

        Returns:
            ``True`` if `current` went up.
        """
        self._streak += 1
        if not self._armed:
            self._since_decrease += 1
            if self._since_decrease >= self._limit:
                self._armed = True
        if self._streak < self._current:
            return False
        self._streak = 0
        if self._current >= self._limit:
            return False
        self._current += 1
        self._armed = True
        return True
