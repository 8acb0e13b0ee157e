from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockday.runtime.settings import Settings
from tests.frontend.site import Site, running_site
from tests.support.operators import OPERATOR_HASH
from tests.support.seeded import seeded_stocks


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Page views unlimited: these tests view pages by the hundred; the limits are tested in
    # tests/frontend/test_rate_limits.py.
    return Settings(data_dir=tmp_path, rate_limit_pages="", operator_password_hash=OPERATOR_HASH)


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[Site]:
    async with running_site(settings, repository=seeded_stocks(settings)) as running:
        yield running
