"""The README's code blocks, read from the file, so that a test runs what readers copy."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(section: str) -> list[str]:
    """Every ```python block under the ``## {section}`` heading, up to the next ``## ``.

    Raises:
        LookupError: No such section (a renamed heading must not turn a test into a no-op).
    """
    text = README.read_text(encoding="utf-8")
    start = text.find(f"\n## {section}\n")
    if start < 0:
        raise LookupError(f"README.md has no section {section!r}")
    end = text.find("\n## ", start + 1)
    return _PYTHON_BLOCK.findall(text[start : end if end >= 0 else len(text)])


def python_block(section: str, containing: str) -> str:
    """The one ```python block of ``section`` that contains ``containing``."""
    (block,) = [b for b in python_blocks(section) if containing in b]
    return block
