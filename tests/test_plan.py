"""The pure scan plan: completeness, order, short pages, look-ahead, drift. No I/O."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async import ScanError
from betatel_async._scan_machine import Drift, ScanPlan, Window


def serve(items: list[int], window: Window, cap: int | None) -> list[int]:
    """A simulated server: the slice asked for, cut to the server's cap."""
    size = window.count if cap is None else min(window.count, cap)
    return items[window.offset : window.offset + size]


def answer(plan: ScanPlan[None], window: Window, total: int, n_items: int) -> Drift | None:
    """The page of ``window`` arrives and, being next, is taken and digested."""
    plan.on_arrival(window, None)
    taken = plan.take()
    assert taken == (window, None)
    return plan.on_page(window, total, n_items)


class SimulatedScanError(Exception):
    """The simulated scan failed: a request inside the listing failed and the plan said it matters."""


def run_plan(
    total: int,
    page_size: int,
    cap: int | None,
    concurrency: int,
    lookahead_pages: int,
    ordered: bool,
    seed: int,
    *,
    short_rate: float = 0.0,
    take_rate: float = 1.0,
    expected_total: int | None = None,
    start: int = 0,
    fail_rate: float = 0.0,
    fail_past_end: bool = False,
) -> tuple[list[int], int, int]:
    """Drive a plan against the simulated server, answering in-flight windows in random order.

    ``short_rate``: the share of answers the server cuts to a random length
    (as well as to ``cap``). ``take_rate``: the chance that the taker takes
    what it can after an answer (it always does when nothing is in flight).
    ``fail_rate``: the share of requests that fail; ``fail_past_end``: every
    request starting past the end fails. A failure the plan says matters must
    be of a window inside the listing; it raises :class:`SimulatedScanError`.

    Returns the items taken in order of taking, the most items ever held
    (arrived and not taken, or in flight; past the end left out) and the
    windows counted as guesses past the end.
    """
    items = list(range(total))
    plan: ScanPlan[list[int]] = ScanPlan(
        page_size=page_size,
        lookahead=lookahead_pages * page_size,
        ordered=ordered,
        expected_total=expected_total,
        start=start,
    )
    end = max(total, start)
    rng = random.Random(seed)
    in_flight: list[Window] = []
    out: list[int] = []
    peak = 0
    for _ in range(100_000):
        while len(in_flight) < concurrency and (w := plan.next_window()) is not None:
            in_flight.append(w)
        if in_flight:
            window = in_flight.pop(rng.randrange(len(in_flight)))
            past = window.offset >= end and window.offset != start
            if (fail_past_end and past) or rng.random() < fail_rate:
                if plan.on_failure(window):
                    assert not past, f"a failure past the end failed the scan: {window}"
                    raise SimulatedScanError(window)
            else:
                page = serve(items, window, cap)
                if page and rng.random() < short_rate:
                    page = page[: rng.randint(1, len(page))]
                plan.on_arrival(window, page)
            held = sum(w.count for w in in_flight if w.offset < end or w.offset == start)
            peak = max(peak, plan.buffered + held)
        if in_flight and rng.random() >= take_rate:
            continue
        while (taken := plan.take()) is not None:
            taken_window, page = taken
            assert plan.on_page(taken_window, total, len(page)) is None
            if plan.past_end(taken_window):
                assert page == []
            else:
                out.extend(page)
        if plan.finished:
            break
        assert in_flight or plan.has_window() or plan.has_ready(), "stalled"
    assert plan.finished
    assert all(w.offset >= end and w.offset != start for w in in_flight)  # only unneeded requests left
    return out, peak, plan.discarded


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(0, 3000),
    page_size=st.integers(1, 300),
    cap=st.none() | st.integers(1, 300),
    concurrency=st.integers(1, 32),
    lookahead_pages=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_ordered_plan_releases_every_item_once_in_order(
    total: int, page_size: int, cap: int | None, concurrency: int, lookahead_pages: int, seed: int
) -> None:
    out, _, _ = run_plan(total, page_size, cap, concurrency, lookahead_pages, ordered=True, seed=seed)
    assert out == list(range(total))


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 3000),
    page_size=st.integers(1, 300),
    cap=st.none() | st.integers(1, 300),
    concurrency=st.integers(1, 32),
    seed=st.integers(0, 2**32),
)
def test_unordered_plan_releases_every_item_exactly_once(
    total: int, page_size: int, cap: int | None, concurrency: int, seed: int
) -> None:
    out, _, _ = run_plan(total, page_size, cap, concurrency, 2, ordered=False, seed=seed)
    assert sorted(out) == list(range(total))
    assert len(out) == total


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 20_000),
    page_size=st.integers(1, 200),
    concurrency=st.integers(1, 16),
    lookahead_pages=st.integers(1, 6),
    seed=st.integers(0, 2**32),
)
def test_ordered_plan_holds_at_most_lookahead_items_whatever_the_total(
    total: int, page_size: int, concurrency: int, lookahead_pages: int, seed: int
) -> None:
    _, peak, _ = run_plan(total, page_size, None, concurrency, lookahead_pages, ordered=True, seed=seed)
    assert peak <= lookahead_pages * page_size


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 2000), page_size=st.integers(2, 300), cap=st.integers(1, 299))
def test_short_page_teaches_the_cap_and_later_windows_use_it(total: int, page_size: int, cap: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=page_size, lookahead=10 * page_size)
    first = plan.next_window()
    assert first == Window(0, page_size)
    n = min(cap, page_size, total)
    answer(plan, first, total, n)
    if n < min(page_size, total):
        assert plan.cap == n
        remainder = plan.next_window()
        assert remainder == Window(n, min(page_size, total) - n)
        later = plan.next_window()
        if later is not None:
            assert later.count <= n
    else:
        assert plan.cap is None


def test_first_window_is_the_only_one_until_total_is_known() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    assert plan.next_window() == Window(0, 10)
    assert plan.next_window() is None
    answer(plan, Window(0, 10), 35, 10)
    assert [plan.next_window() for _ in range(4)] == [Window(10, 10), Window(20, 10), Window(30, 5), None]


def test_empty_listing_finishes_after_the_first_page() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    w = plan.next_window()
    assert w is not None
    assert answer(plan, w, 0, 0) is None
    assert plan.finished


@pytest.mark.parametrize(("first_total", "later_total"), [(30, 31), (30, 29), (30, 0)])
def test_a_changed_total_on_any_page_is_drift(first_total: int, later_total: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    assert plan.next_window() == Window(0, 10)
    answer(plan, Window(0, 10), first_total, 10)
    second = plan.next_window()
    assert second is not None
    drift = answer(plan, second, later_total, 10)
    assert drift == Drift(total_before=first_total, total_after=later_total, offset=10)


def test_an_empty_page_before_the_end_is_an_error_not_a_loop() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    answer(plan, plan.next_window() or Window(0, 10), 30, 10)
    w = plan.next_window()
    assert w is not None
    with pytest.raises(ScanError, match="empty"):
        answer(plan, w, 30, 0)


@pytest.mark.parametrize("n_items", [11, 40])
def test_more_items_than_asked_is_an_error(n_items: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    with pytest.raises(ScanError, match="asked"):
        answer(plan, plan.next_window() or Window(0, 10), 100, n_items)


def test_more_items_than_total_leaves_room_for_is_an_error() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    with pytest.raises(ScanError, match="leaves room"):
        answer(plan, plan.next_window() or Window(0, 10), 5, 8)


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 500),
    page_size=st.integers(1, 50),
    change_at=st.integers(1, 60),
    delta=st.integers(-20, 20).filter(lambda d: d != 0),
    expected_total=st.none() | st.integers(0, 600),
    seed=st.integers(0, 2**32),
)
def test_any_total_change_mid_scan_is_reported_never_absorbed(
    total: int, page_size: int, change_at: int, delta: int, expected_total: int | None, seed: int
) -> None:
    """Once the server's total changes, the first page digested that disagrees with the first reports drift.

    A page dropped past the end (planned on ``expected_total``) is not read;
    a scan that finishes has digested pages that all agreed, covering the whole listing.
    """
    plan: ScanPlan[int] = ScanPlan(
        page_size=page_size, lookahead=4 * page_size, expected_total=expected_total
    )
    rng = random.Random(seed)
    in_flight: list[Window] = []
    answered = 0
    changed = max(0, total + delta)
    first: int | None = None
    while True:
        while len(in_flight) < 4 and (w := plan.next_window()) is not None:
            in_flight.append(w)
        if not in_flight:
            assert plan.finished
            assert plan.items_digested == first
            return
        w = in_flight.pop(rng.randrange(len(in_flight)))
        plan.on_arrival(w, total if answered < change_at else changed)
        answered += 1
        while (taken := plan.take()) is not None:
            window, reported = taken
            n = max(0, min(window.count, reported - window.offset))
            drift = plan.on_page(window, reported, n)
            first = reported if first is None else first
            if reported != first:
                assert drift == Drift(total_before=first, total_after=reported, offset=window.offset)
                return
            assert drift is None


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 2000),
    page_size=st.integers(1, 200),
    concurrency=st.integers(1, 16),
    lookahead_pages=st.integers(1, 6),
    ordered=st.booleans(),
    short_rate=st.sampled_from([0.1, 0.5, 1.0]),
    take_rate=st.sampled_from([0.2, 1.0]),
    seed=st.integers(0, 2**32),
)
def test_pages_cut_short_at_random_and_a_slow_taker_still_give_every_item_once(
    total: int,
    page_size: int,
    concurrency: int,
    lookahead_pages: int,
    ordered: bool,
    short_rate: float,
    take_rate: float,
    seed: int,
) -> None:
    """A short page found only when it is taken still has its remainder fetched, and nothing else moves."""
    out, peak, _ = run_plan(
        total,
        page_size,
        None,
        concurrency,
        lookahead_pages,
        ordered,
        seed,
        short_rate=short_rate,
        take_rate=take_rate,
    )
    assert (out if ordered else sorted(out)) == list(range(total))
    if not ordered:
        assert peak <= lookahead_pages * page_size


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(0, 2000),
    expected_total=st.integers(0, 4000),
    page_size=st.integers(1, 200),
    cap=st.none() | st.integers(1, 200),
    concurrency=st.integers(1, 16),
    lookahead_pages=st.integers(1, 6),
    ordered=st.booleans(),
    short_rate=st.sampled_from([0.0, 0.3]),
    take_rate=st.sampled_from([0.2, 1.0]),
    start=st.sampled_from([0, 0, 150, 2500]),
    fail_past_end=st.booleans(),
    fail_rate=st.sampled_from([0.0, 0.0, 0.05]),
    seed=st.integers(0, 2**32),
)
def test_an_expected_total_wrong_either_way_still_gives_every_item_once(
    total: int,
    expected_total: int,
    page_size: int,
    cap: int | None,
    concurrency: int,
    lookahead_pages: int,
    ordered: bool,
    short_rate: float,
    take_rate: float,
    start: int,
    fail_past_end: bool,
    fail_rate: float,
    seed: int,
) -> None:
    """The listing grew or shrank since its total was remembered: same items, same bound, bounded waste.

    Requests past the end may fail: that never fails the scan. Other failures
    may, as they would without a remembered total (``run_plan`` checks that a
    failure the plan says matters is of a window inside the listing).
    """
    try:
        out, peak, discarded = run_plan(
            total,
            page_size,
            cap,
            concurrency,
            lookahead_pages,
            ordered,
            seed,
            short_rate=short_rate,
            take_rate=take_rate,
            expected_total=expected_total,
            start=start,
            fail_rate=fail_rate,
            fail_past_end=fail_past_end,
        )
    except SimulatedScanError:
        assert fail_rate > 0
        return
    assert (out if ordered else sorted(out)) == list(range(start, total))
    if not ordered or (cap is None and short_rate == 0):  # ordered, a remainder is never held back
        assert peak <= lookahead_pages * page_size
    # Only the one wave guessed before a page arrived can fall past the end:
    # within the requests in flight and the look-ahead, the first one excepted.
    assert discarded <= min(concurrency, lookahead_pages) - 1
    if expected_total <= total:
        assert discarded == 0


def test_an_expected_total_sends_the_first_windows_together() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100, expected_total=35)
    assert [plan.next_window() for _ in range(5)] == [
        Window(0, 10),
        Window(10, 10),
        Window(20, 10),
        Window(30, 10),
        None,
    ]
    answer(plan, Window(0, 10), 35, 10)
    assert plan.next_window() is None  # everything is planned
    for window, n in ((Window(10, 10), 10), (Window(20, 10), 10), (Window(30, 10), 5)):
        assert answer(plan, window, 35, n) is None
    assert plan.finished
    assert plan.discarded == 0


def test_an_expected_total_stays_within_the_look_ahead() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=30, expected_total=1000)
    assert [plan.next_window() for _ in range(4)] == [Window(0, 10), Window(10, 10), Window(20, 10), None]


def test_guesses_past_a_shrunk_listing_are_dropped_or_let_go() -> None:
    plan: ScanPlan[str] = ScanPlan(page_size=10, lookahead=100, expected_total=50)
    windows = [plan.next_window() for _ in range(5)]
    assert windows == [Window(offset, 10) for offset in range(0, 50, 10)]
    plan.on_arrival(Window(30, 10), "past the end, arrived early")
    plan.on_arrival(Window(0, 10), "first")
    assert plan.take() == (Window(0, 10), "first")
    assert plan.on_page(Window(0, 10), 15, 10) is None  # the listing shrank to 15
    assert plan.discarded == 3  # 20 and 40 in flight, 30 arrived
    assert plan.discarded_in_flight == {20, 40}  # for the caller to cancel
    assert not plan.on_failure(Window(40, 10))  # a failure past the end does not matter
    assert plan.discarded_in_flight == {20}
    plan.on_arrival(Window(10, 10), "last five")
    assert plan.take() == (Window(10, 10), "last five")  # the page at 30 was dropped unread
    assert plan.on_page(Window(10, 10), 15, 5) is None
    assert plan.finished  # the request for 20 is still out, but not needed
    assert plan.items_digested == 15
    assert plan.in_flight == 1
    plan.on_arrival(Window(20, 10), "past the end, came back late")
    assert plan.take() is None
    assert plan.finished
    assert plan.in_flight == 0


def test_only_one_wave_is_guessed() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=1000, expected_total=1000)
    assert [plan.next_window() for _ in range(3)] == [Window(0, 10), Window(10, 10), Window(20, 10)]
    plan.on_arrival(Window(10, 10), None)  # a page is in: the total will be known soon
    assert plan.next_window() is None
    assert not plan.has_window()


def test_a_failed_guess_waits_for_the_total_and_is_fetched_again_if_inside() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100, expected_total=40)
    assert [plan.next_window() for _ in range(4)] == [Window(o, 10) for o in range(0, 40, 10)]
    assert not plan.on_failure(Window(10, 10))  # inside, as it turns out
    assert not plan.on_failure(Window(30, 10))  # past the end, as it turns out
    assert plan.next_window() is None  # no more guessing after a failure
    answer(plan, Window(0, 10), 25, 10)
    assert plan.discarded == 1
    assert plan.next_window() == Window(10, 10)  # fetched again
    assert answer(plan, Window(10, 10), 25, 10) is None
    assert answer(plan, Window(20, 10), 25, 5) is None
    assert plan.finished
    assert plan.items_digested == 25


def test_the_first_window_failing_always_matters() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100, expected_total=40)
    first = plan.next_window()
    assert first == Window(0, 10)
    assert plan.on_failure(first)


def test_unordered_a_guess_past_the_end_read_first_teaches_total_but_is_not_released() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100, ordered=False, expected_total=40)
    [plan.next_window() for _ in range(4)]
    plan.on_arrival(Window(30, 10), None)
    assert plan.take() == (Window(30, 10), None)
    assert plan.on_page(Window(30, 10), 12, 0) is None
    assert plan.past_end(Window(30, 10))
    assert plan.items_digested == 0
    assert plan.discarded == 2  # 20 too, still in flight
    assert answer(plan, Window(0, 10), 12, 10) is None
    assert answer(plan, Window(10, 10), 12, 2) is None
    assert plan.finished


def test_an_expected_total_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="expected_total"):
        ScanPlan(page_size=10, lookahead=100, expected_total=-1)
