"""Type-checked only (``mypy --strict``), never run: the public API as users call it."""

from __future__ import annotations

from typing import assert_type

import betatel_async as bt


async def uses(client: bt.BetatelClient) -> None:
    assert_type(await client.sims.list(offset=0, count=100, inventory=12345), bt.Page[bt.Sim])
    async for sim in client.sims.iter(company=100):
        assert_type(sim, bt.Sim)
        assert_type(sim.company, bt.Ref | None)
    async with client.sims.iter(page_size=500, concurrency=4, ordered=False) as scan:
        async for sim in scan:
            assert_type(sim.iccid, str)
        assert_type(scan.report, bt.ScanReport)
    async with client.packages.pages(status="ACTIVE") as pages:
        async for page in pages:
            assert_type(page.items, list[bt.Package])
    assert_type(await client.sims.all(company=100), list[bt.Sim])
    assert_type(await client.inventories.all(), list[bt.Inventory])
    assert_type(await client.packages.all(status="ACTIVE"), list[bt.Package])
    pkg = await client.packages.get("pkg_123456")
    assert_type(pkg.package_template_id, int | None)
    new = await client.packages.create(sim="89148000004012345678", package_template=21145354)
    assert_type(new, bt.Package)
    assert_type(await client.packages.activate(new.id), None)
    assert_type(await client.packages.terminate(new.id), None)
    assert_type(await client.sims.get("89148000004012345678"), bt.Sim)


async def configures() -> None:
    async with bt.BetatelClient(api_key="k", user_id="u", max_concurrency=8, max_body_size=1 << 20) as client:
        assert_type(client, bt.BetatelClient)
        assert_type(client.with_options(max_body_size=1 << 24, timeout=5), bt.BetatelClient)
    async with bt.BetatelClient.from_env(retry=bt.RetryPolicy(max_attempts=5)) as client:
        assert_type(client.state, bt.ClientState)
    try:
        pass
    except bt.APIStatusError as exc:
        assert_type(exc.status, int)
        assert_type(exc.message, str)
    except bt.DriftError as exc:
        assert_type(exc.total_after, int)
