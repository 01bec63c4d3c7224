"""The documentation: every Python example runs, the reference lists every public name.

Examples that a test elsewhere runs (the recipes, the pytest plugin's files,
the Prometheus recipe, the diff scheduler) are found by reading the tests'
calls of `tests._docs.python_block`; the rest run here.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

import betatel_async as bt
from betatel_async.sandbox import Sandbox, SandboxConfig, serve

from ._docs import PAGES, ROOT, Block, blocks, pages, python_block, python_blocks
from .test_cli import ThreadSandbox

TESTS = Path(__file__).resolve().parent
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`")


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _blocks_run_by_tests() -> set[tuple[str, str]]:
    """(page, code) of every block some test takes, by its literal call of python_block(s)."""
    taken: set[tuple[str, str]] = set()
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call) and _called_name(node.func) in ("python_block", "python_blocks")
            ):
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if len(args) != len(node.args) or node.keywords:
                continue  # not a literal call: it takes no block this test can see
            codes = (
                [python_block(*args)] if _called_name(node.func) == "python_block" else python_blocks(*args)
            )
            taken |= {(args[0], code) for code in codes}
    return taken


def _python_blocks_of_every_page() -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.lang == "python"]


def test_every_python_example_runs_in_a_test_or_says_why_not() -> None:
    taken = _blocks_run_by_tests()
    every = _python_blocks_of_every_page()
    assert len(every) >= 18  # the pages were found
    untested = [
        f"{b.page}: {b.code[:70]!r}" for b in every if b.not_run is None and (b.page, b.code) not in taken
    ]
    assert untested == [], "run these in a test, or mark them <!-- not run: reason -->"


def test_examples_that_do_not_run_still_compile() -> None:
    for block in _python_blocks_of_every_page():
        if block.not_run is not None:
            compile(block.code, block.page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_a_block_marked_not_run_is_found_and_nothing_else_is(tmp_path: Path) -> None:
    """The checker's own parsing: the mark applies to the block right after it only."""
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n<!-- not run: needs a phone -->\n```python\na = 1\n```\n\ntext\n\n```python\nb = 2\n```\n\n"
        "## S\n\n```python\n# c.py\nc = 3\n```\n\n# U\n\n```sh\nls\n```\n"
    )
    found = blocks(str(page))  # an absolute path joins ROOT as itself
    assert [(b.lang, b.code, b.not_run) for b in found] == [
        ("python", "a = 1\n", "needs a phone"),
        ("python", "b = 2\n", None),
        ("python", "# c.py\nc = 3\n", None),
        ("sh", "ls\n", None),
    ]
    assert python_blocks(str(page), "S") == ["# c.py\nc = 3\n"]  # "# c.py" in a block is no heading
    assert python_blocks(str(page), "T") == ["a = 1\n", "b = 2\n", "# c.py\nc = 3\n"]
    with pytest.raises(LookupError, match="no section 'V'"):
        python_blocks(str(page), "V")


def test_the_api_reference_documents_every_public_name() -> None:
    text = (PAGES / "reference.md").read_text(encoding="utf-8")
    documented = re.findall(r"^::: betatel_async\.(\S+)$", text, re.MULTILINE)
    assert sorted(documented) == sorted(bt.__all__)


def test_docstrings_cross_reference_in_markdown_not_sphinx_roles() -> None:
    """mkdocstrings checks ``[Name][betatel_async.Name]``; a Sphinx role would be shown as text, unchecked."""
    roles = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "betatel_async").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _SPHINX_ROLE.search(line)
    ]
    assert roles == []


def test_getting_started_shows_the_readmes_two_commands() -> None:
    def commands(page: str) -> list[str]:
        return [b.code for b in blocks(page, "Two commands") if b.lang == "sh"]

    assert len(commands("README.md")) == 2
    assert commands("docs/pages/getting-started.md") == commands("README.md")


def test_the_readmes_links_to_the_guides_lead_to_pages() -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert [t for t in targets if t.startswith("docs/pages/")]  # the README links to the guides
    assert [t for t in targets if not (ROOT / t).exists()] == []


# ---------------------------------------------------------------- the examples no other test runs


def _sandbox_names(sandbox: Sandbox) -> dict[str, str]:
    return {"KEY": sandbox.api_key, "USER": sandbox.user_id, "BASE": sandbox.url}


FIRST_PROGRAMS = {
    "README.md": python_block("README.md", "async def main"),
    "docs/pages/getting-started.md": python_block("docs/pages/getting-started.md", "async def main"),
}


@pytest.mark.parametrize("page", sorted(FIRST_PROGRAMS))
def test_the_first_program_runs_against_the_sandbox(page: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = FIRST_PROGRAMS[page]
    with ThreadSandbox(SandboxConfig(sims=300, seed=1)) as live:
        sb = live.sandbox
        taken = {p["sim"] for p in sb.data.packages_list()}
        free = next(s["iccid"] for s in sb.data.sims_list() if s["iccid"] not in taken)
        company_100 = [s["iccid"] for s in sb.data.sims_list()[10:300:40]]  # the example's company
        live.in_loop(
            lambda: [sb.data.update_sim(i, company={"id": 100, "name": "Example"}) for i in company_100]
        )
        run = code.replace(
            'BetatelClient(api_key="...", user_id="...",',
            "BetatelClient(api_key=KEY, user_id=USER, base_url=BASE,",
        ).replace('sim="89148000004012345678"', f'sim="{free}"')
        assert run.count("base_url=BASE") == 1 and free in run
        exec(compile(run, page, "exec"), _sandbox_names(sb))  # noqa: S102 - the page's own example
        (package,) = live.in_loop(lambda: sb.data.sim_packages(free))
    assert package["status"] == "ACTIVE"
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == company_100


async def _run_fragment(code: str, page: str, **names: Any) -> dict[str, Any]:
    """Run a fragment with top-level ``await`` (as the asyncio REPL does); its names after."""
    namespace = dict(names)
    compiled = compile(code, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # noqa: S307 - the page's own example
    if result is not None:
        await result
    return namespace


@pytest.fixture
async def sandbox() -> Any:
    async with serve(SandboxConfig(sims=250, seed=9)) as sb:
        yield sb


def _client(sb: Sandbox) -> bt.BetatelClient:
    return bt.BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url)


@pytest.mark.anyio
async def test_the_sandbox_example_lists_every_sim() -> None:
    done = await _run_fragment(
        python_block("docs/pages/sandbox.md", "async with serve(SandboxConfig(sims=10_000"), "sandbox.md"
    )
    assert len(done["sims"]) == 10_000


@pytest.mark.anyio
async def test_the_export_example_writes_the_file(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    company_42 = [s["iccid"] for s in sandbox.data.sims_list()[::25]]  # the example's company
    for iccid in company_42:
        sandbox.data.update_sim(iccid, company={"id": 42, "name": "Example"})
    async with _client(sandbox) as client:
        done = await _run_fragment(
            python_block("docs/pages/exports.md", 'client.sims.export("sims.parquet"'),
            "exports.md",
            client=client,
        )
    result = done["result"]
    assert (tmp_path / result.path).exists() and result.path.name == "sims.parquet"
    assert result.items == len(company_42) == 10


@pytest.mark.anyio
async def test_the_raw_response_example_reads_the_answer(sandbox: Sandbox) -> None:
    code = python_block("docs/pages/retries-and-errors.md", "client.with_raw_response.packages.get")
    package_id = sandbox.data.packages_list()[0]["id"]
    run = code.replace('"pkg_123456"', f'"{package_id}"')
    assert run != code
    async with _client(sandbox) as client:
        done = await _run_fragment(run, "retries-and-errors.md", client=client)
    assert done["package"] == await _get(sandbox, package_id)
    assert done["raw"].status == 200


async def _get(sb: Sandbox, package_id: str) -> bt.Package:
    async with _client(sb) as client:
        return await client.packages.get(package_id)


@pytest.mark.anyio
async def test_the_escape_hatch_example_sends_any_request(sandbox: Sandbox) -> None:
    async with _client(sandbox) as client:
        done = await _run_fragment(
            python_block("docs/pages/retries-and-errors.md", 'client.request("GET"'),
            "retries-and-errors.md",
            client=client,
        )
    assert [c["iso3"] for c in done["data"]["countries"]] == [
        c["iso3"] for c in sandbox.data.countries_list()[:10]
    ]


def test_the_scheduled_export_and_the_diff_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = python_block("docs/pages/exports.md", "async def export_sims(day: str)")
    run = job.replace('f"/data/sims-{day}.parquet"', f'f"{tmp_path}/sims-{{day}}.parquet"').replace(
        "BetatelClient(api_key=KEY, user_id=USER)", "BetatelClient(api_key=KEY, user_id=USER, base_url=BASE)"
    )
    assert "/data/" not in run and "base_url=BASE" in run
    with ThreadSandbox(SandboxConfig(sims=120, seed=4)) as live:
        sb = live.sandbox
        exec(compile(run, "exports.md", "exec"), _sandbox_names(sb))  # noqa: S102 - the page's own example
        assert (tmp_path / "sims-2024-05-01.parquet").exists()

        # The next day: three SIMs terminated, exported as JSON Lines, then the diff example.
        changed = [s["iccid"] for s in sb.data.sims_list() if s["sim_status"] != "TERMINATED"][:3]
        live.in_loop(lambda: [sb.data.update_sim(iccid, sim_status="TERMINATED") for iccid in changed])

        async def export_next_day() -> None:
            async with _client(sb) as client:
                await client.sims.export(tmp_path / "sims-2024-05-02.jsonl")

        asyncio.run(export_next_day())
    monkeypatch.chdir(tmp_path)
    done: dict[str, Any] = {}
    exec(compile(python_block("docs/pages/exports.md", "with diff("), "exports.md", "exec"), done)  # noqa: S102
    changes = done["changes"]
    assert changes.counts.changed == 3
    printed = capsys.readouterr().out.splitlines()  # the example prints each change's key and fields
    assert sorted(line.split()[0] for line in printed) == sorted(changed)
