"""Smoke test of the installed wheel, as a user gets it (run by ``nox -s wheel``).

Run with the Python of a virtualenv that has the wheel installed with the
``cli`` extra (and nothing else), from a directory outside the source tree,
under ``python -I`` so that only the installed package can be imported::

    python -I .ci/wheel_smoke.py SOURCE_ROOT

It checks what an editable install hides: the files and entry points the wheel
itself carries. Each check prints one ``ok:`` line; the first failure ends the
run with a message and status 1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

DIST = "betatel-async"
SIMS = 1000


def fail(message: str) -> None:
    sys.exit(f"wheel smoke test FAILED: {message}")


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


def check_import(source_root: Path) -> None:
    import betatel_async  # importing it (here, after the cwd check) is the check

    where = Path(betatel_async.__file__).resolve().parent
    if where.is_relative_to(source_root):
        fail(f"betatel_async was imported from the source tree ({where}), not the installed wheel")
    if not where.is_relative_to(Path(sys.prefix).resolve()):
        fail(f"betatel_async was imported from {where}, outside this virtualenv ({sys.prefix})")
    version = importlib.metadata.version(DIST)
    if betatel_async.__version__ != version:
        fail(f"__version__ is {betatel_async.__version__!r}, the distribution says {version!r}")
    ok(f"import betatel_async {version} from {where}")


def check_py_typed() -> None:
    if not importlib.resources.files("betatel_async").joinpath("py.typed").is_file():
        fail("betatel_async/py.typed is missing: type checkers would ignore the package's annotations")
    recorded = importlib.metadata.distribution(DIST).files or []
    if not any(str(path) == "betatel_async/py.typed" for path in recorded):
        fail("py.typed is not in the wheel's RECORD")
    ok("py.typed installed")


def check_console_script(bin_dir: Path) -> None:
    found = importlib.metadata.entry_points(group="console_scripts", name=DIST)
    if not found:
        fail("the wheel declares no betatel-async console script")
    (entry,) = found
    done = subprocess.run([bin_dir / DIST, "--help"], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or "export" not in done.stdout:
        fail(f"betatel-async --help exited {done.returncode}:\n{done.stdout}{done.stderr}")
    ok(f"betatel-async --help ({entry.value})")


def check_pytest_plugin() -> None:
    found = importlib.metadata.entry_points(group="pytest11", name="betatel_async")
    if not found:
        fail("the pytest11 entry point betatel_async is not registered: pytest would not load the fixtures")
    (entry,) = found
    # pytest is not installed here (the cli extra does not bring it), so the
    # plugin is found, not imported.
    if importlib.util.find_spec(entry.module) is None:
        fail(f"the pytest11 entry point names {entry.module}, which is not installed")
    ok(f"pytest11 entry point betatel_async = {entry.value}")


def check_export(bin_dir: Path) -> None:
    out = Path("out.jsonl")
    command = [bin_dir / DIST, "export", "sims", "--sandbox", "--sandbox-sims", str(SIMS), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)  # noqa: S603
    if done.returncode != 0:
        fail(f"the export exited {done.returncode}:\n{done.stderr}")
    lines = out.read_bytes().splitlines()
    if len(lines) != SIMS:
        fail(f"the export wrote {len(lines)} lines, not {SIMS}")
    iccids = {json.loads(line)["iccid"] for line in lines}
    if len(iccids) != SIMS:
        fail(f"the export wrote {len(iccids)} distinct SIMs in {SIMS} lines")
    leftovers = sorted(path.name for path in Path().iterdir() if path != out)
    if leftovers:
        fail(f"the export left files behind: {leftovers}")
    ok(f"betatel-async export sims --sandbox wrote {SIMS} distinct SIMs")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source_root = Path(sys.argv[1]).resolve()
    if Path.cwd().resolve().is_relative_to(source_root):
        fail(f"run from a directory outside the source tree, not {Path.cwd()}")
    bin_dir = Path(sys.executable).parent
    check_import(source_root)
    check_py_typed()
    check_console_script(bin_dir)
    check_pytest_plugin()
    check_export(bin_dir)


if __name__ == "__main__":
    main()
