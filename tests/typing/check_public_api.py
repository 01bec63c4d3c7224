"""Type-checked only (``mypy --strict``), never run: the public API as users call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack, assert_type

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
    assert_type(pkg.package_template_id, int)
    new = await client.packages.create(sim="89148000004012345678", package_template=21145354)
    assert_type(new, bt.Package)
    assert_type(await client.packages.activate(new.id), None)
    assert_type(await client.packages.terminate(new.id), None)
    assert_type(await client.sims.get("89148000004012345678"), bt.Sim)


async def uses_the_rest_of_the_api(client: bt.BetatelClient) -> None:
    iccid = "89148000004012345678"
    assert_type(await client.inventories.list(company=100), bt.Page[bt.Inventory])
    assert_type(await client.package_templates.all(inventory=51952), list[bt.PackageTemplate])
    async for template in client.package_templates.iter(inventory=51952, ordered=False, on_drift="restart"):
        assert_type(template.traffic_policy, int | None)
    tpl = await client.package_templates.get(21145354)
    assert_type(tpl, bt.PackageTemplate)
    info = await client.package_templates.create(
        name="Europe 10 GB",
        supported_countries=["FRA", "DEU"],
        activation_type=bt.ActivationType.AUTO,
        data_usage_allowance=10 * 1024**3,
        time_allowance=bt.TimeAllowance(unit=bt.TimeUnit.DAY, duration=30),
        activation_time_allowance=86_400,
        earliest_available_date=1_700_000_000_000,
        latest_available_date=0,
        inventory=51952,
    )
    assert_type(info, bt.PackageTemplateInfo)
    countries = await client.countries.all(page_size=300)
    assert_type(countries[0].iso3, str)
    async with client.countries.pages() as pages:
        async for page in pages:
            assert_type(page.items, list[bt.Country])
    profile = await client.euicc_profiles.get(iccid)
    assert_type(profile.activation_code, str)
    assert_type(profile.state, bt.EuiccProfileState | str)
    assert_type(await client.euicc_profiles.qr_code(iccid), bytes)
    pcr = await client.pcr_profiles.update(
        iccid, active_throttling=bt.Throttling.SPEED_500_KBPS, route_policy=None
    )
    assert_type(pcr, bt.PcrProfile)
    assert_type(await client.pcr_profiles.get(iccid), bt.PcrProfile)
    await client.pcr_profiles.update(iccid, data_state="DISABLED", voice_state=bt.NOT_GIVEN)
    assert_type(await client.api_status(), bt.ApiStatus)
    assert_type(bt.PATHS["status"], str)


def my_scan(client: bt.BetatelClient, **options: Unpack[bt.ScanOptions]) -> bt.ItemScan[bt.Sim]:
    """Users' own wrappers forward the scan options typed, as the SDK does."""
    return client.sims.iter(company=100, **options)


async def configures() -> None:
    async with bt.BetatelClient(api_key="k", user_id="u", max_concurrency=8, max_body_size=1 << 20) as client:
        assert_type(client, bt.BetatelClient)
        assert_type(client.with_options(max_body_size=1 << 24, timeout=5), bt.BetatelClient)
        assert_type(client.with_options(tracing=False), bt.BetatelClient)
    async with bt.BetatelClient(api_key="k", user_id="u", tracing=False) as client:
        assert_type(client, bt.BetatelClient)
    async with bt.BetatelClient.from_env(retry=bt.RetryPolicy(max_attempts=5)) as client:
        assert_type(client.state, bt.ClientState)
    try:
        pass
    except bt.APIStatusError as exc:
        assert_type(exc.status, int)
        assert_type(exc.message, str)
    except bt.DriftError as exc:
        assert_type(exc.total_after, int)


def uses_diff() -> None:
    with bt.diff("sims-2024-05-01.parquet", "sims-2024-05-02.jsonl") as changes:
        assert_type(changes, bt.ExportDiff)
        assert_type(changes.counts, bt.DiffCounts)
        assert_type(changes.counts.changed, int)
        for change in changes.changed:
            assert_type(change, bt.ItemChange)
            assert_type(change.fields, Mapping[str, tuple[Any, Any]])
        assert_type(changes.transitions, Mapping[tuple[str | None, str | None], int])
        assert_type(changes.summary(), list[tuple[str, int]])
