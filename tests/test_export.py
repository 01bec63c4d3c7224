"""``client.<listing>.export()``: every format holds what the server holds, reads back as the models,
resumes after a kill at any point without fetching again what it wrote, and fails on a file it cannot
write with an error naming it, losing nothing.

The kills are real: a child process runs the export and SIGKILLs itself at the k-th ``os.replace``
(each checkpoint saved, and the final rename, is one), before or after it, k chosen by Hypothesis.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from betatel_async import (
    PATHS,
    BetatelClient,
    ExportError,
    ExportResult,
    InvalidArgumentError,
    MalformedResponseError,
    unstructure,
)
from betatel_async._export._read import open_export
from betatel_async.sandbox import SandboxConfig

from ._servers import web_server
from .test_cli import ThreadSandbox

LISTINGS = ["sims", "inventories", "packages", "package_templates", "countries"]
FORMATS = ["jsonl", "csv", "parquet"]
SIMS = 600
PAGE = 40


@pytest.fixture(scope="module")
def live() -> Iterator[ThreadSandbox]:
    """A sandbox for the module; tests that change its data put it back."""
    with ThreadSandbox(SandboxConfig(sims=SIMS, seed=5)) as served:
        yield served


def client(live: ThreadSandbox, **options: Any) -> BetatelClient:
    sb = live.sandbox
    return BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url, **options)


def raw_json(live: ThreadSandbox, listing: str) -> list[dict[str, Any]]:
    """Every item of a listing as the server sent it: the JSON objects of its pages, read with aiohttp."""
    sb = live.sandbox

    async def go() -> list[dict[str, Any]]:
        headers = {"x-api-key": sb.api_key, "x-user-id": sb.user_id}
        items: list[dict[str, Any]] = []
        async with aiohttp.ClientSession(sb.url, headers=headers) as session:
            while True:
                async with session.get(PATHS[listing], params={"offset": len(items), "count": 100}) as r:
                    assert r.status == 200
                    body = orjson.loads(await r.read())
                page = body[listing]
                items.extend(page)
                if not page or len(items) >= body["total"]:
                    return items

    return asyncio.run(go())


def export(live: ThreadSandbox, listing: str, path: Path, **kwargs: Any) -> ExportResult:
    async def go() -> ExportResult:
        async with client(live) as c:
            result: ExportResult = await getattr(c, listing).export(path, **kwargs)
            return result

    return asyncio.run(go())


def models(live: ThreadSandbox, listing: str) -> list[Any]:
    async def go() -> list[Any]:
        async with client(live) as c:
            items: list[Any] = await getattr(c, listing).all(page_size=1000)
            return items

    return asyncio.run(go())


# ---------------------------------------------------------------- what each format holds


@pytest.mark.parametrize("listing", LISTINGS)
def test_every_format_holds_the_servers_items_in_order_and_reads_back_as_the_models(
    live: ThreadSandbox, tmp_path: Path, listing: str
) -> None:
    raw = raw_json(live, listing)
    expected = [unstructure(item) for item in models(live, listing)]
    assert raw and len(raw) == len(expected)
    for fmt in FORMATS:
        path = tmp_path / f"{listing}.{fmt}"
        result = export(live, listing, path, page_size=PAGE)
        assert (result.path, result.format, result.items, result.resumed_from) == (path, fmt, len(raw), 0)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            f"{listing}.{f}" for f in FORMATS[: FORMATS.index(fmt) + 1]
        )
        file = open_export(path)
        assert (file.format, file.listing and file.listing.name) == (fmt, listing)
        if fmt == "jsonl":
            # The API's own JSON objects, key order kept: not the SDK's reading of them.
            assert path.read_bytes() == b"".join(
                orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in raw
            )
        if fmt == "csv":
            assert list(file.raw()) == raw
        assert list(file.objects()) == expected


def test_parquet_schema_has_utc_timestamps_in_the_documented_unit_refs_as_structs_imsis_as_lists(
    live: ThreadSandbox, tmp_path: Path
) -> None:
    path = tmp_path / "sims.parquet"
    export(live, "sims", path)
    schema = pq.read_schema(path)
    assert schema.metadata[b"betatel_async.listing"] == b"sims"
    created = schema.field("created_date").type
    assert (created.tz, created.unit) == ("UTC", "ms")  # Parquet stores seconds as milliseconds
    assert str(schema.field("company").type) == "struct<id: int64, name: string>"
    imsis = schema.field("imsis").type
    assert pa.types.is_list(imsis)
    assert [(f.name, str(f.type)) for f in imsis.value_type] == [("sponsor_id", "int64"), ("imsi", "int64")]
    assert str(schema.field("sim_status").type) == "string"
    assert schema.field("mapped_imsi").nullable and not schema.field("iccid").nullable
    table = pq.read_table(path)
    first = models(live, "sims")[0]
    assert table.column("created_date")[0].as_py() == first.created_at
    inventories = tmp_path / "inventories.parquet"
    export(live, "inventories", inventories)
    assert pq.read_schema(inventories).field("created_date").type.unit == "ms"


def test_format_is_told_by_the_suffix_or_named(live: ThreadSandbox, tmp_path: Path) -> None:
    assert export(live, "countries", tmp_path / "c.ndjson").format == "jsonl"
    assert export(live, "countries", tmp_path / "c.pq").format == "parquet"
    assert export(live, "countries", tmp_path / "c.txt", format="csv").format == "csv"
    assert open_export(tmp_path / "c.txt").format == "csv"


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("c.txt", {}, "format"),
        ("c.jsonl", {"format": "xml"}, "format"),
        ("c.jsonl", {"page_size": 0}, "page_size"),
        ("c.jsonl", {"resume": "yes"}, "resume"),
        ("c.jsonl", {"company": -1}, "company"),
        ("", {}, "path"),
    ],
)
def test_bad_arguments_are_named_before_any_request(
    live: ThreadSandbox, tmp_path: Path, name: str, kwargs: dict[str, Any], argument: str
) -> None:
    live.in_loop(live.sandbox.stats.reset)
    path = tmp_path / name if name else tmp_path
    with pytest.raises(InvalidArgumentError) as caught:
        export(live, "sims", path, **kwargs)
    assert caught.value.argument == argument
    assert live.in_loop(lambda: live.sandbox.stats.total) == 0
    assert list(tmp_path.iterdir()) == []


def test_without_pyarrow_parquet_names_the_extra_before_any_request(
    live: ThreadSandbox, tmp_path: Path
) -> None:
    code = (
        "import sys, asyncio; sys.modules['pyarrow'] = None\n"
        "from betatel_async import BetatelClient, InvalidArgumentError\n"
        "async def go():\n"
        f"    async with BetatelClient(api_key={live.sandbox.api_key!r}, user_id={live.sandbox.user_id!r},"
        f" base_url={live.sandbox.url!r}) as c:\n"
        f"        await c.sims.export({str(tmp_path / 's.parquet')!r})\n"
        "try:\n    asyncio.run(go())\nexcept InvalidArgumentError as e:\n    print(e)\n"
    )
    live.in_loop(live.sandbox.stats.reset)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert done.stdout.startswith("format: Parquet needs pyarrow")
    assert "pip install 'betatel-async[parquet]'" in done.stdout
    assert live.in_loop(lambda: live.sandbox.stats.total) == 0


@pytest.mark.anyio
async def test_a_json_item_without_its_key_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    page = {
        "total": 2,
        "offset": 0,
        "count": 2,
        "sims": [{"iccid": "8914800000401234538"}, {"sim_status": "X"}],
    }

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(page)

    async with (
        web_server(handler) as url,
        BetatelClient(api_key="k", user_id="u", base_url=url, allow_insecure_http=True) as c,
    ):
        with pytest.raises(MalformedResponseError) as caught:
            await c.sims.export(tmp_path / "sims.jsonl")
    assert caught.value.json_path == "$.sims[1].iccid"
    assert not (tmp_path / "sims.jsonl").exists()
    # Not even the good item of that page: the checkpoint holds none, the partial file is empty.
    assert orjson.loads((tmp_path / "sims.jsonl.checkpoint.json").read_bytes())["items"] == 0
    assert (tmp_path / "sims.jsonl.partial").read_bytes() == b""


# ---------------------------------------------------------------- resume after a kill

HARNESS = """
import asyncio, os, signal, sys
from betatel_async import BetatelClient
url, key, user, out, fmt, kill_at, when, page = sys.argv[1:]
kill_at = int(kill_at)
real = os.replace
calls = 0
def replace(src, dst):
    global calls
    calls += 1
    if calls == kill_at and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
async def main():
    async with BetatelClient(api_key=key, user_id=user, base_url=url) as c:
        await c.sims._export(out, {"format": fmt, "page_size": int(page), "concurrency": 2}, checkpoint_interval=0)
asyncio.run(main())
"""

# Each checkpoint (one per page), the one marked complete, and the final rename.
REPLACES = -(-SIMS // PAGE) + 2


def killed_export(live: ThreadSandbox, out: Path, fmt: str, kill_at: int, when: str) -> int:
    sb = live.sandbox
    args = [sb.url, sb.api_key, sb.user_id, str(out), fmt, str(kill_at), when, str(PAGE)]
    command = [sys.executable, "-c", HARNESS, *args]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)  # noqa: S603 - our own code
    return done.returncode


def same_file(fmt: str, a: Path, b: Path) -> bool:
    if fmt != "parquet":
        return a.read_bytes() == b.read_bytes()
    ta, tb = pq.read_table(a), pq.read_table(b)
    return ta.schema.equals(tb.schema, check_metadata=True) and ta.equals(tb)


def offsets_fetched(live: ThreadSandbox) -> list[int]:
    seen: list[int] = []

    def record(method: str, path: str, query: dict[str, str]) -> None:
        if path.endswith("/sim-registries"):
            seen.append(int(query["offset"]))

    def arm() -> None:
        live.sandbox.on_request = record

    live.in_loop(arm)
    return seen


def disarm(live: ThreadSandbox) -> None:
    def clear() -> None:
        live.sandbox.on_request = None

    live.in_loop(clear)


@pytest.fixture(scope="module")
def references(live: ThreadSandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("reference")
    return {fmt: export(live, "sims", where / f"sims.{fmt}", page_size=PAGE).path for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_at=st.integers(1, REPLACES), when=st.sampled_from(["before", "after"]))
def test_an_export_killed_at_any_point_resumes_to_the_same_file_without_fetching_again_what_it_wrote(
    live: ThreadSandbox,
    references: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    kill_at: int,
    when: str,
) -> None:
    where = tmp_path_factory.mktemp("killed")
    out = where / f"sims.{fmt}"
    assert killed_export(live, out, fmt, kill_at, when) == -signal.SIGKILL
    checkpoint = out.with_name(out.name + ".checkpoint.json")
    saved = orjson.loads(checkpoint.read_bytes()) if checkpoint.exists() else None
    partial = out.with_name(out.name + ".partial")
    if saved is not None and not saved["complete"] and partial.is_file():
        # Bytes past what the checkpoint claims (as from a write it did not record), and
        # more of them than the rest of the export writes: all of them must go.
        with open(partial, "ab") as file:
            file.write(b'{"half a line' * 4096)
    seen = offsets_fetched(live)
    try:
        result = export(live, "sims", out, page_size=PAGE, resume=True)
    finally:
        disarm(live)
    assert same_file(fmt, out, references[fmt])
    assert sorted(p.name for p in where.iterdir()) == [out.name]
    assert result.items == SIMS
    if saved is None:
        return
    assert result.resumed_from == saved["items"]
    if saved["complete"]:
        assert seen == []  # stopped while renaming: finished without a request
    elif saved["items"]:
        # The item just before the resume point is fetched again, to check it; nothing before it.
        assert min(seen) == saved["items"] - 1
    shutil.rmtree(where)


def interrupted(live: ThreadSandbox, out: Path, fmt: str, pages: int) -> dict[str, Any]:
    """An export that failed after ``pages`` pages (a 400 from the server); its checkpoint."""

    def arm() -> None:
        live.sandbox.config.faults.script = ["ok"] * pages + ["400"]

    live.in_loop(arm)
    try:

        async def go() -> None:
            async with client(live) as c:
                await c.sims._export(out, {"page_size": PAGE, "concurrency": 1}, checkpoint_interval=0)

        with pytest.raises(Exception, match="400"):
            asyncio.run(go())
    finally:

        def clear() -> None:
            live.sandbox.config.faults.script = []

        live.in_loop(clear)
    saved: dict[str, Any] = orjson.loads(out.with_name(out.name + ".checkpoint.json").read_bytes())
    assert saved["items"] == pages * PAGE
    return saved


@pytest.fixture
def scratch() -> Iterator[ThreadSandbox]:
    """A sandbox of the module's data that a test may change."""
    with ThreadSandbox(SandboxConfig(sims=SIMS, seed=5)) as served:
        yield served


@pytest.mark.parametrize("change", ["grew", "shrank"])
def test_resume_reads_the_listing_as_it_is_now_after_the_resume_point(
    scratch: ThreadSandbox, tmp_path: Path, change: str
) -> None:
    out = tmp_path / "sims.jsonl"
    interrupted(scratch, out, "jsonl", 5)
    data = scratch.sandbox.data
    if change == "grew":
        scratch.in_loop(lambda: data.insert_sims(7, at="end"))
    else:
        scratch.in_loop(lambda: data.delete_sims([sim["iccid"] for sim in data.sims_list()[-9:]]))
    progress: list[int] = []
    result = export(
        scratch, "sims", out, page_size=PAGE, resume=True, on_progress=lambda r: progress.append(r.items)
    )
    now = raw_json(scratch, "sims")
    assert len(now) == SIMS + (7 if change == "grew" else -9)
    assert out.read_bytes().splitlines() == [orjson.dumps(o) for o in now]
    assert result.resumed_from == 5 * PAGE
    assert progress[0] > 5 * PAGE  # the progress counts what the file already held
    assert progress[-1] == result.items == len(now)


def test_resume_refuses_when_items_before_the_resume_point_moved_and_keeps_the_checkpoint(
    scratch: ThreadSandbox, tmp_path: Path
) -> None:
    out = tmp_path / "sims.csv"
    saved = interrupted(scratch, out, "csv", 3)
    partial = out.with_name(out.name + ".partial").read_bytes()
    data = scratch.sandbox.data
    scratch.in_loop(lambda: data.insert_sims(1, at="start"))
    with pytest.raises(ExportError, match="changed before the resume point.*start anew"):
        export(scratch, "sims", out, page_size=PAGE, resume=True)
    assert orjson.loads(out.with_name(out.name + ".checkpoint.json").read_bytes()) == saved
    assert out.with_name(out.name + ".partial").read_bytes()[: saved["bytes"]] == partial[: saved["bytes"]]


def test_resume_of_another_export_names_resume(live: ThreadSandbox, tmp_path: Path) -> None:
    out = tmp_path / "sims.jsonl"
    interrupted(live, out, "jsonl", 2)
    with pytest.raises(InvalidArgumentError, match="belongs to another export") as caught:
        export(live, "sims", out, resume=True, company=1)
    assert caught.value.argument == "resume"


# ---------------------------------------------------------------- files that cannot be written


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_target_that_cannot_be_written_is_an_export_error_naming_it(
    live: ThreadSandbox, tmp_path: Path, fmt: str
) -> None:
    (tmp_path / "file").write_bytes(b"")
    out = tmp_path / "file" / f"sims.{fmt}"  # its parent is a file
    with pytest.raises(ExportError) as caught:
        export(live, "sims", out)
    assert caught.value.path == f"{out}.partial"
    assert caught.value.reason == os.strerror(20)  # ENOTDIR
    assert str(caught.value) == f"cannot write {out}.partial: {caught.value.reason}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_midway_is_an_export_error_and_the_checkpoint_still_resumes(
    live: ThreadSandbox, tmp_path: Path, references: dict[str, Path], fmt: str
) -> None:
    out = tmp_path / f"sims.{fmt}"
    interrupted(live, out, fmt, 4)
    checkpoint = out.with_name(out.name + ".checkpoint.json")
    before = orjson.loads(checkpoint.read_bytes())
    # Writes past 4 KiB more than the files hold fail with EFBIG ("File too large"), as on a full disk.
    held = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (held + 4096, hard))
    try:
        with pytest.raises(ExportError) as caught:
            export(live, "sims", out, page_size=7, resume=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert os.strerror(27) in caught.value.reason  # EFBIG (pyarrow adds its own words)
    assert str(out) in caught.value.path
    after = orjson.loads(checkpoint.read_bytes())
    assert after["items"] >= before["items"]
    export(live, "sims", out, page_size=PAGE, resume=True)
    assert same_file(fmt, out, references[fmt])
