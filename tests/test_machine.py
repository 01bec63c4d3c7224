"""The scan machine alone: every rule a named property against simulated servers. No asyncio, no HTTP.

Strategy: a small discrete-event simulator with a virtual clock plays a
server (latencies, failures, a page cap, drift, servers that ignore or
misreport ``offset``, repeated keys) and a consumer (slow or not) against
:class:`ScanMachine`, and performs the machine's actions the way
``_paginate.py::ScanDriver`` does: ``_next`` asks for actions, performing
the chores and requests, up to a consumer's step or :class:`Wait`; an
answer (or a timer) reports to the machine and ``_pump``\\ s, keeping at most
one consumer step for later; the consumer reads, dedupes and hands on one
page at a time, and "works" on each page handed for some virtual time while
answers keep arriving. (``eager`` scenarios also ask the machine while a
consumer's step is waiting, keeping the steps in a queue: the machine allows
it, and it asks more often.) Hedging: scenarios draw it on or off, the
listing's :class:`Latencies` empty or pre-filled, and stragglers (a drawn
fraction of requests, each drawn anew, take ``STRAGGLE``); the driver arms
one timer for a :class:`Wait` deadline (the earliest) and pumps when it
fires, a hedge may be refused by a drawn budget (reported as
:class:`NoHedgeBudget` right after, unsent), and bodies carry the request
that fetched them. The simulator records what it sees; each test
checks one rule against those records, so a broken rule fails the test named
after it. ``tests/test_plan.py`` tests :class:`ScanPlan` on its own.
"""

from __future__ import annotations

import ast
import heapq
import itertools
import random
from collections import Counter, deque
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from betatel_async import APIError, DriftError, MalformedResponseError, ScanError
from betatel_async._scan_machine import (
    HEDGE_DEFAULT_DELAY,
    HEDGE_FLOOR,
    HEDGE_FRACTION,
    HEDGE_MIN_SAMPLES,
    HEDGE_MULTIPLIER,
    PRECONNECT_MAX,
    Action,
    Build,
    Cancel,
    Done,
    Fail,
    Fetch,
    Hand,
    Latencies,
    NoHedgeBudget,
    Policy,
    Preconnect,
    Read,
    Remember,
    Restart,
    ScanMachine,
    Wait,
    Window,
)

# -- scenarios ----------------------------------------------------------------------------------


@attrs.frozen
class Change:
    """The listing changes: at virtual time ``at`` or right after the ``after``-th page served."""

    at: float | None
    after: int | None
    position: int  # where items are inserted or deleted (clamped to the listing)
    size: int


Mode = Literal["honest", "ignores_offset", "lies", "repeats"]


@attrs.frozen
class Scenario:
    total: int
    page_size: int
    lookahead: int
    cap: int | None
    start: int
    ordered: bool
    expected_total: int | None
    on_drift: Policy
    max_restarts: int
    mode: Mode = "honest"
    lie_from: int = 0  # "lies": pages asked at this offset or past it say another offset
    repeat: tuple[int, int] | None = None  # "repeats": the item at [1] has the key of the item at [0]
    changes: tuple[Change, ...] = ()
    grows: bool = True  # every change inserts (or every change deletes): each version has its own total
    fail_rate: float = 0.0
    fail_past_end: bool = False  # every request for a window past the listing's end fails
    unreadable_rate: float = 0.0
    retry_rate: float = 0.0
    late_rate: float = 0.0  # a cancelled request still reports (it must be ignored)
    limits: tuple[tuple[float, int], ...] = ((0.0, 4),)  # (from time, limit), sorted
    latency: tuple[float, float] = (0.5, 1.5)
    work: float = 0.0  # the consumer's most virtual time per page handed
    eager: bool = False
    seed: int = 0
    hedge: bool = False
    prefill: int = 0  # answers the listing's Latencies knew before the scan (latencies drawn as the scan's)
    stragglers: float = 0.0  # the fraction of requests (each attempt drawn anew) that take STRAGGLE
    refuse_rate: float = 0.0  # the budget: a hedge is refused (NoHedgeBudget, unsent) this often
    slots: int | None = None  # the client-wide limit: a hedge is refused when this many requests are out


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    policies: tuple[Policy, ...] = ("raise", "restart", "snapshot"),
    modes: tuple[Mode, ...] = ("honest",),
    drift: bool = False,
    failures: bool = False,
    unreadable: bool = False,
    late: bool = True,
    guesses: tuple[str, ...] = ("none", "right", "high", "low"),
    wide: bool = False,
    ordered: bool | None = None,
    slow: bool = False,
    hedge: bool | None = None,
    stragglers: tuple[float, ...] = (0.0, 0.03, 0.3),
    refusals: bool = True,
    prefills: tuple[int, ...] = (0, 0, 3, 20, 100),
    fail_rates: tuple[float, ...] = (0.0, 0.02, 0.2),
    max_page_size: int = 60,
) -> Scenario:
    """``wide``: a look-ahead of 3 pages or more and 3 requests or more at first (a wave of guesses).
    ``slow``: a slow consumer and latencies that vary a lot (answers arrive out of order and wait).
    ``hedge``: hedging on or off (drawn if ``None``), with ``stragglers`` and (if ``refusals``) a
    budget that may refuse hedges; the listing's latencies know one of ``prefills`` answers at first."""
    total = draw(st.integers(0, 400))
    page_size = draw(st.integers(1, max_page_size))
    lookahead = page_size * draw(st.integers(3 if wide else 1, 6)) + draw(st.integers(0, page_size - 1))
    guess = draw(st.sampled_from(guesses))
    off_by = draw(st.integers(1, 250))
    expected_total = {
        "none": None,
        "right": total,
        "high": total + off_by,
        "low": max(0, total - off_by),
    }[guess]
    mode = draw(st.sampled_from(modes))
    repeat = None
    if mode == "repeats":
        total = max(total, 2)
        first = draw(st.integers(0, total - 2))
        repeat = (first, draw(st.integers(first + 1, total - 1)))
    changes: tuple[Change, ...] = ()
    if drift:
        changes = tuple(
            draw(
                st.lists(
                    st.builds(
                        Change,
                        at=st.none() | st.floats(0, 30),
                        after=st.none() | st.integers(1, 20),
                        position=st.integers(0, 450),
                        size=st.integers(1, 40),
                    ),
                    min_size=1,
                    max_size=4,
                )
            )
        )
    limits = [(0.0, draw(st.integers(3 if wide else 1, 8)))]
    for at, limit in draw(st.lists(st.tuples(st.floats(0.1, 40), st.integers(1, 12)), max_size=4)):
        limits.append((at, limit))
    limits.sort()
    latency = draw(st.sampled_from([(0.1, 5.0)] if slow else [(0.5, 1.5), (0.1, 5.0), (1.0, 1.0)]))
    return Scenario(
        total=total,
        page_size=page_size,
        lookahead=lookahead,
        cap=draw(st.none() | st.integers(1, 60)),
        start=draw(st.sampled_from([0, 0, 0]) | st.integers(0, 450)),
        ordered=draw(st.booleans()) if ordered is None else ordered,
        expected_total=expected_total,
        on_drift=draw(st.sampled_from(policies)),
        max_restarts=draw(st.integers(0, 3)),
        mode=mode,
        lie_from=draw(st.integers(0, 200)),
        repeat=repeat,
        changes=changes,
        grows=draw(st.booleans()),
        fail_rate=draw(st.sampled_from(fail_rates)) if failures else 0.0,
        # Without drift, a request past the end is a guess that may fail harmlessly; with drift, the
        # end moves, and a window inside the listing as the scan knows it may fail: a real failure.
        fail_past_end=draw(st.booleans()) if failures or not drift else False,
        unreadable_rate=draw(st.sampled_from([0.0, 0.05])) if unreadable else 0.0,
        retry_rate=draw(st.sampled_from([0.0, 0.3])),
        late_rate=draw(st.sampled_from([0.0, 0.5, 1.0])) if late else 0.0,
        limits=tuple(limits),
        latency=latency,
        work=draw(st.sampled_from([3.0, 20.0] if slow else [0.0, 0.3, 3.0, 20.0])),
        eager=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32)),
        hedge=draw(st.booleans()) if hedge is None else hedge,
        prefill=draw(st.sampled_from(prefills)),
        stragglers=draw(st.sampled_from(stragglers)),
        refuse_rate=draw(st.sampled_from([0.0, 0.0, 0.3])) if refusals else 0.0,
        slots=draw(st.none() | st.integers(1, 8)) if refusals else None,
    )


# -- the simulated server -------------------------------------------------------------------------


@attrs.frozen
class Body:
    """A page as the server sent it (the machine carries it unread)."""

    offset: int  # the envelope's
    total: int
    keys: tuple[str, ...]
    version: int  # of the listing it was cut from
    unreadable: bool = False  # the envelope cannot be read
    unbuildable: bool = False  # the envelope reads, its items do not build
    request: int = -1  # the request it answers (a hedged window has two)


class Server:
    """The listing, its versions, and pages cut from it as the scenario's server does."""

    def __init__(self, sc: Scenario, rng: random.Random) -> None:
        self.sc = sc
        self.rng = rng
        keys = [f"k{n}" for n in range(sc.total)]
        if sc.repeat is not None:
            keys[sc.repeat[1]] = keys[sc.repeat[0]]
        self.versions: list[tuple[str, ...]] = [tuple(keys)]
        self.served = 0
        self._new = itertools.count()

    @property
    def keys(self) -> tuple[str, ...]:
        return self.versions[-1]

    def change(self, change: Change) -> None:
        keys = list(self.keys)
        position = min(change.position, len(keys))
        if self.sc.grows:
            keys[position:position] = [f"new{next(self._new)}" for _ in range(change.size)]
        elif keys:
            position = min(position, len(keys) - 1)
            del keys[position : position + change.size]
        else:
            return  # nothing to delete: the listing (and its total) stays
        self.versions.append(tuple(keys))

    def page(self, window: Window) -> Body:
        sc, keys = self.sc, self.keys
        offset = 0 if sc.mode == "ignores_offset" else window.offset
        size = window.count if sc.cap is None else min(window.count, sc.cap)
        said = offset
        if sc.mode == "lies" and window.offset >= sc.lie_from:
            said = window.offset + self.rng.choice([1, -1, sc.page_size, -window.offset or 7])
        return Body(
            offset=said,
            total=len(keys),
            keys=keys[offset : offset + size],
            version=len(self.versions) - 1,
            unreadable=self.rng.random() < sc.unreadable_rate,
            unbuildable=self.rng.random() < sc.unreadable_rate,
        )

    def fails(self, window: Window) -> bool:
        sc = self.sc
        past = window.offset >= len(self.keys) and window.offset != sc.start
        return (sc.fail_past_end and past) or self.rng.random() < sc.fail_rate


# -- hedging: the listing's latencies, the delay, the budget --------------------------------------

STRAGGLE = 30.0
"""Virtual seconds a straggler takes (the others take at most 5)."""


class RecordingLatencies(Latencies):
    """The listing's :class:`Latencies`, recording every sample added, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[float] = []

    def add(self, seconds: float) -> None:
        self.history.append(seconds)
        super().add(seconds)


def documented_delay(samples: list[float]) -> float:
    """The hedge delay as :class:`Latencies` documents it, after ``samples`` (it keeps the last 256)."""
    kept = [max(sample, 0.0) for sample in samples[-256:]]
    if not kept:
        return HEDGE_DEFAULT_DELAY
    if len(kept) < HEDGE_MIN_SAMPLES:
        return max(HEDGE_FLOOR, 4 * max(kept))
    return max(HEDGE_FLOOR, HEDGE_MULTIPLIER * sorted(kept)[(len(kept) - 1) * 95 // 100])


def delays_in_force(history: list[float]) -> list[float]:
    """The delays :class:`Latencies` may give after ``history``: recomputed at each call while it
    knows fewer than 64 answers, then once 16 new ones came (so from one of the last 16 states)."""
    n = len(history)
    return [documented_delay(history[:k]) for k in range(n if n < 64 else n - 15, n + 1)]


def hedge_cap(sc: Scenario, total: int | None) -> int:
    """Most hedges of a pass: 10% of its pages (at least one); one while its total is not known."""
    if total is None:
        return 1
    pages = -(-max(total - sc.start, 0) // sc.page_size)
    return max(1, int(pages * HEDGE_FRACTION))


@attrs.define
class HedgeSent:
    """A :class:`Fetch` with ``hedge=True`` the simulator performed."""

    request: int
    first: int  # the window's request it doubles
    window: Window
    pass_no: int
    tick: int  # order among the simulator's events
    refused: bool  # the budget said no: reported as NoHedgeBudget, nothing sent


LOSER = "loser"  # an answer the machine was told of after the other request of its window won
REFUSED = "refused"  # a hedge refusal the machine was told of


# -- the simulated driver and consumer ------------------------------------------------------------


class StalledError(Exception):
    """The simulation cannot go on: the machine waits with nothing that could wake it, or never ends."""


@attrs.define
class Failure:
    """A request failure the simulator reported to the machine for a live request."""

    request: int
    window: Window
    error: BaseException  # what the scan fails with: of a hedged window, its first request's to fail
    fatal: bool  # by the rule: ``total`` known in this pass, or the first window
    received: dict[int, Body]  # this pass's pages arrived before it, by offset


@attrs.define
class Handed:
    pass_no: int
    window: Window
    keys: list[str]
    dropped: int


MAX_STEPS = 200_000


class Sim:
    """Plays the scenario's server and consumer against a :class:`ScanMachine`; records what it sees."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.server = Server(sc, self.rng)
        self.now = 0.0
        self.latencies = RecordingLatencies()
        for _ in range(sc.prefill):  # what earlier scans of the listing learned
            self.latencies.add(self.rng.uniform(*sc.latency))
        self.prefilled = sc.prefill
        self.machine: ScanMachine[Body] = ScanMachine(
            page_size=sc.page_size,
            lookahead=sc.lookahead,
            ordered=sc.ordered,
            start=sc.start,
            expected_total=sc.expected_total,
            on_drift=sc.on_drift,
            max_restarts=sc.max_restarts,
            latencies=self.latencies,
            hedge=sc.hedge,
            now=0.0,
        )
        self.lookahead = max(sc.lookahead, sc.page_size)
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._for_consumer: deque[Action[Body]] = deque()
        self.steps = 0
        # The scan as the simulator sees it, independently of the machine.
        self.live: dict[int, Window] = {}  # requests sent, not answered, failed or cancelled
        self.pass_no = 0
        self.pass_total: int | None = None  # learned by the first page read in this pass
        self.position = sc.start  # ordered: the end of the last page read in this pass
        self.arrived: dict[int, int] = {}  # this pass: offset -> count asked, arrived and not given to read
        self.received: dict[int, Body] = {}  # this pass: every page arrived, by offset
        self.read_versions: list[list[int]] = [[]]  # per pass: versions of the pages read
        self.accepted = 0  # answers reported for live requests
        self.retries = 0
        self.totals_seen: list[int] = []
        self.expected_remember: list[int] = []
        self.remembered: list[int] = []
        self.preconnects: list[tuple[int, int]] = []  # (count, limit)
        self.restarts: list[Restart] = []
        self.handed: list[Handed] = []
        self.failures: list[Failure] = []
        self.unreadable_errors: list[BaseException] = []
        self.unreadable_at: int | None = None  # index in handed when the first unreadable page was read
        self.errors: list[BaseException] = []  # failures that matter and unreadable pages, as reported
        self.drift_reads: list[
            tuple[int, int]
        ] = []  # (pass, index in handed) of a page read with another total
        self.pass_answered = False  # an answer (or failure) of this pass came in
        self.bad_offset_read_at: int | None = None  # index in handed when a page with a wrong offset was read
        self.cancels: list[tuple[int, Window]] = []
        self._served: dict[int, Body] = {}  # pages cut by the server, not yet arrived
        self.answered: dict[int, Failure | tuple[Window, Body] | str] = {}  # answers the machine was told of
        self.late_cancels = 0  # cancellations performed after the request was answered
        self.outcome: Fail | Done | None = None
        # When the machine first said Fail or Done (a timer may end the scan while the consumer works).
        self.ended_at: float | None = None
        # Hedging, as the simulator sees it.
        self.tick = 0  # counts fetches and reports, to order them
        self.sent_at: dict[int, float] = {}  # request -> when it was sent
        self.latency_of: dict[int, float] = {}  # request -> how long it takes (drawn when sent)
        self.fetched = 0
        self.hedges: list[HedgeSent] = []
        self.partner: dict[int, int] = {}  # request of a hedged window -> the window's other request
        self.hedged_open: dict[int, int] = {}  # this pass: offset -> its hedge, window not yet settled
        self.pair_error: dict[int, BaseException] = {}  # this pass: offset -> first real failure of a pair
        self.lost: set[int] = set()  # requests whose window the other request's answer won
        self.to_cancel: set[int] = set()  # losers the machine has not asked to cancel yet
        self.loser_reports = 0  # answers and failures of losers fed to the machine
        self.refusals: list[tuple[int, int]] = []  # (tick, request) of refusals the machine was told of
        self.wins: set[int] = set()  # hedges whose answer the machine took (the window's first answer)
        self.accepted_by: dict[int, int] = {}  # this pass: offset -> the request whose answer was taken
        self.unsampled: set[int] = set()  # answers taken that added no latency (cancelled meanwhile?)
        self.read_offsets: set[int] = set()  # this pass: windows given to read
        self.doomed = False  # this pass failed or drifted (a failure, a bad page): nothing more is sent
        self.timers = 0  # timer events that fired
        self.pass_totals: dict[int, int] = {}  # pass -> the total its first page read gave
        self._timer_at: float | None = None  # the driver's one timer
        # Rule violations seen along the way, by rule.
        self.violations: dict[str, list[str]] = {}
        for at, change in ((c.at, c) for c in sc.changes):
            if at is not None:
                self._schedule(at, "change", change)
        for at, _ in sc.limits[1:]:
            self._schedule(at, "limit", None)

    # -- bookkeeping --

    def violation(self, rule: str, text: str) -> None:
        self.violations.setdefault(rule, []).append(f"t={self.now:.3f}: {text}")

    def _schedule(self, at: float, kind: str, data: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, data))

    def limit(self) -> int:
        current = self.sc.limits[0][1]
        for at, limit in self.sc.limits:
            if at <= self.now:
                current = limit
        return current

    def end(self) -> int | None:
        """Where this pass's windows stop, once its total is known."""
        return None if self.pass_total is None else max(self.pass_total, self.sc.start)

    def past_end(self, offset: int) -> bool:
        end = self.end()
        return end is not None and offset >= end and offset != self.sc.start

    def machine_state(self) -> tuple[object, ...]:
        machine = self.machine
        plan = machine._plan
        return (
            attrs.asdict(machine.report),
            machine.in_flight,
            machine.total,
            plan.in_flight,
            plan.buffered,
            len(self.latencies.history),
        )

    # -- the driver: ScanDriver._next, _pump, _request --

    def next_step(self) -> Action[Body] | None:
        """Perform the machine's chores and requests up to a consumer's step (returned), ``None`` on Wait."""
        if self._for_consumer:
            return self._for_consumer.popleft()
        return self._ask()

    def _ask(self) -> Action[Body] | None:
        while True:
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise StalledError("the machine never ends")
            limit = self.limit()
            action = self.machine.next_action(self.now, limit)
            if self.to_cancel and not isinstance(action, Cancel | Remember | Preconnect):
                self.violation("loser", f"{action} before the cancellation of losers {self.to_cancel}")
                self.to_cancel.clear()
            if isinstance(action, Fetch):
                self._fetch(action, limit)
            elif isinstance(action, Cancel):
                self._cancel(action)
            elif isinstance(action, Remember):
                self.remembered.append(action.total)
            elif isinstance(action, Preconnect):
                self.preconnects.append((action.count, limit))
            elif isinstance(action, Wait):
                if action.until is not None:
                    self._arm(action.until)
                self._after_chores()
                return None
            else:
                if isinstance(action, Read):  # taken: no longer held as arrived
                    self.arrived.pop(action.window.offset, None)
                if isinstance(action, Fail | Done) and self.ended_at is None:
                    self.ended_at = self.now
                self._after_chores()
                return action

    def _arm(self, until: float) -> None:
        # ScanDriver._arm: one timer, at the earliest deadline asked for.
        if until <= self.now:
            # Asked now, the machine would say the same: a busy loop (a real clock would spin).
            self.violation("liveness", f"Wait(until={until}) at {self.now}: a deadline already past")
            raise StalledError("busy loop")
        if self._timer_at is None or until < self._timer_at:
            self._timer_at = until
            self._schedule(until, "timer", until)

    def pump(self) -> None:
        """An event outside the consumer: perform actions, keep the consumer's next step."""
        if self.outcome is not None:
            return
        if self._for_consumer and not self.sc.eager:
            return  # the driver's ``_next`` hands back the step it holds without asking the machine
        if self.sc.eager:
            while not self._for_consumer or not isinstance(self._for_consumer[-1], Fail | Done):
                action = self._ask()
                if action is None:
                    return
                self._for_consumer.append(action)
            return
        action = self._ask()
        if action is not None:
            self._for_consumer.append(action)

    def _after_chores(self) -> None:
        # Guesses found past the end once the total is known are cancelled by now.
        for request, window in self.live.items():
            if self.past_end(window.offset):
                self.violation(
                    "cancel", f"request {request} for {window} past the end {self.end()} not cancelled"
                )

    def _fetch(self, fetch: Fetch, limit: int) -> None:
        window, sc, request = fetch.window, self.sc, fetch.request
        if request in self.live:
            self.violation("protocol", f"request id {request} reused")
        if len(self.live) >= limit:
            self.violation("limit", f"{fetch} with {len(self.live)} requests in flight, limit {limit}")
        refused = False
        if fetch.hedge:  # a window already out (and counted against the look-ahead) asked again
            refused = self._hedge(fetch)
        elif sc.ordered:
            if window.offset >= self.position + self.lookahead:
                self.violation(
                    "lookahead",
                    f"{window} starts {window.offset - self.position} past the position {self.position}, "
                    f"look-ahead {self.lookahead}",
                )
        else:
            out = {w.offset: w.count for w in self.live.values() if not self.past_end(w.offset)}
            held = sum(out.values())
            held += sum(count for offset, count in self.arrived.items() if not self.past_end(offset))
            if held + window.count > self.lookahead:
                self.violation("lookahead", f"{window} with {held} items held, look-ahead {self.lookahead}")
        if self.pass_total is None and self.pass_answered and not fetch.hedge:
            self.violation("guess", f"{fetch} guessed after an answer came, before the total is known")
        self.tick += 1
        self.fetched += 1
        self.live[request] = window
        self.sent_at[request] = self.now
        if refused:  # the transport raises NoHedgeBudget as the worker starts: right after, unsent
            self._schedule(self.now, "refuse", request)
            return
        latency = STRAGGLE if self.rng.random() < sc.stragglers else self.rng.uniform(*sc.latency)
        self.latency_of[request] = latency
        # The server cuts the page somewhere between the request and its answer: a page cut before
        # the listing changed may arrive after one cut after.
        self._schedule(self.now + latency * self.rng.random(), "serve", request)
        self._schedule(self.now + latency, "answer", request)

    def _hedge(self, fetch: Fetch) -> bool:
        """Check a hedge against the rules, pair it with its window's request; whether it is refused."""
        window, sc = fetch.window, self.sc
        if not sc.hedge:
            self.violation("hedge", f"{fetch} with hedging off")
        if self.doomed:
            self.violation("hedge", f"{fetch} after its pass failed or drifted")
        out = [r for r, w in self.live.items() if w == window]
        first = out[0] if out else -1
        if window.offset in self.hedged_open or len(out) != 1 or first in self.partner:
            self.violation("hedge", f"{fetch} for a window already hedged, or not out (out: {out})")
        if first >= 0:
            waited = self.now - self.sent_at[first]
            delay = min(delays_in_force(self.latencies.history))
            if waited < delay - 1e-9:
                self.violation("delay", f"{fetch}: its window was out {waited:.4f}, the delay is {delay:.4f}")
            self.partner[first] = fetch.request
            self.partner[fetch.request] = first
        self.hedged_open[window.offset] = fetch.request
        if self.pass_total is None and any(h.pass_no == self.pass_no for h in self.hedges):
            self.violation("cap", f"{fetch}: a second hedge before the total of pass {self.pass_no} is known")
        refused = self.rng.random() < sc.refuse_rate or (sc.slots is not None and len(self.live) >= sc.slots)
        self.hedges.append(HedgeSent(fetch.request, first, window, self.pass_no, self.tick, refused))
        return refused

    def _cancel(self, cancel: Cancel) -> None:
        request = cancel.request
        self.to_cancel.discard(request)
        window = self.live.pop(request, None)
        if window is None:
            self._cancel_answered(cancel)
            return
        self.cancels.append((request, window))
        if request in self.lost:
            # The loser's answer comes anyway (cancelled too late): it must change nothing.
            keys = self.server.keys[window.offset : window.offset + window.count]
            version = len(self.server.versions) - 1
            served = Body(offset=window.offset, total=len(self.server.keys), keys=keys, version=version)
            self._loser_report(request, attrs.evolve(self._served.get(request, served), request=request))
            return
        if self.rng.random() < self.sc.late_rate:
            # The task was cancelled too late: its report still comes, and must change nothing.
            before = self.machine_state()
            if self.rng.random() < 0.5:
                body = Body(offset=window.offset, total=0, keys=(), version=-1)
                self.machine.arrived(request, body, self.now)
            else:
                self.machine.failed(request, ScanError("cancelled, not by the scan"), self.now)
            if self.machine_state() != before:
                self.violation(
                    "cancel", f"a late event about cancelled request {request} changed the machine"
                )

    def _loser_report(self, request: int, outcome: Body | BaseException) -> None:
        """Report a loser's answer (or failure) to the machine: it must change nothing."""
        self.loser_reports += 1
        before = self.machine_state()
        if isinstance(outcome, Body):
            self.machine.arrived(request, outcome, self.now)
        else:
            self.machine.failed(request, outcome, self.now)
        if self.machine_state() != before:
            self.violation(
                "loser", f"the report of request {request}, whose window was won, changed the machine"
            )

    def _cancel_answered(self, cancel: Cancel) -> None:
        # The driver performs a cancellation the machine decided on an event
        # (a failure) when it next asks the machine; while the consumer holds
        # a step, that is later, and the request may have been answered
        # meanwhile. The machine ignored that answer: so does the simulator.
        request = cancel.request
        answer = self.answered.pop(request, None)
        if answer is None:
            self.violation("protocol", f"{cancel} of a request never sent, or cancelled twice")
            return
        self.late_cancels += 1
        if answer == LOSER:
            return
        self.refusals = [(tick, r) for tick, r in self.refusals if r != request]
        if isinstance(answer, Failure):
            self.failures.remove(answer)
            if answer.error in self.errors:
                self.errors.remove(answer.error)
            return
        if not isinstance(answer, tuple):  # a refusal the machine did not hear
            return
        window, body = answer
        self.accepted -= 1
        self.wins.discard(request)
        self.unsampled.discard(request)
        if self.accepted_by.get(window.offset) == request:
            del self.accepted_by[window.offset]
        if self.received.get(window.offset) is body:
            del self.received[window.offset]
            self.arrived.pop(window.offset, None)

    def _answer(self, request: int, *, refused: bool = False) -> None:
        """Request ``request`` is answered, fails, or (a hedge) is refused by the budget."""
        window = self.live.pop(request, None)
        if window is None:
            return  # cancelled: the driver's task is gone
        self.tick += 1
        server, offset = self.server, window.offset
        body = None if refused else self._served.pop(request)
        failing = refused or server.fails(window)
        error: BaseException
        if refused:
            error = NoHedgeBudget()
        else:
            error = APIError(f"simulated failure of request {request}", method="GET", path="/sim")
        if request in self.lost:  # the other request of its window answered first
            self.answered[request] = LOSER
            self._loser_report(request, error if failing or body is None else body)
            self.pump()
            return
        partner = self.partner.get(request)
        partner_live = partner is not None and partner in self.live
        if refused:
            self.answered[request] = REFUSED
            self.refusals.append((self.tick, request))
        elif (partner is None or partner > request) and self.rng.random() < self.sc.retry_rate:
            self.retries += 1  # (a hedge is not retried)
            self.machine.retried()
        if failing and partner_live:  # one of its window's two requests: the other may still answer
            if not refused:
                self.pair_error.setdefault(offset, error)
                failure = Failure(request, window, error, False, dict(self.received))
                self.failures.append(failure)
                self.answered[request] = failure
            self.machine.failed(request, error, self.now)
        elif failing:
            reported = error
            if partner is not None:  # both of its window's requests failed: the first real failure
                error = self.pair_error.pop(offset, error)
                self.hedged_open.pop(offset, None)
            self.pass_answered = True
            fatal = self.pass_total is not None or offset == self.sc.start
            failure = Failure(request, window, error, fatal, dict(self.received))
            self.failures.append(failure)
            self.answered[request] = failure
            if fatal:
                self.errors.append(error)
                self.doomed = True
            self.machine.failed(request, reported, self.now)
        else:
            assert body is not None
            self.pass_answered = True
            self.accepted += 1
            self.arrived[offset] = window.count
            self.received[offset] = body
            self.answered[request] = (window, body)
            self.accepted_by[offset] = request
            if partner is not None:  # the window's first answer: it wins
                self.hedged_open.pop(offset, None)
                self.pair_error.pop(offset, None)
                if partner_live:
                    self.lost.add(partner)
                    self.to_cancel.add(partner)
                if partner < request:
                    self.wins.add(request)
            history = self.latencies.history
            samples = len(history)
            self.machine.arrived(request, body, self.now)
            if len(history) == samples:
                self.unsampled.add(request)  # the machine had forgotten it: a Cancel must come
            elif len(history) != samples + 1 or history[-1] != self.now - self.sent_at[request]:
                self.violation("latency", f"the answer to {request} added {history[samples:]}")
        self.pump()

    def _serve(self, request: int) -> None:
        window = self.live.get(request)
        if window is None:
            return  # cancelled before the server answered
        server = self.server
        self._served[request] = attrs.evolve(server.page(window), request=request)
        server.served += 1
        for change in self.sc.changes:
            if change.after == server.served:
                server.change(change)

    def _event(self, deadline: float | None) -> bool:
        """Handle the next event (if before ``deadline``); whether one was handled."""
        if not self._heap or (deadline is not None and self._heap[0][0] > deadline):
            return False
        at, _, kind, data = heapq.heappop(self._heap)
        self.now = max(self.now, at)
        if kind == "serve":
            self._serve(data)
        elif kind == "answer":
            self._answer(data)
        elif kind == "change":
            self.server.change(data)
        elif kind == "refuse":
            self._answer(data, refused=True)
        elif kind == "timer" and data == self._timer_at:  # (else re-armed earlier, and it fired)
            self._timer_at = None
            self.timers += 1
            self.pump()
        # "limit": the limit is read at each call; the driver does not pump on its change
        return True

    # -- the consumer: ScanDriver.run --

    def run(self) -> Sim:
        machine, sc = self.machine, self.sc
        body: Body | None = None
        while True:
            action = self.next_step()
            if action is None:
                if self.live and not self._heap:
                    raise StalledError("requests in flight but no event")  # a simulator bug
                if not self._event(None):
                    self.violation("liveness", "the machine waits, with nothing in flight and nothing to do")
                    raise StalledError("stalled")
                while not self._for_consumer and self._event(None):
                    pass
                continue
            if isinstance(action, Read):
                window = action.window
                body = action.body
                self._on_take(window, body)
                if body.unreadable:
                    machine.unreadable(window, self._unreadable("not a page"), self.now)
                    body = None
                    continue
                self._on_read(window, body)
                machine.read(window, offset=body.offset, total=body.total, items=len(body.keys), now=self.now)
            elif isinstance(action, Build):
                if body is None or action.keys != (sc.on_drift == "restart"):
                    self.violation("protocol", f"{action} when no page is read, or keys asked wrongly")
                    raise StalledError("protocol")
                if body.unbuildable:
                    machine.unreadable(action.window, self._unreadable("items do not build"), self.now)
                    body = None
                    continue
                machine.built(action.window, list(body.keys) if action.keys else None, self.now)
            elif isinstance(action, Hand):
                if body is None:
                    self.violation("protocol", f"{action} without a page read")
                    raise StalledError("protocol")
                drop = set(action.drop)
                if len(drop) != len(action.drop) or not all(0 <= d < len(body.keys) for d in drop):
                    self.violation("protocol", f"{action}: bad positions for {len(body.keys)} items")
                kept = [key for position, key in enumerate(body.keys) if position not in drop]
                self.handed.append(Handed(self.pass_no, action.window, kept, len(drop)))
                body = None
                work = self.rng.uniform(0, sc.work)
                while self._event(self.now + work):
                    pass
                self.now += work
            elif isinstance(action, Restart):
                self.restarts.append(action)
                if self.live:
                    self.violation("cancel", f"{action} with requests of the old pass in flight: {self.live}")
                self.pass_no += 1
                self.pass_total = None
                self.position = sc.start
                self.arrived.clear()
                self.received.clear()
                self.read_versions.append([])
                self.pass_answered = False
                self.hedged_open.clear()
                self.pair_error.clear()
                self.accepted_by.clear()
                self.read_offsets.clear()
                self.doomed = False
            elif isinstance(action, Fail | Done):
                self.outcome = action
                if self.live:
                    self.violation("cancel", f"{action} with requests in flight: {self.live}")
                if self.timers > 2 * self.fetched + 2:
                    self.violation("liveness", f"{self.timers} timers fired for {self.fetched} requests")
                for limit in (1, 3, 1000):  # final: asked again, the same, and nothing else
                    again = machine.next_action(self.now + 1, limit)
                    if again != action:
                        self.violation("liveness", f"{action} is not final: then {again}")
                return self
            else:
                self.violation("protocol", f"unexpected action {action}")
                raise StalledError("protocol")

    def _on_take(self, window: Window, body: Body) -> None:
        """One answer per window and pass is given to read: the one taken, the first to arrive."""
        if window.offset in self.read_offsets:
            self.violation("digest", f"{window} given to read twice in pass {self.pass_no}")
        self.read_offsets.add(window.offset)
        if body.request != self.accepted_by.get(window.offset):
            taken = self.accepted_by.get(window.offset)
            self.violation("digest", f"{window}: read the answer of {body.request}, the first was {taken}")

    def _unreadable(self, what: str) -> BaseException:
        self.doomed = True
        error = MalformedResponseError(f"simulated: {what}")
        if not self.unreadable_errors:
            self.unreadable_at = len(self.handed)
        self.unreadable_errors.append(error)
        self.errors.append(error)
        return error

    def _on_read(self, window: Window, body: Body) -> None:
        if not self.totals_seen or self.totals_seen[-1] != body.total:
            self.totals_seen.append(body.total)
        if body.offset != window.offset:
            self.doomed = True
            if self.bad_offset_read_at is None:
                self.bad_offset_read_at = len(self.handed)
            return
        if self.pass_total is None:
            self.pass_total = body.total
            self.pass_totals[self.pass_no] = body.total
            self.expected_remember.append(body.total)
        elif body.total != self.pass_total:
            self.doomed = True
            self.expected_remember.append(body.total)
            self.drift_reads.append((self.pass_no, len(self.handed)))
        self.read_versions[-1].append(body.version)
        self.position = window.offset + len(body.keys)

    # -- what the scan handed on --

    def items(self, *, last_discard: bool = False) -> list[str]:
        """Keys handed on, in order (since the last snapshot restart, if ``last_discard``)."""
        first = 0
        if last_discard:
            discards = [r.restarts for r in self.restarts if r.discard]
            first = discards[-1] if discards else 0
        return [key for h in self.handed if h.pass_no >= first for key in h.keys]

    def final_version(self) -> tuple[str, ...]:
        """The listing as the final pass read it (all its pages from one version)."""
        versions = set(self.read_versions[-1])
        assert len(versions) <= 1, f"the final pass read several versions of the listing: {versions}"
        version = versions.pop() if versions else 0
        return self.server.versions[version]


def simulate(sc: Scenario) -> Sim:
    return Sim(sc).run()


def same(sc: Scenario, handed: list[str], expected: list[str] | tuple[str, ...]) -> bool:
    """Handed equal to expected: in order if ordered, as multisets if not."""
    return handed == list(expected) if sc.ordered else Counter(handed) == Counter(expected)


def within(sc: Scenario, handed: list[str], listing: list[str] | tuple[str, ...]) -> bool:
    """Handed a prefix of ``listing`` (ordered), or a sub-multiset of it (unordered)."""
    if sc.ordered:
        return handed == list(listing[: len(handed)])
    return not Counter(handed) - Counter(listing)


def nothing_handed_after_drift(sim: Sim) -> None:
    """No page of a pass is handed on after a page of it showed another total."""
    for pass_no, index in sim.drift_reads:
        assert all(h.pass_no != pass_no for h in sim.handed[index:]), f"pass {pass_no} went on after drift"


def check(sim: Sim, rule: str) -> None:
    assert not sim.violations.get(rule), "\n".join(sim.violations[rule][:5])


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- 1. every item once, in order (or the documented error) -----------------------------------------


@SETTINGS
@given(sc=scenarios(late=True))
def test_without_drift_every_item_from_start_is_handed_once_in_order(sc: Scenario) -> None:
    """Caps, a start offset, a right, high or low expected total, a slow consumer, failures past the end."""
    sim = simulate(sc)
    assert sim.outcome == Done()
    assert same(sc, sim.items(), sim.server.keys[sc.start :])
    assert sum(h.dropped for h in sim.handed) == 0


@SETTINGS
@given(sc=scenarios(policies=("raise",), drift=True))
def test_drift_with_raise_hands_a_prefix_of_the_listing_as_it_was_then_raises(sc: Scenario) -> None:
    sim = simulate(sc)
    first = sim.server.versions[sim.read_versions[0][0]] if sim.read_versions[0] else sim.server.versions[0]
    if isinstance(sim.outcome, Done):
        assert same(sc, sim.items(), sim.final_version()[sc.start :])
        return
    assert isinstance(sim.outcome, Fail)
    error = sim.outcome.error
    assert isinstance(error, DriftError), repr(error)
    nothing_handed_after_drift(sim)
    assert within(sc, sim.items(), first[sc.start :])
    assert error.total_before == len(first)
    assert error.total_after != error.total_before
    assert error.items_yielded == len(sim.items())
    assert error.restarts == 0
    assert not sim.restarts


@SETTINGS
@given(sc=scenarios(policies=("raise",), drift=True, ordered=False, slow=True, wide=True))
def test_unordered_nothing_is_handed_after_a_page_showed_drift(sc: Scenario) -> None:
    """Pages cut before the change may arrive after one cut after it, and wait for a slow consumer:
    the scan stops at the first page that shows drift."""
    sim = simulate(sc)
    nothing_handed_after_drift(sim)
    if isinstance(sim.outcome, Fail):
        assert isinstance(sim.outcome.error, DriftError)
        assert sim.outcome.error.items_yielded == len(sim.items())


@SETTINGS
@given(sc=scenarios(policies=("restart",), drift=True))
def test_drift_with_restart_hands_every_item_of_the_final_listing_exactly_once(sc: Scenario) -> None:
    """An item deleted during the scan may have been handed before; nothing is handed twice."""
    sim = simulate(sc)
    nothing_handed_after_drift(sim)
    items = sim.items()
    assert len(items) == len(set(items)), "an item was handed twice"
    assert set(items) <= {key for version in sim.server.versions for key in version}
    if isinstance(sim.outcome, Done):
        assert set(sim.final_version()[sc.start :]) <= set(items)
        if sc.ordered and not sim.restarts:
            assert items == list(sim.final_version()[sc.start :])
        return
    assert isinstance(sim.outcome, Fail)
    assert isinstance(sim.outcome.error, DriftError), repr(sim.outcome.error)
    assert len(sim.restarts) == sc.max_restarts


@SETTINGS
@given(sc=scenarios(policies=("snapshot",), drift=True))
def test_drift_with_snapshot_hands_exactly_the_final_listing_after_the_last_restart(sc: Scenario) -> None:
    sim = simulate(sc)
    nothing_handed_after_drift(sim)
    assert all(restart.discard for restart in sim.restarts)
    if isinstance(sim.outcome, Done):
        assert same(sc, sim.items(last_discard=True), sim.final_version()[sc.start :])
        return
    assert isinstance(sim.outcome, Fail)
    assert isinstance(sim.outcome.error, DriftError), repr(sim.outcome.error)
    assert len(sim.restarts) == sc.max_restarts


# -- 2. the look-ahead bound ---------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(drift=True, failures=True))
def test_no_window_starts_a_lookahead_or_more_past_the_consumer(sc: Scenario) -> None:
    """Ordered: a window starts before (end of the last page read) + lookahead. Unordered: items in
    flight plus arrived and not read stay within the look-ahead."""
    check(simulate(sc), "lookahead")


# -- 3. requests in flight -----------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(drift=True, failures=True))
def test_at_most_limit_requests_in_flight_as_the_limit_changes(sc: Scenario) -> None:
    check(simulate(sc), "limit")


# -- 4. restarts ---------------------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(policies=("restart", "snapshot"), drift=True, failures=True))
def test_restarts_stay_within_max_restarts_and_are_counted(sc: Scenario) -> None:
    sim = simulate(sc)
    assert len(sim.restarts) <= sc.max_restarts
    assert [r.restarts for r in sim.restarts] == list(range(1, len(sim.restarts) + 1))
    assert sim.machine.report.restarts == len(sim.restarts)
    assert all(r.discard == (sc.on_drift == "snapshot") for r in sim.restarts)
    error = sim.outcome.error if isinstance(sim.outcome, Fail) else None
    if isinstance(error, DriftError):
        assert error.restarts == sc.max_restarts


# -- 5. failures ---------------------------------------------------------------------------------


def check_failures(sc: Scenario, sim: Sim) -> None:
    listing = sim.server.keys
    fatal = [f for f in sim.failures if f.fatal]
    if not fatal:
        assert sim.outcome == Done(), sim.outcome
        assert same(sc, sim.items(), listing[sc.start :])
        return
    first = fatal[0]
    assert sim.outcome == Fail(first.error)
    inside = first.window.offset < len(listing) or first.window.offset == sc.start
    assert inside, f"a failure past the end failed the scan: {first.window}"
    received = first.received
    if sc.ordered:
        reach = sc.start
        while reach in received and received[reach].keys:
            reach += len(received[reach].keys)
        assert reach <= first.window.offset
        assert sim.items() == list(listing[sc.start : reach])
    else:
        assert Counter(sim.items()) == Counter(key for body in received.values() for key in body.keys)


@SETTINGS
@given(sc=scenarios(failures=True))
def test_a_failure_inside_the_listing_fails_the_scan_after_the_pages_before_it_one_past_the_end_does_not(
    sc: Scenario,
) -> None:
    """The first failure that matters (``total`` known, or the first window) ends the scan with its
    error, after the pages arrived before it (ordered: those contiguous from the start), and nothing
    after; a request past the end may fail without failing the scan."""
    check_failures(sc, simulate(sc))


@SETTINGS
@given(sc=scenarios(failures=True, guesses=("right", "high", "low"), wide=True))
def test_a_guess_that_failed_before_the_total_was_known_is_fetched_again_if_inside(sc: Scenario) -> None:
    """A wave of guesses on a remembered total, some failing before the first page is read."""
    check_failures(sc, simulate(sc))


@SETTINGS
@given(sc=scenarios(drift=True, failures=True, guesses=("right", "high", "low"), wide=True))
def test_only_one_wave_is_guessed_before_the_total_is_known(sc: Scenario) -> None:
    """Once an answer (or a failure) of a pass came in, nothing more is sent before its total is known."""
    check(simulate(sc), "guess")


# -- 6. cancelling -------------------------------------------------------------------------------


@SETTINGS
@given(
    sc=scenarios(drift=True, failures=True, late=True).filter(
        lambda sc: sc.expected_total is not None and sc.late_rate > 0
    )
)
def test_guesses_past_a_shrunk_end_are_cancelled_and_events_about_cancelled_requests_ignored(
    sc: Scenario,
) -> None:
    """Once the total is known, no request for a window past the end stays in flight; no request
    stays in flight past a restart, a failure or the end; a late report of a cancelled request
    changes nothing."""
    check(simulate(sc), "cancel")


@SETTINGS
@given(sc=scenarios(guesses=("high",), wide=True))
def test_a_listing_that_shrank_since_it_was_remembered_has_its_guesses_cancelled(sc: Scenario) -> None:
    """The scan of a listing remembered larger (the guesses past the end exist)."""
    sim = simulate(sc)
    check(sim, "cancel")
    assert sim.outcome == Done()
    discarded = sim.machine.report.pages_discarded
    # Windows, not requests: a hedged guess has two requests cancelled.
    cancelled_past = {
        w for _, w in sim.cancels if w.offset >= max(sc.total, sc.start) and w.offset != sc.start
    }
    assert len(cancelled_past) <= discarded


# -- 7. the server's offset and keys ---------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(modes=("ignores_offset", "lies")))
def test_a_page_at_another_offset_than_asked_fails_the_scan_at_once(sc: Scenario) -> None:
    """A server that ignores ``offset`` (its envelope honestly says 0) never gets a page repeated."""
    sim = simulate(sc)
    items = sim.items()
    assert len(items) == len(set(items)), "a page was handed twice"
    if sim.bad_offset_read_at is None:
        assert sim.outcome == Done()
        assert same(sc, items, sim.server.keys[sc.start :])
        return
    assert isinstance(sim.outcome, Fail)
    assert type(sim.outcome.error) is ScanError
    assert "offset" in str(sim.outcome.error)
    assert len(sim.handed) == sim.bad_offset_read_at, "a page was handed after the wrong one"
    assert within(sc, items, sim.server.keys[sc.start :])


@SETTINGS
@given(sc=scenarios(policies=("restart",), modes=("repeats",)))
def test_with_restart_a_key_twice_in_one_pass_fails_the_scan(sc: Scenario) -> None:
    sim = simulate(sc)
    assert sc.repeat is not None
    first, second = sc.repeat
    items = sim.items()
    assert len(items) == len(set(items))
    if first < sc.start:  # the scan sees the key once
        assert sim.outcome == Done()
        assert same(sc, items, sim.server.keys[sc.start :])
        return
    assert isinstance(sim.outcome, Fail)
    assert type(sim.outcome.error) is ScanError
    assert "repeats the key" in str(sim.outcome.error)
    if sc.ordered:
        assert items == list(sim.server.keys[sc.start : second][: len(items)])
    else:
        assert within(sc, items, sim.server.keys[sc.start :])


# -- 8. preconnect, remember -----------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(drift=True, failures=True))
def test_preconnect_at_most_once_without_expected_total_and_remember_every_total_learned(
    sc: Scenario,
) -> None:
    sim = simulate(sc)
    assert len(sim.preconnects) <= 1
    if sim.preconnects:
        ((count, limit),) = sim.preconnects
        assert sc.expected_total is None
        # The connections of the first wave, the first request's included (at most PRECONNECT_MAX).
        assert 2 <= count <= min(limit, sim.lookahead // sc.page_size, PRECONNECT_MAX)
    assert sim.remembered == sim.expected_remember


# -- 9. liveness -------------------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(modes=("honest", "ignores_offset", "lies"), drift=True, failures=True, unreadable=True))
def test_every_scan_ends_in_done_or_fail_never_stalls_and_the_end_is_final(sc: Scenario) -> None:
    sim = simulate(sc)  # raises StalledError on a wait that nothing can end, or an endless run
    check(sim, "liveness")
    check(sim, "protocol")
    assert isinstance(sim.outcome, Done | Fail)
    if isinstance(sim.outcome, Fail):
        assert "stalled" not in str(sim.outcome.error)


# -- 10. the report ------------------------------------------------------------------------------


@SETTINGS
@given(sc=scenarios(drift=True, failures=True, unreadable=True))
def test_the_report_counts_what_the_scan_did(sc: Scenario) -> None:
    sim = simulate(sc)
    report = sim.machine.report
    assert report.items == len(sim.items(last_discard=True))
    assert report.duplicates_dropped == sum(h.dropped for h in sim.handed)
    assert report.requests == report.pages == sim.accepted
    assert report.retries == sim.retries
    assert report.totals_seen == sim.totals_seen
    assert report.restarts == len(sim.restarts)
    assert report.finished == isinstance(sim.outcome, Done)
    if isinstance(sim.outcome, Done):
        assert report.total == sim.pass_total
        assert report.elapsed == sim.ended_at


@SETTINGS
@given(
    sc=scenarios(policies=("raise", "restart"), failures=True, unreadable=True).filter(
        lambda sc: sc.unreadable_rate > 0
    )
)
def test_a_page_that_cannot_be_read_or_built_fails_the_scan_at_once_and_the_first_failure_wins(
    sc: Scenario,
) -> None:
    """Its envelope, or its items (built as the page is deduped, or handed on): nothing is handed
    on after it, and it is not counted as handed. A failure that came first wins."""
    sim = simulate(sc)
    if not sim.errors:
        assert sim.outcome == Done()
        return
    assert isinstance(sim.outcome, Fail)
    assert sim.outcome.error is sim.errors[0]
    if sim.outcome.error is sim.unreadable_errors[0] if sim.unreadable_errors else False:
        assert len(sim.handed) == sim.unreadable_at, "a page was handed after the one that failed"
    assert sim.machine.report.items == len(sim.items())


def test_a_page_whose_items_do_not_build_fails_the_scan_and_is_never_handed() -> None:
    """Build comes before Hand: a page whose items cannot be built fails the scan at once, is not
    counted as handed on, and nothing the machine gave meanwhile is used."""
    machine: ScanMachine[str] = ScanMachine(page_size=10, lookahead=30, expected_total=30)
    fetches = [machine.next_action(0, 3) for _ in range(3)]
    assert [f.window.offset for f in fetches if isinstance(f, Fetch)] == [0, 10, 20]
    for request in range(3):
        machine.arrived(request, "body", 0)
    first = Window(0, 10)
    assert machine.next_action(0, 3) == Read(first, "body")
    machine.read(first, offset=0, total=30, items=10, now=0)
    assert machine.next_action(0, 3) == Remember(30)
    assert machine.next_action(0, 3) == Build(first, keys=False)
    # While the consumer builds, an answer asks the machine: nothing for the consumer.
    assert machine.next_action(0, 3) == Wait()
    error = MalformedResponseError("an item is not a SIM")
    machine.unreadable(first, error, 0)
    assert machine.next_action(0, 3) == Fail(error)
    assert machine.report.items == 0
    with pytest.raises(ValueError, match="not the page"):
        machine.unreadable(Window(10, 10), error, 0)


# -- 11. hedging -----------------------------------------------------------------------------------

STRAGGLING = (0.1, 0.3, 0.6)


def hedged(**kwargs: Any) -> st.SearchStrategy[Scenario]:
    """Scenarios with hedging on and stragglers."""
    return scenarios(hedge=True, stragglers=STRAGGLING, **kwargs)


@SETTINGS
@given(
    sc=hedged(drift=True, failures=True, policies=("restart", "snapshot"), refusals=False, max_page_size=10)
)
def test_never_more_hedges_than_the_cap_and_the_report_counts_only_hedges_sent(sc: Scenario) -> None:
    """Per pass, at most 10% of its pages (at least one; one while its total is not known). A hedge
    the budget refused is not counted (one the scan cancelled before hearing of its refusal is: the
    machine cannot tell it from one sent)."""
    sim = simulate(sc)
    check(sim, "cap")
    for pass_no, count in Counter(h.pass_no for h in sim.hedges).items():
        total = sim.pass_totals.get(pass_no)
        assert count <= hedge_cap(sc, total), f"{count} hedges in pass {pass_no} of total {total}"
    assert sim.machine.report.hedges == len(sim.hedges) - len(sim.refusals)


@SETTINGS
@given(
    sc=scenarios(
        stragglers=STRAGGLING,
        drift=True,
        failures=True,
        unreadable=True,
        modes=("honest", "lies"),
        max_page_size=10,  # pages enough for a cap of several hedges
    )
)
def test_a_hedge_goes_only_for_a_window_out_past_the_learned_delay_once_and_while_its_pass_lives(
    sc: Scenario,
) -> None:
    """Out at least the delay the listing's latencies give at that moment; never a third request for
    a window; never once its pass failed or drifted (nor with hedging off: every test draws it)."""
    sim = simulate(sc)
    check(sim, "delay")
    check(sim, "hedge")


@SETTINGS
@given(sc=scenarios(hedge=True, stragglers=(0.0,), drift=True, failures=True, prefills=(8, 20, 100)))
def test_a_scan_whose_answers_all_come_in_time_sends_no_hedge(sc: Scenario) -> None:
    """No stragglers, and a listing whose latencies are known: no request is out as long as the delay."""
    sim = simulate(sc)
    slowest = max(sim.latency_of.values(), default=0.0)
    history = sim.latencies.history
    delay = min(documented_delay(history[:k]) for k in range(sim.prefilled, len(history) + 1))
    if sc.latency == (1.0, 1.0):
        assert slowest < delay  # (the property is not vacuous)
    if slowest < delay:
        assert not sim.hedges


@SETTINGS
@given(sc=hedged(drift=True, failures=True))
def test_one_answer_is_digested_per_window_the_first_and_the_loser_is_cancelled_at_once(
    sc: Scenario,
) -> None:
    """Each window is given to read at most once per pass, with the answer that arrived first (a
    body carries its request); the other request is cancelled before anything else, and its answer,
    fed to the machine all the same, changes nothing (no page, no count, no latency learned)."""
    sim = simulate(sc)
    check(sim, "digest")
    check(sim, "loser")
    check(sim, "latency")
    assert not sim.unsampled, f"answers taken that taught no latency: {sim.unsampled}"


@SETTINGS
@given(sc=hedged(failures=True, fail_rates=(0.2, 0.5)))
def test_a_hedged_window_fails_the_scan_only_when_both_requests_failed_with_the_first_real_error(
    sc: Scenario,
) -> None:
    """The scan goes on while one request of the window is out; when both failed it fails as a
    failure of the window does, with the first real error (never the budget's refusal)."""
    sim = simulate(sc)
    check_failures(sc, sim)
    if isinstance(sim.outcome, Fail):
        assert not isinstance(sim.outcome.error, NoHedgeBudget)


@SETTINGS
@given(sc=hedged(drift=True, failures=True).filter(lambda sc: sc.refuse_rate > 0 or sc.slots is not None))
def test_a_refused_hedge_is_not_counted_and_stops_hedging_for_the_rest_of_the_scan(sc: Scenario) -> None:
    """Once the machine heard of a refusal (NoHedgeBudget), no hedge goes out, in any pass."""
    sim = simulate(sc)
    assert sim.machine.report.hedges == len(sim.hedges) - len(sim.refusals)
    if sim.refusals:
        refused_at = sim.refusals[0][0]
        after = [h for h in sim.hedges if h.tick > refused_at]
        assert not after, f"hedges after a refusal: {after}"


@SETTINGS
@given(sc=hedged(drift=True, failures=True))
def test_hedges_won_counts_exactly_the_windows_whose_hedge_answered_first(sc: Scenario) -> None:
    sim = simulate(sc)
    assert sim.machine.report.hedges_won == len(sim.wins)


def test_a_straggler_is_hedged_after_the_delay_the_hedge_wins_and_the_straggler_is_cancelled() -> None:
    """The rules on one scan, step by step: a fresh listing (default delay), one straggling page."""
    machine: ScanMachine[str] = ScanMachine(page_size=10, lookahead=20, expected_total=20, hedge=True)
    assert machine.next_action(0, 4) == Fetch(0, Window(0, 10))
    assert machine.next_action(0, 4) == Fetch(1, Window(10, 10))
    assert machine.next_action(0, 4) == Wait(HEDGE_DEFAULT_DELAY)
    machine.arrived(1, "page 10", 0.5)  # window 0 straggles
    # One answer known: the delay is four times the slowest.
    assert machine.next_action(0.5, 4) == Wait(2.0)
    assert machine.next_action(1.999, 4) == Wait(2.0)
    assert machine.next_action(2.0, 4) == Fetch(2, Window(0, 10), hedge=True)
    assert machine.next_action(2.0, 4) == Wait()  # the window is hedged: no deadline
    machine.arrived(2, "page 0 (hedge)", 2.5)
    assert machine.next_action(2.5, 4) == Cancel(0)
    machine.arrived(0, "page 0 (straggler)", 2.6)  # too late: ignored
    assert machine.next_action(2.6, 4) == Read(Window(0, 10), "page 0 (hedge)")
    report = machine.report
    assert (report.hedges, report.hedges_won, report.pages) == (1, 1, 2)


def _actions(machine: ScanMachine[str], now: float, limit: int = 8) -> list[Action[str]]:
    """The machine's actions up to a consumer's step or a Wait (included)."""
    actions = [machine.next_action(now, limit)]
    while isinstance(actions[-1], Fetch | Cancel | Remember | Preconnect):
        actions.append(machine.next_action(now, limit))
    return actions


def test_a_pass_hedges_one_window_until_its_total_is_known_restarted_or_not() -> None:
    """The cap of a pass follows its own total: a restart does not keep the old pass's."""
    machine: ScanMachine[str] = ScanMachine(page_size=1, lookahead=4, on_drift="restart", hedge=True)
    assert _actions(machine, 0)[0] == Fetch(0, Window(0, 1))
    machine.arrived(0, "page 0", 0.1)
    assert _actions(machine, 0.1) == [Read(Window(0, 1), "page 0")]
    machine.read(Window(0, 1), offset=0, total=100, items=1, now=0.1)  # a cap of 10 hedges
    assert isinstance(_actions(machine, 0.1)[-1], Build)
    machine.built(Window(0, 1), ["k0"], 0.1)
    assert _actions(machine, 0.1) == [Hand(Window(0, 1))]
    _actions(machine, 0.1)
    machine.arrived(1, "page 1", 0.2)
    assert _actions(machine, 0.2) == [Read(Window(1, 1), "page 1")]
    machine.read(Window(1, 1), offset=1, total=101, items=1, now=0.2)  # drift: a new pass
    assert _actions(machine, 0.2)[-1] == Restart(1, discard=False)
    assert len([a for a in _actions(machine, 100) if isinstance(a, Fetch)]) == 4  # guesses on 101
    later = _actions(machine, 200) + _actions(machine, 200)  # every guess is late
    assert [a for a in later if isinstance(a, Fetch)] == [Fetch(9, Window(0, 1), hedge=True)]
    assert machine.report.hedges == 1


def test_a_scan_that_fails_while_a_guess_is_hedged_lets_go_of_both_its_requests() -> None:
    """A guess hedged before the total is known, then the first page read is at another offset:
    the scan fails (both requests of the guess cancelled), it does not crash."""
    machine: ScanMachine[str] = ScanMachine(
        page_size=1, lookahead=3, ordered=False, expected_total=3, hedge=True
    )
    assert [machine.next_action(0, 4) for _ in range(3)] == [Fetch(r, Window(r, 1)) for r in range(3)]
    machine.arrived(0, "page 0", 0.5)
    late = 2.0  # four times the one latency known
    assert machine.next_action(late, 4) == Fetch(3, Window(1, 1), hedge=True)
    assert machine.next_action(late, 4) == Read(Window(0, 1), "page 0")
    machine.read(Window(0, 1), offset=5, total=3, items=1, now=late)
    assert [machine.next_action(late, 4) for _ in range(3)] == [Cancel(1), Cancel(2), Cancel(3)]
    end = machine.next_action(late, 4)
    assert isinstance(end, Fail)
    assert isinstance(end.error, ScanError)
    assert "offset" in str(end.error)


# -- the module stays pure --------------------------------------------------------------------------


PACKAGE = Path(__file__).resolve().parent.parent / "betatel_async"


def _imports(module: str) -> tuple[set[str], set[str]]:
    """Top-level modules ``module`` imports, and the package's own modules it imports (relative)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    outside: set[str] = set()
    inside: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    inside.add(node.module.split(".")[0])
                else:
                    inside.update(alias.name for alias in node.names)
            elif node.module is not None:
                if node.module.split(".")[0] == "betatel_async":
                    inside.add(node.module.split(".")[1] if "." in node.module else "__init__")
                else:
                    outside.add(node.module.split(".")[0])
    return outside, inside


def test_the_machine_imports_nothing_of_asyncio_or_anyio_and_only_the_errors_of_the_package() -> None:
    seen: set[str] = set()
    todo = ["_scan_machine"]
    outside: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        out, inside = _imports(module)
        outside |= out
        todo.extend(inside)
    assert seen == {"_scan_machine", "_errors"}
    assert not outside & {"asyncio", "anyio", "aiohttp", "trio", "time", "threading"}
    # multidict: the headers an APIError keeps (a data structure, no I/O).
    assert outside <= {"__future__", "heapq", "collections", "typing", "attrs", "multidict"}


def test_the_import_check_sees_an_import() -> None:
    """The check above is not vacuous: the driver imports asyncio and more of the package."""
    outside, inside = _imports("_paginate")
    assert "asyncio" in outside
    assert "_scan_machine" in inside
