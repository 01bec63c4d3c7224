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
it, and it asks more often.) The simulator records what it sees; each test
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
    PRECONNECT_MAX,
    Action,
    Build,
    Cancel,
    Done,
    Fail,
    Fetch,
    Hand,
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
) -> Scenario:
    """``wide``: a look-ahead of 3 pages or more and 3 requests or more at first (a wave of guesses).
    ``slow``: a slow consumer and latencies that vary a lot (answers arrive out of order and wait)."""
    total = draw(st.integers(0, 400))
    page_size = draw(st.integers(1, 60))
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
        fail_rate=draw(st.sampled_from([0.0, 0.02, 0.2])) if failures else 0.0,
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


# -- the simulated driver and consumer ------------------------------------------------------------


class StalledError(Exception):
    """The simulation cannot go on: the machine waits with nothing that could wake it, or never ends."""


@attrs.define
class Failure:
    """A request failure the simulator reported to the machine for a live request."""

    request: int
    window: Window
    error: APIError
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
        self.machine: ScanMachine[Body] = ScanMachine(
            page_size=sc.page_size,
            lookahead=sc.lookahead,
            ordered=sc.ordered,
            start=sc.start,
            expected_total=sc.expected_total,
            on_drift=sc.on_drift,
            max_restarts=sc.max_restarts,
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
        self.answered: dict[int, Failure | tuple[Window, Body]] = {}  # answers the machine was told of
        self.late_cancels = 0  # cancellations performed after the request was answered
        self.outcome: Fail | Done | None = None
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
        return (attrs.asdict(machine.report), machine.in_flight, machine.total, plan.in_flight, plan.buffered)

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
                    self._schedule(max(action.until, self.now), "timer", None)
                self._after_chores()
                return None
            else:
                if isinstance(action, Read):  # taken: no longer held as arrived
                    self.arrived.pop(action.window.offset, None)
                self._after_chores()
                return action

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
        window, sc = fetch.window, self.sc
        if fetch.request in self.live:
            self.violation("protocol", f"request id {fetch.request} reused")
        if len(self.live) >= limit:
            self.violation("limit", f"{fetch} with {len(self.live)} requests in flight, limit {limit}")
        if sc.ordered:
            if window.offset >= self.position + self.lookahead:
                self.violation(
                    "lookahead",
                    f"{window} starts {window.offset - self.position} past the position {self.position}, "
                    f"look-ahead {self.lookahead}",
                )
        else:
            held = sum(w.count for w in self.live.values() if not self.past_end(w.offset))
            held += sum(count for offset, count in self.arrived.items() if not self.past_end(offset))
            if held + window.count > self.lookahead:
                self.violation("lookahead", f"{window} with {held} items held, look-ahead {self.lookahead}")
        if self.pass_total is None and self.pass_answered:
            self.violation("guess", f"{fetch} guessed after an answer came, before the total is known")
        self.live[fetch.request] = window
        latency = self.rng.uniform(*sc.latency)
        # The server cuts the page somewhere between the request and its answer: a page cut before
        # the listing changed may arrive after one cut after.
        self._schedule(self.now + latency * self.rng.random(), "serve", fetch.request)
        self._schedule(self.now + latency, "answer", fetch.request)

    def _cancel(self, cancel: Cancel) -> None:
        window = self.live.pop(cancel.request, None)
        if window is None:
            self._cancel_answered(cancel)
            return
        self.cancels.append((cancel.request, window))
        if self.rng.random() < self.sc.late_rate:
            # The task was cancelled too late: its report still comes, and must change nothing.
            before = self.machine_state()
            if self.rng.random() < 0.5:
                body = Body(offset=window.offset, total=0, keys=(), version=-1)
                self.machine.arrived(cancel.request, body, self.now)
            else:
                self.machine.failed(cancel.request, ScanError("cancelled, not by the scan"), self.now)
            if self.machine_state() != before:
                self.violation(
                    "cancel", f"a late event about cancelled request {cancel.request} changed the machine"
                )

    def _cancel_answered(self, cancel: Cancel) -> None:
        # The driver performs a cancellation the machine decided on an event
        # (a failure) when it next asks the machine; while the consumer holds
        # a step, that is later, and the request may have been answered
        # meanwhile. The machine ignored that answer: so does the simulator.
        answer = self.answered.pop(cancel.request, None)
        if answer is None:
            self.violation("protocol", f"{cancel} of a request never sent, or cancelled twice")
            return
        self.late_cancels += 1
        if isinstance(answer, Failure):
            self.failures.remove(answer)
            if answer.error in self.errors:
                self.errors.remove(answer.error)
            return
        window, body = answer
        self.accepted -= 1
        if self.received.get(window.offset) is body:
            del self.received[window.offset]
            self.arrived.pop(window.offset, None)

    def _answer(self, request: int) -> None:
        window = self.live.pop(request, None)
        if window is None:
            return  # cancelled: the driver's task is gone
        server = self.server
        body = self._served.pop(request)
        self.pass_answered = True
        if self.rng.random() < self.sc.retry_rate:
            self.retries += 1
            self.machine.retried()
        if server.fails(window):
            error = APIError(f"simulated failure of request {request}", method="GET", path="/sim")
            fatal = self.pass_total is not None or window.offset == self.sc.start
            failure = Failure(request, window, error, fatal, dict(self.received))
            self.failures.append(failure)
            self.answered[request] = failure
            if fatal:
                self.errors.append(error)
            self.machine.failed(request, error, self.now)
        else:
            self.accepted += 1
            self.arrived[window.offset] = window.count
            self.received[window.offset] = body
            self.answered[request] = (window, body)
            self.machine.arrived(request, body, self.now)
        self.pump()

    def _serve(self, request: int) -> None:
        window = self.live.get(request)
        if window is None:
            return  # cancelled before the server answered
        server = self.server
        self._served[request] = server.page(window)
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
        elif kind == "timer":
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
            elif isinstance(action, Fail | Done):
                self.outcome = action
                if self.live:
                    self.violation("cancel", f"{action} with requests in flight: {self.live}")
                for limit in (1, 3, 1000):  # final: asked again, the same, and nothing else
                    again = machine.next_action(self.now + 1, limit)
                    if again != action:
                        self.violation("liveness", f"{action} is not final: then {again}")
                return self
            else:
                self.violation("protocol", f"unexpected action {action}")
                raise StalledError("protocol")

    def _unreadable(self, what: str) -> BaseException:
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
            if self.bad_offset_read_at is None:
                self.bad_offset_read_at = len(self.handed)
            return
        if self.pass_total is None:
            self.pass_total = body.total
            self.expected_remember.append(body.total)
        elif body.total != self.pass_total:
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
    cancelled_past = [
        w for _, w in sim.cancels if w.offset >= max(sc.total, sc.start) and w.offset != sc.start
    ]
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
        assert report.elapsed == sim.now


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
