"""The MarketDataProvider contract, run against every adapter.

Alpha Vantage runs against the local stub server (real HTTP, Alpha Vantage's JSON format).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from stockday.domain.prices import Interval
from stockday.marketdata import build_provider
from stockday.marketdata.alphavantage import AlphaVantageProvider
from stockday.marketdata.base import Bar, MarketDataProvider, UnknownSymbol
from stockday.marketdata.simulated import SimulatedProvider
from stockday.runtime.settings import Settings
from tests.marketdata.alphavantage_stub import API_KEY, AlphaVantageStub

pytestmark = pytest.mark.anyio

# The most bars a series may hold, whatever the provider (two years of weeks, five of months).
MAX_BARS = {Interval.DAILY: 100, Interval.WEEKLY: 104, Interval.MONTHLY: 60}


@dataclass
class Case:
    provider: MarketDataProvider
    symbols: tuple[str, ...]
    # The simulation has data for every ticker-shaped symbol, so "unknown" differs per provider.
    unknown: str


@pytest.fixture(params=["simulated", "alphavantage"])
async def case(request: pytest.FixtureRequest, av_stub: AlphaVantageStub) -> AsyncIterator[Case]:
    provider: MarketDataProvider
    if request.param == "simulated":
        provider = SimulatedProvider()
        result = Case(provider, ("IBM", "AAPL", "BRK.B"), unknown="NOT A TICKER")
    else:
        provider = AlphaVantageProvider(api_key=API_KEY, base_url=av_stub.url, timeout=2.0)
        result = Case(provider, ("IBM", "AAPL"), unknown="NOSUCH")
    yield result
    await provider.close()


def _today() -> datetime:
    return datetime.now(UTC)


async def test_quote_fields_are_sane(case: Case) -> None:
    for symbol in case.symbols:
        quote = await case.provider.quote(symbol)
        assert quote.symbol == symbol
        assert quote.source == case.provider.name
        assert quote.currency == "USD"
        assert quote.price > 0
        assert quote.previous_close > 0
        # Day-to-day moves of real stocks stay well within this.
        assert 0.5 < quote.price / quote.previous_close < 2
        assert quote.as_of.weekday() < 5
        assert quote.as_of <= (_today() + timedelta(days=1)).date()


async def test_symbols_are_case_insensitive(case: Case) -> None:
    symbol = case.symbols[0]
    assert await case.provider.quote(symbol.lower()) == await case.provider.quote(symbol)


@pytest.mark.parametrize("interval", list(Interval))
async def test_series_are_oldest_first_and_bounded(case: Case, interval: Interval) -> None:
    bars = await case.provider.series(case.symbols[0], interval)
    assert 2 <= len(bars) <= MAX_BARS[interval]
    days = [bar.day for bar in bars]
    assert days == sorted(days)
    assert len(set(days)) == len(days)
    assert all(day.weekday() < 5 for day in days)
    for bar in bars:
        _assert_sane(bar)


async def test_weekly_bars_are_one_per_week_and_monthly_one_per_month(case: Case) -> None:
    weekly = await case.provider.series(case.symbols[0], Interval.WEEKLY)
    weeks = [bar.day.isocalendar()[:2] for bar in weekly]
    assert len(set(weeks)) == len(weeks)
    monthly = await case.provider.series(case.symbols[0], Interval.MONTHLY)
    months = [(bar.day.year, bar.day.month) for bar in monthly]
    assert len(set(months)) == len(months)


async def test_quote_is_not_older_than_the_daily_series(case: Case) -> None:
    quote = await case.provider.quote(case.symbols[0])
    daily = await case.provider.series(case.symbols[0], Interval.DAILY)
    assert quote.as_of >= daily[-1].day


async def test_unknown_symbol(case: Case) -> None:
    with pytest.raises(UnknownSymbol):
        await case.provider.quote(case.unknown)
    for interval in Interval:
        with pytest.raises(UnknownSymbol):
            await case.provider.series(case.unknown, interval)


async def test_close_twice_is_harmless(case: Case) -> None:
    await case.provider.close()
    await case.provider.close()


async def test_build_provider_picks_by_api_key(av_stub: AlphaVantageStub) -> None:
    simulated = build_provider(Settings(alpha_vantage_api_key=None))
    assert isinstance(simulated, SimulatedProvider)
    blank = build_provider(Settings(alpha_vantage_api_key="  "))
    assert isinstance(blank, SimulatedProvider)
    real = build_provider(Settings(alpha_vantage_api_key=API_KEY, alpha_vantage_url=av_stub.url))
    try:
        assert isinstance(real, AlphaVantageProvider)
        assert (await real.quote("IBM")).source == "alphavantage"
        assert av_stub.requests[-1]["apikey"] == API_KEY
    finally:
        await real.close()


def _assert_sane(bar: Bar) -> None:
    assert 0 < bar.low <= min(bar.open, bar.close)
    assert max(bar.open, bar.close) <= bar.high
    assert bar.volume >= 0
