"""Concurrent offset pagination that is complete, in order, in bounded memory: the asyncio driver.

Strategy: the rules of a scan are a pure machine
(`ScanMachine`); this module performs
what it asks and decides nothing. `ScanDriver` asks the machine for
its next action, and:

- `Fetch`: gives the request to a worker task, which sends it
  (through the transport, under the client-wide limiter), reports its
  answer, unread, or its failure, then asks the machine again (so the next
  request goes out as soon as one comes back, without the consumer). A
  worker is started only when none is idle, so a scan never has more
  workers than it had requests in flight at once;
- `Cancel`: cancels that request (its worker carries on with the next);
- `Remember`: tells the client's totals cache;
- `Preconnect`: opens connections in the background;
- `Read`, `Build`, `Hand`: the consumer's steps, in
  the consumer's task (an async generator): read the body (JSON, envelope),
  build the typed items (and their keys, for a scan that dedupes), hand the
  page on;
- `Restart`: tells a snapshot's consumer to throw away what it kept;
- `Fail`, `Done`: raises, returns;
- `Wait`: sleeps until a request reports (or the deadline).

A page waiting for its turn is held as the bytes that came, the most compact
form, and its objects are made just before they are used, so they die young
instead of being promoted by the garbage collector. Everything runs on the
event loop's thread, so the machine is called between awaits only, without
locks.

Closing the scan (``aclose()``, leaving ``async with``, an error,
cancelling the consumer, or the event loop finalising an abandoned
iterator) cancels every request task and waits for them to unwind. The
request tasks reference the driver, never the consumer's generator nor the
[`PageScan`][betatel_async.PageScan] holding it, so a scan the caller drops becomes unreachable
and its generator's ``finally`` runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._converter import check_page, decode_json, structure_page
from ._errors import BetatelError, MalformedResponseError, ScanError
from ._models import Page
from ._scan_machine import (
    Action,
    Build,
    Cancel,
    Done,
    DriftPolicy,
    Fail,
    Fetch,
    Hand,
    Latencies,
    Policy,
    Preconnect,
    Read,
    Remember,
    Restart,
    ScanMachine,
    ScanReport,
    Wait,
    Window,
)

if TYPE_CHECKING:
    from ._resources._listing import Listing
    from ._telemetry import ScanTrace, Telemetry

__all__ = [
    "DriftPolicy",
    "ItemScan",
    "ListingMemory",
    "ListingTotals",
    "PageScan",
    "ScanDriver",
    "ScanReport",
    "Window",
]

T = TypeVar("T")
V = TypeVar("V")

logger = logging.getLogger("betatel_async")

FetchPage = Callable[[Window, Callable[[], None], bool], Awaitable[bytes]]
"""``fetch(window, on_retry, hedge)``: the body of a 2xx answer to ``window``, not parsed.

``hedge``: a second request for the window (not retried; it pays from the
retry budget, or raises `NoHedgeBudget` unsent)."""


class ListingMemory(Generic[V]):
    """What the client's scans learned about each listing (path and filters), for the next ones. Private.

    Two are kept per client: the ``total`` each listing reported last (a
    scan of a listing seen before plans its first windows on it instead of
    waiting for the first page, see ``ScanPlan``'s ``expected_total``;
    ``list()`` and scans both report it through the listing query's one
    ``saw_total``), and its answers' `Latencies` (when a request is
    late enough to hedge). Bounded: the least recently used listings are
    forgotten past ``size``; ``size=0`` remembers nothing.
    """

    __slots__ = ("_size", "_values")

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._values: dict[Hashable, V] = {}

    def get(self, listing: Hashable) -> V | None:
        return self._values.get(listing)

    def set(self, listing: Hashable, value: V) -> None:
        if not self._size:
            return
        values = self._values
        values.pop(listing, None)  # re-inserted last: the most recently used
        values[listing] = value
        if len(values) > self._size:
            del values[next(iter(values))]


ListingTotals = ListingMemory[int]


class PageScan(Generic[T]):
    """An async iterator over the pages of a listing, fetched concurrently.

    Use it with ``async with`` (or ``contextlib.aclosing``) when you may stop
    early, so that in-flight requests are cancelled at once rather than when
    the iterator is garbage-collected. `report` says what happened.

    Private constructor: obtain one from a resource's ``pages()``.
    """

    __slots__ = ("_driver", "_gen", "report")

    def __init__(self, driver: ScanDriver[T]) -> None:
        self._driver = driver
        self.report = driver.report
        self._gen: AsyncGenerator[Page[T]] | None = None

    def __aiter__(self) -> PageScan[T]:
        return self

    async def __anext__(self) -> Page[T]:
        if self._gen is None:
            self._gen = self._driver.run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the scan: cancel its requests in flight and wait until they are gone."""
        if self._gen is not None:
            await self._gen.aclose()

    async def __aenter__(self) -> PageScan[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ScanDriver(Generic[T]):
    """Performs a `ScanMachine`'s actions with asyncio; decides nothing. Private.

    Args:
        listing: What the pages hold (envelope key, model, key of an item).
        path: The listing's path, for error messages.
        fetch: Sends one page request (see `FetchPage`).
        remember: Reports a ``total`` to the client's totals cache.
        expected_total: The ``total`` the cache holds for the listing, or ``None``.
        concurrency: The scan's limit of requests in flight now (it follows
            the client's adaptive limit).
        preconnect: Opens connections ahead of the first wave, or ``None``.
        on_restart: Called when a snapshot starts over (the consumer throws
            away what it kept).
        on_progress: Called with the live report after each page handed on,
            and once at the end.
        hedge: Send a second request for a window whose request is late.
        latencies: The listing's answer latencies (the client's, per listing).
        typed: Hand on typed items (``True``), or the items as the JSON
            values read (``False``: export's JSON Lines writes them as sent;
            not with ``"restart"``, which dedupes by the typed items' keys).
        telemetry: The client's, for the scan's span (``None``: not traced).
        page_size, lookahead, ordered, start, on_drift, max_restarts: The
            machine's (see `ScanMachine`).
    """

    def __init__(
        self,
        listing: Listing[T],
        *,
        path: str,
        fetch: FetchPage,
        remember: Callable[[int], None],
        expected_total: int | None,
        concurrency: Callable[[], int],
        page_size: int,
        lookahead: int,
        ordered: bool,
        start: int,
        on_drift: Policy,
        max_restarts: int,
        preconnect: Callable[[int], Coroutine[Any, Any, None]] | None = None,
        on_restart: Callable[[], None] | None = None,
        on_progress: Callable[[ScanReport], Any] | None = None,
        typed: bool = True,
        hedge: bool = False,
        latencies: Latencies | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        if not typed and on_drift == "restart":
            raise ValueError("an untyped scan cannot dedupe by key: on_drift must not be 'restart'")
        self._listing = listing
        self._path = path
        self._fetch = fetch
        self._remember = remember
        self._concurrency = concurrency
        self._preconnect = preconnect
        self._on_restart = on_restart
        self._on_progress = on_progress
        self._typed = typed
        self.report = ScanReport()
        self._machine_args: dict[str, Any] = {
            "page_size": page_size,
            "lookahead": lookahead,
            "ordered": ordered,
            "start": start,
            "expected_total": expected_total,
            "on_drift": on_drift,
            "max_restarts": max_restarts,
            "hedge": hedge,
            "latencies": latencies,
        }
        self._machine: ScanMachine[bytes] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._idle: list[asyncio.Future[Fetch | None]] = []  # workers waiting for a request
        self._running: dict[int, asyncio.Task[None]] = {}  # request in flight -> its worker
        self._cancelled: set[int] = set()  # requests the machine cancelled, their workers not yet told
        self._helpers: set[asyncio.Task[None]] = set()  # preconnect
        self._for_consumer: Action[bytes] | None = None  # a consumer's step the machine gave a request task
        self._consumer: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._starts = 0  # requests given to workers so far
        self._closed = False
        self._telemetry = telemetry
        self._trace: ScanTrace | None = None  # the scan's span, once it runs

    # -- the consumer -----------------------------------------------------------------------

    async def run(self) -> AsyncGenerator[Page[T]]:
        """The pages, handed on as the machine says; stops the scan's tasks when closed."""
        loop = asyncio.get_running_loop()
        machine = self._machine = ScanMachine(**self._machine_args, report=self.report, now=loop.time())
        listing = self._listing
        raw: Page[Any] | None = None  # the page read, items not yet built
        page: Page[T] | None = None  # its items built
        failure: BaseException | None = None
        if self._telemetry is not None:
            self._trace = self._telemetry.scan(listing.path_key)
        try:
            while True:
                starts = self._starts
                action = self._next()
                started = self._starts != starts  # this task started requests (workers may too)
                if action is None:
                    await self._sleep()
                    continue
                if type(action) is Read:
                    window = action.window
                    try:
                        raw = self._read(action.body)
                    except MalformedResponseError as exc:
                        # Complete (one cut short was retried by the transport): the
                        # server sent something other than a page, and would again.
                        exc.add_note(f"the page at offset {window.offset} of the scan")
                        machine.unreadable(window, exc, loop.time())
                        continue
                    del action
                    machine.read(
                        window, offset=raw.offset, total=raw.total, items=len(raw.items), now=loop.time()
                    )
                elif type(action) is Build:
                    if started:
                        # Let the requests just started go out before this
                        # task spends the CPU on building the page's items.
                        await asyncio.sleep(0)
                    assert raw is not None
                    try:
                        page = self._build(raw) if self._typed else raw
                    except MalformedResponseError as exc:
                        machine.unreadable(action.window, exc, loop.time())
                        continue
                    finally:
                        raw = None
                    key = listing.key
                    keys = [key(item) for item in page.items] if action.keys else None
                    machine.built(action.window, keys, loop.time())
                elif type(action) is Hand:
                    assert page is not None
                    if action.drop:
                        page = _without(page, action.drop)
                    if self._on_progress is not None:
                        self._on_progress(self.report)
                    yielded, page = page, None
                    yield yielded
                    del yielded  # not held while the next page is built
                elif type(action) is Restart:
                    if action.discard and self._on_restart is not None:
                        self._on_restart()
                elif type(action) is Fail:
                    self._log("failed", action.error)
                    raise action.error  # noqa: TRY301 - the except below only notes it for the span
                elif type(action) is Done:
                    self._log("done")
                    if self._on_progress is not None:
                        self._on_progress(self.report)
                    return
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await self.stop()
            if self._trace is not None:
                self._trace.end(self.report, failure)

    def _log(self, outcome: str, error: BaseException | None = None) -> None:
        report = self.report
        logger.info(
            "scan GET %s %s: %d items, %d pages, %d requests, %d retries, %d hedges (%d won), "
            "%d restarts, %.3f s%s",
            self._path,
            outcome,
            report.items,
            report.pages,
            report.requests,
            report.retries,
            report.hedges,
            report.hedges_won,
            report.restarts,
            report.elapsed,
            "" if error is None else f" ({type(error).__name__})",
        )

    def _read(self, body: bytes) -> Page[Any]:
        data = decode_json(body, method="GET", path=self._path, status=200) if body else None
        return check_page(data, self._listing.items_key, method="GET", path=self._path)

    def _build(self, page: Page[Any]) -> Page[T]:
        listing = self._listing
        return structure_page(page, listing.items_key, listing.model, method="GET", path=self._path)

    async def _sleep(self) -> None:
        waiter = self._consumer = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._consumer = None

    # -- performing actions -----------------------------------------------------------------

    def _next(self) -> Action[bytes] | None:
        """The consumer's next step: one a worker was given for it, or the machine's (see `_perform()`)."""
        action = self._for_consumer
        if action is not None:
            self._for_consumer = None
            return action
        return self._perform()

    def _perform(self) -> Action[bytes] | None:
        """Perform the machine's actions up to a step for the consumer (returned), or ``None`` on `Wait`."""
        machine = self._machine
        assert machine is not None
        loop = asyncio.get_running_loop()
        while True:
            action = machine.next_action(loop.time(), self._concurrency())
            kind = type(action)
            if kind is Fetch:
                assert isinstance(action, Fetch)
                self._start(action)
            elif kind is Cancel:
                assert isinstance(action, Cancel)
                task = self._running.get(action.request)
                if task is not None:
                    self._cancelled.add(action.request)
                    task.cancel()
            elif kind is Remember:
                assert isinstance(action, Remember)
                self._remember(action.total)
            elif kind is Preconnect:
                assert isinstance(action, Preconnect)
                self._open_connections(action.count)
            elif kind is Wait:
                assert isinstance(action, Wait)
                self._arm(action.until)
                return None
            else:
                return action

    def _pump(self) -> None:
        """Perform the machine's actions after an event outside the consumer (a request, the timer)."""
        if self._closed:
            return
        action = self._perform()
        if action is None or action is self._for_consumer:  # (a final step is given again when asked)
            return
        # The machine gives the consumer one step at a time, so the slot is free.
        self._for_consumer = action
        waiter = self._consumer
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _start(self, fetch: Fetch) -> None:
        """Give ``fetch`` to an idle worker, or to a new one (so workers never outnumber requests)."""
        if self._idle:
            self._idle.pop().set_result(fetch)
        else:
            trace = self._trace  # the requests' spans are the scan's children
            task = asyncio.get_running_loop().create_task(
                self._work(fetch), context=None if trace is None else trace.task_context()
            )
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        self._starts += 1

    async def _work(self, fetch: Fetch | None) -> None:
        """One worker: sends the requests it is given, one at a time, reporting each to the machine."""
        machine = self._machine
        assert machine is not None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        while fetch is not None:
            request = fetch.request
            self._running[request] = task
            try:
                body = await self._fetch(fetch.window, machine.retried, fetch.hedge)
            except BetatelError as exc:
                machine.failed(request, exc, loop.time())
            except asyncio.CancelledError:
                if self._closed:  # the scan is being stopped
                    raise
                if request in self._cancelled:  # the machine's Cancel: it forgot the request
                    self._cancelled.discard(request)
                    task.uncancel()
                else:
                    error = ScanError("a scan request was cancelled, but not by the scan")
                    machine.failed(request, error, loop.time())
            except BaseException as exc:  # a bug, Ctrl-C, sys.exit(): the scan ends with it
                machine.failed(request, exc, loop.time())
                if not isinstance(exc, Exception):
                    self._pump()
                    raise
            else:
                machine.arrived(request, body, loop.time())
                del body
            finally:
                del self._running[request]
            # Idle before asking the machine, so that a request it asks for now goes to this worker.
            waiter: asyncio.Future[Fetch | None] = loop.create_future()
            self._idle.append(waiter)
            self._pump()
            fetch = await waiter

    def _open_connections(self, count: int) -> None:
        if self._preconnect is None:
            return
        task = asyncio.get_running_loop().create_task(self._preconnect(count))
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _arm(self, until: float | None) -> None:
        if until is None or (self._timer is not None and self._timer_at <= until):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = until
        self._timer = asyncio.get_running_loop().call_at(until, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    async def stop(self) -> None:
        """Cancel the scan's tasks (its requests in flight) and wait until they are gone."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [*self._workers, *self._helpers]
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)


def _without(page: Page[T], drop: tuple[int, ...]) -> Page[T]:
    """``page`` without the items at positions ``drop`` (sorted)."""
    dropped = set(drop)
    kept = [item for position, item in enumerate(page.items) if position not in dropped]
    return Page(total=page.total, offset=page.offset, count=len(kept), items=kept)


class ItemScan(Generic[T]):
    """An async iterator over the items of a listing (a flattened [`PageScan`][betatel_async.PageScan]).

    Use ``async with client.sims.iter() as sims: async for sim in sims: ...``
    when you may stop early; `report` says what happened.
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
