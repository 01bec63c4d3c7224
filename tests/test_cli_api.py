"""The CLI commands of the rest of the API, against a served sandbox (real loopback HTTP).

Each command's output is compared with what the sandbox holds, not with the SDK.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner

from betatel_async import Country, PackageTemplate
from betatel_async._export._csv import columns_for, decode_row
from betatel_async.sandbox import SandboxConfig
from tests._servers import web_server
from tests.test_cli import ThreadSandbox, invoke


@pytest.fixture
def served() -> Iterator[ThreadSandbox]:
    with ThreadSandbox(SandboxConfig(sims=50, seed=3)) as sandbox:
        yield sandbox


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _iccid(served: ThreadSandbox, n: int = 0) -> str:
    iccid: str = served.sandbox.data.sims_list()[n]["iccid"]
    return iccid


def test_help_lists_every_namespace(runner: CliRunner) -> None:
    result = invoke(runner, ["--help"])
    for command in ("package-templates", "countries", "euicc-profiles", "pcr-profiles", "api-status"):
        assert command in result.output


def test_countries_list_prints_what_the_server_holds(runner: CliRunner, served: ThreadSandbox) -> None:
    result = invoke(runner, ["countries", "list"], env=served.env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout_bytes) == served.sandbox.data.countries_list()


def test_package_templates_list_filters_by_inventory(runner: CliRunner, served: ThreadSandbox) -> None:
    data = served.sandbox.data
    inventory = data.template_inventory(data.package_templates_list()[0]["id"])
    result = invoke(runner, ["package-templates", "list", "--inventory", str(inventory)], env=served.env)
    assert result.exit_code == 0, result.output
    printed = orjson.loads(result.stdout_bytes)
    expected = [t for t in data.package_templates_list() if data.template_inventory(t["id"]) == inventory]
    assert printed == expected and printed


def test_package_templates_get_and_create(runner: CliRunner, served: ThreadSandbox) -> None:
    data = served.sandbox.data
    inventory = data.inventories_list()[0]["id"]
    args = [
        "package-templates", "create", "--name", "CLI <b>plan</b>", "--country", "FRA", "--country", "DEU",
        "--activation-type", "AUTO", "--data", "1000000", "--time-unit", "DAY", "--time-duration", "30",
        "--activation-time-allowance", "86400", "--earliest-available-date", "1700000000000",
        "--inventory", str(inventory),
    ]  # fmt: skip
    created = invoke(runner, args, env=served.env)
    assert created.exit_code == 0, created.output
    info = orjson.loads(created.stdout_bytes)
    stored = next(t for t in data.package_templates_list() if t["id"] == info["id"])
    assert stored["name"] == "CLI <b>plan</b>" and stored["supported_countries"] == ["FRA", "DEU"]
    got = invoke(runner, ["package-templates", "get", str(info["id"])], env=served.env)
    assert got.exit_code == 0, got.output
    assert orjson.loads(got.stdout_bytes) == stored


def test_package_templates_create_refuses_a_bad_country_before_any_request(
    runner: CliRunner, served: ThreadSandbox
) -> None:
    before = served.sandbox.stats.total
    args = [
        "package-templates", "create", "--name", "x", "--country", "france", "--activation-type", "AUTO",
        "--data", "1", "--time-unit", "DAY", "--time-duration", "1", "--activation-time-allowance", "0",
        "--earliest-available-date", "0", "--inventory", "1",
    ]  # fmt: skip
    result = invoke(runner, args, env=served.env)
    assert result.exit_code == 2
    assert "supported_countries" in result.output
    assert served.sandbox.stats.total == before


def test_euicc_profiles_get_prints_the_profile(runner: CliRunner, served: ThreadSandbox) -> None:
    iccid = _iccid(served)
    result = invoke(runner, ["euicc-profiles", "get", iccid], env=served.env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout_bytes) == served.sandbox.data.euicc_profile(iccid)


def test_euicc_profiles_qr_writes_the_image_as_served_and_will_not_overwrite(
    runner: CliRunner, served: ThreadSandbox, tmp_path: Path
) -> None:
    iccid = _iccid(served, 1)
    out = tmp_path / "qr.png"
    result = invoke(runner, ["euicc-profiles", "qr", iccid, "-o", str(out)], env=served.env)
    assert result.exit_code == 0, result.output
    image = out.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(tmp_path.glob("*.partial"))

    out.write_bytes(b"mine")
    again = invoke(runner, ["euicc-profiles", "qr", iccid, "-o", str(out)], env=served.env)
    assert again.exit_code == 2 and "--force" in again.output
    assert out.read_bytes() == b"mine"
    forced = invoke(runner, ["euicc-profiles", "qr", iccid, "-o", str(out), "--force"], env=served.env)
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() == image


def test_euicc_profiles_qr_of_an_unknown_sim_exits_1_and_writes_nothing(
    runner: CliRunner, served: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "qr.png"
    result = invoke(runner, ["euicc-profiles", "qr", "8900000000000000000", "-o", str(out)], env=served.env)
    assert result.exit_code == 1
    assert not out.exists()


def test_pcr_profiles_update_changes_only_what_is_given(runner: CliRunner, served: ThreadSandbox) -> None:
    iccid = _iccid(served, 2)
    before = served.in_loop(lambda: served.sandbox.data.pcr_profile(iccid))
    args = ["pcr-profiles", "update", iccid, "--throttle", "SPEED_500_KBPS", "--data", "off"]
    result = invoke(runner, args, env=served.env)
    assert result.exit_code == 0, result.output
    printed = orjson.loads(result.stdout_bytes)
    after = served.in_loop(lambda: served.sandbox.data.pcr_profile(iccid))
    assert printed == after
    assert after["data"] == {"state": "DISABLED", "active_throttling": "SPEED_500_KBPS"}
    assert (after["voice"], after["sms"], after["wallet_mode"]) == (
        before["voice"],
        before["sms"],
        before["wallet_mode"],
    )
    got = invoke(runner, ["pcr-profiles", "get", iccid], env=served.env)
    assert orjson.loads(got.stdout_bytes) == after


def test_pcr_profiles_update_with_nothing_to_change_is_a_usage_error(
    runner: CliRunner, served: ThreadSandbox
) -> None:
    before = served.sandbox.stats.total
    result = invoke(runner, ["pcr-profiles", "update", _iccid(served)], env=served.env)
    assert result.exit_code == 2
    assert served.sandbox.stats.total == before


def test_api_status_prints_the_servers_answer(runner: CliRunner, served: ThreadSandbox) -> None:
    result = invoke(runner, ["api-status"], env=served.env)
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout_bytes)
    assert status["status"] == "ok" and status["version"] == "1.0.4"


@pytest.mark.parametrize(
    ("command", "rows"), [("package-templates", "package_templates_list"), ("countries", "countries_list")]
)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_of_the_new_listings_holds_what_the_server_holds(
    runner: CliRunner, served: ThreadSandbox, tmp_path: Path, command: str, rows: str, fmt: str
) -> None:
    out = tmp_path / f"out.{fmt}"
    result = invoke(
        runner, ["export", command, "-o", str(out), "--format", fmt, "--page-size", "7"], env=served.env
    )
    assert result.exit_code == 0, result.output
    expected = getattr(served.sandbox.data, rows)()
    if fmt == "jsonl":
        written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    else:
        model = PackageTemplate if command == "package-templates" else Country
        columns = columns_for(model)
        with out.open(newline="") as f:
            reader = csv.reader(f)
            next(reader)
            written = [decode_row(columns, row) for row in reader]
    assert written == expected and len(expected) > 7


@pytest.mark.anyio
async def test_a_server_message_with_escape_sequences_reaches_the_terminal_as_plain_text(
    runner: CliRunner,
) -> None:
    hostile = "Not \x1b[31mfound\x1b]0;pwned\x07 [/bold]\r\nsecond line"

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": hostile, "statusCode": 404}, status=404)

    async with web_server(handler) as url:
        env = {"BETATEL_API_KEY": "k", "BETATEL_USER_ID": "u", "BETATEL_BASE_URL": url}
        result = await anyio.to_thread.run_sync(invoke, runner, ["package-templates", "get", "7"], env)
    assert result.exit_code == 1
    assert "Not [31mfound]0;pwned [/bold]second line" in result.output
    assert not any(ord(c) < 32 and c != "\n" for c in result.output)
