"""Shared fixtures: anyio on asyncio, a clean environment, a running sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_betatel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's own BETATEL_* credentials."""
    for name in list(os.environ):
        if name.startswith("BETATEL_"):
            monkeypatch.delenv(name)
    yield
