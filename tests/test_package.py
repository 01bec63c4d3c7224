"""The package's public face: exports, typing marker, import cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import betatel_async


def test_all_is_sorted_and_lists_every_public_name() -> None:
    names = betatel_async.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    public = {n for n in vars(betatel_async) if not n.startswith("_") and not _is_module(n)}
    assert public - {"annotations"} == set(names) - {"__version__"}


def _is_module(name: str) -> bool:
    return type(getattr(betatel_async, name)).__name__ == "module"


def test_the_package_ships_py_typed() -> None:
    assert (Path(betatel_async.__file__).parent / "py.typed").is_file()


def test_importing_the_sdk_does_not_import_the_cli_the_sandbox_or_opentelemetry() -> None:
    code = (
        "import sys, betatel_async; "
        "bad = [m for m in sys.modules if m.startswith(('betatel_async.cli', 'betatel_async.sandbox', "
        "'rich', 'click', 'aiohttp.web', 'opentelemetry'))]; print(bad)"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
