"""The code blocks of the README and the documentation's pages, read from the files.

A test runs what readers copy: it takes a block with `python_block` (or
`python_blocks`), called with literal arguments, which is how
``tests/test_docs.py`` finds every test's blocks and fails on a ``python``
block that no test runs. A block that only illustrates says so in an HTML
comment right before it: ``<!-- not run: the reason -->``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "pages"

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!-- not run: (?P<reason>[^>]*\S) -->\s*\Z")
_HEADING = re.compile(r"^(?P<level>#{1,6}) (?P<title>.+)$")


class Block(NamedTuple):
    """A fenced code block: its page (a path from the project's root), language and text."""

    page: str
    lang: str
    code: str
    not_run: str | None
    """The reason given in ``<!-- not run: ... -->`` right before it, if any."""


def pages() -> list[str]:
    """The README and every page of the site, as paths from the project's root."""
    return ["README.md", *(p.relative_to(ROOT).as_posix() for p in sorted(PAGES.glob("*.md")))]


def blocks(page: str, section: str | None = None) -> list[Block]:
    """Every fenced block of ``page`` (a path from the project's root), or of one section of it.

    Args:
        page: ``"README.md"``, ``"docs/pages/recipes.md"``, ...
        section: A heading's text: the blocks from it to the next heading of
            its level or above. ``None``: the whole page.

    Raises:
        LookupError: No such section (a renamed heading must not turn a test into a no-op).
    """
    text = (ROOT / page).read_text(encoding="utf-8")
    if section is not None:
        text = _section(text, page, section)
    return [
        Block(page, m["lang"], m["code"], _not_run_reason(text[: m.start()])) for m in _FENCE.finditer(text)
    ]


def python_blocks(page: str, section: str | None = None) -> list[str]:
    """The text of every ```python block of ``page`` (or of one section of it); see `blocks`."""
    return [b.code for b in blocks(page, section) if b.lang == "python"]


def python_block(page: str, containing: str) -> str:
    """The one ```python block of ``page`` that contains ``containing``."""
    (block,) = [b for b in python_blocks(page) if containing in b]
    return block


def _not_run_reason(before: str) -> str | None:
    match = _NOT_RUN.search(before)
    return match["reason"] if match else None


def _section(text: str, page: str, section: str) -> str:
    """The lines from the heading ``section`` to the next heading of its level or above.

    Lines inside fenced blocks are not headings (``# conftest.py`` is a comment).
    """
    lines = text.splitlines(keepends=True)
    start = level = None
    in_fence = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _HEADING.match(line.rstrip("\n"))
        if heading is None:
            continue
        if start is None:
            if heading["title"] == section:
                start, level = number, len(heading["level"])
        elif len(heading["level"]) <= (level or 0):
            return "".join(lines[start:number])
    if start is None:
        raise LookupError(f"{page} has no section {section!r}")
    return "".join(lines[start:])
