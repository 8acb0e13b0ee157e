"""Use cases of stock-price: quotes and series from the provider, remembered for a while."""

from __future__ import annotations

from dataclasses import asdict

from stockday.contracts.prices import BarOut, QuoteOut, SeriesOut
from stockday.domain.prices import Interval
from stockday.domain.stocks import Price, normalize_symbol
from stockday.marketdata.base import Bar, MarketDataProvider, Quote
from stockday.stock_price.memo import TtlMemo

# Provider answers are remembered per process, so a burst of page views costs one upstream call
# (Alpha Vantage's free tier allows 25 a day). Failures are not remembered.
QUOTE_TTL_SECONDS = 60.0
SERIES_TTL_SECONDS = 15 * 60.0


class PriceService:
    """Answers from the provider, through the memo; provider errors pass through."""

    def __init__(self, provider: MarketDataProvider, memo: TtlMemo | None = None) -> None:
        self.provider = provider
        self._memo = memo or TtlMemo()

    async def quote(self, symbol: str) -> QuoteOut:
        """The latest quote of a symbol; raises InvalidStock for a symbol that is no ticker."""
        canonical = normalize_symbol(symbol)
        quote: Quote = await self._memo.get(
            ("quote", canonical), QUOTE_TTL_SECONDS, lambda: self.provider.quote(canonical)
        )
        price = Price(
            value=quote.price,
            previous_close=quote.previous_close,
            as_of=quote.as_of,
            source=quote.source,
            currency=quote.currency,
        )
        return QuoteOut.of(quote.symbol, price)

    async def series(self, symbol: str, interval: Interval) -> SeriesOut:
        """Price bars of a symbol at an interval, oldest first."""
        canonical = normalize_symbol(symbol)
        bars: list[Bar] = await self._memo.get(
            ("series", canonical, interval),
            SERIES_TTL_SECONDS,
            lambda: self.provider.series(canonical, interval),
        )
        return SeriesOut(
            symbol=canonical,
            interval=interval,
            source=self.provider.name,
            bars=[_bar_out(bar) for bar in bars],
        )


def _bar_out(bar: Bar) -> BarOut:
    # The API names a bar's day ``date``; every other field is the bar's own.
    return BarOut.model_validate({**asdict(bar), "date": bar.day})
