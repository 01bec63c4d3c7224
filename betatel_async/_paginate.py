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

2. :class:`PageScan` executes a plan: a producer task fetches windows under an
   anyio task group (at most ``concurrency`` in flight, each request also
   under the client-wide limiter) and sends ready pages through a bounded
   anyio memory stream to the consumer's async generator. A slow consumer
   blocks the producer's ``send``, which stops new windows from starting.

   The producer runs in its own task rather than in the consumer's async
   generator because a task group must not stay open across a ``yield``:
   its cancel scope would then wrap the consumer's code. Closing the scan
   (``aclose()``, leaving ``async with``, an error, cancelling the consumer,
   or the event loop finalising an abandoned iterator) cancels the producer,
   which cancels every request in flight, and waits for it to unwind.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

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
        lookahead: How many items past the consumer's position a window may
            start (ordered mode). With ``ordered=False`` pages are released as
            they arrive, so only the caller's in-flight limit bounds memory.
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
        self._in_flight: set[int] = set()
        self._buffered: dict[int, tuple[int, P]] = {}  # offset -> (n items, payload)
        self.released = start  # ordered: every item below this offset was released
        self.items_released = 0
        self._first_planned = False

    @property
    def in_flight(self) -> int:
        """Windows handed out and not yet answered."""
        return len(self._in_flight)

    @property
    def finished(self) -> bool:
        """Every item up to ``total`` was received and released."""
        if self.total is None or self._in_flight or self._remainders or self._buffered:
            return False
        return self._next >= self.total

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
            self._in_flight.add(self._start)
            return Window(self._start, self.page_size)
        if self._remainders:
            # Remainders of short pages sit at the consumer's position (or
            # near it): fetch them before anything further ahead.
            offset, count = heapq.heappop(self._remainders)
            self._in_flight.add(offset)
            return Window(offset, count)
        if self._next >= self.total:
            return None
        if self.ordered and self._next >= self.released + self.lookahead:
            return None
        size = min(self.page_size, self.total - self._next)
        if self.cap is not None:
            size = min(size, self.cap)
        window = Window(self._next, size)
        self._next += size
        self._in_flight.add(window.offset)
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
        self._in_flight.discard(window.offset)
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
        return None

    def ready(self) -> list[P]:
        """Pages that may be handed to the consumer now, in the order to hand them."""
        out: list[P] = []
        if not self.ordered:
            for n_items, payload in self._buffered.values():
                self.items_released += n_items
                out.append(payload)
            self._buffered.clear()
            return out
        while self.released in self._buffered:
            n_items, payload = self._buffered.pop(self.released)
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


FetchPage = Callable[[Window, Callable[[], None]], Awaitable[Page[T]]]
"""Fetch one window; the callable is called once per retry."""


class _Restart(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, drift: Drift) -> None:
        self.drift = drift


def _leaf(exc: BaseException) -> BaseException:
    """The first SDK error inside nested exception groups (else the first leaf)."""
    while isinstance(exc, BaseExceptionGroup):
        sdk = [e for e in exc.exceptions if isinstance(e, BetatelError | BaseExceptionGroup)]
        exc = (sdk or list(exc.exceptions))[0]
    return exc


class PageScan(Generic[T]):
    """An async iterator over the pages of a listing, fetched concurrently.

    Use it with ``async for``; prefer ``async with`` (or
    ``contextlib.aclosing``) when you may stop early, so that in-flight
    requests are cancelled at once rather than when the iterator is
    garbage-collected. :attr:`report` says what happened.

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
    """The consumer's side of a scan: pages from the producer task, in order.

    Strategy: the producer task references the runner, never this generator
    nor the PageScan that holds it, so a scan the caller drops (``break``
    without ``async with``) becomes unreachable, and the event loop's
    async-generator finaliser runs the ``finally`` below, which cancels it.
    """
    runner.started = time.monotonic()
    send, recv = anyio.create_memory_object_stream[Page[T] | BaseException](max_buffer_size=1)
    producer = asyncio.ensure_future(runner.produce(send))
    try:
        async with recv:
            async for message in recv:
                if isinstance(message, BaseException):
                    raise message
                yield message
    finally:
        producer.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(producer, return_exceptions=True)


class ScanRunner(Generic[T]):
    """The producer's side of a scan: runs passes of the plan, fetching windows. Private.

    Args:
        lookahead: Items past the consumer's position a window may start at.
        start: The offset the scan starts at.
    """

    def __init__(
        self,
        fetch: FetchPage[T],
        *,
        page_size: int,
        concurrency: Callable[[], int],
        ordered: bool,
        on_drift: DriftPolicy,
        max_restarts: int,
        key: Callable[[T], Hashable],
        on_progress: Callable[[ScanReport], Any] | None,
        lookahead: int,
        start: int,
    ) -> None:
        self._start = start
        self._fetch = fetch
        self._page_size = page_size
        self._concurrency = concurrency
        self._ordered = ordered
        self._on_drift = on_drift
        self._max_restarts = max_restarts
        self._key = key
        self._on_progress = on_progress
        self._lookahead = lookahead
        self._seen: set[Hashable] | None = set() if on_drift == "restart" else None
        self.report = ScanReport()
        self.started = 0.0

    async def produce(self, send: MemoryObjectSendStream[Page[T] | BaseException]) -> None:
        async with send:
            try:
                while True:
                    try:
                        await self._run_pass(send)
                        break
                    except _Restart as restart:
                        self.report.restarts += 1
                        if self.report.restarts > self._max_restarts:
                            raise self._drift_error(restart.drift) from None
            except BaseException as exc:
                leaf = _leaf(exc)
                if isinstance(leaf, asyncio.CancelledError) or isinstance(exc, asyncio.CancelledError):
                    raise
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await send.send(leaf)
                return
            self.report.elapsed = time.monotonic() - self.started
            self.report.finished = True
            self._progress()

    def _drift_error(self, drift: Drift) -> DriftError:
        return DriftError(
            total_before=drift.total_before,
            total_after=drift.total_after,
            offset=drift.offset,
            items_yielded=self.report.items,
            duplicates_dropped=self.report.duplicates_dropped,
            restarts=self.report.restarts,
        )

    def _progress(self) -> None:
        self.report.elapsed = time.monotonic() - self.started
        if self._on_progress is not None:
            self._on_progress(self.report)

    async def _run_pass(self, send: MemoryObjectSendStream[Page[T] | BaseException]) -> None:
        plan: ScanPlan[Page[T]] = ScanPlan(
            page_size=self._page_size,
            lookahead=max(self._lookahead, self._page_size),
            start=self._start,
            ordered=self._ordered,
        )
        report = self.report
        results_send, results_recv = anyio.create_memory_object_stream[
            tuple[Window, Page[T] | BaseException]
        ](max_buffer_size=float("inf"))

        def count_retry() -> None:
            report.retries += 1

        async def worker(window: Window) -> None:
            try:
                page: Page[T] | BaseException = await self._fetch(window, count_retry)
            except BetatelError as exc:
                page = exc
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                results_send.send_nowait((window, page))

        failure: BaseException | None = None
        # The stream closes after the task group has waited for every worker.
        async with results_send, results_recv, anyio.create_task_group() as tg:

            def launch() -> None:
                limit = max(1, self._concurrency())
                while plan.in_flight < limit:
                    window = plan.next_window()
                    if window is None:
                        return
                    tg.start_soon(worker, window)

            launch()
            async for window, result in results_recv:
                if isinstance(result, BaseException):
                    failure = result
                    break
                report.requests += 1
                report.pages += 1
                report._saw_total(result.total)
                drift = plan.on_page(window, result.total, len(result.items), result)
                if drift is not None:
                    failure = self._on_drift_detected(drift)
                    break
                report.total = plan.total
                report.page_cap = plan.cap
                for page in plan.ready():
                    await send.send(self._dedupe(page))
                    self._progress()
                if plan.finished:
                    break
                launch()
                if plan.in_flight == 0:  # pragma: no cover - a planning bug, never silent
                    failure = ScanError("scan stalled: no window to fetch and the listing is not complete")
                    break
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    def _on_drift_detected(self, drift: Drift) -> BaseException:
        if self._on_drift == "restart" and self.report.restarts < self._max_restarts:
            return _Restart(drift)
        return self._drift_error(drift)

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
