"""Market data for stocks, cache first: prices (else the last known one, marked stale) and
price series (else none: a chart is a nicety)."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import date

from stockday.cache.base import Cache
from stockday.clients.stock_price import StockPriceClient, StockPriceUnavailable
from stockday.domain.prices import Interval
from stockday.domain.stocks import Price, Stock, utcnow
from stockday.stocks.base import StockNotFound, StockRepository, VersionConflict

log = logging.getLogger("stockday.stock_symbol.pricing")

CACHE_KEY_PREFIX = "price:v1:"
SERIES_KEY_PREFIX = "series:v1:"
# A chart needs no more; also bounds what one cache entry holds whatever the provider sends.
MAX_SERIES_POINTS = 260


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    day: date
    close: float


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Closing prices of one symbol at one interval, oldest first."""

    symbol: str
    interval: Interval
    source: str
    points: tuple[SeriesPoint, ...]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "symbol": self.symbol,
                "interval": self.interval.value,
                "source": self.source,
                "points": [[p.day.isoformat(), p.close] for p in self.points],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> PriceSeries:
        body = json.loads(raw)
        return cls(
            symbol=str(body["symbol"]),
            interval=Interval(body["interval"]),
            source=str(body["source"]),
            points=tuple(SeriesPoint(date.fromisoformat(d), float(c)) for d, c in body["points"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceLookup:
    """Attaches market data to a stock without putting the provider on the hot path."""

    cache: Cache
    prices: StockPriceClient
    repository: StockRepository
    ttl_seconds: int
    persist_interval_seconds: int

    async def price_for(self, stock: Stock) -> Price | None:
        cached = await self.cache.get(CACHE_KEY_PREFIX + stock.symbol)
        if cached is not None:
            return _decode(cached)
        try:
            quote = await self.prices.quote(stock.symbol)
        except StockPriceUnavailable:
            quote = None
        if quote is None:
            return replace(stock.last_price, stale=True) if stock.last_price else None
        fresh = quote.to_price()
        await self.cache.set(
            CACHE_KEY_PREFIX + stock.symbol, _encode(fresh), ttl_seconds=self.ttl_seconds
        )
        await self._remember(stock, fresh)
        return fresh

    async def series_for(self, symbol: str, interval: Interval) -> PriceSeries | None:
        """The series from the cache, else from stock-price (then cached); None if unavailable."""
        key = f"{SERIES_KEY_PREFIX}{symbol}:{interval.value}"
        cached = await self.cache.get(key)
        if cached is not None:
            try:
                return PriceSeries.decode(cached)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable cached series for %s %s; fetching again", symbol, interval)
        try:
            answered = await self.prices.series(symbol, interval)
        except StockPriceUnavailable:
            return None
        if answered is None:
            return None
        series = PriceSeries(
            symbol=symbol,
            interval=interval,
            source=answered.source,
            points=tuple(
                SeriesPoint(bar.date, bar.close) for bar in answered.bars[-MAX_SERIES_POINTS:]
            ),
        )
        await self.cache.set(key, series.encode(), ttl_seconds=self.ttl_seconds)
        return series

    async def _remember(self, stock: Stock, price: Price) -> None:
        """Store the price on the stock as the stale fallback, at most once per interval."""
        known = stock.last_price
        age = (utcnow() - stock.updated_at).total_seconds()
        if known is not None and known.as_of == price.as_of and age < self.persist_interval_seconds:
            return
        if known == price:
            return
        # A lost race means someone else wrote meanwhile; the next cache miss tries again.
        with contextlib.suppress(VersionConflict, StockNotFound):
            await self.repository.update(stock.with_price(price), expected_version=stock.version)


def _encode(price: Price) -> bytes:
    return json.dumps(price.to_record()).encode()


def _decode(raw: bytes) -> Price:
    return Price.from_record(json.loads(raw))
