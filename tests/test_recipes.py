"""The recipes of ``docs/pages/recipes.md``, run as written against the sandbox.

Each recipe's code is read from the page and executed, with the names its
snippet takes for granted (its imports) given to it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from aiohttp import web
from asgi_lifespan import LifespanManager

import betatel_async as bt
from betatel_async.sandbox import Sandbox, SandboxConfig, serve

from ._docs import python_block

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=1500, seed=21)) as sb:
        yield sb


def _run_recipe(code: str, **names: Any) -> dict[str, Any]:
    """The names a recipe defines, its code run in a namespace holding ``names``."""
    namespace = {"__name__": "recipes", **names}
    exec(compile(code, "recipes.md", "exec"), namespace)  # noqa: S102 - the page's own recipe
    return namespace


# --- recipe: one client for an aiohttp.web app's lifetime ----------------------------

WEB_APP = _run_recipe(
    python_block("docs/pages/recipes.md", "web.AppKey"),
    web=web,
    BetatelClient=bt.BetatelClient,
    NotFoundError=bt.NotFoundError,
    unstructure=bt.unstructure,
)


async def test_recipe_web_app_shares_one_client(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETATEL_API_KEY", sandbox.api_key)
    monkeypatch.setenv("BETATEL_USER_ID", sandbox.user_id)
    monkeypatch.setenv("BETATEL_BASE_URL", sandbox.url)
    runner = web.AppRunner(WEB_APP["app"])
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pkg = sandbox.data.packages_list()[0]
    try:
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(
                *(http.get(f"http://127.0.0.1:{port}/packages/{pkg['id']}") for _ in range(20))
            )
            bodies = [await r.json() for r in answers]
            for r in answers:
                r.release()
            async with http.get(f"http://127.0.0.1:{port}/packages/nope") as missing:
                assert missing.status == 404
    finally:
        await runner.cleanup()
    assert all(b["id"] == pkg["id"] for b in bodies)
    assert all(r.status == 200 for r in answers)


# --- recipe: one client for a FastAPI app's lifetime ---------------------------------


def _page_module(code: str, path: Path) -> ModuleType:
    """``code`` imported as a module of its own, as a reader's ``app.py`` would be."""
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_recipe_fastapi_app_shares_one_client_and_answers_404(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BETATEL_API_KEY", sandbox.api_key)
    monkeypatch.setenv("BETATEL_USER_ID", sandbox.user_id)
    monkeypatch.setenv("BETATEL_BASE_URL", sandbox.url)
    recipe = _page_module(python_block("docs/pages/recipes.md", "FastAPI("), tmp_path / "fastapi_recipe.py")
    iccids = [s["iccid"] for s in sandbox.data.sims_list()[:20]]
    unknown = "8999000000000000000"  # 19 digits: a well-formed ICCID the sandbox does not have
    async with LifespanManager(recipe.app) as manager:
        client = recipe.app.state.betatel
        assert client.state is bt.ClientState.OPEN
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            answers = await asyncio.gather(*(http.get(f"/sims/{iccid}") for iccid in iccids))
            missing = await http.get(f"/sims/{unknown}")
            malformed = await http.get("/sims/not-an-iccid")
        assert recipe.app.state.betatel is client  # the same client served every request
    assert client.state is bt.ClientState.CLOSED  # the lifespan closed it when the app stopped
    assert [a.status_code for a in answers] == [200] * len(iccids)
    assert [a.json()["iccid"] for a in answers] == iccids
    assert [a.json()["sim_status"] for a in answers] == [
        s["sim_status"] for s in sandbox.data.sims_list()[:20]
    ]
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert malformed.status_code == 422
    assert "iccid" in malformed.json()["detail"]
    assert sandbox.api_key not in malformed.text
    assert sandbox.stats.by_route[("GET", "sim")] == len(iccids) + 1  # the malformed one sent nothing


# --- recipe: a worker pulling ICCIDs from a queue -----------------------------------


WORKER = _run_recipe(
    python_block("docs/pages/recipes.md", "async def provision_worker"), asyncio=asyncio, Package=bt.Package
)
provision_worker = WORKER["provision_worker"]


async def provision(
    client: bt.BetatelClient, iccids: list[str], template: int, workers: int = 4
) -> tuple[list[bt.Package], dict[str, Exception]]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for iccid in iccids:
        queue.put_nowait(iccid)
    done: list[bt.Package] = []
    failed: dict[str, Exception] = {}
    tasks = [
        asyncio.create_task(provision_worker(client, queue, template, done, failed)) for _ in range(workers)
    ]
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done, failed


def _free_and_taken(sandbox: Sandbox) -> tuple[list[str], list[str]]:
    """ICCIDs without any package, and ICCIDs with a live one."""
    packages = sandbox.data.packages_list()
    taken = {p["sim"] for p in packages}
    free = [s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in taken]
    live = sorted({p["sim"] for p in packages if p["status"] != "TERMINATED"})
    return free, live


async def test_recipe_queue_worker_creates_and_activates(sandbox: Sandbox) -> None:
    free = _free_and_taken(sandbox)[0][:40]
    template = sandbox.data.packages_list()[0]["package_template"]
    async with bt.BetatelClient(
        api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, max_concurrency=4
    ) as client:
        with anyio.fail_after(15):  # a worker that stopped marking its items done would hang here
            done, failed = await provision(client, free, template)
        assert failed == {}
        assert sorted(p.sim or "" for p in done) == sorted(free)
        active = await client.packages.all(status="ACTIVE")
    assert set(free) <= {p.sim for p in active}
    assert sandbox.stats.max_in_flight <= 4


async def test_recipe_queue_worker_records_failures_and_goes_on(sandbox: Sandbox) -> None:
    """More failing creates than workers: every worker meets one, and the queue still drains."""
    free, live = _free_and_taken(sandbox)
    template = sandbox.data.packages_list()[0]["package_template"]
    failing = live[:10]  # the sandbox answers 409: each SIM already has a live package
    iccids = [iccid for pair in zip(failing, free[:10], strict=True) for iccid in pair]
    async with bt.BetatelClient(
        api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, max_concurrency=4
    ) as client:
        with anyio.fail_after(15):  # the old recipe hung here for ever
            done, failed = await provision(client, iccids, template)
        assert sorted(failed) == sorted(failing)
        assert all(isinstance(exc, bt.ConflictError) for exc in failed.values())
        assert sorted(p.sim or "" for p in done) == sorted(free[:10])

        # Re-running the whole job is safe: nothing new is made, and each SIM says why.
        packages_before = len(sandbox.data.packages_list())
        with anyio.fail_after(15):
            done, failed = await provision(client, iccids, template)
    assert done == []
    assert sorted(failed) == sorted(iccids)
    assert all(isinstance(exc, bt.ConflictError) for exc in failed.values())
    assert len(sandbox.data.packages_list()) == packages_before


# --- recipe: a bulk export in a few lines -------------------------------------------


export_sims = _run_recipe(
    python_block("docs/pages/recipes.md", "async def export_sims"),
    BetatelClient=bt.BetatelClient,
    Path=Path,
    ScanReport=bt.ScanReport,
    json=json,
    unstructure=bt.unstructure,
)["export_sims"]


async def test_recipe_bulk_export(sandbox: Sandbox, tmp_path: Path) -> None:
    async with bt.BetatelClient(
        api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url
    ) as client:
        report = await export_sims(client, tmp_path / "sims.jsonl")
    lines = (tmp_path / "sims.jsonl").read_text().splitlines()
    assert [json.loads(line)["iccid"] for line in lines] == [s["iccid"] for s in sandbox.data.sims_list()]
    assert report.items == 1500
    assert report.finished


# --- recipe: sell and install an eSIM ------------------------------------------------


sell_esim = _run_recipe(
    python_block("docs/pages/recipes.md", "async def sell_esim"),
    BetatelClient=bt.BetatelClient,
    PackageTemplateStatus=bt.PackageTemplateStatus,
)["sell_esim"]


async def test_recipe_sell_and_install_an_esim(sandbox: Sandbox) -> None:
    taken = {p["sim"] for p in sandbox.data.packages_list()}
    sim = next(
        s for s in sandbox.data.sims_list() if s["iccid"] not in taken and s["inventory"]["id"] == 51952
    )
    async with bt.BetatelClient(
        api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url
    ) as client:
        code, png = await sell_esim(client, sim["iccid"], "AUT")
    assert code == sandbox.data.euicc_profile(sim["iccid"])["activation_code"]
    assert code.startswith("LPA:1$")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (package,) = sandbox.data.sim_packages(sim["iccid"])
    assert package["status"] == "ACTIVE"
    assert sandbox.data.template_inventory(package["package_template"]) == 51952
