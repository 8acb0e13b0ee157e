"""SimulatedProvider: deterministic, plausible, consistent, fast."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
from collections.abc import Coroutine
from datetime import date, timedelta
from itertools import pairwise
from typing import Any, TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stockday.domain.prices import Interval
from stockday.domain.stocks import SYMBOL_PATTERN
from stockday.marketdata.base import Bar, Quote, UnknownSymbol
from stockday.marketdata.simulated import SERIES_BARS, SimulatedProvider, latest_trading_day

T = TypeVar("T")

MONDAY = date(2026, 11, 23)
SATURDAY = date(2026, 11, 28)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def on(day: date) -> SimulatedProvider:
    return SimulatedProvider(today=lambda: day)


def snapshot(provider: SimulatedProvider, symbol: str) -> tuple[Quote, list[list[Bar]]]:
    async def take() -> tuple[Quote, list[list[Bar]]]:
        quote = await provider.quote(symbol)
        return quote, [await provider.series(symbol, interval) for interval in Interval]

    return run(take())


def weekday_before(day: date) -> date:
    day -= timedelta(days=1)
    while day.weekday() > 4:
        day -= timedelta(days=1)
    return day


def weekday_after(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() > 4:
        day += timedelta(days=1)
    return day


def test_same_symbol_and_day_give_the_same_numbers_in_new_instances() -> None:
    assert snapshot(on(MONDAY), "AAPL") == snapshot(on(MONDAY), "AAPL")


SNAPSHOT_SCRIPT = """
import asyncio, datetime
from stockday.domain.prices import Interval
from stockday.marketdata.simulated import SimulatedProvider

async def main():
    provider = SimulatedProvider(today=lambda: datetime.date(2026, 11, 23))
    quote = await provider.quote("AAPL")
    daily = await provider.series("AAPL", Interval.DAILY)
    print(repr((quote.price, quote.previous_close, daily[0])))

asyncio.run(main())
"""


def test_same_symbol_and_day_give_the_same_numbers_in_other_processes() -> None:
    provider = on(MONDAY)
    quote, (daily, _, _) = snapshot(provider, "AAPL")
    expected = repr((quote.price, quote.previous_close, daily[0]))
    for seed in ("1", "2"):
        # Different hash seeds: numbers derived from hash() would differ between the runs.
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", SNAPSHOT_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == expected


def test_symbols_differ() -> None:
    prices = {run(on(MONDAY).quote(symbol)).price for symbol in ("AAPL", "MSFT", "IBM", "NVDA")}
    assert len(prices) == 4


def test_days_differ_but_the_past_stays_put() -> None:
    tuesday = MONDAY + timedelta(days=1)
    monday_quote, (monday_daily, _, _) = snapshot(on(MONDAY), "AAPL")
    tuesday_quote, (tuesday_daily, _, _) = snapshot(on(tuesday), "AAPL")
    assert tuesday_quote.as_of == tuesday
    assert tuesday_quote.price != monday_quote.price
    assert tuesday_quote.previous_close == monday_quote.price
    # The window moved by one day; the bars it shares with yesterday's are unchanged.
    assert tuesday_daily[:-1] == monday_daily[1:]


def test_series_lengths() -> None:
    _, series = snapshot(on(MONDAY), "MSFT")
    assert [len(bars) for bars in series] == [100, 104, 60]
    assert SERIES_BARS == {Interval.DAILY: 100, Interval.WEEKLY: 104, Interval.MONTHLY: 60}


@pytest.mark.parametrize("today", [MONDAY, SATURDAY, SATURDAY + timedelta(days=1)])
def test_daily_bars_are_consecutive_weekdays_ending_on_the_latest_trading_day(today: date) -> None:
    quote, (daily, weekly, monthly) = snapshot(on(today), "MSFT")
    latest = latest_trading_day(today)
    assert latest.weekday() < 5
    assert quote.as_of == latest == daily[-1].day == weekly[-1].day == monthly[-1].day
    for older, newer in pairwise(daily):
        assert newer.day == older.day + timedelta(days=3 if older.day.weekday() == 4 else 1)


def test_weekly_and_monthly_bars_are_consecutive_periods() -> None:
    _, (_, weekly, monthly) = snapshot(on(MONDAY), "AAPL")
    mondays = [bar.day - timedelta(days=bar.day.weekday()) for bar in weekly]
    assert all(b - a == timedelta(weeks=1) for a, b in pairwise(mondays))
    assert all(bar.day.weekday() == 4 for bar in weekly[:-1])  # full weeks end on Friday
    months = [bar.day.year * 12 + bar.day.month for bar in monthly]
    assert all(b - a == 1 for a, b in pairwise(months))
    # A complete month is dated by its last weekday.
    for bar in monthly[:-1]:
        assert weekday_after(bar.day).month != bar.day.month


def test_quote_and_series_agree() -> None:
    quote, (daily, weekly, monthly) = snapshot(on(MONDAY), "NVDA")
    assert quote.price == daily[-1].close == weekly[-1].close == monthly[-1].close
    assert quote.previous_close == daily[-2].close
    # Aggregates are built from the daily bars.
    week = [bar for bar in daily if bar.day > weekly[-2].day]
    assert weekly[-1].open == week[0].open
    assert weekly[-1].high == max(bar.high for bar in week)
    assert weekly[-1].low == min(bar.low for bar in week)
    assert weekly[-1].volume == sum(bar.volume for bar in week)


def test_prices_are_plausible_across_many_symbols() -> None:
    provider = on(MONDAY)
    closes: list[float] = []
    moves: list[float] = []
    for n in range(60):
        symbol = f"T{n}X"
        daily = run(provider.series(symbol, Interval.DAILY))
        monthly = run(provider.series(symbol, Interval.MONTHLY))
        for bar in [*daily, *monthly]:
            assert 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
            assert all(round(v, 2) == v for v in (bar.open, bar.high, bar.low, bar.close))
            assert bar.volume > 0
        closes += [bar.close for bar in monthly]
        moves += [abs(b.close / a.close - 1) for a, b in pairwise(daily)]
    assert min(closes) > 2
    assert max(closes) < 2000
    # "A few percent" a day: typical moves around 1-2 %, none absurd.
    assert 0.005 < statistics.median(moves) < 0.03
    assert max(moves) < 0.25
    first_closes = {round(run(provider.quote(f"T{n}X")).price, -1) for n in range(60)}
    assert len(first_closes) > 30  # base prices are spread out, not one price for all


@pytest.mark.parametrize("symbol", ["", "NOT A TICKER", "1ABC", "$$$"])
def test_non_tickers_are_unknown(symbol: str) -> None:
    provider = on(MONDAY)
    with pytest.raises(UnknownSymbol):
        run(provider.quote(symbol))
    with pytest.raises(UnknownSymbol):
        run(provider.series(symbol, Interval.WEEKLY))


def test_repeated_calls_come_from_the_cache_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = SimulatedProvider(today=lambda: MONDAY, cache_size=16)
    computed: list[str] = []
    compute = provider._compute

    def counted(symbol: str, last_day: date, interval: Interval) -> list[Bar]:
        computed.append(symbol)
        return compute(symbol, last_day, interval)

    monkeypatch.setattr(provider, "_compute", counted)

    async def many() -> None:
        first = await provider.quote("AAPL")
        for _ in range(1000):
            assert await provider.quote("AAPL") == first

    run(many())
    assert computed == ["AAPL"]  # computed once, then served from the cache
    for n in range(40):
        run(provider.series(f"S{n}", Interval.DAILY))
    assert len(provider._series) <= 16


def test_returned_series_cannot_corrupt_the_cache() -> None:
    provider = on(MONDAY)
    bars = run(provider.series("AAPL", Interval.DAILY))
    bars.clear()
    assert len(run(provider.series("AAPL", Interval.DAILY))) == 100


@settings(max_examples=60, deadline=None)
@given(
    symbol=st.from_regex(SYMBOL_PATTERN, fullmatch=True),
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)),
)
@example(symbol="AAPL", day=date(2027, 1, 1))  # previous close from the year before
@example(symbol="AAPL", day=date(2026, 1, 5))  # first Monday after New Year's weekend
def test_previous_close_is_the_prior_trading_days_price(symbol: str, day: date) -> None:
    quote = run(on(day).quote(symbol))
    yesterday = run(on(weekday_before(quote.as_of)).quote(symbol))
    assert quote.as_of == latest_trading_day(day)
    assert quote.previous_close == yesterday.price
    assert quote.price > 0
    assert quote.previous_close > 0
