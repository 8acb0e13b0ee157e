"""Stocks as the API shows them: with their price, their logo's URL and, when asked, a series."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from stockday.contracts.stocks import StockOut
from stockday.domain.prices import Interval
from stockday.domain.stocks import Stock
from stockday.objects.base import ObjectStore
from stockday.stock_symbol.pricing import PriceLookup, PriceSeries

# Prices of one listing page (or batch of random picks) are looked up with bounded concurrency.
LIST_PRICE_CONCURRENCY = 8


class StockPresenter:
    """Builds the answers of the read use cases; market data comes through the price lookup."""

    def __init__(self, *, prices: PriceLookup, objects: ObjectStore) -> None:
        self._prices = prices
        self._objects = objects

    async def present(self, stock: Stock, *, with_price: bool = True) -> StockOut:
        price = await self._prices.price_for(stock) if with_price else stock.last_price
        url = self._objects.url_for(stock.logo.key) if stock.logo.key else None
        return StockOut.of(stock, price, url)

    async def present_many(self, stocks: Sequence[Stock]) -> list[StockOut]:
        """Each stock presented with its price, with bounded concurrency."""
        gate = asyncio.Semaphore(LIST_PRICE_CONCURRENCY)

        async def one(stock: Stock) -> StockOut:
            async with gate:
                return await self.present(stock)

        return list(await asyncio.gather(*map(one, stocks)))

    async def with_series(self, stock: Stock, interval: Interval | None) -> dict[str, Any]:
        """The stock with its price and, when asked for, a series: one call for a page view.

        A JSON-ready body in the shape of ``StockWithSeriesOut``, built without a model per
        point of the series: validating one would double the cost of the call.
        """
        if interval is None:
            out, series = await self.present(stock), None
        else:
            out, series = await asyncio.gather(
                self.present(stock), self._prices.series_for(stock.symbol, interval)
            )
        body = out.model_dump(mode="json")
        body["series"] = series_json(series) if series is not None else None
        return body

    async def picks(self, draws: Sequence[Stock]) -> dict[str, Any]:
        """Random draws with their prices as a ``RandomPicks`` body, in the order drawn.

        One price lookup per distinct stock of the batch, not per draw.
        """
        distinct = {(s.symbol, s.version): s for s in draws}
        presented = await self.present_many(list(distinct.values()))
        shown = {
            key: out.model_dump(mode="json") for key, out in zip(distinct, presented, strict=True)
        }
        return {"items": [shown[(s.symbol, s.version)] for s in draws]}


def series_json(series: PriceSeries) -> dict[str, Any]:
    """A series in the shape of ``SeriesOut``, built without a model per point."""
    return {
        "symbol": series.symbol,
        "interval": series.interval.value,
        "source": series.source,
        "points": [{"date": p.day.isoformat(), "close": p.close} for p in series.points],
    }
