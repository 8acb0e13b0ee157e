"""Fixtures of the market-data tests: the local Alpha Vantage and a provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from stockday.marketdata.alphavantage import AlphaVantageProvider
from tests.marketdata.alphavantage_stub import API_KEY, AlphaVantageStub


@pytest.fixture
def av_stub() -> Iterator[AlphaVantageStub]:
    with AlphaVantageStub() as stub:
        yield stub


@pytest.fixture
async def av_provider(av_stub: AlphaVantageStub) -> AsyncIterator[AlphaVantageProvider]:
    provider = AlphaVantageProvider(api_key=API_KEY, base_url=av_stub.url, timeout=2.0)
    yield provider
    await provider.close()
