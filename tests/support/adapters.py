"""The adapters a contract test runs against: made fresh for each test, closed after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest


class Closable(Protocol):
    async def close(self) -> None: ...


def adapter_fixture(name: str, factories: Sequence[object]) -> Any:
    """Fixture ``name``, parametrized over ``factories`` (``tmp_path`` -> an adapter): each test
    gets a fresh adapter of every factory in turn, closed when the test is done with it."""

    @pytest.fixture(name=name, params=factories)
    async def fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Closable]:
        adapter: Closable = await request.param(tmp_path)
        try:
            yield adapter
        finally:
            await adapter.close()

    return fixture
