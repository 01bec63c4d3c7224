"""The pytest plugin (``betatel_async.pytest_plugin``), run in users' test files through pytester.

Each test writes a user's test files into a fresh directory and runs pytest
on them: the plugin comes in through its ``pytest11`` entry point (the
package is installed), exactly as in a user's project.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import betatel_async.sandbox
from betatel_async import BetatelClient

from ._docs import python_blocks

pytest_plugins = ["pytester"]

# Imported here, before any run: pytester's in-process runs drop from
# sys.modules what a run imported, and the package root keeps the names it
# handed out, so a module imported in one run and again in the next would
# give two NotFoundError classes.
assert BetatelClient is not None and betatel_async.sandbox.serve is not None

# The users' runs are as strict as ours: a warning (an unclosed session, an
# unawaited coroutine) is an error there too. Hypothesis's plugin is left out:
# its end-of-run summary imports much of Hypothesis anew in every in-process
# run (pytester drops the modules a run imported), seconds each time.
_INI = """
[pytest]
filterwarnings = error
addopts = -p no:cacheprovider -p no:hypothesispytest
"""

_CONFTEST = """
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: strict warnings, and the conftest the documentation shows."""
    pytester.makeini(_INI)
    pytester.makeconftest(_CONFTEST)
    return pytester


def _readme_files() -> dict[str, str]:
    """The files of the plugin section of "Sandbox and testing", by the name each one's first line gives."""
    files = {}
    for block in python_blocks("docs/pages/sandbox.md", "Testing your code against the sandbox"):
        first, _, body = block.partition("\n")
        assert first.startswith("# "), f"a documented test file starts with '# <file name>': {first!r}"
        files[first.removeprefix("# ")] = body
    return files


def test_the_documented_example_tests_pass(pytester: pytest.Pytester) -> None:
    files = _readme_files()
    assert sorted(files) == ["conftest.py", "test_my_code.py", "test_under_faults.py"]
    pytester.makeini(_INI)
    for name, body in files.items():
        pytester.makepyfile(**{name.removesuffix(".py"): body})
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_each_test_gets_a_new_sandbox_and_its_client_is_closed_after(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from betatel_async import ClientState

        pytestmark = pytest.mark.anyio
        seen = []


        async def test_first(betatel_client, betatel_sandbox):
            sims = await betatel_client.sims.all()
            assert len(sims) == 1000  # SandboxConfig()'s default
            betatel_sandbox.data.insert_sims(5, at="start")
            assert betatel_client.base_url == betatel_sandbox.url
            seen.append((betatel_client, betatel_sandbox))


        async def test_second(betatel_client, betatel_sandbox):
            (client, sandbox), = seen
            assert client.state is ClientState.CLOSED
            with pytest.raises(RuntimeError):
                sandbox.url  # stopped
            assert betatel_sandbox is not sandbox and betatel_client is not client
            assert len(await betatel_client.sims.all()) == 1000  # the first test's inserts are gone
        """
    )
    project.runpytest().assert_outcomes(passed=2)


def test_the_sandbox_config_is_chosen_by_overriding_or_parametrizing_its_fixture(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_override="""
        import pytest
        from betatel_async.sandbox import SandboxConfig

        pytestmark = pytest.mark.anyio


        @pytest.fixture
        def betatel_sandbox_config():
            return SandboxConfig(sims=30, page_cap=7)


        async def test_overridden(betatel_client, betatel_sandbox):
            assert betatel_sandbox.config.page_cap == 7
            page = await betatel_client.sims.list(count=100)
            assert (page.total, page.count) == (30, 7)
        """,
        test_parametrized="""
        import pytest
        from betatel_async.sandbox import SandboxConfig

        pytestmark = pytest.mark.anyio


        @pytest.mark.parametrize("betatel_sandbox_config", [SandboxConfig(sims=3), SandboxConfig(sims=4)])
        async def test_parametrized(betatel_client, betatel_sandbox_config):
            assert len(await betatel_client.sims.all()) == betatel_sandbox_config.sims
        """,
    )
    project.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("test_file", "args", "message"),
    [
        pytest.param(
            """
            async def test_unmarked(betatel_client):
                pass
            """,
            [],
            "anyio does not run this test: mark the test @pytest.mark.anyio",
            id="async test not marked",
        ),
        pytest.param(
            """
            import pytest

            @pytest.mark.anyio
            def test_sync(betatel_sandbox):
                pass
            """,
            [],
            "anyio does not run this test: mark the test @pytest.mark.anyio",
            id="sync test",
        ),
        pytest.param(
            """
            import pytest

            @pytest.fixture
            def anyio_backend():
                return ("trio", {})

            @pytest.mark.anyio
            async def test_trio(betatel_client):
                pass
            """,
            [],
            "runs on 'trio': define an anyio_backend fixture returning \"asyncio\"",
            id="trio backend",
        ),
        pytest.param(
            """
            async def test_without_anyio(betatel_client):
                pass
            """,
            ["-p", "no:anyio"],
            "which is not loaded here (was it disabled with -p no:anyio?)",
            id="anyio plugin disabled",
        ),
    ],
)
def test_a_test_the_fixtures_cannot_serve_fails_at_setup_saying_why(
    project: pytest.Pytester, test_file: str, args: list[str], message: str
) -> None:
    project.makepyfile(test_file)
    result = project.runpytest(*args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def _modules_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m == 'aiohttp' "
        "or m.startswith(('aiohttp.', 'betatel_async.')))))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out))


def test_importing_the_plugin_imports_neither_aiohttp_nor_the_client() -> None:
    assert _modules_after("import betatel_async.pytest_plugin") == [
        "betatel_async._version",
        "betatel_async.pytest_plugin",
    ]


def test_a_test_run_that_uses_no_fixture_of_ours_imports_neither_aiohttp_nor_the_client(
    pytester: pytest.Pytester,
) -> None:
    """The plugin loads through its entry point in every run; nothing heavy comes with it."""
    pytester.makeini(_INI)
    pytester.makepyfile(
        """
        import sys

        def test_light():
            assert "betatel_async.pytest_plugin" in sys.modules  # loaded, by the entry point
            heavy = [m for m in sys.modules if m.split(".")[0] == "aiohttp" or m.startswith(
                ("betatel_async._client", "betatel_async.sandbox"))]
            assert heavy == []
        """
    )
    # A new interpreter: this one has imported aiohttp long ago.
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
