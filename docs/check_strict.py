"""Prove that the docs build fails on a broken cross-reference in a docstring.

Copies the package and the docs to a temporary directory, builds the copy
(it must pass), then adds to `BetatelClient`'s docstring a reference to a name
that does not exist and builds again: that build must fail, naming the
reference. Run from anywhere, with the ``docs`` extra installed:

    python docs/check_strict.py

Exit status 0 when both builds do what they must, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "betatel_async.NoSuchName"
_CLIENT_DOCSTRING = re.compile(r'^class BetatelClient\b.*:\n    """', re.MULTILINE)


def build(root: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the copy at ``root``, into a directory of the copy."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "docs" / "mkdocs.yml")]
    command += ["--site-dir", str(root / "site")]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603


def break_a_reference(root: Path) -> None:
    """Add a reference to `BROKEN` to the first line of `BetatelClient`'s docstring in the copy."""
    client = root / "betatel_async" / "_client.py"
    text = client.read_text(encoding="utf-8")
    broken, count = _CLIENT_DOCSTRING.subn(lambda m: f"{m[0]}See [`NoSuchName`][{BROKEN}]. ", text, count=1)
    if count != 1:
        raise SystemExit(f"check_strict: no docstring of BetatelClient found in {client}")
    client.write_text(broken, encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="betatel-docs-") as tmp:
        root = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "site", "build")
        for part in ("betatel_async", "docs"):
            shutil.copytree(ROOT / part, root / part, ignore=ignore)

        clean = build(root)
        if clean.returncode != 0:
            print(f"check_strict: the untouched copy does not build:\n{clean.stderr}", file=sys.stderr)
            return 1

        break_a_reference(root)
        broken = build(root)
        if broken.returncode == 0:
            print(f"check_strict: the build passed with a reference to {BROKEN}", file=sys.stderr)
            return 1
        if BROKEN not in broken.stderr:
            print(f"check_strict: the build failed, but not on {BROKEN}:\n{broken.stderr}", file=sys.stderr)
            return 1
    print(f"check_strict: a docstring reference to {BROKEN} fails the build, as it must")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
