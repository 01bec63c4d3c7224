"""The pure scan plan: completeness, order, short pages, look-ahead, drift. No I/O."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async import ScanError
from betatel_async._paginate import Drift, ScanPlan, Window


def serve(items: list[int], window: Window, cap: int | None) -> list[int]:
    """A simulated server: the slice asked for, cut to the server's cap."""
    size = window.count if cap is None else min(window.count, cap)
    return items[window.offset : window.offset + size]


def run_plan(
    total: int,
    page_size: int,
    cap: int | None,
    concurrency: int,
    lookahead_pages: int,
    ordered: bool,
    seed: int,
) -> tuple[list[int], int]:
    """Drive a plan against the simulated server, answering in-flight windows in random order.

    Returns the items released in release order and the most items ever buffered.
    """
    items = list(range(total))
    plan: ScanPlan[list[int]] = ScanPlan(
        page_size=page_size, lookahead=lookahead_pages * page_size, ordered=ordered
    )
    rng = random.Random(seed)
    in_flight: list[Window] = []
    out: list[int] = []
    peak = 0
    for _ in range(100_000):
        while len(in_flight) < concurrency and (w := plan.next_window()) is not None:
            in_flight.append(w)
        if not in_flight:
            break
        window = in_flight.pop(rng.randrange(len(in_flight)))
        page = serve(items, window, cap)
        assert plan.on_page(window, total, len(page), page) is None
        buffered = sum(n for n, _ in plan._buffered.values())  # the plan's own buffer
        peak = max(peak, buffered + sum(w.count for w in in_flight))
        for released in plan.ready():
            out.extend(released)
    assert plan.finished
    return out, peak


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
    out, _ = run_plan(total, page_size, cap, concurrency, lookahead_pages, ordered=True, seed=seed)
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
    out, _ = run_plan(total, page_size, cap, concurrency, 2, ordered=False, seed=seed)
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
    _, peak = run_plan(total, page_size, None, concurrency, lookahead_pages, ordered=True, seed=seed)
    assert peak <= lookahead_pages * page_size


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 2000), page_size=st.integers(2, 300), cap=st.integers(1, 299))
def test_short_page_teaches_the_cap_and_later_windows_use_it(total: int, page_size: int, cap: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=page_size, lookahead=10 * page_size)
    first = plan.next_window()
    assert first == Window(0, page_size)
    n = min(cap, page_size, total)
    plan.on_page(first, total, n, None)
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
    plan.on_page(Window(0, 10), 35, 10, None)
    assert [plan.next_window() for _ in range(4)] == [Window(10, 10), Window(20, 10), Window(30, 5), None]


def test_empty_listing_finishes_after_the_first_page() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    w = plan.next_window()
    assert w is not None
    plan.on_page(w, 0, 0, None)
    assert plan.ready() == [None]
    assert plan.finished


@pytest.mark.parametrize(("first_total", "later_total"), [(30, 31), (30, 29), (30, 0)])
def test_a_changed_total_on_any_page_is_drift(first_total: int, later_total: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    plan.on_page(Window(0, 10), first_total, 10, None) if plan.next_window() else None
    second = plan.next_window()
    assert second is not None
    drift = plan.on_page(second, later_total, 10, None)
    assert drift == Drift(total_before=first_total, total_after=later_total, offset=10)


def test_an_empty_page_before_the_end_is_an_error_not_a_loop() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    plan.on_page(plan.next_window() or Window(0, 10), 30, 10, None)
    w = plan.next_window()
    assert w is not None
    with pytest.raises(ScanError, match="empty"):
        plan.on_page(w, 30, 0, None)


@pytest.mark.parametrize("n_items", [11, 40])
def test_more_items_than_asked_is_an_error(n_items: int) -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    with pytest.raises(ScanError, match="asked"):
        plan.on_page(plan.next_window() or Window(0, 10), 100, n_items, None)


def test_more_items_than_total_leaves_room_for_is_an_error() -> None:
    plan: ScanPlan[None] = ScanPlan(page_size=10, lookahead=100)
    with pytest.raises(ScanError, match="leaves room"):
        plan.on_page(plan.next_window() or Window(0, 10), 5, 8, None)


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 500),
    page_size=st.integers(1, 50),
    change_at=st.integers(1, 60),
    delta=st.integers(-20, 20).filter(lambda d: d != 0),
    seed=st.integers(0, 2**32),
)
def test_any_total_change_mid_scan_is_reported_never_absorbed(
    total: int, page_size: int, change_at: int, delta: int, seed: int
) -> None:
    """Once the server's total changes, the very next page answered reports drift."""
    plan: ScanPlan[None] = ScanPlan(page_size=page_size, lookahead=4 * page_size)
    rng = random.Random(seed)
    in_flight: list[Window] = []
    answered = 0
    current_total = total
    while True:
        while len(in_flight) < 4 and (w := plan.next_window()) is not None:
            in_flight.append(w)
        if not in_flight:
            assert plan.finished
            assert answered <= change_at  # the change never happened in time
            return
        w = in_flight.pop(rng.randrange(len(in_flight)))
        if answered == change_at:
            current_total = max(0, total + delta)
        n = max(0, min(w.count, current_total - w.offset))
        if answered >= change_at and current_total != total:
            assert plan.on_page(w, current_total, n, None) is not None
            return
        n = max(0, min(w.count, total - w.offset))
        assert plan.on_page(w, total, n, None) is None
        plan.ready()
        answered += 1
