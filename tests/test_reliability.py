"""Retries, Retry-After, the retry budget, exactly-once writes and secrets, against a faulty sandbox."""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

pytestmark = pytest.mark.anyio

FAST_RETRY = bt.RetryPolicy(max_attempts=10, backoff_base=0.001, backoff_max=0.01)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=2000, seed=11)) as sb:
        yield sb


def make_client(sandbox: Sandbox, **options: object) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=sandbox.api_key,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        **options,  # type: ignore[arg-type]
    )


async def test_soak_2000_pages_through_20_percent_faults_every_item_once_in_order() -> None:
    async with serve(SandboxConfig(sims=20_000, seed=5)) as sandbox:
        expected = [s["iccid"] for s in sandbox.data.sims_list()]
        sandbox.config.faults = FaultConfig(
            rate=0.2,
            kinds=dict.fromkeys(
                # Not "malformed": a complete body that is not JSON fails at once (not retried).
                ("429", "500", "502", "503", "504", "reset", "truncated", "slow"),
                1.0,
            ),
            slow_seconds=2.0,
        )
        async with make_client(
            sandbox, retry=FAST_RETRY, retry_budget=bt.RetryBudget(capacity=100_000), timeout=0.2
        ) as client:
            scan = client.sims.iter(page_size=10)
            got = [s.iccid async for s in scan]
        assert got == expected
        assert scan.report.pages == 2000
        assert scan.report.retries > 200  # about one in five of ~2,000 requests failed and was retried


async def test_retry_after_is_honoured(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["429"], retry_after=0.3)
    async with make_client(sandbox, retry=bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)) as client:
        started = time.monotonic()
        page = await client.sims.list(count=1)
        waited = time.monotonic() - started
    assert len(page.items) == 1
    assert waited >= 0.3  # never sooner than the server asked


async def test_a_retry_after_beyond_the_cap_fails_at_once_with_the_value(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["429"], retry_after=120)
    sandbox.stats.reset()
    async with make_client(sandbox) as client:
        with pytest.raises(bt.RateLimitError) as info:
            await client.sims.list(count=1)
    assert info.value.retry_after == 120
    assert info.value.attempts == 1
    assert sandbox.stats.total == 1


async def test_budget_caps_requests_when_everything_fails(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(rate=1.0, kinds={"503": 1.0})
    sandbox.stats.reset()
    calls = 300
    async with make_client(sandbox, retry=bt.RetryPolicy(backoff_base=0.0001, backoff_max=0.0001)) as client:
        for _ in range(calls):
            with pytest.raises(bt.ServerError):
                await client.sims.list(count=1)
    assert sandbox.stats.total <= 1.5 * calls
    assert sandbox.stats.total > calls  # the budget allowed some retries first


async def test_a_hung_server_fails_within_attempts_times_timeout(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(rate=1.0, kinds={"slow": 1.0}, slow_seconds=30)
    policy = bt.RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.01)
    async with make_client(sandbox, retry=policy, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(bt.APITimeoutError) as info:
            await client.sims.list(count=1)
        elapsed = time.monotonic() - started
    assert info.value.attempts == 2
    assert elapsed < 5  # far below the 30 s hang: each attempt was cut at its timeout


@pytest.mark.parametrize("kind", ["reset", "truncated", "500", "502", "503", "504", "429"])
async def test_each_transient_fault_on_a_get_is_retried(sandbox: Sandbox, kind: str) -> None:
    sandbox.config.faults = FaultConfig(script=[kind])
    async with make_client(sandbox, retry=FAST_RETRY) as client:
        page = await client.sims.list(count=3)
    assert len(page.items) == 3
    assert sandbox.stats.total == 2


@pytest.mark.parametrize("kind", ["400", "401", "403", "404", "409"])
async def test_definitive_answers_are_not_retried(sandbox: Sandbox, kind: str) -> None:
    sandbox.config.faults = FaultConfig(script=[kind])
    async with make_client(sandbox, retry=FAST_RETRY) as client:
        with pytest.raises(bt.APIStatusError) as info:
            await client.sims.list(count=3)
    assert info.value.status == int(kind)
    assert sandbox.stats.total == 1


async def test_thousand_ambiguous_creates_make_exactly_one_package_per_sim() -> None:
    async with serve(SandboxConfig(sims=4000, seed=2)) as sandbox:
        taken = {p["sim"] for p in sandbox.data.packages_list()}
        free = [s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken][:1000]
        assert len(free) == 1000
        template = sandbox.data.packages_list()[0]["package_template"]
        before = len(sandbox.data.packages_list())
        # Every POST has an even chance of being carried out and then never answered.
        sandbox.config.faults = FaultConfig(rate=0.5, kinds={"commit_drop": 1.0})
        results: dict[str, bt.Package] = {}
        async with make_client(sandbox, retry=FAST_RETRY, max_concurrency=16) as client:

            async def create(iccid: str) -> None:
                results[iccid] = await client.packages.create(sim=iccid, package_template=template)

            async with anyio.create_task_group() as tg:
                for iccid in free:
                    tg.start_soon(create, iccid)
        packages = sandbox.data.packages_list()
        assert len(packages) == before + 1000
        by_sim: dict[str, list[str]] = {}
        for p in packages:
            by_sim.setdefault(p["sim"], []).append(p["id"])
        for iccid in free:
            assert by_sim[iccid] == [results[iccid].id]
        assert any(p.reconciled for p in results.values())
        assert not all(p.reconciled for p in results.values())


async def test_a_409_on_the_first_create_is_a_real_conflict(sandbox: Sandbox) -> None:
    live = next(p for p in sandbox.data.packages_list() if p["status"] != "TERMINATED")
    async with make_client(sandbox, retry=FAST_RETRY) as client:
        with pytest.raises(bt.ConflictError):
            await client.packages.create(sim=live["sim"], package_template=live["package_template"])


async def test_create_is_not_retried_after_a_plain_server_error(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(script=["500"])
    taken = {p["sim"] for p in sandbox.data.packages_list()}
    iccid = next(s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken)
    async with make_client(sandbox, retry=FAST_RETRY) as client:
        with pytest.raises(bt.ServerError):
            await client.packages.create(sim=iccid, package_template=1)
    assert sandbox.stats.total == 1


@pytest.mark.parametrize(
    ("action", "start", "target"),
    [("activate", "NOT_ACTIVE", "ACTIVE"), ("terminate", "ACTIVE", "TERMINATED")],
)
async def test_an_action_whose_answer_was_lost_is_read_back(
    sandbox: Sandbox, action: str, start: str, target: str
) -> None:
    pkg = next(p for p in sandbox.data.packages_list() if p["status"] == start)
    sandbox.config.faults = FaultConfig(script=["commit_drop"])
    async with make_client(sandbox, retry=FAST_RETRY) as client:
        await getattr(client.packages, action)(pkg["id"])
        assert (await client.packages.get(pkg["id"])).status == target


async def test_activate_answered_false_is_rejected(sandbox: Sandbox) -> None:
    from aiohttp import web

    from tests.test_client import _raw_server

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(False)

    async with (
        _raw_server(handler) as url,
        bt.BetatelClient(api_key="k", user_id="u", base_url=url) as client,
    ):
        with pytest.raises(bt.ActionRejectedError):
            await client.packages.activate("pkg_1")


SECRET = "sk-live-0123456789abcdef"


async def test_the_key_appears_in_no_log_line_error_text_or_pickle(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="betatel_async")
    sandbox.config.api_key = SECRET
    policy = bt.RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.001)
    errors: list[BaseException] = []
    async with (
        make_client(sandbox, retry=policy, timeout=0.3) as good,
        bt.BetatelClient(api_key=SECRET + "-wrong", user_id="u", base_url=sandbox.url, retry=policy) as bad,
    ):
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: bad.sims.list(),
            lambda: good.packages.get("nope"),
            lambda: good.sims.list(count=1),
            lambda: good.sims.all(page_size=100),
        ]
        for kind in ["500", "reset", "truncated", "malformed", "slow", "429", None]:
            for call in calls:
                if kind is not None:
                    sandbox.config.faults = FaultConfig(script=[kind, kind], slow_seconds=2, retry_after=0)
                try:
                    await call()
                except bt.BetatelError as exc:
                    errors.append(exc)
    assert len(errors) >= 10
    texts = [r.getMessage() for r in caplog.records] + [repr(caplog.records)]
    for exc in errors:
        texts += [str(exc), repr(exc), repr(pickle.loads(pickle.dumps(exc)).__dict__), repr(exc.__dict__)]
    assert caplog.records
    for text in texts:
        assert SECRET not in text


async def test_the_overall_deadline_also_cuts_the_attempt_in_progress(sandbox: Sandbox) -> None:
    sandbox.config.faults = FaultConfig(rate=1.0, kinds={"slow": 1.0}, slow_seconds=30)
    policy = bt.RetryPolicy(max_attempts=5, deadline=0.4)
    async with make_client(sandbox, retry=policy, timeout=20) as client:
        started = time.monotonic()
        with pytest.raises(bt.APITimeoutError):
            await client.sims.list(count=1)
        elapsed = time.monotonic() - started
    assert elapsed < 5  # not the 20 s attempt timeout, nor the 30 s hang


async def test_throttling_shrinks_scan_concurrency_and_success_grows_it_back(sandbox: Sandbox) -> None:
    sandbox.config.latency = 0.005
    async with make_client(sandbox, retry=FAST_RETRY, max_concurrency=8) as client:
        limit = client.adaptive_limit
        lowest = limit.current
        sandbox.config.faults = FaultConfig(script=["ok"] + ["429"] * 8)

        def watch(report: bt.ScanReport) -> None:
            nonlocal lowest
            lowest = min(lowest, limit.current)

        sims = await client.sims.all(page_size=20, on_progress=watch)
        assert len(sims) == 2000
        assert lowest < 8
        assert sandbox.stats.max_in_flight <= 8
        await client.sims.all(page_size=20)  # 100 clean pages
        assert limit.current == 8
