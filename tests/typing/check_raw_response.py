"""Type-checked only (``mypy --strict``), never run: raw responses and the escape hatch as users call them.

A line ending in ``# type: ignore[...]`` shows a mistake mypy catches: with
``warn_unused_ignores`` (part of ``--strict``), an ignore that is not needed
is itself an error, so the check fails if the typing stops catching it.
"""

from __future__ import annotations

from typing import Any, assert_type

from multidict import CIMultiDictProxy

import betatel_async as bt


async def raw_calls(client: bt.BetatelClient) -> None:
    iccid = "89148000004012345678"
    raw = client.with_raw_response
    assert_type(raw, bt.BetatelClientWithRawResponse)
    got = await raw.packages.get("pkg_123456")
    assert_type(got, bt.RawResponse[bt.Package])
    assert_type(got.parse(), bt.Package)
    assert_type(got.status, int)
    assert_type(got.headers, CIMultiDictProxy[str])
    assert_type(got.request_id, str | None)
    assert_type(got.attempts, int)
    assert_type(got.elapsed, float)
    assert_type(got.content, bytes)
    assert_type(await raw.sims.list(offset=0, count=10, company=100), bt.RawResponse[bt.Page[bt.Sim]])
    assert_type(await raw.sims.get(iccid), bt.RawResponse[bt.Sim])
    assert_type(await raw.inventories.list(company=1), bt.RawResponse[bt.Page[bt.Inventory]])
    assert_type(await raw.packages.list(status="ACTIVE"), bt.RawResponse[bt.Page[bt.Package]])
    assert_type(await raw.packages.create(sim=iccid, package_template=1), bt.RawResponse[bt.Package])
    assert_type(await raw.packages.activate("pkg_1"), bt.RawResponse[None])
    assert_type(await raw.packages.terminate("pkg_1"), bt.RawResponse[None])
    assert_type(await raw.package_templates.get(1), bt.RawResponse[bt.PackageTemplate])
    assert_type(await raw.package_templates.list(inventory=1), bt.RawResponse[bt.Page[bt.PackageTemplate]])
    assert_type(await raw.countries.list(count=5), bt.RawResponse[bt.Page[bt.Country]])
    assert_type(await raw.euicc_profiles.get(iccid), bt.RawResponse[bt.EuiccProfile])
    assert_type(await raw.euicc_profiles.qr_code(iccid), bt.RawResponse[bytes])
    assert_type(await raw.pcr_profiles.get(iccid), bt.RawResponse[bt.PcrProfile])
    assert_type(
        await raw.pcr_profiles.update(iccid, active_throttling=bt.Throttling.NO_LIMIT),
        bt.RawResponse[bt.PcrProfile],
    )
    assert_type(await raw.api_status(), bt.RawResponse[bt.ApiStatus])
    assert_type(client.with_options(timeout=5).with_raw_response, bt.BetatelClientWithRawResponse)


async def raw_calls_keep_the_plain_signatures(client: bt.BetatelClient) -> None:
    raw = client.with_raw_response
    await raw.sims.get(12345)  # type: ignore[arg-type]
    await raw.sims.list(compnay=1)  # type: ignore[call-arg]
    await raw.packages.create(sim="1", package_template="21145354")  # type: ignore[arg-type]
    raw.sims.iter()  # type: ignore[attr-defined]  # scans are not raw
    got = await raw.sims.get("89148000004012345678")
    print(got.parse().nope)  # type: ignore[attr-defined]


async def escape_hatch(client: bt.BetatelClient) -> None:
    any_call = await client.request("GET", "/api/v1/esim/countries", params={"count": 10, "lang": "en"})
    assert_type(any_call, bt.RawResponse[Any])
    await client.request("POST", "/api/v1/esim/things", json={"a": [1]}, headers={"X-Trace": "1"})
    await client.request("GET", "/x", params={"flag": [1]})  # type: ignore[dict-item]
    await client.request("GET", "/x", headers={"X-N": 1})  # type: ignore[dict-item]


async def defaults() -> None:
    async with bt.BetatelClient(
        api_key="k", user_id="u", default_headers={"X-Team": "ops"}, default_query={"lang": "en", "v": 2}
    ) as client:
        client.with_options(default_headers={"X-Tenant": "t"}, default_query={"region": "eu"})
    try:
        pass
    except bt.APIError as exc:
        assert_type(exc.body, Any)
        assert_type(exc.headers, CIMultiDictProxy[str] | None)
        assert_type(exc.request_id, str | None)
