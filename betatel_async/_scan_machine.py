"""The rules of a concurrent offset scan, as a pure state machine.

Strategy: built the way h11 and aioquic build a protocol. Nothing here does
I/O, awaits, or reads a clock: the driver (``_paginate.py``) feeds
`ScanMachine` events (a request's answer arrived, a request failed,
the consumer read a page and what it said, the keys of the items it built),
passing the time as an argument, and asks `ScanMachine.next_action()`
what to do next: send a request for a window, cancel a request, give the
consumer a page to read, to dedupe or to hand on, remember a total, start
over, fail, finish, or wait. The driver performs the action and decides
nothing, so every rule of a scan (what is fetched when, how many requests
are in flight, the order pages are handed on in, what drift does, which
failure ends the scan and when) is here, and is tested on this module alone
against simulated servers (``tests/test_machine.py``).

Two layers:

1. `ScanPlan`: one pass over the listing. Which window ``(offset,
   count)`` to fetch next, the order arrived pages are taken in, and what
   each page's ``total`` and length teach (the end, the server's page cap,
   drift, a page that cannot be right).
2. `ScanMachine`: a whole scan. Request ids, the limit of requests in
   flight, passes (a restart begins a new plan), the drift policy and its
   restarts, the check of each page's ``offset``, deduplication by key after
   a restart, which failure ends the scan and when (after the pages before
   it), cancelling what is no longer needed, and the [`ScanReport`][betatel_async.ScanReport].
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Final, Generic, Literal, TypeAlias, TypeVar

import attrs

from ._errors import DriftError, ScanError

__all__ = [
    "Action",
    "Build",
    "Cancel",
    "Done",
    "Drift",
    "DriftPolicy",
    "Fail",
    "Fetch",
    "Hand",
    "Latencies",
    "NoHedgeBudget",
    "Preconnect",
    "Read",
    "Remember",
    "Restart",
    "ScanMachine",
    "ScanPlan",
    "ScanReport",
    "Wait",
    "Window",
]

P = TypeVar("P")

DriftPolicy = Literal["raise", "restart"]
"""What a scan does when a page's ``total`` differs from the first page's.

- ``"raise"``: stop and raise [`DriftError`][betatel_async.DriftError] (after the
  items from pages read before the change).
- ``"restart"``: start the listing over (at most ``max_restarts`` times),
  skipping items whose key was already yielded. Every item present when the
  last page the scan used was answered is yielded exactly once (a change
  after that is seen by no offset scan); an item deleted during the scan may
  have been yielded before it was deleted. Keeps the keys of yielded items in
  memory, and fails with [`ScanError`][betatel_async.ScanError] if one pass of
  the listing holds a key twice (the scan could then not yield ``total``
  distinct items).
"""

Policy = Literal["raise", "restart", "snapshot"]
"""A [`DriftPolicy`][betatel_async.DriftPolicy], or ``"snapshot"`` (private: ``all()``, ``status()``):
start over and have the consumer throw away what it kept (no deduplication)."""


@attrs.frozen(slots=True)
class Window:
    """A request for ``count`` items starting at ``offset``."""

    offset: int
    count: int


@attrs.frozen(slots=True)
class Drift:
    """A page reported a ``total`` other than the first page's."""

    total_before: int
    total_after: int
    offset: int


class ScanPlan(Generic[P]):
    """Which windows to fetch and in which order pages are taken. Pure.

    A page goes through three steps: it *arrives* (`on_arrival()`, its
    body not yet read), it is *taken* (`take()`: in offset order, or any
    order with ``ordered=False``), and the taker *digests* it
    (`on_page()`: its ``total`` and number of items). Only digested pages
    teach the plan: the first one gives ``total`` (no other window is planned
    before it, unless an ``expected_total`` is given), a short one before the
    end schedules the rest of its window and teaches the server's cap, one
    with another ``total`` is drift. A request that failed is reported with
    `on_failure()`.

    Args:
        page_size: Items to ask for per request.
        lookahead: Ordered: how many items past the taker's position (the
            end of the last page taken) a window may start. Unordered: how
            many items may be in flight or arrived and not yet taken.
        ordered: Take pages in offset order (``True``) or as they arrive.
        start: The offset the scan starts at.
        expected_total: The ``total`` the listing is expected to have (the
            last one seen), or ``None``. Known, the first windows go out
            together instead of the first page alone: full pages up to
            ``expected_total`` (within the look-ahead) are planned until a
            page arrives or a request fails, so no more than one wave of
            requests is a guess. The first page digested still gives
            ``total``. A guessed window that turns out to start past the end
            is counted in `discarded` and is not needed: its page is
            dropped unread, `finished` does not wait for its request
            (listed in `discarded_in_flight`, for the caller to cancel), and a
            failure of it does not matter. (Every page the scan uses is
            still checked against the first page's ``total``: a change only
            a page past the end could show happened after all of them were
            answered, which a scan without the hint would not see either.)
            A guessed window whose request failed before ``total`` was
            known is fetched again if it lies before the end. A listing that
            grew is covered by the windows planned after the first page, as
            without the hint.
    """

    def __init__(
        self,
        *,
        page_size: int,
        lookahead: int,
        ordered: bool = True,
        start: int = 0,
        expected_total: int | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if lookahead < page_size:
            raise ValueError("lookahead must be at least one page")
        if expected_total is not None and expected_total < 0:
            raise ValueError("expected_total must be >= 0")
        self.page_size = page_size
        self.lookahead = lookahead
        self.ordered = ordered
        self.total: int | None = None
        self.cap: int | None = None
        self._start = start
        self._next = start  # lowest offset never planned (past the remainders)
        self._remainders: list[tuple[int, int]] = []  # heap of (offset, count)
        self._in_flight: dict[int, int] = {}  # offset -> count asked
        self._in_flight_items = 0
        self._arrived: dict[int, tuple[Window, P]] = {}  # offset -> (window, payload)
        self._arrived_items = 0  # counted as asked: their length is not known yet
        self._taken: Window | None = None  # taken, not yet digested
        self.position = start  # ordered: every item below this offset was taken and digested
        self.items_digested = 0
        self._first_planned = False
        self._expected = expected_total
        self._guessing = expected_total is not None  # until a page arrives or a request fails
        self._end = 0  # once total is known: max(total, start), where windows stop
        self._discarded_in_flight: set[int] = set()  # offsets in flight that start past the end
        self._unjudged: dict[int, Window] = {}  # guessed windows that failed before total was known
        self.discarded = 0  # guessed windows that started past the end

    @property
    def in_flight(self) -> int:
        """Windows handed out and not yet arrived (past the end or not)."""
        return len(self._in_flight) + len(self._discarded_in_flight)

    @property
    def buffered(self) -> int:
        """Items (as asked) of pages arrived and not yet taken."""
        return self._arrived_items

    @property
    def discarded_in_flight(self) -> frozenset[int]:
        """Offsets of guessed requests in flight that turned out to start past the end (see `discarded`)."""
        return frozenset(self._discarded_in_flight)

    @property
    def finished(self) -> bool:
        """Every item up to ``total`` was received, taken and digested.

        Requests past the end still in flight do not count: they are not needed.
        """
        if self.total is None or self._in_flight or self._remainders or self._arrived or self._taken:
            return False
        return self._next >= self.total

    def past_end(self, window: Window) -> bool:
        """Whether ``window`` is a guess that started past the end (known once ``total`` is)."""
        return self.total is not None and self._past(window.offset)

    def _past(self, offset: int) -> bool:
        # The first window is never a guess: it is what teaches ``total``.
        return offset >= self._end and offset != self._start

    def has_ready(self) -> bool:
        """Whether `take()` would return a page now."""
        if self._taken is not None:
            return False
        return (self.position in self._arrived) if self.ordered else bool(self._arrived)

    def has_window(self) -> bool:
        """Whether `next_window()` would return a window now."""
        if self.total is None:
            return not self._first_planned or self._may_guess()
        if self._remainders and self._fits(self._remainders[0][1], remainder=True):
            return True
        return self._next < self.total and self._fits(self._next_size(self.total), remainder=False)

    def _may_guess(self) -> bool:
        # Before any page arrived, with an expected total: full pages up to
        # it, within the look-ahead (one wave: a worker whose page came back
        # waits for the total rather than guess again).
        expected = self._expected
        return (
            self._guessing
            and expected is not None
            and self._next < expected
            and self._fits(self.page_size, remainder=False)
        )

    def _next_size(self, total: int) -> int:
        size = min(self.page_size, total - self._next)
        return size if self.cap is None else min(size, self.cap)

    def _fits(self, count: int, *, remainder: bool) -> bool:
        # Ordered, a window may start up to ``lookahead`` items past the
        # taker's position; the remainder of a short page is where the taker
        # waits, so nothing holds it back. Unordered, the window's items plus
        # those in flight or arrived and not taken may not pass ``lookahead``.
        if self.ordered:
            return remainder or self._next < self.position + self.lookahead
        return self._arrived_items + self._in_flight_items + count <= self.lookahead

    def next_window(self) -> Window | None:
        """The next window to fetch, or ``None`` if none may start now.

        ``None`` means: wait for a page to be digested (the total is not known
        yet, or the look-ahead bound is reached) or the plan is complete.
        """
        if self.total is None:
            if self._first_planned and not self._may_guess():
                return None
            self._first_planned = True
            window = Window(self._next, self.page_size)
            self._next += self.page_size
            return self._hand_out(window)
        if self._remainders and self._fits(self._remainders[0][1], remainder=True):
            # Remainders of short pages sit at the taker's position (or near
            # it): fetch them before anything further ahead.
            offset, count = heapq.heappop(self._remainders)
            return self._hand_out(Window(offset, count))
        if self._next >= self.total:
            return None
        size = self._next_size(self.total)
        if not self._fits(size, remainder=False):
            return None
        window = Window(self._next, size)
        self._next += size
        return self._hand_out(window)

    def _hand_out(self, window: Window) -> Window:
        self._in_flight[window.offset] = window.count
        self._in_flight_items += window.count
        return window

    def on_arrival(self, window: Window, payload: P) -> None:
        """The answer to ``window`` arrived: it waits to be taken (dropped if past the end)."""
        self._guessing = False
        if window.offset in self._discarded_in_flight:
            self._discarded_in_flight.discard(window.offset)
            return
        self._in_flight_items -= self._in_flight.pop(window.offset)
        self._arrived[window.offset] = (window, payload)
        self._arrived_items += window.count

    def on_failure(self, window: Window) -> bool:
        """The request for ``window`` failed (after its retries): whether the scan must fail.

        Not if the window started past the end, or may have (a guess made
        before ``total`` was known: it is judged when ``total`` is, and
        fetched again if it lies before the end).
        """
        offset = window.offset
        if offset in self._discarded_in_flight:
            self._discarded_in_flight.discard(offset)
            return False
        if self.total is not None or offset == self._start:
            return True
        self._guessing = False
        self._in_flight_items -= self._in_flight.pop(offset)
        self._unjudged[offset] = window
        return False

    def _judge_guesses(self) -> None:
        # ``total`` was just learned: guessed windows that start past the end
        # are dropped if they arrived, let go if they are in flight (or
        # failed); a failed guess before the end is fetched again.
        for offset in [offset for offset in self._arrived if self._past(offset)]:
            window, _ = self._arrived.pop(offset)
            self._arrived_items -= window.count
            self.discarded += 1
        for offset in [offset for offset in self._in_flight if self._past(offset)]:
            self._in_flight_items -= self._in_flight.pop(offset)
            self._discarded_in_flight.add(offset)
            self.discarded += 1
        for offset, window in self._unjudged.items():
            if self._past(offset):
                self.discarded += 1
            else:
                heapq.heappush(self._remainders, (offset, min(window.count, self._end - offset)))
        self._unjudged.clear()

    def take(self) -> tuple[Window, P] | None:
        """The next page to digest, with its window, or ``None`` if it has not arrived.

        The caller reads the page and calls `on_page()` before taking another.
        """
        if not self.has_ready():
            return None
        offset = self.position if self.ordered else next(iter(self._arrived))
        window, payload = self._arrived.pop(offset)
        self._arrived_items -= window.count
        self._taken = window
        return window, payload

    def on_page(self, window: Window, total: int, n_items: int) -> Drift | None:
        """Digest the taken page of ``window``: the ``total`` it reported and the items it held.

        Returns:
            A `Drift` if ``total`` differs from the first page's (the
            page's items must then not be used), else ``None``.

        Raises:
            ScanError: The page cannot be right whatever happened meanwhile:
                more items than asked, or no items before the end.
        """
        if window != self._taken:
            raise ValueError(f"{window} was not the page taken")
        self._taken = None
        if self.total is None:
            self.total = total
            # The first windows were planned blind (or on the expected total):
            # trim them to what exists; sort out the guesses past the end.
            self._end = max(total, self._start)
            self._next = min(self._next, self._end)
            self._judge_guesses()
            if self.past_end(window):
                self.discarded += 1
        elif total != self.total:
            return Drift(total_before=self.total, total_after=total, offset=window.offset)
        if self.past_end(window):  # unordered, taken before total was known: nothing to release
            if n_items:
                raise ScanError(
                    f"the page at offset {window.offset} has {n_items} items, but total {self.total} "
                    "leaves room for none"
                )
            return None
        if n_items > window.count:
            raise ScanError(
                f"the page at offset {window.offset} has {n_items} items; {window.count} were asked"
            )
        expected = min(window.count, max(self.total - window.offset, 0))
        if n_items < expected:
            if n_items == 0:
                raise ScanError(
                    f"the page at offset {window.offset} is empty, but total is {self.total}: "
                    "the server returned no items before the end of the listing"
                )
            # A short page before the end: the server caps page size. Fetch the
            # rest of this window next, and ask for no more than the cap from now on.
            self.cap = n_items if self.cap is None else min(self.cap, n_items)
            heapq.heappush(self._remainders, (window.offset + n_items, expected - n_items))
        elif n_items > expected:
            raise ScanError(
                f"the page at offset {window.offset} has {n_items} items, but total {self.total} "
                f"leaves room for {expected}"
            )
        if self.ordered:
            self.position = window.offset + n_items
        self.items_digested += n_items
        return None


@attrs.define(slots=True, kw_only=True)
class ScanReport:
    """What a scan did, updated as it goes.

    Attributes:
        pages: Pages received (including remainders of short pages).
        items: Items handed to the caller.
        requests: Page requests that completed (not counting retries).
        retries: Retried attempts across all page requests.
        duplicates_dropped: Items skipped because their key was already yielded.
        totals_seen: Each distinct ``total`` the server reported, in order.
        total: The ``total`` of the current (or last) pass.
        restarts: Times the scan started over after drift.
        hedges: Hedges sent: a second request for a window whose
            first had been out longer than the listing's answers usually
            take (see `Latencies`).
        hedges_won: Hedges whose answer came first (the page handed on is theirs).
        pages_discarded: Requests that turned out not to be needed: they were
            planned on the ``total`` this client saw last time and started
            past the end of a listing that shrank since. Their pages are
            dropped unread; those still in flight are cancelled, and a
            failure of them is ignored.
        page_cap: The server's page-size cap, if one was learned.
        elapsed: Seconds since the scan started (final once ``finished``).
        finished: The scan ended, with every item handed on.
    """

    pages: int = 0
    items: int = 0
    requests: int = 0
    retries: int = 0
    duplicates_dropped: int = 0
    totals_seen: list[int] = attrs.Factory(list)
    total: int | None = None
    restarts: int = 0
    hedges: int = 0
    hedges_won: int = 0
    pages_discarded: int = 0
    page_cap: int | None = None
    elapsed: float = 0.0
    finished: bool = False

    def _saw_total(self, total: int) -> None:
        if not self.totals_seen or self.totals_seen[-1] != total:
            self.totals_seen.append(total)


PRECONNECT_MAX: Final = 16
"""Most connections a scan has opened ahead of its first wave: the listing may be one page."""


# -- hedging --------------------------------------------------------------------------------

HEDGE_FRACTION: Final = 0.1
"""Most hedges a scan sends, as a fraction of the pages of its pass (at least one)."""
HEDGE_DEFAULT_DELAY: Final = 1.0
"""Seconds a request is out before it is hedged while nothing is known of the listing's latency."""
HEDGE_FLOOR: Final = 0.02
"""Seconds a request is out at least before it is hedged, however fast the listing answers."""
HEDGE_MULTIPLIER: Final = 1.5
"""A request is late once it is out this many times the listing's 95th percentile latency."""
HEDGE_MIN_SAMPLES: Final = 8
"""Answers needed before the percentile is trusted (before: four times the slowest one seen)."""


class NoHedgeBudget(Exception):  # noqa: N818 - a refusal, reported as a request's failure
    """A hedge was not sent: the client's retry budget cannot pay for it (the API is in
    trouble), or every slot of its limit on requests in flight is taken (the client is busy)."""


class Latencies:
    """The latencies of a listing's answers, to tell when a request is late. Private; pure.

    Keeps the last ``size`` answers' latencies (seconds from sending a
    request to its answer). `hedge_delay()` is how long a request may be
    out before a second one is sent for its window: ``HEDGE_MULTIPLIER``
    times the 95th percentile, at least ``HEDGE_FLOOR``; with fewer than
    ``HEDGE_MIN_SAMPLES`` answers, four times the slowest (at least the
    floor); with none, ``HEDGE_DEFAULT_DELAY``. The client keeps one per
    listing, so a scan starts from what the ones before it learned.
    """

    __slots__ = ("_delay", "_samples", "_stale")

    def __init__(self, size: int = 256) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._delay = HEDGE_DEFAULT_DELAY
        self._stale = 0  # answers since the delay was computed

    def add(self, seconds: float) -> None:
        """Record one answer's latency."""
        self._samples.append(max(seconds, 0.0))
        self._stale += 1

    def hedge_delay(self) -> float:
        """Seconds a request may be out before it is hedged."""
        n = len(self._samples)
        # Sorting is cheap next to a page, but not free: while few answers are
        # known every one counts, later the percentile moves slowly.
        if self._stale and (n < 64 or self._stale >= 16):
            self._stale = 0
            if n < HEDGE_MIN_SAMPLES:
                self._delay = max(HEDGE_FLOOR, 4 * max(self._samples))
            else:
                p95 = sorted(self._samples)[(n - 1) * 95 // 100]
                self._delay = max(HEDGE_FLOOR, HEDGE_MULTIPLIER * p95)
        return self._delay


# -- actions ---------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Fetch:
    """Send request ``request`` for ``window``; report its answer with `ScanMachine.arrived()`
    or its failure with `ScanMachine.failed()`.

    ``hedge``: a second request for a window already in flight (not retried;
    it pays for itself from the retry budget, and a refusal is reported as
    the failure `NoHedgeBudget`)."""

    request: int
    window: Window
    hedge: bool = False


@attrs.frozen(slots=True)
class Cancel:
    """Cancel request ``request``: the scan no longer needs its answer (events about it are ignored)."""

    request: int


@attrs.frozen(slots=True)
class Preconnect:
    """Have ``count`` connections open (the first request's included), so the first wave
    does not wait for them (a hint: the driver may open fewer)."""

    count: int


@attrs.frozen(slots=True)
class Remember:
    """Remember ``total`` as the listing's size (the next scan of it plans its first wave on it)."""

    total: int


@attrs.frozen(slots=True)
class Read(Generic[P]):
    """The consumer reads this answer (its envelope) and reports it with `ScanMachine.read()`,
    or `ScanMachine.unreadable()`."""

    window: Window
    body: P


@attrs.frozen(slots=True)
class Build:
    """The consumer builds the page's typed items and reports it with `ScanMachine.built()`
    (with their keys if ``keys``: a scan that dedupes), or `ScanMachine.unreadable()`.

    Before `Hand`, so a page whose items cannot be built is never counted as handed on.
    """

    window: Window
    keys: bool = False


@attrs.frozen(slots=True)
class Hand:
    """The consumer hands the page on, without the items at positions ``drop`` (already yielded)."""

    window: Window
    drop: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class Restart:
    """The listing changed: the scan starts over (the old pass's requests were cancelled).

    ``discard``: the consumer throws away what it kept of the old pass (a snapshot).
    """

    restarts: int
    discard: bool


@attrs.frozen(slots=True)
class Fail:
    """The scan ends with ``error`` (every page before it was handed on). Final."""

    error: BaseException


@attrs.frozen(slots=True)
class Done:
    """Every item was handed on. Final."""


@attrs.frozen(slots=True)
class Wait:
    """Nothing to do until an event comes, or until time ``until`` (``None``: no deadline)."""

    until: float | None = None


Action: TypeAlias = (
    Fetch | Cancel | Preconnect | Remember | Read[P] | Build | Hand | Restart | Fail | Done | Wait
)
"""What `ScanMachine.next_action()` asks the driver to do."""

_WAIT = Wait()
_DONE = Done()

_Stage = Literal["idle", "reading", "build", "building", "hand"]
"""Where the consumer is with its page (one page at a time): none; given to
read; read, to build; given to build; built, to hand on. Each step is given once."""


class ScanMachine(Generic[P]):
    """A whole scan, as rules: pure, fed events, asked for actions. Private.

    The consumer's side goes one page at a time: `Read` (report with
    `read()` or `unreadable()`), then `Build` (report with
    `built()`, with the items' keys when the scan dedupes, or
    `unreadable()`), then `Hand`. Requests go out as
    `Fetch` and come back through `arrived()` or `failed()`;
    an event about a request the machine cancelled, or of an earlier pass, is
    ignored. `next_action()` returns chores first (cancellations, totals
    to remember), then requests to send (up to ``limit`` in flight), then the
    consumer's next step, else `Wait`. `Fail` and
    `Done` are final: asked again, it returns them again.

    The rules:

    - The plan's (`ScanPlan`): windows within the look-ahead, the
      first page alone teaching ``total`` unless an ``expected_total`` is
      given, remainders of short pages, order.
    - At most ``limit`` requests in flight (the limit given to each
      `next_action()`: it may change between calls; a lower one sends
      nothing until enough requests came back).
    - A page whose envelope's ``offset`` is not the window's is a
      [`ScanError`][betatel_async.ScanError] (a server that ignores ``offset``
      would otherwise repeat its first page).
    - Drift: [`DriftError`][betatel_async.DriftError], or with ``"restart"`` (or
      ``"snapshot"``) a new pass, at most ``max_restarts`` times.
    - With ``"restart"``, items whose key an earlier pass yielded are dropped;
      a key twice in one pass is a [`ScanError`][betatel_async.ScanError].
    - A request that failed inside the listing fails the scan: requests in
      flight are cancelled, the pages before it are handed on (all arrived
      pages, unordered), then `Fail`. A failure past the end (a
      guess) does not count. A page that cannot be read, or is wrong, fails
      the scan at once. The first failure wins.
    - Guesses found past the end when ``total`` is learned are cancelled.

    Args:
        page_size: Items per request.
        lookahead: See `ScanPlan`.
        ordered: Hand pages on in offset order, or as they arrive.
        start: The offset the scan starts at.
        expected_total: The ``total`` last seen for the listing, or ``None``.
        on_drift: ``"raise"``, ``"restart"`` or ``"snapshot"``.
        max_restarts: Most passes started over on drift.
        latencies: The listing's answer latencies, updated by this scan (a
            new `Latencies` if ``None``).
        hedge: Send a second request for a window whose request is late.
        report: The report to keep up to date (a new one if ``None``).
        now: The time the scan starts (any clock, seconds).
    """

    def __init__(
        self,
        *,
        page_size: int,
        lookahead: int,
        ordered: bool = True,
        start: int = 0,
        expected_total: int | None = None,
        on_drift: Policy = "raise",
        max_restarts: int = 3,
        latencies: Latencies | None = None,
        hedge: bool = False,
        report: ScanReport | None = None,
        now: float = 0.0,
    ) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        self.page_size = page_size
        self.lookahead = max(lookahead, page_size)
        self.ordered = ordered
        self.start = start
        self.on_drift = on_drift
        self.max_restarts = max_restarts
        self.report = ScanReport() if report is None else report
        self._started = now
        self._expected = expected_total
        self._plan: ScanPlan[P] = self._new_plan()
        self._requests: dict[int, Window] = {}  # this pass's requests in flight (hedges too)
        self._sent: dict[int, float] = {}  # request -> when it was sent
        self._latencies = Latencies() if latencies is None else latencies
        self._hedge = hedge
        # Offset of a hedged window -> its first request, and its requests still in flight.
        self._hedged: dict[int, tuple[int, list[int]]] = {}
        self._hedge_errors: dict[int, BaseException] = {}  # offset -> first failure of a hedged window
        self._hedge_cap = 1  # most hedges this pass (set once total is known)
        self._hedges_pass = 0
        self._hedging_refused = False
        self._next_request = 0
        self._chores: deque[Cancel | Remember | Preconnect] = deque()
        self._stage: _Stage = "idle"
        self._page: Window | None = None  # the page the consumer holds (read, deduped, to hand)
        self._page_items = 0
        self._drop: tuple[int, ...] = ()
        self._failure: BaseException | None = None
        self._hand_arrived = True  # whether pages that arrived before the failure are still handed on
        self._drift_total: int | None = None  # drift seen, the policy is to start over
        self._discarded_before = 0  # guesses discarded by earlier passes
        self._pass = 0
        # Restart: each key yielded, with the pass that saw it last.
        self._seen: dict[Hashable, int] | None = {} if on_drift == "restart" else None
        self._end: Fail | Done | None = None

    def _new_plan(self) -> ScanPlan[P]:
        return ScanPlan(
            page_size=self.page_size,
            lookahead=self.lookahead,
            ordered=self.ordered,
            start=self.start,
            expected_total=self._expected,
        )

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered, failed or cancelled (this pass)."""
        return len(self._requests)

    @property
    def total(self) -> int | None:
        """The ``total`` of the current pass, once its first page was read."""
        return self._plan.total

    # -- events ---------------------------------------------------------------------------

    def arrived(self, request: int, body: P, now: float) -> None:
        """Request ``request`` was answered (a 2xx, after retries) with ``body``, not yet read."""
        window = self._requests.pop(request, None)
        if window is None:  # cancelled, or of an earlier pass
            return
        sent = self._sent.pop(request)
        self._latencies.add(now - sent)
        report = self.report
        report.requests += 1
        report.pages += 1
        hedged = self._hedged.pop(window.offset, None)
        if hedged is not None:  # the first answer wins; the other request is let go
            first, requests = hedged
            self._hedge_errors.pop(window.offset, None)
            if request != first:
                report.hedges_won += 1
            for other in requests:
                if other != request and self._requests.pop(other, None) is not None:
                    del self._sent[other]
                    self._chores.append(Cancel(other))
        self._plan.on_arrival(window, body)

    def failed(self, request: int, error: BaseException, now: float) -> None:
        """Request ``request`` failed (after its retries) with ``error``."""
        window = self._requests.pop(request, None)
        if window is None:
            return
        del self._sent[request]
        if isinstance(error, NoHedgeBudget):  # not sent: hedge no more in this scan
            self._hedging_refused = True
            self.report.hedges -= 1
        hedged = self._hedged.get(window.offset)
        if hedged is not None:  # a hedged window: it fails only once both requests did
            requests = hedged[1]
            requests.remove(request)
            if not isinstance(error, NoHedgeBudget):
                self._hedge_errors.setdefault(window.offset, error)
            if requests:
                return
            del self._hedged[window.offset]
            error = self._hedge_errors.pop(window.offset, error)
        if self._plan.on_failure(window):
            self._fail(error, hand_arrived=True)

    def retried(self) -> None:
        """A request of the scan is being sent again (a retry); counted in the report."""
        self.report.retries += 1

    def read(self, window: Window, *, offset: int, total: int, items: int, now: float) -> None:
        """The consumer read the page of `Read`: its envelope's ``offset`` and ``total``, its item count."""
        self._expect("reading", window)
        self._stage, self._page = "idle", None
        plan, report = self._plan, self.report
        report._saw_total(total)
        if offset != window.offset:
            self._fail(
                ScanError(
                    f"the page asked at offset {window.offset} came back with offset {offset}: "
                    "the server did not answer the window asked for"
                ),
                hand_arrived=False,
            )
            return
        learning = plan.total is None
        try:
            drift = plan.on_page(window, total, items)
        except ScanError as exc:
            self._fail(exc, hand_arrived=False)
            return
        if learning or drift is not None:  # a total this scan had not seen: the next scan plans on it
            self._chores.append(Remember(total))
        report.pages_discarded = self._discarded_before + plan.discarded
        if learning:
            self._cancel_discarded()
            pages = -(-max(total - self.start, 0) // self.page_size)
            self._hedge_cap = max(1, int(pages * HEDGE_FRACTION))
        if drift is not None:
            self._on_drift(drift)
            return
        report.total = plan.total
        report.page_cap = plan.cap
        if plan.past_end(window):  # a guess past the end (unordered): it taught the total, nothing to hand on
            return
        self._page, self._page_items = window, items
        self._stage = "build"
        self._drop = ()

    def unreadable(self, window: Window, error: BaseException, now: float) -> None:
        """The consumer could not read the page of `Read`, or build the items of
        `Build`'s: ``error`` ends the scan at once."""
        if self._stage not in ("reading", "building") or self._page != window:
            raise ValueError(f"{window} is not the page the consumer holds")
        self._stage = "idle"
        self._page = None
        self._fail(error, hand_arrived=False)

    def built(self, window: Window, keys: Sequence[Hashable] | None, now: float) -> None:
        """The consumer built the items of `Build`'s page: their keys, in order, if it asked for them."""
        self._expect("building", window)
        seen = self._seen
        if seen is None:
            self._stage = "hand"
            return
        if keys is None or len(keys) != self._page_items:
            raise ValueError(
                f"{'no' if keys is None else len(keys)} keys for a page of {self._page_items} items"
            )
        this_pass = self._pass
        drop: list[int] = []
        for position, key in enumerate(keys):
            last = seen.get(key)
            if last == this_pass:
                self._stage = "idle"
                self._page = None
                self._fail(
                    ScanError(
                        f"the page at offset {window.offset} repeats the key {key!r} of an item "
                        "earlier in this pass: the listing does not hold total distinct items"
                    ),
                    hand_arrived=False,
                )
                return
            if last is not None:
                drop.append(position)
            seen[key] = this_pass
        self._drop = tuple(drop)
        self._stage = "hand"

    # -- actions --------------------------------------------------------------------------

    def next_action(self, now: float, limit: int) -> Action[P]:
        """What the driver does next; ``limit`` is the most requests that may be in flight now."""
        if self._chores:
            return self._chores.popleft()
        if self._end is not None:
            return self._end
        plan = self._plan
        if self._failure is None and self._drift_total is None and len(self._requests) < limit:
            window = plan.next_window()
            if window is not None:
                return self._send(window, limit, now)
            hedge = self._late(now)
            if hedge is not None:
                return hedge
        stage = self._stage
        if stage == "hand":
            return self._hand(now)
        if stage == "build":
            assert self._page is not None
            self._stage = "building"
            return Build(self._page, keys=self._seen is not None)
        if stage != "idle":  # the consumer is on its step
            return self._wait(limit)
        if self._drift_total is not None:
            return self._restart()
        if self._hand_arrived:
            taken = plan.take()
            if taken is not None:
                self._stage = "reading"
                self._page = taken[0]
                return Read(*taken)
        if self._failure is not None:
            self.report.elapsed = now - self._started
            self._end = Fail(self._failure)
            return self._end
        if plan.finished:
            self.report.finished = True
            self.report.elapsed = now - self._started
            self._end = _DONE
            return _DONE
        if not self._requests and not plan.has_window():  # pragma: no cover - a planning bug, never silent
            self._end = Fail(ScanError("scan stalled: no window to fetch and the listing is not complete"))
            return self._end
        return self._wait(limit)

    # -- rules ----------------------------------------------------------------------------

    def _expect(self, stage: _Stage, window: Window) -> None:
        page = self._page
        if self._stage != stage or (
            page is not window and page != window
        ):  # identity first: attrs' == is slow
            raise ValueError(f"{window} is not the page at stage {stage!r}")

    def _send(self, window: Window, limit: int, now: float) -> Fetch:
        request = self._next_request
        self._next_request += 1
        self._requests[request] = window
        self._sent[request] = now
        if request == 0 and self._expected is None:
            # The first page teaches total, alone: while it is out, the
            # connections the first wave will use can be opened.
            wave = min(limit, self.lookahead // self.page_size, PRECONNECT_MAX)
            if wave > 1:
                self._chores.append(Preconnect(wave))
        return Fetch(request, window)

    def _may_hedge(self) -> bool:
        return self._hedge and not self._hedging_refused and self._hedges_pass < self._hedge_cap

    def _late(self, now: float) -> Fetch | None:
        """A hedge for the window the consumer needs first among those whose request is late, if any."""
        if not self._may_hedge():
            return None
        delay = self._latencies.hedge_delay()
        hedged, requests = self._hedged, self._requests
        late: Window | None = None
        for request, sent in self._sent.items():  # in the order they were sent
            # The deadline computed as _wait computes it: ``sent > now - delay``
            # can hold at ``now == sent + delay`` (rounding), and the timer for
            # that deadline would find nothing late, again and again.
            if sent + delay > now:
                break  # every later one is younger
            window = requests[request]
            if window.offset in hedged:
                continue
            # Ordered, the lowest offset is what the consumer waits for; unordered, the oldest.
            if late is None or (self.ordered and window.offset < late.offset):
                late = window
                if not self.ordered:
                    break
        if late is None:
            return None
        first = next(r for r, w in requests.items() if w.offset == late.offset)
        hedge = self._next_request
        self._next_request += 1
        requests[hedge] = late
        self._sent[hedge] = now
        hedged[late.offset] = (first, [first, hedge])
        self._hedges_pass += 1
        self.report.hedges += 1
        return Fetch(hedge, late, hedge=True)

    def _wait(self, limit: int) -> Wait:
        """Wait for an event, or until the oldest request not hedged is late (when a hedge could go)."""
        if (
            self._sent
            and self._may_hedge()
            and len(self._requests) < limit
            and self._failure is None
            and self._drift_total is None
        ):
            delay = self._latencies.hedge_delay()
            hedged, requests = self._hedged, self._requests
            for request, sent in self._sent.items():
                if requests[request].offset not in hedged:
                    return Wait(sent + delay)
        return _WAIT

    def _hand(self, now: float) -> Hand:
        window, drop = self._page, self._drop
        assert window is not None
        self._stage = "idle"
        self._page = None
        report = self.report
        report.items += self._page_items - len(drop)
        report.duplicates_dropped += len(drop)
        report.elapsed = now - self._started
        return Hand(window, drop)

    def _cancel(self, requests: Sequence[int]) -> None:
        for request in requests:
            window = self._requests.pop(request)
            del self._sent[request]
            self._chores.append(Cancel(request))
            hedged = self._hedged.get(window.offset)
            if hedged is not None:
                # The plan counts a window once, however many requests it has
                # out: it lets go of it with the last one.
                hedged[1].remove(request)
                if hedged[1]:
                    continue
                del self._hedged[window.offset]
                self._hedge_errors.pop(window.offset, None)
            self._plan.on_failure(window)  # let go: a discarded guess, or a pass that is over

    def _cancel_discarded(self) -> None:
        # Total was just learned: guesses that start past the end are not needed.
        discarded = self._plan.discarded_in_flight
        if discarded:
            self._cancel([r for r, w in self._requests.items() if w.offset in discarded])

    def _fail(self, error: BaseException, *, hand_arrived: bool) -> None:
        if self._failure is not None:  # the first failure wins
            return
        self._failure = error
        self._hand_arrived = hand_arrived
        self._cancel(list(self._requests))

    def _on_drift(self, drift: Drift) -> None:
        report = self.report
        if self.on_drift != "raise" and report.restarts < self.max_restarts:
            report.restarts += 1
            self._drift_total = drift.total_after
            self._cancel(list(self._requests))
            return
        self._fail(
            DriftError(
                total_before=drift.total_before,
                total_after=drift.total_after,
                offset=drift.offset,
                items_yielded=report.items,
                duplicates_dropped=report.duplicates_dropped,
                restarts=report.restarts,
            ),
            hand_arrived=False,
        )

    def _restart(self) -> Restart:
        # The old pass's requests were cancelled; its pages not yet taken are
        # dropped (the new pass fetches them again; with "restart", items
        # already yielded are skipped by key). The new pass plans its first
        # wave on the total the drift showed.
        self._discarded_before += self._plan.discarded
        self._expected = self._drift_total
        self._drift_total = None
        self._plan = self._new_plan()
        self._pass += 1
        self._hedged.clear()
        self._hedge_errors.clear()
        self._hedges_pass, self._hedge_cap = 0, 1
        discard = self.on_drift == "snapshot"
        if discard:
            report = self.report
            report.items = 0
        return Restart(self.report.restarts, discard)
