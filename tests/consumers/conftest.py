from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockday.runtime.settings import Settings
from tests.consumers.pipeline import Pipeline, open_pipeline


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    settings = Settings(data_dir=tmp_path, queue_max_receives=3, queue_retry_delay_seconds=0.05)
    async with open_pipeline(settings) as opened:
        yield opened
