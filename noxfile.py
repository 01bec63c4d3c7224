"""What CI runs, one session per check: ``nox`` runs them all, ``nox -s NAME`` one.

Sessions (``nox -l`` lists them):

- ``lint``: ruff check and ruff format --check.
- ``typecheck``: mypy --strict on the package and tests/typing.
- ``tests-3.11``, ``tests-3.12``, ``tests-3.13``: the suite on every Python the
  package claims (``nox -s tests`` runs all three); the benchmark smoke tests on
  the first only. Arguments after ``--`` go to pytest (``nox -s tests-3.12 -- -x
  -k sandbox``; ``-n 0`` turns off the parallel workers).
- ``wheel``: the sdist and the wheel built, the sdist checked to build the same
  wheel, the wheel (not editable) installed with the ``cli`` extra into a new
  virtualenv and smoke-tested from outside the source tree (``.ci/wheel_smoke.py``).
- ``docs``: the documentation site built with warnings as errors.

Virtualenvs are made by uv. A claimed Python that cannot be found is an error
when ``CI`` is set (as in ``.ci/run``) and a skip, said in the summary, otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Every Python version the classifiers claim, oldest first: the oldest also
# runs the benchmark smoke tests and the sessions that run once.
PYTHONS = sorted(
    (
        match[1]
        for c in PYPROJECT["project"]["classifiers"]
        if (match := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))
    ),
    key=lambda version: int(version.split(".")[1]),
)

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests", "wheel", "docs"]
nox.options.error_on_missing_interpreters = os.environ.get("CI", "").lower() not in {"", "0", "false"}
# A missing Python is for the machine's owner to install, not for nox or uv to
# download: this machine reaches no download site, and CI must say it is missing.
nox.options.download_python = "never"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.needs_version = ">=2026.8"


def _pip_index_url() -> str | None:
    """The index pip is configured to use instead of PyPI (PIP_INDEX_URL or pip.conf), if any."""
    if url := os.environ.get("PIP_INDEX_URL"):
        return url
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:  # pip absent, or no index-url set (pip says so with status 1)
        return None
    return done.stdout.strip() or None


def _uv_uses_pips_index() -> None:
    """Hand uv the index pip uses when pip is pointed away from PyPI (uv reads no pip.conf).

    Only ``index-url`` is handed over. pip's ``extra-index-url`` and
    ``find-links`` are caches to pip: it takes the best version from all of
    them and PyPI alike. uv takes a package only from the first index that
    has it, so an extra index holding only cp311 wheels of aiohttp would leave
    3.12 and 3.13 with none.
    """
    if not {"UV_DEFAULT_INDEX", "UV_INDEX_URL"} & os.environ.keys() and (url := _pip_index_url()):
        os.environ["UV_DEFAULT_INDEX"] = url


_uv_uses_pips_index()


def _pyenv_root() -> Path | None:
    if root := os.environ.get("PYENV_ROOT"):
        return Path(root)
    if pyenv := shutil.which("pyenv"):
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    return None


def _pyenv_interpreter(version: str) -> Path | None:
    """The newest pyenv-installed CPython ``version`` (``"3.12"``), or None.

    pyenv's ``python3.12`` shim fails unless 3.12 is the active version, and
    nox's own discovery does not look past it, so the interpreters are taken
    from ``$(pyenv root)/versions/3.12.*`` directly (release builds only: no
    ``-dev`` or free-threaded ``t`` builds).
    """
    root = _pyenv_root()
    if root is None:
        return None
    pythons = [
        home / "bin" / f"python{version}"
        for home in (root / "versions").glob(f"{version}.*")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", home.name)
        and (home / "bin" / f"python{version}").is_file()
    ]
    return max(
        pythons, key=lambda python: [int(part) for part in python.parent.parent.name.split(".")], default=None
    )


def _expose_pyenv_interpreters() -> None:
    """Put ``pythonX.Y`` for every claimed version that pyenv has on PATH, ahead of its shims.

    Strategy: nox looks a session's ``python="3.12"`` up as ``python3.12`` on
    PATH. A directory of links named ``python3.12`` to pyenv's interpreters,
    first on PATH for nox's process only, keeps the standard session names
    (``tests-3.12``) and lets any interpreter found on PATH the usual way (a
    system or deadsnakes Python) serve where pyenv has none.
    """
    links = ROOT / ".nox" / "_pythons"
    for version in PYTHONS:
        link = links / f"python{version}"
        target = _pyenv_interpreter(version)
        if link.is_symlink() and (target is None or link.resolve() != target.resolve()):
            link.unlink()
        if target is not None and not link.is_symlink():
            links.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
    if links.is_dir():
        os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


_expose_pyenv_interpreters()


def _requirement(name: str) -> str:
    """The ``test`` extra's requirement on ``name``: one pin for CI, pre-commit and a contributor's venv."""
    for requirement in PYPROJECT["project"]["optional-dependencies"]["test"]:
        if re.match(rf"{re.escape(name)}\b(?![-_.])", requirement):
            return str(requirement)
    raise LookupError(f"the test extra has no requirement on {name}")


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Ruff's lint rules and its formatting, as pre-commit runs them."""
    session.install(_requirement("ruff"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and on tests/typing (the public API as users call it)."""
    session.install("-e", ".[test]")
    session.run("mypy", "--strict", "betatel_async", "tests/typing")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on pytest-xdist workers (one per CPU)."""
    session.install("-e", ".[test]")
    args = ["-n", "auto"]
    if session.python != PYTHONS[0]:
        # The benchmark scripts' smoke runs say the scripts work, not how fast
        # the SDK is on this Python; once is enough.
        args.append("--ignore=tests/test_benchmarks.py")
    session.run("python", "-m", "pytest", "-q", *args, *session.posargs)


def _wheel_contents(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {directory}, found {[p.name for p in found]}")
    return found[0]


@nox.session(python=PYTHONS[0])
def wheel(session: nox.Session) -> None:
    """The wheel as users install it: built, compared with the sdist's, installed, smoke-tested."""
    with tempfile.TemporaryDirectory(prefix="betatel-wheel-") as tmp:
        work = Path(tmp)
        dist, from_sdist = work / "dist", work / "from-sdist"
        # The sdist and the wheel, each from the source tree; then a wheel from the sdist.
        session.run("uv", "build", "--sdist", "--wheel", "--out-dir", str(dist), str(ROOT))
        sdist, built = _only(dist, "*.tar.gz"), _only(dist, "*.whl")
        session.run("uv", "build", "--wheel", "--out-dir", str(from_sdist), str(sdist))
        rebuilt = _only(from_sdist, "*.whl")
        ours, theirs = _wheel_contents(built), _wheel_contents(rebuilt)
        if ours != theirs:
            differ = sorted(
                name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)
            )
            session.error(f"the sdist builds a different wheel: {differ}")
        session.log(f"the sdist builds the same wheel ({len(ours)} files)")

        venv = work / "venv"
        # A virtualenv of its own, on this session's Python, with nothing but the wheel and its deps.
        session.run("uv", "venv", "--quiet", "--python", str(Path(session.bin) / "python"), str(venv))
        python = venv / "bin" / "python"
        session.run("uv", "pip", "install", "--quiet", "--python", str(python), f"{built}[cli]")
        # From a directory with nothing of the source tree in it, and -I so that
        # neither the script's directory nor PYTHONPATH is on sys.path: only the
        # installed wheel can answer "import betatel_async".
        smoke = ROOT / ".ci" / "wheel_smoke.py"
        run_dir = work / "cwd"
        run_dir.mkdir()
        with session.chdir(run_dir):
            session.run(str(python), "-I", str(smoke), str(ROOT), external=True)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """The documentation site, built with warnings as errors (mkdocs build --strict)."""
    config = ROOT / "docs" / "mkdocs.yml"
    if not config.is_file():
        session.error(
            f"{config.relative_to(ROOT)} is missing: the documentation site has not been written yet"
        )
    session.install(".[docs]")
    env = {"NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, not a warning of the build
    with tempfile.TemporaryDirectory(prefix="betatel-site-") as site:
        session.run("mkdocs", "build", "--strict", "-f", str(config), "--site-dir", site, env=env)
    # A broken docstring reference, injected into a copy, must fail the build.
    session.run("python", "docs/check_strict.py", env=env)
