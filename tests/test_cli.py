"""The betatel-async command line, through its real entry point.

Most tests drive the click group with CliRunner against a sandbox served from
a background thread (the CLI runs its own event loop, as it does for users);
a few run the installed script in a subprocess: a real Ctrl-C, the sandbox
command, ``python -m``, and what importing costs.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import operator
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from betatel_async import BetatelClient, Inventory, Package, ScanReport, Sim, unstructure
from betatel_async._export._csv import columns_for, decode_row
from betatel_async._status import StatusAccumulator
from betatel_async.cli import cli
from betatel_async.cli._render import ScanProgress
from betatel_async.sandbox import API_PREFIX, Sandbox, SandboxConfig, serve

from ._signals import default_sigint_in_children

T = TypeVar("T")

BIN = Path(sys.executable).parent
SCRIPT = str(BIN / "betatel-async")
SIMS = 3000
MODELS: dict[str, type[Any]] = {"sims": Sim, "inventories": Inventory, "packages": Package}
LISTING_PATHS = {"sims": "/sim-registries", "inventories": "/inventories", "packages": "/packages"}


class ThreadSandbox:
    """A sandbox served by its own event loop in a background thread."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._sandbox: Sandbox | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._config) as sandbox:
            self._sandbox = sandbox
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadSandbox:
        self._thread.start()
        assert self._ready.wait(30), "the sandbox did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def sandbox(self) -> Sandbox:
        assert self._sandbox is not None
        return self._sandbox

    def in_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the sandbox's loop (to touch its state between requests)."""
        assert self._loop is not None

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    @property
    def env(self) -> dict[str, str | None]:
        sb = self.sandbox
        return {"BETATEL_API_KEY": sb.api_key, "BETATEL_USER_ID": sb.user_id, "BETATEL_BASE_URL": sb.url}

    def fetch(self, resource: str) -> list[Any]:
        """Every item of a listing, read with the SDK."""
        sb = self.sandbox

        async def go() -> list[Any]:
            async with BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url) as client:
                items: list[Any] = await getattr(client, resource).all(page_size=1000)
                return items

        return asyncio.run(go())

    def raw(self, resource: str) -> list[Any]:
        """Every item of a listing as the server sent it: the JSON objects of its pages, read with aiohttp."""
        sb = self.sandbox
        path = API_PREFIX + LISTING_PATHS[resource]

        async def go() -> list[Any]:
            headers = {"x-api-key": sb.api_key, "x-user-id": sb.user_id}
            items: list[Any] = []
            async with aiohttp.ClientSession(sb.url, headers=headers) as session:
                while True:
                    params = {"offset": len(items), "count": 100}
                    async with session.get(path, params=params) as response:
                        assert response.status == 200
                        body = orjson.loads(await response.read())
                    items.extend(body[resource])
                    if not body[resource] or len(items) >= body["total"]:
                        return items

        return asyncio.run(go())


@pytest.fixture(scope="module")
def live() -> Iterator[ThreadSandbox]:
    """One read-only sandbox for the module (same data as ``--sandbox --sandbox-sims 3000``)."""
    with ThreadSandbox(SandboxConfig(sims=SIMS, seed=0)) as sandbox:
        yield sandbox


@pytest.fixture
def scratch() -> Iterator[ThreadSandbox]:
    """A small sandbox a test may change."""
    with ThreadSandbox(SandboxConfig(sims=200, seed=5)) as sandbox:
        yield sandbox


# Names a hostile or careless server may send: rich markup, terminal escape
# sequences (ESC, BEL, C1's CSI), a carriage return, and spreadsheet formulas.
HOSTILE_HOLDERS = [
    ({"id": 11, "name": "[/bold]Acme"}, {"id": 21, "name": "Sales [bold]"}),
    ({"id": 12, "name": "Evil\x1b[2J\x1b]0;pwned\x07\x9b31mCorp"}, {"id": 22, "name": "back\rspace\x08d"}),
    ({"id": 13, "name": '=HYPERLINK("http://x.example","y")'}, {"id": 23, "name": "@SUM(A1:A9)"}),
    ({"id": 14, "name": "+1+2"}, {"id": 24, "name": "-2+3"}),
]
HOSTILE_STATUSES = ["\tIN_SERVICE", "\x1b[5mBLINK", "\rcmd|' /C calc'!A0", "=1+1"]
CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


@pytest.fixture
def hostile() -> Iterator[ThreadSandbox]:
    """A sandbox whose companies, inventories and statuses have hostile names."""
    with ThreadSandbox(SandboxConfig(sims=len(HOSTILE_HOLDERS) * 2, seed=3)) as served:

        def rename() -> None:
            data = served.sandbox.data
            for i, sim in enumerate(data.sims_list()):
                company, inventory = HOSTILE_HOLDERS[i // 2]
                status = HOSTILE_STATUSES[i % len(HOSTILE_STATUSES)]
                data.update_sim(sim["iccid"], company=company, inventory=inventory, sim_status=status)

        served.in_loop(rename)
        yield served


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(cli, args, env=env, catch_exceptions=False)


def jsonl(data: bytes) -> list[Any]:
    return [orjson.loads(line) for line in data.splitlines()]


def export_args(resource: str, out: Path, *extra: str) -> list[str]:
    return ["export", resource, "-o", str(out), *extra]


# ---------------------------------------------------------------- basics


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = invoke(runner, ["--help"])
    assert result.exit_code == 0
    listed = set(re.findall(r"^  (\S+)", result.stdout.split("Commands:\n", 1)[1], re.MULTILINE))
    assert {"export", "status", "packages", "sims", "sandbox"} <= listed


def test_version(runner: CliRunner) -> None:
    result = invoke(runner, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("betatel-async, version ")


@pytest.mark.parametrize(
    "args",
    [
        ["export", "sims", "--format", "xml"],
        ["export", "sims", "--page-size", "0"],
        ["export", "nothing"],
        ["packages", "create", "--sim", "89148000004012345678"],
        ["export", "sims", "--resume"],
        ["export", "sims", "--resume", "--unordered", "-o", "x.jsonl"],
        ["export", "sims", "-o", "/nonexistent-dir/x.jsonl"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, args)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["export", "sims", "--concurrency", "257"],
        ["export", "inventories", "--concurrency", "1000"],
        ["status", "--concurrency", "257"],
    ],
)
def test_concurrency_above_256_is_a_usage_error_naming_the_option(runner: CliRunner, args: list[str]) -> None:
    result = invoke(runner, [*args, "--sandbox", "--sandbox-sims", "10"])
    assert result.exit_code == 2, result.output
    assert "'--concurrency'" in result.stderr
    assert "1<=x<=256" in result.stderr


def test_concurrency_of_256_is_accepted(runner: CliRunner, live: ThreadSandbox) -> None:
    result = invoke(runner, ["export", "inventories", "--concurrency", "256"], env=live.env)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "command", [["packages", "get"], ["packages", "create"], ["packages", "activate"],
                ["packages", "terminate"], ["sims", "get"]],
)  # fmt: skip
def test_single_item_help_says_sandbox_starts_fresh_and_names_the_served_one(
    runner: CliRunner, command: list[str]
) -> None:
    result = invoke(runner, [*command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "new sandbox" in text
    assert "in every run" in text
    assert "'betatel-async sandbox'" in text
    for variable in ("BETATEL_BASE_URL", "BETATEL_API_KEY", "BETATEL_USER_ID"):
        assert variable in text


def test_missing_credentials_is_a_usage_error_naming_the_variables(runner: CliRunner) -> None:
    result = invoke(runner, ["sims", "get", "89148000004012345678"])
    assert result.exit_code == 2
    assert "BETATEL_API_KEY" in result.stderr
    assert "--sandbox" in result.stderr


def test_argument_the_sdk_rejects_is_a_usage_error(runner: CliRunner) -> None:
    result = invoke(runner, ["sims", "get", "not-an-iccid", "--sandbox", "--sandbox-sims", "10"])
    assert result.exit_code == 2
    assert "iccid" in result.stderr


def test_api_error_exits_1_with_the_message_and_no_traceback(runner: CliRunner) -> None:
    result = invoke(runner, ["packages", "get", "pkg_nope", "--sandbox", "--sandbox-sims", "10"])
    assert result.exit_code == 1
    assert "404" in result.stderr
    assert "Traceback" not in result.output


def test_wrong_api_key_exits_1_and_is_never_printed(runner: CliRunner, live: ThreadSandbox) -> None:
    env = {**live.env, "BETATEL_API_KEY": "very-secret-key-4711"}
    for args in (["status"], export_args("sims", Path("-")), ["sims", "get", "89148000004012345678"]):
        result = invoke(runner, args, env=env)
        assert result.exit_code == 1
        assert "401" in result.stderr
        assert "very-secret-key-4711" not in result.output


# ---------------------------------------------------------------- export


@pytest.mark.parametrize("resource", ["sims", "inventories", "packages"])
def test_export_jsonl_is_the_api_json_of_every_item_in_order(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, resource: str
) -> None:
    out = tmp_path / f"{resource}.jsonl"
    result = invoke(runner, export_args(resource, out, "--page-size", "250"), env=live.env)
    assert result.exit_code == 0, result.output
    expected = live.raw(resource)  # the rows the server sent, not the SDK's reading of them
    assert expected
    assert jsonl(out.read_bytes()) == expected
    assert f"Exported {len(expected)} {resource}" in result.stderr
    assert list(tmp_path.iterdir()) == [out]  # no partial file or checkpoint left


@pytest.mark.parametrize("resource", ["sims", "inventories", "packages"])
def test_csv_round_trips_through_the_csv_module_to_the_jsonl_values(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, resource: str
) -> None:
    for fmt in ("jsonl", "csv"):
        result = invoke(runner, export_args(resource, tmp_path / f"out.{fmt}", "--format", fmt), env=live.env)
        assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    columns = columns_for(MODELS[resource])
    assert header == [column.name for column in columns]
    decoded = [decode_row(columns, row) for row in rows]
    assert decoded == jsonl((tmp_path / "out.jsonl").read_bytes())


def test_csv_flattens_references_and_writes_lists_as_json(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "sims.csv"
    assert invoke(runner, export_args("sims", out, "--format", "csv"), env=live.env).exit_code == 0
    with open(out, newline="", encoding="utf-8") as file:
        first = next(csv.DictReader(file))
    sim = live.fetch("sims")[0]
    assert first["iccid"] == sim.iccid
    assert first["company.id"] == str(sim.company.id)
    assert first["company.name"] == sim.company.name
    assert orjson.loads(first["imsis"]) == unstructure(sim.imsis)


def test_csv_cells_keep_empty_text_quotes_and_newlines_apart_from_absent() -> None:
    from betatel_async._export._csv import encode_rows

    columns = columns_for(Inventory)
    objects: list[dict[str, Any]] = [
        {"id": 1, "note": ""},
        {"id": 2, "note": '"quoted" text'},
        {"id": 3, "note": "two\nlines, and a comma"},
        {"id": 4, "name": "null", "note": "12"},
        {"id": 5},
    ]
    rows = list(csv.reader(io.StringIO(encode_rows(columns, objects, with_header=True).decode(), newline="")))
    assert [decode_row(columns, row) for row in rows[1:]] == objects


FORMULA_FIRST = set("=+-@\t\r")

hostile_text = st.one_of(
    st.text(),
    st.builds(operator.add, st.sampled_from(sorted(FORMULA_FIRST | {'"', " ", "\n"})), st.text()),
)


@settings(max_examples=300)
@given(iccid=hostile_text, status=hostile_text, company=hostile_text, date=st.integers(-(2**63), 2**63 - 1))
def test_csv_text_never_starts_a_formula_and_reads_back_exactly(
    iccid: str, status: str, company: str, date: int
) -> None:
    from betatel_async._export._csv import encode_rows

    columns = columns_for(Sim)
    sim = {"iccid": iccid, "sim_status": status, "company": {"id": 7, "name": company}, "created_date": date}
    [row] = list(csv.reader(io.StringIO(encode_rows(columns, [sim]).decode(), newline="")))
    assert decode_row(columns, row) == sim
    for column, cell in zip(columns, row, strict=True):
        if column.kind in ("text", "ref_name"):
            assert not cell or cell[0] not in FORMULA_FIRST, (column.name, cell)
    # A number is no text: -5 stays -5.
    assert row[[c.name for c in columns].index("created_date")] == str(date)


def test_csv_export_of_hostile_names_starts_no_cell_with_a_formula_and_reads_back_as_the_server_sent(
    runner: CliRunner, hostile: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "sims.csv"
    result = invoke(runner, export_args("sims", out, "--format", "csv"), env=hostile.env)
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as file:
        _header, *rows = list(csv.reader(file))
    assert rows
    for row in rows:
        assert not [cell for cell in row if cell and cell[0] in FORMULA_FIRST], row
    columns = columns_for(Sim)
    assert [decode_row(columns, row) for row in rows] == hostile.raw("sims")
    assert '"=HYPERLINK(\\"http://x.example\\",\\"y\\")"' in {cell for row in rows for cell in row}


def test_export_to_standard_output_by_default(runner: CliRunner, live: ThreadSandbox, tmp_path: Path) -> None:
    result = invoke(runner, ["export", "inventories"], env=live.env)
    assert result.exit_code == 0
    assert jsonl(result.stdout_bytes) == [unstructure(i) for i in live.fetch("inventories")]
    assert "Exported" in result.stderr


def test_export_filters_are_the_listing_filters(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path
) -> None:
    sims = live.fetch("sims")
    company = sims[0].company.id
    result = invoke(runner, ["export", "sims", "--company", str(company)], env=live.env)
    assert result.exit_code == 0
    rows = jsonl(result.stdout_bytes)
    assert [r["iccid"] for r in rows] == [s.iccid for s in sims if s.company.id == company]

    result = invoke(runner, ["export", "packages", "--status", "ACTIVE", "--format", "csv"], env=live.env)
    assert result.exit_code == 0
    statuses = {row["status"] for row in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    assert statuses == {"ACTIVE"}


def test_unordered_export_holds_the_same_items(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "sims.jsonl"
    args = export_args("sims", out, "--unordered", "--page-size", "100", "--concurrency", "4")
    assert invoke(runner, args, env=live.env).exit_code == 0
    rows = jsonl(out.read_bytes())
    assert sorted(r["iccid"] for r in rows) == sorted(s.iccid for s in live.fetch("sims"))


def test_export_with_in_process_sandbox(runner: CliRunner, live: ThreadSandbox, tmp_path: Path) -> None:
    out = tmp_path / "sims.jsonl"
    result = invoke(runner, export_args("sims", out, "--sandbox", "--sandbox-sims", str(SIMS)))
    assert result.exit_code == 0, result.output
    # The same seed generates the same data as the module's sandbox.
    assert jsonl(out.read_bytes()) == [unstructure(s) for s in live.fetch("sims")]


# ---------------------------------------------------------------- resume


def _checkpoint(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(out.with_name(out.name + ".checkpoint.json").read_bytes())
    return data


def _fail_after(live: ThreadSandbox, ok_requests: int) -> None:
    """Make the sandbox answer 400 (not retried) to the request after ``ok_requests`` good ones."""

    def arm() -> None:
        live.sandbox.config.faults.script = ["ok"] * ok_requests + ["400"]

    live.in_loop(arm)


def _disarm(live: ThreadSandbox) -> None:
    def clear() -> None:
        live.sandbox.config.faults.script = []

    live.in_loop(clear)


@pytest.fixture
def failing(live: ThreadSandbox) -> Iterator[Callable[[int], None]]:
    yield lambda n: _fail_after(live, n)
    _disarm(live)


def _interrupted_export(
    runner: CliRunner, live: ThreadSandbox, out: Path, fmt: str, failing: Callable[[int], None]
) -> list[str]:
    """Run an export that fails after a few pages; return its arguments."""
    args = export_args("sims", out, "--format", fmt, "--page-size", "100", "--concurrency", "1")
    failing(7)
    result = invoke(runner, args, env=live.env)
    assert result.exit_code == 1
    assert "--resume" in result.stderr
    assert not out.exists()
    saved = _checkpoint(out)
    assert 0 < saved["items"] < SIMS
    assert saved["total"] == SIMS
    assert out.with_name(out.name + ".partial").stat().st_size >= saved["bytes"]
    _disarm(live)
    return args


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_failed_then_resumed_export_is_byte_identical_to_an_uninterrupted_one(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, fmt: str, failing: Callable[[int], None]
) -> None:
    reference = tmp_path / f"reference.{fmt}"
    assert invoke(runner, export_args("sims", reference, "--format", fmt), env=live.env).exit_code == 0
    out = tmp_path / f"resumed.{fmt}"
    args = _interrupted_export(runner, live, out, fmt, failing)
    written = _checkpoint(out)["items"]
    # Garbage past the checkpointed length (written after the last checkpoint) is cut off.
    with open(out.with_name(out.name + ".partial"), "ab") as partial:
        partial.write(b'{"half a line')

    result = invoke(runner, [*args, "--resume", "--page-size", "300"], env=live.env)
    assert result.exit_code == 0, result.output
    assert f"skipped {written} items" in result.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([reference.name, out.name])


def test_resume_completes_when_the_total_changed_after_the_checkpoint(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    args = _interrupted_export(runner, live, out, "jsonl", failing)
    checkpoint = out.with_name(out.name + ".checkpoint.json")
    # As if the listing held one more item when the checkpoint was saved: items after
    # the resume point may change; only those before it must not.
    checkpoint.write_bytes(orjson.dumps({**_checkpoint(out), "total": SIMS + 1}))
    result = invoke(runner, [*args, "--resume"], env=live.env)
    assert result.exit_code == 0, result.output
    assert jsonl(out.read_bytes()) == live.raw("sims")


def test_resume_refuses_when_the_items_before_the_resume_point_differ(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    args = _interrupted_export(runner, live, out, "jsonl", failing)
    checkpoint = out.with_name(out.name + ".checkpoint.json")
    checkpoint.write_bytes(orjson.dumps({**_checkpoint(out), "last_key": "89140000000000000000"}))
    result = invoke(runner, [*args, "--resume"], env=live.env)
    assert result.exit_code == 1
    assert "changed before the resume point" in result.stderr
    assert "start anew" in result.stderr


def test_resume_of_another_command_is_a_usage_error(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    _interrupted_export(runner, live, out, "jsonl", failing)
    result = invoke(runner, [*export_args("sims", out, "--company", "1"), "--resume"], env=live.env)
    assert result.exit_code == 2
    assert "belongs to another export" in result.stderr


def test_without_resume_an_unfinished_export_starts_over(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    args = _interrupted_export(runner, live, out, "jsonl", failing)
    result = invoke(runner, args, env=live.env)
    assert result.exit_code == 0
    assert "Discarding the unfinished export" in result.stderr
    assert len(jsonl(out.read_bytes())) == SIMS
    assert list(tmp_path.iterdir()) == [out]


def test_resume_without_a_checkpoint_starts_a_new_export(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "inventories.jsonl"
    result = invoke(runner, [*export_args("inventories", out), "--resume"], env=live.env)
    assert result.exit_code == 0
    assert "No checkpoint" in result.stderr
    assert out.exists()


def test_unordered_export_that_fails_leaves_nothing_behind(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    failing(3)
    args = export_args("sims", out, "--unordered", "--page-size", "100", "--concurrency", "1")
    assert invoke(runner, args, env=live.env).exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_saves_the_checkpoint_exits_130_and_resume_completes_the_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.jsonl"
    sandbox = ["--sandbox", "--sandbox-sims", str(SIMS)]
    assert invoke(runner, export_args("sims", reference, *sandbox)).exit_code == 0

    out = tmp_path / "out.jsonl"
    partial = out.with_name(out.name + ".partial")
    # Slow pages (100 ms each, one at a time: 3 s in all) so the interrupt lands mid-export.
    slow = ["--sandbox-latency-ms", "100", "--page-size", "100", "--concurrency", "1"]
    with (
        default_sigint_in_children(),
        subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [SCRIPT, *export_args("sims", out, *sandbox, *slow)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process,
    ):
        try:
            deadline = time.monotonic() + 60
            while not (partial.exists() and partial.stat().st_size > 0):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the export never wrote a page"
                time.sleep(0.01)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stderr.decode()
    assert b"--resume" in stderr
    assert b"Traceback" not in stderr
    assert not out.exists()
    saved = _checkpoint(out)
    assert 0 < saved["items"] < SIMS

    result = invoke(runner, [*export_args("sims", out, *sandbox), "--resume"])
    assert result.exit_code == 0, result.output
    assert f"skipped {saved['items']} items" in result.stderr
    assert out.read_bytes() == reference.read_bytes()


# ---------------------------------------------------------------- files that cannot be written


def _os_reason(path: Path) -> str:
    """Why this process cannot create ``path`` (the test's own probe of the OS)."""
    try:
        open(path, "wb").close()
    except OSError as exc:
        return str(exc.strerror)
    path.unlink()
    raise AssertionError(f"{path} can be created: the test needs a path that cannot")


def _cli_in_subprocess(args: list[str], env: dict[str, str | None], *, setup: str = "", **kw: Any) -> Any:
    code = f"import sys\n{setup}\nfrom betatel_async.cli import main\nraise SystemExit(main(sys.argv[1:]))"
    environ = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code, *args], env=environ, timeout=60, check=False, **streams
    )


@pytest.mark.parametrize("where", ["under /proc", "partial file is a directory"])
def test_export_to_a_file_that_cannot_be_created_prints_one_error_line_and_exits_1(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, where: str
) -> None:
    if where == "under /proc":
        out = Path("/proc/betatel-async-test-export.jsonl")  # even root cannot create files there
    else:
        out = tmp_path / "sims.jsonl"
        (tmp_path / "sims.jsonl.partial").mkdir()
    partial = out.with_name(out.name + ".partial")
    reason = _os_reason(partial)
    result = invoke(runner, export_args("sims", out), env=live.env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: cannot write {partial}: {reason}"]


def test_export_file_too_large_prints_the_error_and_the_resume_hint_and_resume_completes_it(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path, failing: Callable[[int], None]
) -> None:
    out = tmp_path / "sims.jsonl"
    args = _interrupted_export(runner, live, out, "jsonl", failing)
    partial = out.with_name(out.name + ".partial")
    saved = _checkpoint(out)
    # The resumed export may write 64 KiB more than the checkpoint holds: RLIMIT_FSIZE makes
    # the next write fail with EFBIG ("File too large"; Python ignores SIGXFSZ).
    limit = saved["bytes"] + 64 * 1024
    setup = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))"
    )
    # Small pages: the failing write leaves bytes in the file's buffer, which closing it tries again.
    done = _cli_in_subprocess([*args, "--resume", "--page-size", "7"], live.env, setup=setup, text=True)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert error == [f"Error: cannot write {partial}: {os.strerror(errno.EFBIG)}"]
    assert "Run the same command with --resume to continue." in done.stderr
    assert not out.exists()
    assert _checkpoint(out)["items"] >= saved["items"]

    result = invoke(runner, [*args, "--resume"], env=live.env)
    assert result.exit_code == 0, result.output
    assert jsonl(out.read_bytes()) == live.raw("sims")


@pytest.mark.parametrize(
    "args",
    [["export", "inventories"], ["export", "sims", "--format", "csv"], ["status"], ["status", "--json"]],
)
def test_a_full_disk_on_standard_output_prints_one_error_line_and_exits_1(
    live: ThreadSandbox, args: list[str]
) -> None:
    with open("/dev/full", "wb") as full:  # every write to it fails with ENOSPC
        done = _cli_in_subprocess(args, live.env, text=True, stdout=full)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"Error: cannot write standard output: {os.strerror(errno.ENOSPC)}"]


# ---------------------------------------------------------------- status
# ---------------------------------------------------------------- status


def test_status_table_shows_every_holder_and_the_totals(runner: CliRunner, live: ThreadSandbox) -> None:
    result = invoke(runner, ["status"], env=live.env)
    assert result.exit_code == 0, result.output
    sims = live.fetch("sims")
    for name in {s.company.name for s in sims} | {s.inventory.name for s in sims}:
        assert name in result.stdout
    assert f"SIM inventory: {SIMS} SIMs" in result.stdout
    assert "IN_SERVICE" in result.stdout


def test_status_prints_server_names_literally_without_control_characters(
    runner: CliRunner, hostile: ThreadSandbox
) -> None:
    result = invoke(runner, ["status"], env=hostile.env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert not set(out) & (CONTROLS - {"\n"}), [c for c in out if c in CONTROLS - {"\n"}]
    for company, inventory in HOSTILE_HOLDERS:
        for holder in (company, inventory):
            name = "".join(c for c in holder["name"] if c not in CONTROLS)
            assert f"{name} ({holder['id']})" in out
    for status in HOSTILE_STATUSES:
        assert "".join(c for c in status if c not in CONTROLS) in out


def test_status_json_equals_counts_of_the_exported_sims(runner: CliRunner, live: ThreadSandbox) -> None:
    result = invoke(runner, ["status", "--json"], env=live.env)
    assert result.exit_code == 0
    data = orjson.loads(result.stdout_bytes)
    accumulator = StatusAccumulator()
    for sim in live.fetch("sims"):
        accumulator.add(sim)
    expected = accumulator.result().to_dict()
    del data["generated_at"], expected["generated_at"]
    assert data == expected


def test_status_with_company_filter(runner: CliRunner, live: ThreadSandbox) -> None:
    company = live.fetch("sims")[0].company.id
    result = invoke(runner, ["status", "--json", "--company", str(company)], env=live.env)
    assert result.exit_code == 0
    assert {h["company_id"] for h in orjson.loads(result.stdout_bytes)["holders"]} == {company}


def test_status_with_in_process_sandbox(runner: CliRunner) -> None:
    result = invoke(runner, ["status", "--sandbox", "--sandbox-sims", "500", "--json"])
    assert result.exit_code == 0
    assert orjson.loads(result.stdout_bytes)["total"] == 500


# ---------------------------------------------------------------- packages and sims


def test_package_lifecycle(runner: CliRunner, scratch: ThreadSandbox) -> None:
    data = scratch.sandbox.data
    free = next(s["iccid"] for s in data.sims_list() if not data.sim_packages(s["iccid"]))
    template = data.package_templates_list()[0]["id"]
    env = scratch.env

    result = invoke(runner, ["packages", "create", "--sim", free, "--template", str(template)], env=env)
    assert result.exit_code == 0, result.output
    created = orjson.loads(result.stdout_bytes)
    assert created["sim"] == free
    assert created["status"] == "NOT_ACTIVE"

    result = invoke(runner, ["packages", "create", "--sim", free, "--template", str(template)], env=env)
    assert result.exit_code == 1
    assert "409" in result.stderr

    result = invoke(runner, ["packages", "activate", created["id"]], env=env)
    assert result.exit_code == 0
    assert orjson.loads(result.stdout_bytes) == {"id": created["id"], "action": "activate", "ok": True}
    result = invoke(runner, ["packages", "get", created["id"]], env=env)
    assert orjson.loads(result.stdout_bytes)["status"] == "ACTIVE"

    assert invoke(runner, ["packages", "terminate", created["id"]], env=env).exit_code == 0
    result = invoke(runner, ["packages", "get", created["id"]], env=env)
    assert orjson.loads(result.stdout_bytes)["status"] == "TERMINATED"

    result = invoke(runner, ["packages", "terminate", created["id"]], env=env)
    assert result.exit_code == 1
    assert "400" in result.stderr


def test_packages_create_with_time_allowance(runner: CliRunner, scratch: ThreadSandbox) -> None:
    data = scratch.sandbox.data
    free = next(s["iccid"] for s in data.sims_list() if not data.sim_packages(s["iccid"]))
    template = data.package_templates_list()[0]["id"]
    args = ["packages", "create", "--sim", free, "--template", str(template), "--time-allowance", "3600"]
    result = invoke(runner, args, env=scratch.env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout_bytes)["time_allowance"] == 3600


def test_sims_get_prints_the_sim(runner: CliRunner, live: ThreadSandbox) -> None:
    sim = live.fetch("sims")[5]
    result = invoke(runner, ["sims", "get", sim.iccid], env=live.env)
    assert result.exit_code == 0
    assert orjson.loads(result.stdout_bytes) == unstructure(sim)


def test_sims_get_unknown_exits_1(runner: CliRunner, live: ThreadSandbox) -> None:
    result = invoke(runner, ["sims", "get", "89000000000000000000"], env=live.env)
    assert result.exit_code == 1
    assert "404" in result.stderr


# ---------------------------------------------------------------- progress, sandbox, entry points


def test_progress_bar_follows_the_scan_report(capsys: pytest.CaptureFixture[str]) -> None:
    with ScanProgress("Exporting sims", enabled=True) as progress:
        for items in (0, 100, 200):
            progress.update(ScanReport(items=items, total=200, pages=items // 100))
    assert "200/200" in capsys.readouterr().err


def test_sandbox_help_lists_its_options(runner: CliRunner) -> None:
    result = invoke(runner, ["sandbox", "--help"])
    assert result.exit_code == 0
    assert "--sims" in result.stdout
    assert "--fault-rate" in result.stdout
    assert invoke(runner, ["sandbox", "--sims", "x"]).exit_code == 2


def test_sandbox_command_serves_until_ctrl_c() -> None:
    with (
        default_sigint_in_children(),
        subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [SCRIPT, "sandbox", "--port", "0", "--sims", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "serving at http://127.0.0.1:" in line
            url = line.split("serving at ", 1)[1].split()[0]
            env_line = process.stdout.readline()
            assert f"BETATEL_BASE_URL={url}" in env_line
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        finally:
            # Leaving the block closes the pipes and waits: kill first, so that never hangs.
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "betatel_async.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "export" in result.stdout


def test_importing_the_sdk_imports_neither_the_cli_nor_rich() -> None:
    code = (
        "import sys, betatel_async\n"
        "assert not {'click', 'rich', 'betatel_async.cli'} & set(sys.modules), sorted(sys.modules)\n"
        "import betatel_async.cli\n"
        "assert 'rich' not in sys.modules\n"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_main_returns_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    from betatel_async.cli import main

    assert main(["--version"]) == 0
    assert main(["export", "sims", "--format", "xml"]) == 2
    assert os.environ.get("BETATEL_API_KEY") is None
    assert main(["sims", "get", "89148000004012345678"]) == 2
    capsys.readouterr()


def test_export_parquet_to_a_file_reads_back_as_the_models(
    runner: CliRunner, live: ThreadSandbox, tmp_path: Path
) -> None:
    from betatel_async._export._read import open_export

    out = tmp_path / "sims.parquet"
    result = invoke(runner, export_args("sims", out, "--format", "parquet"), env=live.env)
    assert result.exit_code == 0, result.output
    assert list(open_export(out).objects()) == [unstructure(s) for s in live.fetch("sims")]
    refused = invoke(runner, ["export", "sims", "--format", "parquet"], env=live.env)
    assert refused.exit_code == 2
    assert "needs an output file" in refused.stderr
