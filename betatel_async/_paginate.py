"""Concurrent offset pagination that is complete, in order, in bounded memory.

Strategy: two layers.

1. :class:`ScanPlan` is a pure state machine (no I/O, no clock): it says which
   window ``(offset, count)`` to fetch next, digests each page's ``total`` and
   length, and releases buffered pages in offset order. It owns every
   correctness rule: the first page teaches ``total``; a page shorter than
   asked before the end is not a gap (its remainder is fetched next and the
   server's cap is learned for the rest of the scan); a page whose ``total``
   differs from the first page's is drift; no window starts more than
   ``lookahead`` items past what the consumer has taken, so memory does not
   grow with ``total``. It is tested with Hypothesis against simulated servers.

2. :class:`ScanRunner` executes a plan: a fixed pool of worker tasks (one per
   request that may be in flight, under an anyio task group held by a
   supervisor task) fetch its windows, each request also under the
   client-wide limiter; the consumer's async generator (:class:`PageScan`)
   takes ready pages from the plan itself. The look-ahead bound counts from
   what the consumer took, so a slow consumer leaves the workers idle.

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
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

import anyio
import attrs

from ._errors import BetatelError, DriftError, ScanError
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
  skipping items whose key was already yielded. Every item present at the end
  is yielded exactly once; an item deleted during the scan may have been
  yielded before it was deleted. Keeps the keys of yielded items in memory.
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
    """Which windows to fetch and in which order pages may be released. Pure.

    Args:
        page_size: Items to ask for per request.
        lookahead: Ordered: how many items past the consumer's position a
            window may start. Unordered (pages are released as they arrive):
            how many items may be in flight or received and not yet released.
        ordered: Release pages in offset order (``True``) or as they arrive.
        start: The offset the scan starts at.
    """

    def __init__(self, *, page_size: int, lookahead: int, ordered: bool = True, start: int = 0) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if lookahead < page_size:
            raise ValueError("lookahead must be at least one page")
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
        self._buffered: dict[int, tuple[int, P]] = {}  # offset -> (n items, payload)
        self._buffered_items = 0
        self.released = start  # ordered: every item below this offset was released
        self.items_released = 0
        self._first_planned = False

    @property
    def in_flight(self) -> int:
        """Windows handed out and not yet answered."""
        return len(self._in_flight)

    @property
    def buffered(self) -> int:
        """Items received and not yet released."""
        return self._buffered_items

    @property
    def received_all(self) -> bool:
        """Every item up to ``total`` was received (some may wait to be released)."""
        if self.total is None or self._in_flight or self._remainders:
            return False
        return self._next >= self.total

    @property
    def finished(self) -> bool:
        """Every item up to ``total`` was received and released."""
        return not self._buffered and self.received_all

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would release a page now."""
        return (self.released in self._buffered) if self.ordered else bool(self._buffered)

    def has_window(self) -> bool:
        """Whether :meth:`next_window` would return a window now."""
        if self.total is None:
            return not self._first_planned
        if self._remainders:
            return True
        return self._next < self.total and not self._at_bound()

    def _at_bound(self) -> bool:
        # Ordered, a window may start up to ``lookahead`` items past the
        # consumer's position; unordered, received-but-unreleased items plus
        # items in flight may not exceed ``lookahead``.
        if self.ordered:
            return self._next >= self.released + self.lookahead
        return self._buffered_items + self._in_flight_items >= self.lookahead

    def next_window(self) -> Window | None:
        """The next window to fetch, or ``None`` if none may start now.

        ``None`` means: wait for a page (the total is not known yet, or the
        look-ahead bound is reached) or the plan is complete.
        """
        if self.total is None:
            if self._first_planned:
                return None
            self._first_planned = True
            self._next = self._start + self.page_size
            self._in_flight[self._start] = self.page_size
            self._in_flight_items += self.page_size
            return Window(self._start, self.page_size)
        if self._remainders:
            # Remainders of short pages sit at the consumer's position (or
            # near it): fetch them before anything further ahead.
            offset, count = heapq.heappop(self._remainders)
            self._in_flight[offset] = count
            self._in_flight_items += count
            return Window(offset, count)
        if self._next >= self.total or self._at_bound():
            return None
        size = min(self.page_size, self.total - self._next)
        if self.cap is not None:
            size = min(size, self.cap)
        window = Window(self._next, size)
        self._next += size
        self._in_flight[window.offset] = size
        self._in_flight_items += size
        return window

    def on_page(self, window: Window, total: int, n_items: int, payload: P) -> Drift | None:
        """Digest the answer to ``window``: ``total`` it reported and items it held.

        Returns:
            A :class:`Drift` if ``total`` differs from the first page's (the
            page is then not buffered), else ``None``.

        Raises:
            ScanError: The page cannot be right whatever happened meanwhile:
                more items than asked, or no items before the end.
        """
        self._in_flight_items -= self._in_flight.pop(window.offset, 0)
        if self.total is None:
            self.total = total
            # The first window was planned blind; trim it to what exists.
            self._next = min(self._next, max(total, self._start))
        elif total != self.total:
            return Drift(total_before=self.total, total_after=total, offset=window.offset)
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
        self._buffered[window.offset] = (n_items, payload)
        self._buffered_items += n_items
        return None

    def ready(self, limit: int | None = None) -> list[P]:
        """Pages that may be handed to the consumer now (at most ``limit``), in the order to hand them."""
        out: list[P] = []
        buffered = self._buffered
        if not self.ordered:
            while buffered and (limit is None or len(out) < limit):
                n_items, payload = buffered.pop(next(iter(buffered)))
                self._buffered_items -= n_items
                self.items_released += n_items
                out.append(payload)
            return out
        while self.released in buffered and (limit is None or len(out) < limit):
            n_items, payload = buffered.pop(self.released)
            self._buffered_items -= n_items
            self.released += n_items
            self.items_released += n_items
            out.append(payload)
        return out


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
    page_cap: int | None = None
    elapsed: float = 0.0
    finished: bool = False

    def _saw_total(self, total: int) -> None:
        if not self.totals_seen or self.totals_seen[-1] != total:
            self.totals_seen.append(total)


FetchPage = Callable[[Window, Callable[[], None]], Awaitable[Page[Any]]]
"""Fetch one window, its items not yet typed; the callable is called once per retry."""


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
            page = runner.take()
            if page is not None:
                yield page
            elif not await runner.wait():
                return
    finally:
        await runner.stop()


class ScanRunner(Generic[T]):
    """Runs a scan: worker tasks fetch the plan's windows, the consumer takes its pages. Private.

    Strategy: a fixed pool of ``workers`` tasks (one per request that may be
    in flight) under an anyio task group, held by a supervisor task. A worker
    loops: take the plan's next window, fetch it, hand the page to the plan,
    take the next window at once. The consumer takes ready pages from the
    plan itself, so the plan's look-ahead bound counts from what the consumer
    took: a slow consumer leaves workers idle, it never makes pages pile up.
    Everything runs on the event loop's thread, so the plan is read and
    changed between awaits only, without locks; tasks wake each other with
    one future per waiter, and only when there is something to do (a window
    that may start, a page that may be taken), so a page costs one request,
    no task spawn and no message passing.

    Args:
        fetch: Fetches a window: a page whose envelope is checked, its items
            still JSON values.
        finish: Builds a fetched page's typed items; called when the consumer
            takes the page, so typed objects are made just before they are
            used and raw pages wait in the buffer (see ``take``).
        workers: Worker tasks, the scan's most requests in flight.
        concurrency: The scan's current limit of requests in flight (at most
            ``workers``; it follows the client's adaptive limit).
        lookahead: Items past the consumer's position a window may start at.
        start: The offset the scan starts at.
    """

    def __init__(
        self,
        fetch: FetchPage,
        finish: Callable[[Page[Any]], Page[T]],
        *,
        page_size: int,
        workers: int,
        concurrency: Callable[[], int],
        ordered: bool,
        on_drift: DriftPolicy,
        max_restarts: int,
        key: Callable[[T], Hashable],
        on_progress: Callable[[ScanReport], Any] | None,
        lookahead: int,
        start: int,
    ) -> None:
        self._fetch = fetch
        self._finish = finish
        self._page_size = page_size
        self._workers = workers
        self._concurrency = concurrency
        self._ordered = ordered
        self._on_drift = on_drift
        self._max_restarts = max_restarts
        self._key = key
        self._on_progress = on_progress
        self._lookahead = max(lookahead, page_size)
        self._start = start
        self._seen: set[Hashable] | None = set() if on_drift == "restart" else None
        self.report = ScanReport()
        self.started = 0.0
        self._plan = self._new_plan()
        self._outbox: deque[Page[Any]] = deque()  # pages out of a plan, not yet taken
        # What ends the scan early: an error to raise, or a drift to raise as
        # DriftError once the pages before it are taken.
        self._failure: BaseException | Drift | None = None
        self._restart: Drift | None = None
        self._stopping = False  # the current pass is over: workers stop and hand in nothing more
        self._idle: deque[asyncio.Future[None]] = deque()
        self._consumer: asyncio.Future[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._supervisor: asyncio.Task[None] | None = None

    def _new_plan(self) -> ScanPlan[Page[Any]]:
        return ScanPlan(
            page_size=self._page_size, lookahead=self._lookahead, ordered=self._ordered, start=self._start
        )

    # -- the consumer's side ----------------------------------------------------------------

    def start(self) -> None:
        self.started = time.monotonic()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    def take(self) -> Page[T] | None:
        """The next page for the consumer, or ``None`` if none is ready.

        Raises:
            BaseException: What ended the scan, once the pages before it were taken.
        """
        outbox = self._outbox
        if not outbox:
            # One page at a time: the look-ahead counts from what the consumer took.
            ready = self._plan.ready(1)
            if not ready:
                if self._failure is not None:
                    raise self._error(self._failure)
                return None
            outbox.extend(ready)
            self._wake_worker()  # the look-ahead moved on
        page = self._dedupe(self._finish(outbox.popleft()))
        self._progress()
        return page

    async def wait(self) -> bool:
        """Wait until :meth:`take` may have something; ``False`` once the scan is complete."""
        if self._plan.finished and not self._stopping:
            self.report.finished = True
            self._progress()
            return False
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

    def _error(self, failure: BaseException | Drift) -> BaseException:
        if isinstance(failure, Drift):
            return DriftError(
                total_before=failure.total_before,
                total_after=failure.total_after,
                offset=failure.offset,
                items_yielded=self.report.items,
                duplicates_dropped=self.report.duplicates_dropped,
                restarts=self.report.restarts,
            )
        return failure

    def _progress(self) -> None:
        self.report.elapsed = time.monotonic() - self.started
        if self._on_progress is not None:
            self._on_progress(self.report)

    def _dedupe(self, page: Page[T]) -> Page[T]:
        seen = self._seen
        if seen is None:
            self.report.items += len(page.items)
            return page
        key = self._key
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

    def _wake_worker(self) -> None:
        """Wake one idle worker if a window may start now (it wakes the next if one more may)."""
        idle = self._idle
        if not idle or self._plan.in_flight >= self._concurrency() or not self._plan.has_window():
            return
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all_workers(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, failure: BaseException | Drift) -> None:
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
                drift, self._restart = self._restart, None
                if drift is None:
                    return
                # Drift, and the policy is to start over: the pages already
                # in order stay for the consumer (their items are deduplicated).
                self.report.restarts += 1
                self._outbox.extend(plan.ready())
                self._plan = self._new_plan()
                self._stopping = False
                self._notify_consumer()
        except BaseException as exc:  # handed to the consumer, or re-raised
            leaf = _leaf(exc)
            if isinstance(exc, asyncio.CancelledError) or isinstance(leaf, asyncio.CancelledError):
                raise
            self._fail(leaf)

    async def _work(self, plan: ScanPlan[Page[Any]]) -> None:
        """One worker: fetch the plan's windows one after another until the pass is over."""
        report = self.report
        limit = self._concurrency
        loop = asyncio.get_running_loop()
        while not self._stopping:
            window = plan.next_window() if plan.in_flight < limit() else None
            if window is None:
                if plan.received_all:
                    self._wake_all_workers()  # the pass is over: let them return
                    return
                if plan.in_flight == 0 and not plan.buffered:  # pragma: no cover - a planning bug
                    self._fail(ScanError("scan stalled: no window to fetch and the listing is not complete"))
                    return
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            self._wake_worker()
            try:
                page = await self._fetch(window, self._count_retry)
            except BetatelError as exc:
                self._fail(exc)
                return
            if self._pass_over():  # set by another task while this one waited
                return
            report.requests += 1
            report.pages += 1
            report._saw_total(page.total)
            try:
                drift = plan.on_page(window, page.total, len(page.items), page)
            except ScanError as exc:
                self._fail(exc)
                return
            if drift is not None:
                if self._on_drift == "restart" and report.restarts < self._max_restarts:
                    self._restart = drift
                    self._stop_pass()
                else:
                    self._fail(drift)
                return
            report.total = plan.total
            report.page_cap = plan.cap
            if plan.has_ready():
                self._notify_consumer()

    def _pass_over(self) -> bool:
        return self._stopping

    def _count_retry(self) -> None:
        self.report.retries += 1


class ItemScan(Generic[T]):
    """An async iterator over the items of a listing (a flattened :class:`PageScan`).

    Use ``async with client.sims.iter() as sims: async for sim in sims: ...``
    when you may stop early; :attr:`report` says what happened.
    """

    __slots__ = ("_index", "_items", "_pages")

    def __init__(self, pages: PageScan[T]) -> None:
        self._pages = pages
        # Items are served from the current page: an await only per page, not per item.
        self._items: list[T] = []
        self._index = 0

    @property
    def report(self) -> ScanReport:
        """The scan's report (live while the scan runs)."""
        return self._pages.report

    def __aiter__(self) -> ItemScan[T]:
        return self

    async def __anext__(self) -> T:
        index = self._index
        items = self._items
        while index >= len(items):
            items = self._items = (await self._pages.__anext__()).items
            index = 0
        self._index = index + 1
        return items[index]

    async def aclose(self) -> None:
        """Stop the scan: cancel its requests in flight and wait until they are gone."""
        self._items = []
        await self._pages.aclose()

    async def __aenter__(self) -> ItemScan[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
