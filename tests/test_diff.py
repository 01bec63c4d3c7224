"""``betatel_async.diff`` and ``betatel-async diff``: two exports of a listing, in any formats, compared
by key as the models read them: exactly the items added, removed and changed, with the changed fields,
the status transitions, and memory that holds a key and a digest per old item, not the items.

The two states are a sandbox before and after known changes (SIMs deleted, inserted, terminated,
moved to another group, given other IMSIs; packages activated, terminated and created through the API).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gc
import tempfile
import tracemalloc
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from betatel_async import (
    BetatelClient,
    DiffCounts,
    ExportDiff,
    ExportError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    ItemChange,
    Sim,
    diff,
    unstructure,
)
from betatel_async._converter import _fast
from betatel_async._export import LISTINGS
from betatel_async._export._files import writer_for
from betatel_async._export._read import open_export
from betatel_async.cli import cli
from betatel_async.sandbox import SandboxConfig

from ._docs import python_block
from .test_cli import ThreadSandbox

FORMATS = ["jsonl", "csv", "parquet"]
PAIRS = list(product(FORMATS, FORMATS))


@attrs.frozen
class State:
    """One listing exported before and after the changes, and what the changes were."""

    before: dict[str, Path]
    after: dict[str, Path]
    models_before: dict[Any, Any]
    models_after: dict[Any, Any]
    added: list[Any]
    removed: list[Any]
    changed: dict[Any, set[str]]


def _client(live: ThreadSandbox) -> BetatelClient:
    sb = live.sandbox
    return BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url)


def _export_all(live: ThreadSandbox, directory: Path, tag: str) -> dict[str, dict[str, Path]]:
    async def go() -> dict[str, dict[str, Path]]:
        paths: dict[str, dict[str, Path]] = {"sims": {}, "packages": {}}
        async with _client(live) as client:
            for listing, fmt in product(paths, FORMATS):
                path = directory / f"{listing}-{tag}.{fmt}"
                await getattr(client, listing).export(path, page_size=50)
                paths[listing][fmt] = path
        return paths

    return asyncio.run(go())


def _models(live: ThreadSandbox, listing: str) -> dict[Any, Any]:
    key = LISTINGS[listing].key

    async def go() -> list[Any]:
        async with _client(live) as client:
            items: list[Any] = await getattr(client, listing).all(page_size=1000)
            return items

    return {getattr(item, key): item for item in asyncio.run(go())}


def _fields_that_differ(old: Any, new: Any) -> set[str]:
    return {f.name for f in attrs.fields(type(old)) if getattr(old, f.name) != getattr(new, f.name)}


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, State]]:
    directory = tmp_path_factory.mktemp("exports")
    with ThreadSandbox(SandboxConfig(sims=300, seed=11)) as live:
        data = live.sandbox.data
        before = _export_all(live, directory, "before")
        sims_before, packages_before = _models(live, "sims"), _models(live, "packages")
        iccids = list(sims_before)
        live_sims = [s for s in iccids if sims_before[s].sim_status != "TERMINATED"]
        terminated = live_sims[10:16]
        regrouped, new_imsis = live_sims[20], live_sims[21]
        deleted = [iccids[0], iccids[77], iccids[150], iccids[-1]]
        other_group = next(s.group for s in sims_before.values() if s.group != sims_before[regrouped].group)

        def change_sims() -> list[str]:
            for iccid in terminated:
                data.update_sim(iccid, sim_status="TERMINATED")
            data.update_sim(regrouped, group=unstructure(other_group))
            imsis = unstructure(sims_before[new_imsis].imsis)
            data.update_sim(new_imsis, imsis=[*imsis, {"sponsor_id": 201, "imsi": 234150000000001}])
            data.delete_sims(deleted)
            return data.insert_sims(2, at="start") + data.insert_sims(3, at=100)

        inserted = live.in_loop(change_sims)
        by_status = collections.defaultdict(list)
        for package in packages_before.values():
            by_status[package.status].append(package.id)
        with_package = {package.sim for package in packages_before.values()}
        template = next(iter(packages_before.values())).package_template
        template_id = template if isinstance(template, int) else template.id

        async def change_packages() -> str:
            async with _client(live) as client:
                for package_id in by_status["NOT_ACTIVE"][:2]:
                    await client.packages.activate(package_id)
                for package_id in by_status["ACTIVE"][:2]:
                    await client.packages.terminate(package_id)
                sim = next(s for s in iccids if s not in with_package and s not in deleted)
                created = await client.packages.create(sim=sim, package_template=template_id)
                return created.id

        created = asyncio.run(change_packages())
        after = _export_all(live, directory, "after")
        sims_after, packages_after = _models(live, "sims"), _models(live, "packages")
    package_changes = {
        key: _fields_that_differ(packages_before[key], packages_after[key])
        for key in [*by_status["NOT_ACTIVE"][:2], *by_status["ACTIVE"][:2]]
    }
    assert all(package_changes.values())
    yield {
        "sims": State(
            before["sims"],
            after["sims"],
            sims_before,
            sims_after,
            added=inserted,
            removed=deleted,
            changed={
                **{iccid: {"sim_status"} for iccid in terminated},
                regrouped: {"group"},
                new_imsis: {"imsis"},
            },
        ),
        "packages": State(
            before["packages"],
            after["packages"],
            packages_before,
            packages_after,
            added=[created],
            removed=[],
            changed=package_changes,
        ),
    }


def _order_of(models: dict[Any, Any], keys: set[Any]) -> list[Any]:
    return [key for key in models if key in keys]


# ---------------------------------------------------------------- two sandbox states


@pytest.mark.parametrize("listing", ["sims", "packages"])
@pytest.mark.parametrize(("old_format", "new_format"), PAIRS)
def test_the_diff_finds_exactly_the_items_added_removed_and_changed_across_formats(
    states: dict[str, State], listing: str, old_format: str, new_format: str
) -> None:
    state = states[listing]
    with diff(state.before[old_format], state.after[new_format]) as result:
        assert (result.listing, result.key) == (listing, LISTINGS[listing].key)
        unchanged = len(state.models_before) - len(state.removed) - len(state.changed)
        assert result.counts == DiffCounts(
            added=len(state.added),
            removed=len(state.removed),
            changed=len(state.changed),
            unchanged=unchanged,
        )
        # Added in the new export's order, removed and changed in the old one's; items as the SDK reads them.
        assert list(result.added) == [state.models_after[key] for key in state.added]
        assert list(result.removed) == [state.models_before[key] for key in state.removed]
        changes = list(result.changed)
        assert [c.key for c in changes] == _order_of(state.models_before, set(state.changed))
        for change in changes:
            old, new = state.models_before[change.key], state.models_after[change.key]
            assert (change.old, change.new) == (old, new)
            assert set(change.fields) == state.changed[change.key]
            assert change.fields == {name: (getattr(old, name), getattr(new, name)) for name in change.fields}


def test_sims_moved_to_terminated_are_counted_per_transition_and_in_the_summary(
    states: dict[str, State],
) -> None:
    state = states["sims"]
    terminated = [key for key, fields in state.changed.items() if fields == {"sim_status"}]
    expected = collections.Counter(
        (str(state.models_before[key].sim_status), "TERMINATED") for key in terminated
    )
    with diff(state.before["csv"], state.after["parquet"]) as result:
        assert result.status_field == "sim_status"
        assert result.transitions == dict(expected)
        assert result.fields_changed == {"sim_status": len(terminated), "group": 1, "imsis": 1}
        rows = dict(result.summary())
        assert rows["SIMs that moved to TERMINATED"] == len(terminated)
        for (before, after), count in expected.items():
            assert rows[f"SIMs that moved from {before} to {after}"] == count
        assert (rows["SIMs added"], rows["SIMs removed"], rows["SIMs changed"]) == (5, 4, len(state.changed))
        assert rows["SIMs whose group changed"] == 1


def test_package_transitions_follow_the_api_calls(states: dict[str, State]) -> None:
    state = states["packages"]
    with diff(state.before["jsonl"], state.after["csv"]) as result:
        assert result.status_field == "status"
        activated = sum(1 for key in state.changed if state.models_after[key].status == "ACTIVE")
        assert result.transitions == {
            ("NOT_ACTIVE", "ACTIVE"): activated,
            ("ACTIVE", "TERMINATED"): 4 - activated,
        }
        assert dict(result.summary())["Packages that moved to ACTIVE"] == activated


@pytest.mark.parametrize(("old_format", "new_format"), PAIRS)
def test_the_same_state_in_two_formats_is_no_difference(
    states: dict[str, State], old_format: str, new_format: str
) -> None:
    state = states["sims"]
    with diff(state.after[old_format], state.after[new_format]) as result:
        assert result.counts == DiffCounts(0, 0, 0, len(state.models_after))
        assert (list(result.added), list(result.removed), list(result.changed)) == ([], [], [])
        assert (result.transitions, result.fields_changed, list(result.records())) == ({}, {}, [])


def test_an_api_field_the_models_do_not_know_and_another_key_order_are_no_difference(
    states: dict[str, State], tmp_path: Path
) -> None:
    """JSON Lines keeps what the API sent (new fields, its key order, nulls); CSV and Parquet hold the models'."""
    nulls = 0
    for listing, state in states.items():
        grown = tmp_path / f"{listing}-grown.jsonl"
        with grown.open("wb") as file:
            for obj in open_export(state.after["jsonl"]).raw():
                absent = {name: None for name in LISTINGS[listing].fields if name not in obj}
                nulls += len(absent)
                obj = {"a_field_from_a_later_api": [1, 2], **dict(reversed(obj.items())), **absent}
                file.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        for fmt in ("csv", "parquet"):
            with diff(grown, state.after[fmt]) as result:
                assert result.counts == DiffCounts(0, 0, 0, len(state.models_after))
    assert nulls  # some items lack an optional field: here it is an explicit null


def test_records_are_the_json_of_each_difference(states: dict[str, State]) -> None:
    state = states["sims"]
    with diff(state.before["parquet"], state.after["jsonl"]) as result:
        records = list(result.records())
    assert [r["change"] for r in records] == ["added"] * 5 + ["removed"] * 4 + ["changed"] * len(
        state.changed
    )
    for record in records[:5]:
        assert record["item"] == unstructure(state.models_after[record["key"]])
    for record in records[5:9]:
        assert record["item"] == unstructure(state.models_before[record["key"]])
    for record in records[9:]:
        old, new = state.models_before[record["key"]], state.models_after[record["key"]]
        assert set(record) == {"change", "key", "fields"}
        assert record["fields"] == {
            name: {"old": unstructure(getattr(old, name)), "new": unstructure(getattr(new, name))}
            for name in state.changed[record["key"]]
        }
    assert orjson.loads(orjson.dumps(records)) == records  # JSON as it is


# ---------------------------------------------------------------- errors


def _sim(iccid: str, status: str = "IN_SERVICE", **fields: Any) -> dict[str, Any]:
    return {"iccid": iccid, "sim_status": status, **fields}


def _write(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in objects))
    return path


def test_two_exports_of_different_listings_are_refused_naming_both(
    states: dict[str, State], tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgumentError, match="holds packages but .* holds sims") as caught:
        diff(states["sims"].before["csv"], states["packages"].after["parquet"])
    assert caught.value.argument == "new"
    assert str(states["packages"].after["parquet"]) in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "twice"),
    [
        ([_sim("1"), _sim("2"), _sim("1")], [_sim("1")], "old"),
        ([_sim("1"), _sim("2")], [_sim("2"), _sim("1"), _sim("2", "TERMINATED")], "new"),
        ([_sim("1"), _sim("2")], [_sim("2"), _sim("1"), _sim("2")], "new"),
        ([_sim("1")], [_sim("3"), _sim("1"), _sim("3")], "new"),
    ],
    ids=["old", "new-changed", "new-unchanged", "new-added"],
)
def test_a_key_twice_in_one_export_is_an_error_naming_the_file_and_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    twice: str,
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    paths = {"old": _write(tmp_path / "old.jsonl", old), "new": _write(tmp_path / "new.jsonl", new)}
    with pytest.raises(ExportError, match="twice") as caught:
        diff(paths["old"], paths["new"])
    assert caught.value.path == str(paths[twice])
    assert (
        "iccid '1'" in str(caught.value)
        or "iccid '2'" in str(caught.value)
        or "iccid '3'" in str(caught.value)
    )
    assert not list(temporary.iterdir())  # the temporary files of a failed diff are removed


def test_unreadable_files_are_export_errors_naming_them(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.jsonl", [_sim("1")])
    not_json = tmp_path / "bad.jsonl"
    not_json.write_bytes(b'{"iccid": "1", "sim_status": "IN_SERVICE"}\n{oops\n')
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 and then no Parquet at all")
    for old, new, culprit in [
        (tmp_path / "missing.jsonl", good, tmp_path / "missing.jsonl"),
        (good, tmp_path, tmp_path),
        (good, not_json, not_json),
        (damaged, good, damaged),
    ]:
        with pytest.raises(ExportError) as caught:
            diff(old, new)
        assert caught.value.path == str(culprit)
    with pytest.raises(InvalidArgumentTypeError, match="old"):
        diff(3, good)  # type: ignore[arg-type]


def test_an_item_the_model_cannot_read_is_an_error(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.jsonl", [_sim("1")])
    new = _write(tmp_path / "new.jsonl", [_sim("1"), {"iccid": "2", "sim_status": 5}])
    with pytest.raises(ExportError, match="item 1 is not a Sim"):
        diff(old, new)


# ---------------------------------------------------------------- the temporary files


def test_the_diff_owns_its_temporary_files_and_removes_them(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.jsonl", [_sim("1"), _sim("2"), _sim("3")])
    new = _write(tmp_path / "new.jsonl", [_sim("2", "TERMINATED"), _sim("3"), _sim("4")])
    result = diff(old, new)
    directory = result._store.directory
    assert sorted(p.name for p in directory.iterdir()) == ["added.jsonl", "changed.jsonl", "removed.jsonl"]
    # Re-iterable: each iteration reads the file again.
    assert list(result.added) == list(result.added) == [Sim(iccid="4", sim_status="IN_SERVICE")]
    assert [c.key for c in result.changed] == ["2"]
    result.close()
    assert result.closed and not directory.exists()
    result.close()  # again: nothing
    with pytest.raises(ValueError, match="closed"):
        iter(result.removed)
    with pytest.raises(ValueError, match="closed"):
        list(result.records())

    with diff(old, new) as result:
        directory = result._store.directory
        assert directory.exists()
    assert not directory.exists()

    result = diff(old, new)
    directory = result._store.directory
    del result
    gc.collect()
    assert not directory.exists()


def test_two_empty_json_lines_files_are_no_difference_and_one_empty_side_is_all_added_or_removed(
    tmp_path: Path,
) -> None:
    empty = _write(tmp_path / "empty.jsonl", [])
    sims = _write(tmp_path / "sims.jsonl", [_sim("1"), _sim("2")])
    with diff(empty, empty) as result:
        assert (result.listing, result.counts, list(result.records())) == (None, DiffCounts(0, 0, 0, 0), [])
    with diff(empty, sims) as result:
        assert (result.listing, result.counts) == ("sims", DiffCounts(2, 0, 0, 0))
    with diff(sims, empty) as result:
        assert [s.iccid for s in result.removed] == ["1", "2"]


# ---------------------------------------------------------------- properties


STATUSES = ["WAITING_FOR_ASSIGNMENT", "PRE_SERVICE", "IN_SERVICE", "TERMINATED", "SUSPENDED"]

sim_objects = st.builds(
    lambda status, group, imsis, date: {
        "sim_status": status,
        **({"group": group} if group else {}),
        **({"imsis": imsis} if imsis is not None else {}),
        **({"modified_date": date} if date is not None else {}),
    },
    st.sampled_from(STATUSES),
    st.one_of(
        st.none(), st.builds(lambda i, n: {"id": i, "name": n}, st.integers(1, 3), st.sampled_from("ab"))
    ),
    st.one_of(
        st.none(),
        st.lists(
            st.builds(lambda s, i: {"sponsor_id": s, "imsi": i}, st.integers(1, 2), st.integers(1, 3)),
            max_size=2,
        ),
    ),
    st.one_of(st.none(), st.integers(1_600_000_000, 1_600_000_003)),
)
listings = st.dictionaries(st.sampled_from([f"8914{n:016d}" for n in range(12)]), sim_objects, max_size=8)


def _write_sims(path: Path, fmt: str, sims: dict[str, dict[str, Any]]) -> Path:
    listing = LISTINGS["sims"]
    writer = writer_for(fmt, listing, path)
    objects = [{"iccid": iccid, **fields} for iccid, fields in sims.items()]
    writer.start()
    writer.write([_fast().structure(o, Sim) for o in objects] if writer.typed else objects)
    writer.commit()
    return path


def _expected(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str], dict[str, set[str]]]:
    def model(iccid: str, fields: dict[str, Any]) -> Sim:
        return _fast().structure({"iccid": iccid, **fields}, Sim)

    changed = {
        k: _fields_that_differ(model(k, old[k]), model(k, new[k]))
        for k in old
        if k in new and model(k, old[k]) != model(k, new[k])
    }
    return [k for k in new if k not in old], [k for k in old if k not in new], changed


_property_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_property_settings
@given(old=listings, new=listings, formats=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)))
def test_any_two_listings_in_any_formats_diff_as_their_models_differ(
    tmp_path: Path, old: dict[str, Any], new: dict[str, Any], formats: tuple[str, str]
) -> None:
    old_path = _write_sims(tmp_path / f"old.{formats[0]}", formats[0], old)
    new_path = _write_sims(tmp_path / f"new.{formats[1]}", formats[1], new)
    added, removed, changed = _expected(old, new)
    with diff(old_path, new_path) as result:
        assert [s.iccid for s in result.added] == added
        assert [s.iccid for s in result.removed] == removed
        changes = list(result.changed)
        assert {c.key: set(c.fields) for c in changes} == changed
        assert [c.key for c in changes] == [k for k in old if k in changed]
        assert result.counts == DiffCounts(
            len(added), len(removed), len(changed), len(old) - len(removed) - len(changed)
        )
        statuses = collections.Counter(
            (c.old.sim_status, c.new.sim_status) for c in changes if c.old.sim_status != c.new.sim_status
        )
        assert result.transitions == dict(statuses)
    # Swapping old and new swaps added and removed, and the sides of each change.
    with diff(new_path, old_path) as swapped:
        assert [s.iccid for s in swapped.removed] == added
        assert [s.iccid for s in swapped.added] == removed
        assert {c.key: (c.new, c.old) for c in swapped.changed} == {c.key: (c.old, c.new) for c in changes}
    # An export against itself, in any format, is no difference.
    with diff(old_path, _write_sims(tmp_path / f"same.{formats[1]}", formats[1], old)) as same:
        assert same.counts == DiffCounts(0, 0, 0, len(old))


def test_memory_holds_a_digest_per_old_item_not_the_items(tmp_path: Path) -> None:
    """Every item changed: the worst case. The diff's peak (Python allocations) stays well below the items'."""
    n = 4000
    template = {
        "sim_status": "IN_SERVICE",
        "group": {"id": 1003, "name": "Trial devices of the north-eastern region"},
        "inventory": {"id": 51958, "name": "Betatel LTD Inventory 4"},
        "company": {"id": 27611, "name": "Betatel LTD"},
        "provisioned_date": 1666144006,
        "created_date": 1664497125,
        "modified_date": 1742529505,
        "imsis": [{"sponsor_id": 200, "imsi": 310260786444385}, {"sponsor_id": 202, "imsi": 208013311374519}],
        "mapped_imsi": 310260786444385,
    }
    old = _write(tmp_path / "old.jsonl", [_sim(f"8914{i:016d}", **template) for i in range(n)])
    new_template = {**template, "sim_status": "TERMINATED"}
    new = _write(tmp_path / "new.jsonl", [_sim(f"8914{i:016d}", **new_template) for i in range(n)])
    tracemalloc.start()
    try:
        items = list(open_export(old).items())
        held = tracemalloc.get_traced_memory()[0]
        del items
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with diff(old, new) as result:
            peak = tracemalloc.get_traced_memory()[1] - base
            assert result.counts.changed == n
    finally:
        tracemalloc.stop()
    assert peak < held / 3, (peak, held)


# ---------------------------------------------------------------- the command line


def test_cli_writes_the_json_lines_to_standard_output_and_the_summary_to_standard_error(
    states: dict[str, State],
) -> None:
    state = states["sims"]
    old, new = state.before["jsonl"], state.after["parquet"]
    result = CliRunner().invoke(cli, ["diff", str(old), str(new)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with diff(old, new) as expected:
        assert [orjson.loads(line) for line in result.stdout_bytes.splitlines()] == list(expected.records())
        terminated = dict(expected.summary())["SIMs that moved to TERMINATED"]
    assert terminated == sum(1 for fields in state.changed.values() if fields == {"sim_status"})
    lines = [line for line in result.stderr.splitlines() if "moved to TERMINATED" in line]
    assert len(lines) == 1 and lines[0].split("│")[-2].strip() == str(terminated)
    assert "SIMs added" in result.stderr and "SIMs whose imsis changed" in result.stderr


def test_cli_writes_the_json_lines_to_a_file_and_the_summary_to_standard_output(
    states: dict[str, State], tmp_path: Path
) -> None:
    state = states["packages"]
    out = tmp_path / "changes.jsonl"
    args = ["diff", str(state.before["csv"]), str(state.after["jsonl"]), "-o", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert collections.Counter(r["change"] for r in records) == {"added": 1, "changed": len(state.changed)}
    assert "Packages that moved to ACTIVE" in result.stdout and result.stderr == ""


@pytest.mark.parametrize("bad", ["missing", "directory", "not-an-export", "truncated-parquet"])
def test_cli_says_which_file_it_cannot_read_in_one_line(
    states: dict[str, State], tmp_path: Path, bad: str
) -> None:
    path = {
        "missing": tmp_path / "nope.jsonl",
        "directory": tmp_path,
        "not-an-export": tmp_path / "x.jsonl",
        "truncated-parquet": tmp_path / "x.parquet",
    }[bad]
    if bad == "not-an-export":
        path.write_text('{"hello": "world"}\n')
    if bad == "truncated-parquet":
        whole = states["sims"].after["parquet"].read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    result = CliRunner().invoke(
        cli, ["diff", str(states["sims"].before["csv"]), str(path)], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: cannot read")
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_refuses_two_listings_as_a_usage_error(states: dict[str, State]) -> None:
    args = ["diff", str(states["sims"].before["csv"]), str(states["packages"].before["csv"])]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert "holds packages but" in result.stderr


def test_cli_cannot_write_its_output_says_so(states: dict[str, State], tmp_path: Path) -> None:
    state = states["sims"]
    out = tmp_path / "no-such-directory" / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        ["diff", str(state.before["csv"]), str(state.after["csv"]), "-o", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot write {out}")


def test_item_change_and_export_diff_are_public_attrs_classes() -> None:
    assert attrs.has(ItemChange) and attrs.has(ExportDiff)


# ---------------------------------------------------------------- the documented scheduler example


def test_the_documented_scheduler_example_exports_today_and_diffs_against_yesterday(tmp_path: Path) -> None:
    code = python_block("docs/pages/exports.md", "async def daily_sims")
    code = code.replace(
        "BetatelClient(api_key=KEY, user_id=USER)", "BetatelClient(api_key=KEY, user_id=USER, base_url=BASE)"
    )
    assert "base_url=BASE" in code
    namespace: dict[str, Any] = {}
    exec(compile(code, "exports.md", "exec"), namespace)  # noqa: S102 - the documentation's own example
    with ThreadSandbox(SandboxConfig(sims=120, seed=3)) as live:
        sb = live.sandbox
        namespace.update(KEY=sb.api_key, USER=sb.user_id, BASE=sb.url)
        yesterday = datetime.date.today() - datetime.timedelta(days=1)
        asyncio.run(_export_to(live, tmp_path / f"sims-{yesterday}.parquet"))
        terminated = [s["iccid"] for s in sb.data.sims_list() if s["sim_status"] != "TERMINATED"][:7]
        live.in_loop(lambda: [sb.data.update_sim(iccid, sim_status="TERMINATED") for iccid in terminated])
        rows = dict(asyncio.run(namespace["daily_sims"](str(tmp_path))))
    assert rows["SIMs that moved to TERMINATED"] == 7
    assert rows["SIMs changed"] == 7


async def _export_to(live: ThreadSandbox, path: Path) -> None:
    async with _client(live) as client:
        await client.sims.export(path)
