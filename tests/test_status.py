"""SIM inventory statistics: StatusAccumulator's invariants, and sims.status() against a sandbox."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async import BetatelClient, Imsi, Ref, Sim, SimStatus, unstructure
from betatel_async._status import (
    NONE_KEY,
    HolderStatus,
    NetworkCounts,
    SimStatusReport,
    StatusAccumulator,
)
from betatel_async.sandbox import Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio


def report_of(sims: list[Sim]) -> SimStatusReport:
    accumulator = StatusAccumulator()
    for sim in sims:
        accumulator.add(sim)
    return accumulator.result()


def check(report: SimStatusReport) -> None:
    """Every invariant a report keeps, whatever SIMs it counted."""
    assert report.generated_at.utcoffset() == timedelta(0)
    assert report.total == sum(report.by_status.values()) == sum(h.total for h in report.holders)
    status_sum: Counter[str] = Counter()
    network_sum: dict[str, Counter[str]] = {}
    for holder in report.holders:
        assert holder.total > 0
        assert holder.total == sum(holder.by_status.values()) == sum(holder.by_group.values())
        # A SIM is under at least one network, and under a network at most once.
        assert holder.total <= sum(n.total for n in holder.by_network.values())
        for key, counts in holder.by_network.items():
            assert counts.total == sum(counts.by_status.values()) > 0
            for status, n in counts.by_status.items():
                assert 0 < n <= holder.by_status[status]
            network_sum.setdefault(key, Counter()).update(counts.by_status)
        assert all(n > 0 for n in holder.by_status.values())
        assert all(n > 0 for n in holder.by_group.values())
        status_sum.update(holder.by_status)
    assert report.by_status == dict(status_sum)
    assert {k: v.by_status for k, v in report.by_network.items()} == {
        k: dict(v) for k, v in network_sum.items()
    }
    for counts in report.by_network.values():
        assert counts.total == sum(counts.by_status.values())
    keys = [(h.company_id, h.inventory_id) for h in report.holders]
    assert len(set(keys)) == len(keys)
    order = [(c is not None, c or 0, i is not None, i or 0) for c, i in keys]
    assert order == sorted(order)
    # JSON-ready as it is, with both encoders.
    assert json.loads(json.dumps(report.to_dict())) == orjson.loads(orjson.dumps(report.to_dict()))


def expected_counts(sims: list[Sim]) -> dict[str, Any]:
    """The report's numbers, computed the obvious way, as plain dicts."""

    def text(value: object) -> str:
        return NONE_KEY if value is None else str(value)

    holders: dict[tuple[int | None, int | None], dict[str, Any]] = {}
    overall_status: Counter[str] = Counter()
    overall_network: dict[str, Counter[str]] = {}
    for sim in sims:
        key = (
            sim.company.id if sim.company else None,
            sim.inventory.id if sim.inventory else None,
        )
        holder = holders.setdefault(key, {"total": 0, "status": Counter(), "group": Counter(), "network": {}})
        status = text(sim.sim_status)
        networks = {text(i.sponsor_id) for i in sim.imsis} if sim.imsis else {NONE_KEY}
        holder["total"] += 1
        holder["status"][status] += 1
        holder["group"][text(sim.group.id if sim.group else None)] += 1
        overall_status[status] += 1
        for network in networks:
            holder["network"].setdefault(network, Counter())[status] += 1
            overall_network.setdefault(network, Counter())[status] += 1
    return {
        "total": len(sims),
        "by_status": dict(overall_status),
        "by_network": {k: dict(v) for k, v in overall_network.items()},
        "holders": {
            key: {
                "total": h["total"],
                "by_status": dict(h["status"]),
                "by_group": dict(h["group"]),
                "by_network": {k: dict(v) for k, v in h["network"].items()},
            }
            for key, h in holders.items()
        },
    }


def actual_counts(report: SimStatusReport) -> dict[str, Any]:
    return {
        "total": report.total,
        "by_status": report.by_status,
        "by_network": {k: v.by_status for k, v in report.by_network.items()},
        "holders": {
            (h.company_id, h.inventory_id): {
                "total": h.total,
                "by_status": h.by_status,
                "by_group": h.by_group,
                "by_network": {k: v.by_status for k, v in h.by_network.items()},
            }
            for h in report.holders
        },
    }


def _ref(ids: st.SearchStrategy[int]) -> st.SearchStrategy[Ref | None]:
    return st.none() | st.builds(Ref, id=ids, name=st.none() | st.sampled_from(["A", "B", ""]))


_sims = st.lists(
    st.builds(
        Sim,
        iccid=st.just("89148000004012345678"),
        sim_status=st.sampled_from([*SimStatus, "SUSPENDED_NEW", "in_service", "²", "none", ""]),
        company=_ref(st.integers(0, 3)),
        inventory=_ref(st.integers(0, 3)),
        group=_ref(st.integers(0, 2)),
        imsis=st.none()
        | st.lists(
            st.builds(Imsi, sponsor_id=st.integers(200, 203), imsi=st.integers(0, 9)),
            max_size=4,
        ),
    ),
    max_size=60,
)


@given(_sims)
@settings(max_examples=200, deadline=None)
def test_report_totals_are_sums_and_match_independent_counts(sims: list[Sim]) -> None:
    report = report_of(sims)
    check(report)
    assert actual_counts(report) == expected_counts(sims)


@given(_sims, _sims)
@settings(max_examples=50, deadline=None)
def test_result_can_be_taken_midway_and_counting_continues(first: list[Sim], second: list[Sim]) -> None:
    accumulator = StatusAccumulator()
    for sim in first:
        accumulator.add(sim)
    assert actual_counts(accumulator.result()) == expected_counts(first)
    for sim in second:
        accumulator.add(sim)
    assert actual_counts(accumulator.result()) == expected_counts(first + second)


def _sim(**fields: Any) -> Sim:
    # sim_status is required (the vendor declares it so); IN_SERVICE unless a test says otherwise.
    return Sim(**{"iccid": "89148000004012345678", "sim_status": SimStatus.IN_SERVICE, **fields})


def test_sim_with_imsis_of_two_sponsors_counts_once_under_each() -> None:
    sims = [
        _sim(
            sim_status=SimStatus.IN_SERVICE,
            imsis=[Imsi(sponsor_id=200, imsi=1), Imsi(sponsor_id=201, imsi=2), Imsi(sponsor_id=200, imsi=3)],
        )
    ]
    report = report_of(sims)
    assert report.total == 1
    assert report.by_network == {
        "200": NetworkCounts(total=1, by_status={"IN_SERVICE": 1}),
        "201": NetworkCounts(total=1, by_status={"IN_SERVICE": 1}),
    }


def test_missing_network_and_group_count_under_none() -> None:
    report = report_of([_sim(), _sim(imsis=[]), _sim()])
    assert report.holders == [
        HolderStatus(
            company_id=None,
            company_name=None,
            inventory_id=None,
            inventory_name=None,
            total=3,
            by_network={"none": NetworkCounts(total=3, by_status={"IN_SERVICE": 3})},
            by_status={"IN_SERVICE": 3},
            by_group={"none": 3},
        )
    ]


def test_unknown_status_keeps_its_text_and_known_ones_are_plain_str() -> None:
    report = report_of([_sim(sim_status="BRAND_NEW"), _sim(sim_status=SimStatus.TERMINATED)])
    assert report.by_status == {"BRAND_NEW": 1, "TERMINATED": 1}
    assert all(type(key) is str for key in report.by_status)


def test_holder_name_is_taken_from_whichever_sim_sends_it() -> None:
    sims = [
        _sim(company=Ref(id=7), inventory=Ref(id=70, name="Main")),
        _sim(company=Ref(id=7, name="Acme"), inventory=Ref(id=70)),
    ]
    [holder] = report_of(sims).holders
    assert (holder.company_id, holder.company_name) == (7, "Acme")
    assert (holder.inventory_id, holder.inventory_name) == (70, "Main")


def test_holders_sort_by_company_then_inventory_with_none_first() -> None:
    sims = [
        _sim(company=Ref(id=2), inventory=Ref(id=1)),
        _sim(company=Ref(id=1), inventory=Ref(id=9)),
        _sim(company=Ref(id=1)),
        _sim(inventory=Ref(id=3)),
        _sim(company=Ref(id=1), inventory=Ref(id=4)),
    ]
    keys = [(h.company_id, h.inventory_id) for h in report_of(sims).holders]
    assert keys == [(None, 3), (1, None), (1, 4), (1, 9), (2, 1)]


def test_networks_sort_numerically_with_none_last() -> None:
    sims = [_sim(imsis=[Imsi(sponsor_id=s, imsi=1)] if s else None) for s in (1000, None, 99, 200)]
    assert list(report_of(sims).by_network) == ["99", "200", "1000", "none"]


def test_empty_report() -> None:
    report = report_of([])
    check(report)
    assert (report.total, report.holders, report.by_status, report.by_network) == (0, [], {}, {})


def test_report_is_json_ready_and_stamped_in_utc() -> None:
    report = report_of([_sim(sim_status=SimStatus.PRE_SERVICE, company=Ref(id=1, name="A"))])
    data = report.to_dict()
    assert data["generated_at"].endswith("+00:00")
    assert data["holders"][0]["company_name"] == "A"
    assert report.generated_at.tzinfo is UTC
    # The package's converter handles the report too (a plain attrs class).
    assert unstructure(report)["total"] == 1


# ---------------------------------------------------------------- against the sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # "mixed": half the SIMs carry bare ids, half {id, name} objects.
    async with serve(SandboxConfig(sims=2500, seed=3, sim_shape="mixed")) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[BetatelClient]:
    async with BetatelClient(api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url) as c:
        yield c


def _without_time(report: SimStatusReport) -> dict[str, Any]:
    data = report.to_dict()
    del data["generated_at"]
    return data


async def test_status_equals_counts_of_all_sims(client: BetatelClient) -> None:
    report = await client.sims.status(page_size=300)
    sims = await client.sims.all(page_size=1000)
    check(report)
    assert report.total == len(sims) == 2500
    assert actual_counts(report) == expected_counts(sims)
    assert _without_time(report) == _without_time(report_of(sims))
    # Names come through although half the SIMs sent bare ids.
    assert all(h.company_name and h.inventory_name for h in report.holders)


async def test_status_with_a_filter_counts_only_that_company(client: BetatelClient) -> None:
    sims = await client.sims.all(page_size=1000)
    company = sims[0].company
    assert company is not None
    report = await client.sims.status(company=company.id)
    check(report)
    mine = [s for s in sims if s.company is not None and s.company.id == company.id]
    assert actual_counts(report) == expected_counts(mine)
    assert {h.company_id for h in report.holders} == {company.id}
