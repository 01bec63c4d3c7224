"""The package's public face: exports, typing marker, import cost."""

from __future__ import annotations

import json
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


def _imported_after(code: str) -> list[str]:
    """The modules of interest a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}; import json, sys; print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('aiohttp', 'cattrs', 'orjson') or m.startswith('betatel_async.'))))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out))


def test_importing_the_package_imports_no_client_until_a_public_name_is_used() -> None:
    """The pytest plugin's entry point imports the package in every test run of every user."""
    assert _imported_after("import betatel_async") == ["betatel_async._version"]
    assert "aiohttp" in _imported_after("import betatel_async; betatel_async.BetatelClient")
    assert "betatel_async._client" in _imported_after("from betatel_async import NotFoundError")


def test_every_public_name_resolves_on_first_use_and_the_root_answers_no_other() -> None:
    code = (
        "import betatel_async as bt, betatel_async._public as p\n"
        "for name in p.__all__:\n"
        "    for loaded in {*p.__all__, '__all__'} - {'__version__'}: vars(bt).pop(loaded, None)\n"
        "    assert getattr(bt, name) is getattr(p, name), name\n"
        "assert bt.__all__ == p.__all__ and set(p.__all__) <= set(dir(bt))\n"
        "ns = {}; exec('from betatel_async import *', ns); assert set(p.__all__) <= set(ns)\n"
        "assert not hasattr(bt, 'Nope') and not hasattr(bt, '_client_hidden')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own interpreter, our own code
