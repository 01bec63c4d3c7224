"""``packages.create`` exactly once: which failures are read back, and what a read-back may claim."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

import betatel_async as bt
from betatel_async._resources._created import CREATE_CLOCK_SLACK
from betatel_async._resources.packages import _may_be_created_by
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve
from tests._servers import web_server
from tests.test_client import _raw_server

pytestmark = pytest.mark.anyio

FAST_RETRY = bt.RetryPolicy(max_attempts=5, backoff_base=0.001, backoff_max=0.01)
JAN_2020 = datetime(2020, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=400, seed=31)) as sb:
        yield sb


def make_client(sandbox: Sandbox, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


def free_sims(sandbox: Sandbox) -> Iterator[str]:
    """ICCIDs of SIMs without any package, in listing order."""
    taken = {p["sim"] for p in sandbox.data.packages_list()}
    return (s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken)


def templates(sandbox: Sandbox) -> list[int]:
    return [t["id"] for t in sandbox.data.package_templates_list()]


def made_at(sandbox: Sandbox, when: float, sim: str, template: int, status: str = "NOT_ACTIVE") -> str:
    """Give ``sim`` a package from ``template`` created at ``when`` (server seconds); its id."""
    data = sandbox.data
    clock = data.now
    data.now = lambda: when
    try:
        package_id: str = data.create_package(sim, template)["id"]
        if status in ("ACTIVE", "TERMINATED"):
            data.activate_package(package_id)
        if status == "TERMINATED":
            data.terminate_package(package_id)
    finally:
        data.now = clock
    return package_id


def live_packages(sandbox: Sandbox, sim: str) -> list[str]:
    return [p["id"] for p in sandbox.data.sim_packages(sim) if p["status"] != "TERMINATED"]


# -- the sandbox's clock ---------------------------------------------------------------------


async def test_the_sandbox_date_header_reads_the_clock_of_its_data(sandbox: Sandbox) -> None:
    sandbox.data.now = lambda: JAN_2020
    sandbox.config.faults = FaultConfig(script=["409"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError) as info:
            await client.packages.list()
    assert info.value.date == "Wed, 01 Jan 2020 00:00:00 GMT"


# -- ambiguous failures, on either side of the commit ----------------------------------------

# Where each fault strikes a POST in the sandbox (see its FaultConfig): the
# status faults and "reset" answer before the handler runs (nothing is made);
# "commit_drop", "truncated", "malformed" and "slow" run the handler first.
BEFORE_COMMIT = ["502", "503", "504", "reset"]
AFTER_COMMIT = ["commit_drop", "truncated", "malformed", "slow"]


@pytest.mark.parametrize("kind", BEFORE_COMMIT + AFTER_COMMIT)
async def test_an_ambiguous_failure_makes_exactly_one_package(sandbox: Sandbox, kind: str) -> None:
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    sandbox.config.faults = FaultConfig(script=[kind], slow_seconds=3)
    async with make_client(sandbox, timeout=0.5) as client:
        package = await client.packages.create(sim=sim, package_template=template)
    assert live_packages(sandbox, sim) == [package.id]
    assert package.sim == sim
    assert package.package_template_id == template
    # Read back (list shape) when the first attempt made it; the second attempt's 201 otherwise.
    assert package.reconciled is (kind in AFTER_COMMIT)


async def test_a_201_cut_short_is_read_back_not_raised(sandbox: Sandbox) -> None:
    """The body ends before its Content-Length: the package exists, so it is this call's."""
    sim = next(free_sims(sandbox))
    sandbox.config.faults = FaultConfig(script=["truncated"])
    sandbox.stats.reset()
    async with make_client(sandbox) as client:
        package = await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert package.reconciled
    assert live_packages(sandbox, sim) == [package.id]
    assert sandbox.stats.total == 2  # the POST and one page of read-back: not sent again


async def test_a_201_that_is_not_a_package_is_read_back_without_sending_again(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    sandbox.config.faults = FaultConfig(script=["malformed"])
    sandbox.stats.reset()
    async with make_client(sandbox) as client:
        package = await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert package.reconciled
    assert live_packages(sandbox, sim) == [package.id]
    assert sandbox.stats.total == 2  # the POST and one page of read-back


async def test_a_timeout_before_the_server_acted_sends_the_create_once_more(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    # The first POST is held 5 s and then answered 503 without being carried
    # out; the client gives up at 0.3 s. Later requests are answered at once.
    sandbox.config.latency = 5.0
    sandbox.config.faults = FaultConfig(script=["503"])

    def answer_at_once_after_the_first(method: str, path: str, query: dict[str, str]) -> None:
        sandbox.config.latency = 0.0

    sandbox.on_request = answer_at_once_after_the_first
    async with make_client(sandbox, timeout=0.3) as client:
        package = await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert not package.reconciled
    assert live_packages(sandbox, sim) == [package.id]


async def test_a_timeout_after_the_server_acted_is_read_back(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    sandbox.config.faults = FaultConfig(script=["slow"], slow_seconds=5)
    async with make_client(sandbox, timeout=0.3) as client:
        package = await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert package.reconciled
    assert live_packages(sandbox, sim) == [package.id]


async def test_a_timeout_on_both_attempts_with_nothing_made_is_raised(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    # POST (held 5 s, then 503), GET (at once), POST (held, 503), GET (at once):
    # the sandbox reads a request's latency before its hook, which sets the next one's.
    sandbox.config.latency = 5.0
    sandbox.config.faults = FaultConfig(script=["503", "ok", "503"])
    next_latencies = [0.0, 5.0, 0.0, 0.0]

    def set_the_next_latency(method: str, path: str, query: dict[str, str]) -> None:
        sandbox.config.latency = next_latencies.pop(0)

    sandbox.on_request = set_the_next_latency
    async with make_client(sandbox, timeout=0.3) as client:
        with pytest.raises(bt.APITimeoutError) as info:
            await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert "no live package" in "".join(info.value.__notes__)
    assert live_packages(sandbox, sim) == []


# -- what a read-back may claim --------------------------------------------------------------


async def test_a_package_from_before_the_call_is_raised_as_a_conflict(sandbox: Sandbox) -> None:
    """An ACTIVE package from 2020; the first POST 503 (no effect), the second 409."""
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    old = made_at(sandbox, JAN_2020, sim, template, "ACTIVE")
    sandbox.config.faults = FaultConfig(script=["503"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=template)
    assert live_packages(sandbox, sim) == [old]


async def test_a_date_far_from_our_clock_is_not_believed(sandbox: Sandbox) -> None:
    """A 503 dated 1970 (a stored page, a broken clock) must not open the read-back to 2020's package."""
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    old = made_at(sandbox, JAN_2020, sim, template, "ACTIVE")
    sandbox.data.now = lambda: 86_400.0  # every answer's Date: 2 January 1970
    sandbox.config.faults = FaultConfig(script=["503"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=template)
    assert live_packages(sandbox, sim) == [old]


async def test_the_date_of_a_cached_answer_is_not_the_servers_clock() -> None:
    """An answer with an ``Age`` header comes from a cache: its ``Date`` is not passed on."""

    async def handler(request: web.Request) -> web.Response:
        headers = {"Date": "Thu, 01 Jan 2015 00:00:00 GMT"}
        if "company" in request.query:
            headers["Age"] = "3600"
        return web.json_response({"message": "busy"}, status=404, headers=headers)

    async with web_server(handler) as url:
        async with bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client:
            with pytest.raises(bt.NotFoundError) as fresh:
                await client.sims.list()
            with pytest.raises(bt.NotFoundError) as cached:
                await client.sims.list(company=1)
    assert fresh.value.date == "Thu, 01 Jan 2015 00:00:00 GMT"
    assert cached.value.date is None


async def test_a_live_package_from_another_template_is_not_this_calls(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    mine, other = templates(sandbox)[:2]
    made_at(sandbox, time.time() - 5, sim, other)  # moments before the call: only the template differs
    sandbox.config.faults = FaultConfig(script=["503"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=mine)


async def test_a_terminated_package_is_not_this_calls(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    made_at(sandbox, time.time() - 5, sim, template, "TERMINATED")  # recent, same template
    made_at(sandbox, JAN_2020, sim, template, "ACTIVE")  # the one the 409 is about
    sandbox.config.faults = FaultConfig(script=["503"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=template)


async def test_the_read_back_reads_past_the_first_thousand_packages(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    for _ in range(1000):
        made_at(sandbox, JAN_2020, sim, template, "TERMINATED")
    sandbox.config.faults = FaultConfig(script=["commit_drop"])
    async with make_client(sandbox) as client:
        package = await client.packages.create(sim=sim, package_template=template)
    assert package.reconciled
    assert live_packages(sandbox, sim) == [package.id]
    assert sandbox.data.sim_packages(sim)[1000]["id"] == package.id  # on the second page


async def test_a_server_clock_behind_ours_still_finds_this_calls_package(sandbox: Sandbox) -> None:
    """The server's clock is an hour behind: its Date header, not our clock, dates the call."""
    sandbox.data.now = lambda: time.time() - 3600
    sim = next(free_sims(sandbox))
    # The 503 carries the server's Date; the second POST is made and its answer lost.
    sandbox.config.faults = FaultConfig(script=["503", "ok", "commit_drop"])
    async with make_client(sandbox) as client:
        package = await client.packages.create(sim=sim, package_template=templates(sandbox)[0])
    assert package.reconciled
    assert live_packages(sandbox, sim) == [package.id]


async def test_a_server_clock_ahead_of_ours_does_not_make_an_old_package_new(sandbox: Sandbox) -> None:
    """The server's clock is an hour ahead; its package from 30 minutes ago predates the call."""
    sandbox.data.now = lambda: time.time() + 3600
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    made_at(sandbox, time.time() + 1800, sim, template)  # ahead of our clock, behind the server's
    sandbox.config.faults = FaultConfig(script=["503"])
    async with make_client(sandbox) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=template)


async def test_a_rerun_of_a_create_that_succeeded_is_a_conflict(sandbox: Sandbox) -> None:
    sim = next(free_sims(sandbox))
    template = templates(sandbox)[0]
    async with make_client(sandbox) as client:
        first = await client.packages.create(sim=sim, package_template=template)
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=sim, package_template=template)
    assert live_packages(sandbox, sim) == [first.id]


def _package_json(package_id: str, sim: str, template: int, created_ms: int) -> dict[str, object]:
    return {
        "id": package_id,
        "sim": sim,
        "package_template": template,
        "status": "NOT_ACTIVE",
        "created_date": created_ms,
    }


async def test_two_live_candidates_are_not_told_apart_and_the_failure_is_raised() -> None:
    """An API that broke its one-live-package rule: two packages of this call's kind, made just now."""
    sim, template = "89148000004012345678", 21145354
    posts: list[int] = []
    gets: list[int] = []

    async def api(request: web.Request) -> web.Response:
        date = {"Date": email.utils.formatdate(time.time(), usegmt=True)}
        if request.method == "POST":
            posts.append(1)
            status = 503 if len(posts) == 1 else 409
            return web.json_response({"message": "no", "statusCode": status}, status=status, headers=date)
        gets.append(1)
        now_ms = int(time.time() * 1000)
        items = [] if len(gets) == 1 else [_package_json(f"pkg_{i}", sim, template, now_ms) for i in (1, 2)]
        page = {"total": len(items), "offset": 0, "count": len(items), "packages": items}
        return web.json_response(page, headers=date)

    async with (
        _raw_server(api) as url,
        bt.BetatelClient(api_key="k", user_id="u", base_url=url, retry=FAST_RETRY) as client,
    ):
        with pytest.raises(bt.ConflictError) as info:
            await client.packages.create(sim=sim, package_template=template)
    assert "2 live packages" in "".join(info.value.__notes__)
    assert (len(posts), len(gets)) == (2, 2)


# -- the read-back's rule, as a pure function ------------------------------------------------

EARLIEST = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SECONDS = int(EARLIEST.timestamp())
MILLIS = SECONDS * 1000


@pytest.mark.parametrize(
    ("created_date", "claimed"),
    [
        (MILLIS, True),  # milliseconds, the package lists' unit: at the bound is in
        (MILLIS - 1, False),
        (MILLIS + 5_000, True),
        (SECONDS, True),  # seconds, the create response's "Unix timestamp"
        (SECONDS - 1, False),
        (SECONDS + 5, True),
        (int(JAN_2020), False),
        (int(JAN_2020) * 1000, False),
        (0, False),  # "not set": never claimed
        (None, False),
        (10**30, False),  # beyond year 9999: nonsense, not a match
    ],
)
def test_the_read_back_bounds_creation_time_in_either_unit(created_date: int | None, claimed: bool) -> None:
    pkg = bt.Package(
        id="pkg_1", sim="8914800000", package_template=7, status="NOT_ACTIVE", created_date=created_date
    )
    assert _may_be_created_by(pkg, "8914800000", 7, EARLIEST) is claimed


@pytest.mark.parametrize(
    ("changes", "claimed"),
    [
        ({}, True),
        ({"status": "ACTIVE"}, True),
        ({"status": "SUSPENDED"}, True),
        ({"status": "A_STATUS_NOT_YET_DOCUMENTED"}, True),
        ({"status": "TERMINATED"}, False),
        ({"package_template": 8}, False),
        ({"sim": "8914800001"}, False),
    ],
)
def test_the_read_back_claims_only_a_live_package_of_this_sim_and_template(
    changes: dict[str, object], claimed: bool
) -> None:
    fields: dict[str, object] = {
        "id": "pkg_1",
        "sim": "8914800000",
        "package_template": 7,
        "status": "NOT_ACTIVE",
        "created_date": MILLIS,
    }
    pkg = bt.Package(**{**fields, **changes})  # type: ignore[arg-type]
    assert _may_be_created_by(pkg, "8914800000", 7, EARLIEST) is claimed


def test_the_slack_is_sixty_seconds() -> None:
    assert timedelta(seconds=60) == CREATE_CLOCK_SLACK
