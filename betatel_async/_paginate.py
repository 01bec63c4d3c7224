"""Concurrent offset pagination that is complete, in order, in bounded memory.

Strategy: two layers.

1. :class:`ScanPlan` is a pure state machine (no I/O, no clock): it says which
   window ``(offset, count)`` to fetch next, hands arrived pages out in offset
   order, and digests each page's ``total`` and length as it is taken. It owns every
   correctness rule: the first page teaches ``total``; a page shorter than
   asked before the end is not a gap (its remainder is fetched next and the
   server's cap is learned for the rest of the scan); a page whose ``total``
   differs from the first page's is drift; no window starts more than
   ``lookahead`` items past what the consumer has taken, so memory does not
   grow with ``total``. It is tested with Hypothesis against simulated servers.

2. :class:`ScanRunner` executes a plan: a fixed pool of worker tasks (one per
   request that may be in flight, under an anyio task group held by a
   supervisor task) fetch its windows, each request also under the
   client-wide limiter, and hand in each answer's body unread; the consumer's
   async generator (:class:`PageScan`) takes the bodies from the plan in
   order and reads them (JSON, ``total``, typed items). The look-ahead bound
   counts from what the consumer took, so a slow consumer leaves the workers
   idle, and pages waiting for their turn are held in their most compact form.

   The workers run in their own task group rather than in the consumer's
   async generator because a task group must not stay open across a
   ``yield``: its cancel scope would then wrap the consumer's code. Closing
   the scan (``aclose()``, leaving ``async with``, an error, cancelling the
   consumer, or the event loop finalising an abandoned iterator) cancels the
   supervisor, which cancels every request in flight, and waits for it to
   unwind.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from typing import Any, Generic, Literal, Protocol, TypeVar

import anyio
import attrs

from ._errors import BetatelError, DriftError, MalformedResponseError, ScanError
from ._models import Page

__all__ = [
    "DriftPolicy",
    "ItemScan",
    "PageScan",
    "ScanPlan",
    "ScanReport",
    "ScanRunner",
    "Window",
]

T = TypeVar("T")
P = TypeVar("P")

DriftPolicy = Literal["raise", "restart"]
"""What a scan does when a page's ``total`` differs from the first page's.

- ``"raise"``: stop and raise :class:`~betatel_async.DriftError` (after the
  items from pages read before the change).
- ``"restart"``: start the listing over (at most ``max_restarts`` times),
  skipping items whose key was already yielded. Every item present when the
  last page the scan used was answered is yielded exactly once (a change
  after that is seen by no offset scan); an item deleted during the scan may
  have been yielded before it was deleted. Keeps the keys of yielded items in
  memory.
"""


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

    A page goes through three steps: it *arrives* (:meth:`on_arrival`, its
    body not yet read), it is *taken* (:meth:`take`: in offset order, or any
    order with ``ordered=False``), and the taker *digests* it
    (:meth:`on_page`: its ``total`` and number of items). Only digested pages
    teach the plan: the first one gives ``total`` (no other window is planned
    before it, unless an ``expected_total`` is given), a short one before the
    end schedules the rest of its window and teaches the server's cap, one
    with another ``total`` is drift. A request that failed is reported with
    :meth:`on_failure`.

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
            is counted in :attr:`discarded` and is not needed: its page is
            dropped unread, :attr:`finished` does not wait for its request
            (listed in :attr:`unneeded`, for the caller to cancel), and a
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
        self.released = start  # ordered: every item below this offset was taken and digested
        self.items_released = 0
        self._first_planned = False
        self._expected = expected_total
        self._guessing = expected_total is not None  # until a page arrives or a request fails
        self._end = 0  # once total is known: max(total, start), where windows stop
        self._doomed: set[int] = set()  # offsets in flight that start past the end
        self._unjudged: dict[int, Window] = {}  # guessed windows that failed before total was known
        self.discarded = 0  # guessed windows that started past the end

    @property
    def in_flight(self) -> int:
        """Windows handed out and not yet arrived (past the end or not)."""
        return len(self._in_flight) + len(self._doomed)

    @property
    def buffered(self) -> int:
        """Items (as asked) of pages arrived and not yet taken."""
        return self._arrived_items

    @property
    def unneeded(self) -> frozenset[int]:
        """Offsets of requests in flight that turned out to start past the end."""
        return frozenset(self._doomed)

    @property
    def pending(self) -> bool:
        """Whether a page is in flight, arrived and not taken, or taken and not digested."""
        return bool(self._in_flight or self._doomed or self._arrived or self._taken or self._unjudged)

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
        """Whether :meth:`take` would return a page now."""
        if self._taken is not None:
            return False
        return (self.released in self._arrived) if self.ordered else bool(self._arrived)

    def has_window(self) -> bool:
        """Whether :meth:`next_window` would return a window now."""
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
            return remainder or self._next < self.released + self.lookahead
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
        if window.offset in self._doomed:
            self._doomed.discard(window.offset)
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
        if offset in self._doomed:
            self._doomed.discard(offset)
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
            self._doomed.add(offset)
            self.discarded += 1
        for offset, window in self._unjudged.items():
            if self._past(offset):
                self.discarded += 1
            else:
                heapq.heappush(self._remainders, (offset, min(window.count, self._end - offset)))
        self._unjudged.clear()

    def take(self) -> tuple[Window, P] | None:
        """The next page to digest, with its window, or ``None`` if it has not arrived.

        The caller reads the page and calls :meth:`on_page` before taking another.
        """
        if not self.has_ready():
            return None
        offset = self.released if self.ordered else next(iter(self._arrived))
        window, payload = self._arrived.pop(offset)
        self._arrived_items -= window.count
        self._taken = window
        return window, payload

    def on_page(self, window: Window, total: int, n_items: int) -> Drift | None:
        """Digest the taken page of ``window``: the ``total`` it reported and the items it held.

        Returns:
            A :class:`Drift` if ``total`` differs from the first page's (the
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
            self.released = window.offset + n_items
        self.items_released += n_items
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
    pages_discarded: int = 0
    page_cap: int | None = None
    elapsed: float = 0.0
    finished: bool = False

    def _saw_total(self, total: int) -> None:
        if not self.totals_seen or self.totals_seen[-1] != total:
            self.totals_seen.append(total)


def _being_cancelled() -> bool:
    """Whether the current task was asked to stop (a cancellation nobody asked for does not count)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _is_exit(exc: BaseException) -> bool:
    """Whether ``exc`` is, or groups, a ``KeyboardInterrupt`` or ``SystemExit``."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup((KeyboardInterrupt, SystemExit)) is not None
    return isinstance(exc, KeyboardInterrupt | SystemExit)


def _leaf(exc: BaseException) -> BaseException:
    """The first SDK error inside nested exception groups (else the first leaf)."""
    while isinstance(exc, BaseExceptionGroup):
        sdk = [e for e in exc.exceptions if isinstance(e, BetatelError | BaseExceptionGroup)]
        exc = (sdk or list(exc.exceptions))[0]
    return exc


class PageScan(Generic[T]):
    """An async iterator over the pages of a listing, fetched concurrently.

    Use it with ``async with`` (or ``contextlib.aclosing``) when you may stop
    early, so that in-flight requests are cancelled at once rather than when
    the iterator is garbage-collected. :attr:`report` says what happened.

    Private constructor: obtain one from a resource's ``pages()``.
    """

    __slots__ = ("_gen", "_runner", "report")

    def __init__(self, runner: ScanRunner[T]) -> None:
        self._runner = runner
        self.report = self._runner.report
        self._gen: AsyncGenerator[Page[T]] | None = None

    def __aiter__(self) -> PageScan[T]:
        return self

    async def __anext__(self) -> Page[T]:
        if self._gen is None:
            self._gen = _consume(self._runner)
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the scan: cancel its requests in flight and wait until they are gone."""
        if self._gen is not None:
            await self._gen.aclose()

    async def __aenter__(self) -> PageScan[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class PageSource(Protocol[T]):
    """Where a scan's pages come from (one listing with its filters). Private."""

    async def fetch(self, window: Window, on_retry: Callable[[], None]) -> bytes:
        """The body of the answer to ``window`` (a 2xx, after retries), not parsed."""

    def read(self, body: bytes) -> Page[Any]:
        """The page in ``body``, its envelope checked, its items JSON values.

        The body is complete (the transport retries one cut short), so one
        that is not JSON is malformed, not worth fetching again.

        Raises:
            MalformedResponseError: ``body`` is not JSON, or not a page.
        """

    def finish(self, page: Page[Any]) -> Page[T]:
        """Build the typed items of a page from :meth:`read`, in place."""

    def key(self, item: Any) -> Hashable:
        """An item's natural key (for deduplication after a restart)."""

    def expected_total(self) -> int | None:
        """The listing's ``total`` as last seen by this client, or ``None``."""

    def saw_total(self, total: int) -> None:
        """Remember the ``total`` a page just reported."""

    async def preconnect(self, count: int) -> None:
        """Open connections ahead, so that ``count`` requests may go out at once. Never raises."""


async def _consume(runner: ScanRunner[T]) -> AsyncGenerator[Page[T]]:
    """The consumer's side of a scan: takes pages from the plan, in order.

    Strategy: the scan's tasks reference the runner, never this generator nor
    the PageScan that holds it, so a scan the caller drops (``break`` without
    ``async with``) becomes unreachable, and the event loop's async-generator
    finaliser runs the ``finally`` below, which cancels them.
    """
    runner.start()
    try:
        while True:
            raw = runner.take()
            if raw is None:
                if not await runner.wait():
                    return
                continue
            if runner.woke_workers():
                # Let the workers this page woke send their requests before
                # this task spends the CPU on building the page's items.
                await asyncio.sleep(0)
            page = runner.finish(raw)
            del raw
            yield page
            del page  # not held while the next page is built
    finally:
        await runner.stop()


class ScanRunner(Generic[T]):
    """Runs a scan: worker tasks fetch the plan's windows, the consumer takes and reads the pages. Private.

    Strategy: a fixed pool of ``workers`` tasks (one per request that may be
    in flight) under an anyio task group, held by a supervisor task. A worker
    loops: take the plan's next window, fetch its body, hand the body to the
    plan, take the next window at once. The consumer takes bodies from the
    plan in order and reads them (JSON, envelope, ``total``, typed items): a
    page waiting for its turn is held as the bytes that came, the most compact
    form, and its objects are made just before they are used, so they die
    young instead of being promoted by the garbage collector. The plan's
    look-ahead bound counts from what the consumer took: a slow consumer
    leaves workers idle, it never makes pages pile up.

    Everything runs on the event loop's thread, so the plan is read and
    changed between awaits only, without locks; tasks wake each other with
    one future per waiter, and only when there is something to do (a window
    that may start, a page that may be taken), so a page costs one request,
    no task spawn and no message passing.

    Args:
        source: Fetches and reads the listing's pages.
        workers: Worker tasks, the scan's most requests in flight.
        concurrency: The scan's current limit of requests in flight (at most
            ``workers``; it follows the client's adaptive limit).
        lookahead: Items past the consumer's position a window may start at.
        start: The offset the scan starts at.
    """

    def __init__(
        self,
        source: PageSource[T],
        *,
        page_size: int,
        workers: int,
        concurrency: Callable[[], int],
        ordered: bool,
        on_drift: DriftPolicy,
        max_restarts: int,
        on_progress: Callable[[ScanReport], Any] | None,
        lookahead: int,
        start: int,
    ) -> None:
        self._source = source
        self._page_size = page_size
        self._workers = workers
        self._concurrency = concurrency
        self._ordered = ordered
        self._on_drift = on_drift
        self._max_restarts = max_restarts
        self._on_progress = on_progress
        self._lookahead = max(lookahead, page_size)
        self._start = start
        self._seen: set[Hashable] | None = set() if on_drift == "restart" else None
        self.report = ScanReport()
        self.started = 0.0
        self._discarded = 0  # pages dropped past the end by earlier passes
        self._plan = self._new_plan()
        self._failure: BaseException | None = (
            None  # what ends the scan, raised once the pages before it are taken
        )
        self._restarting = False  # drift, and the policy is to start over: the supervisor makes a new plan
        self._stopping = False  # the current pass is over: workers stop and hand in nothing more
        self._woke = False  # the page just taken woke workers
        self._idle: deque[asyncio.Future[None]] = deque()
        # Offset -> cancel scope of a request made before total was known.
        self._guesses: dict[int, anyio.CancelScope] = {}
        self._consumer: asyncio.Future[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._supervisor: asyncio.Task[None] | None = None

    def _new_plan(self) -> ScanPlan[bytes]:
        return ScanPlan(
            page_size=self._page_size,
            lookahead=self._lookahead,
            ordered=self._ordered,
            start=self._start,
            expected_total=self._source.expected_total(),
        )

    # -- the consumer's side ----------------------------------------------------------------

    def start(self) -> None:
        self.started = time.monotonic()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    def take(self) -> Page[Any] | None:
        """The next page for the consumer, read and digested (items not yet built), or ``None``.

        Raises:
            MalformedResponseError: The page's body is not JSON.
            BaseException: What ended the scan, once the pages before it were taken.
        """
        while True:
            taken = None if self._restarting else self._plan.take()
            if taken is None:
                if self._failure is not None:
                    raise self._failure
                return None
            window, body = taken
            try:
                page = self._source.read(body)
            except MalformedResponseError as exc:
                # Complete (one cut short was retried by the transport): the
                # server sent something other than a page, and would again.
                exc.add_note(f"the page at offset {window.offset} of the scan")
                raise
            digested = self._digest(window, page)
            if digested is not None or self._restarting:
                return digested
            # A guess past the end (it taught the total; nothing to hand on): take the next.

    def _digest(self, window: Window, page: Page[Any]) -> Page[Any] | None:
        plan, report = self._plan, self.report
        report._saw_total(page.total)
        learning = plan.total is None
        drift = plan.on_page(window, page.total, len(page.items))
        if learning or drift is not None:  # the listing's total is new to this scan: remember it
            self._source.saw_total(page.total)
        report.pages_discarded = self._discarded + plan.discarded
        if learning:
            for offset in plan.unneeded:  # guesses past the end: let them go at once
                scope = self._guesses.get(offset)
                if scope is not None:
                    scope.cancel()
        if drift is not None:
            if self._on_drift == "restart" and report.restarts < self._max_restarts:
                report.restarts += 1
                self._restarting = True
                self._stop_pass()
                return None
            raise DriftError(
                total_before=drift.total_before,
                total_after=drift.total_after,
                offset=drift.offset,
                items_yielded=report.items,
                duplicates_dropped=report.duplicates_dropped,
                restarts=report.restarts,
            )
        report.total = plan.total
        report.page_cap = plan.cap
        if plan.finished:
            self._wake_all_workers()  # nothing left to fetch: let them return
        elif self._wake_worker():  # the look-ahead moved on, or the total is known
            self._woke = True
        return None if plan.past_end(window) else page

    def woke_workers(self) -> bool:
        """Whether the page just taken woke workers (once: the flag is cleared)."""
        woke, self._woke = self._woke, False
        return woke

    def finish(self, page: Page[Any]) -> Page[T]:
        """Build a taken page's items (dropping any already yielded after a restart)."""
        typed = self._dedupe(self._source.finish(page))
        self._progress()
        return typed

    async def wait(self) -> bool:
        """Wait until :meth:`take` may have something; ``False`` once the scan is complete."""
        if self._plan.finished and not self._restarting:
            self.report.finished = True
            self._progress()
            return False
        supervisor = self._supervisor
        if supervisor is not None and supervisor.done():  # nothing more will come
            raise self._failure or ScanError("scan ended before the listing was complete")
        waiter = self._consumer = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._consumer = None
        return True

    async def stop(self) -> None:
        """Cancel the scan's tasks (their requests in flight) and wait until they are gone."""
        supervisor = self._supervisor
        if supervisor is None:
            return
        supervisor.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(supervisor, return_exceptions=True)

    def _progress(self) -> None:
        self.report.elapsed = time.monotonic() - self.started
        if self._on_progress is not None:
            self._on_progress(self.report)

    def _dedupe(self, page: Page[T]) -> Page[T]:
        seen = self._seen
        if seen is None:
            self.report.items += len(page.items)
            return page
        key = self._source.key
        kept = []
        for item in page.items:
            k = key(item)
            if k in seen:
                self.report.duplicates_dropped += 1
                continue
            seen.add(k)
            kept.append(item)
        self.report.items += len(kept)
        if len(kept) == len(page.items):
            return page
        return Page(total=page.total, offset=page.offset, count=len(kept), items=kept)

    # -- wake-ups ---------------------------------------------------------------------------

    def _notify_consumer(self) -> None:
        waiter = self._consumer
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_worker(self) -> bool:
        """Wake idle workers if windows may start now: as many as the in-flight limit leaves room for.

        A woken worker that finds no window (another took it) goes back to
        sleep. Returns whether any was woken.
        """
        idle = self._idle
        if not idle or not self._plan.has_window():
            return False
        room = self._concurrency() - self._plan.in_flight
        woke = False
        while idle and room > 0:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1
                woke = True
        return woke

    def _wake_all_workers(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        self._stop_pass()

    def _stop_pass(self) -> None:
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()
        self._notify_consumer()

    # -- the scan's tasks -------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Run passes of the plan until one completes, the scan fails, or it is cancelled."""
        try:
            while True:
                plan = self._plan
                async with anyio.create_task_group() as tg:
                    self._scope = tg.cancel_scope
                    for _ in range(self._workers):
                        tg.start_soon(self._work, plan)
                    if self._workers > 1 and self._source.expected_total() is None:
                        # The first page goes out alone (it teaches total):
                        # meanwhile, open the connections the first wave needs.
                        tg.start_soon(self._source.preconnect, self._workers)
                if not self._restarting:
                    if not plan.finished and self._failure is None:
                        # Workers return early only on a failure, which is
                        # recorded; anything else (a stray cancellation from
                        # below) must not leave the consumer waiting forever.
                        self._fail(ScanError("scan workers ended before the listing was complete"))
                    return
                # Drift, and the policy is to start over: pages of the old
                # pass not yet taken are dropped (the new pass fetches them
                # again; items already yielded are skipped by key).
                self._discarded += plan.discarded
                self._plan = self._new_plan()
                self._stopping = self._restarting = False
                self._notify_consumer()
        except BaseException as exc:  # handed to the consumer, or re-raised
            if _being_cancelled():  # stop(): the scan is being torn down
                raise
            leaf = _leaf(exc)
            if isinstance(leaf, asyncio.CancelledError):  # from below, not asked for by stop()
                leaf = ScanError("scan workers were cancelled before the listing was complete")
            self._fail(leaf)
            if _is_exit(exc):  # Ctrl-C or sys.exit() in a worker: not the scan's to turn into an error
                raise
        finally:
            self._notify_consumer()

    async def _work(self, plan: ScanPlan[bytes]) -> None:
        """One worker: fetch the plan's windows one after another until the pass is over."""
        report = self.report
        limit = self._concurrency
        fetch = self._source.fetch
        loop = asyncio.get_running_loop()
        while not self._stopping:
            window = plan.next_window() if plan.in_flight < limit() else None
            if plan.has_ready():
                # Told only after this worker took its next window (and woke
                # others), so requests go out before the consumer spends the
                # CPU on reading a page.
                self._notify_consumer()
            if window is None:
                if plan.finished:
                    return
                if not plan.pending:  # pragma: no cover - a planning bug, never silent
                    self._fail(ScanError("scan stalled: no window to fetch and the listing is not complete"))
                    return
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            self._wake_worker()
            try:
                if plan.total is None:  # the first page or a guess: may turn out not to be needed
                    body = await self._fetch_guess(window)
                else:
                    body = await fetch(window, self._count_retry)
            except (BetatelError, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                    raise  # the scan is being stopped
                if self._pass_over():
                    return
                if plan.on_failure(window):
                    self._fail(
                        exc
                        if isinstance(exc, BetatelError)
                        else ScanError("a scan request was cancelled, but not by the scan")
                    )
                    return
                continue  # a guess past the end, or judged when the total is known
            if self._pass_over():  # set by another task while this one waited
                return
            if body is None:  # a guess past the end, let go
                plan.on_failure(window)
                continue
            report.requests += 1
            report.pages += 1
            plan.on_arrival(window, body)

    async def _fetch_guess(self, window: Window) -> bytes | None:
        """Fetch a window planned before ``total`` was known; ``None`` if it was let go (past the end)."""
        with anyio.CancelScope() as scope:
            self._guesses[window.offset] = scope
            try:
                return await self._source.fetch(window, self._count_retry)
            finally:
                del self._guesses[window.offset]
        return None

    def _pass_over(self) -> bool:
        return self._stopping

    def _count_retry(self) -> None:
        self.report.retries += 1


class ItemScan(Generic[T]):
    """An async iterator over the items of a listing (a flattened :class:`PageScan`).

    Use ``async with client.sims.iter() as sims: async for sim in sims: ...``
    when you may stop early; :attr:`report` says what happened.
    """

    __slots__ = ("_items", "_pages")

    def __init__(self, pages: PageScan[T]) -> None:
        self._pages = pages
        self._items: AsyncGenerator[T] | None = None

    @property
    def report(self) -> ScanReport:
        """The scan's report (live while the scan runs)."""
        return self._pages.report

    def __aiter__(self) -> AsyncIterator[T]:
        # ``async for`` steps an async generator's C-level __anext__ directly:
        # per item, cheaper than a coroutine method, and an await only per page.
        if self._items is None:
            self._items = self._flatten()
        return self._items

    async def __anext__(self) -> T:
        return await self.__aiter__().__anext__()

    async def _flatten(self) -> AsyncGenerator[T]:
        async for page in self._pages:
            items = page.items
            del page
            # By index, and the list let go of before the next page is read:
            # this frame then holds no object of a page while the next one is
            # built (the collector would otherwise see both pages alive, run
            # once per page and promote them; measured: 7 full collections
            # per 100,000 SIMs against none).
            for index in range(len(items)):
                yield items[index]
            del items

    async def aclose(self) -> None:
        """Stop the scan: cancel its requests in flight and wait until they are gone."""
        if self._items is not None:
            await self._items.aclose()
        await self._pages.aclose()

    async def __aenter__(self) -> ItemScan[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
