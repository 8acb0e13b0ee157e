"""Market data for stocks, cache first: prices (else the last known one, marked stale) and
price series (else none: a chart is a nicety)."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import httpx

from stockday.cache.base import Cache
from stockday.domain.prices import Interval
from stockday.domain.stocks import Price, Stock, utcnow
from stockday.runtime.resilience import Breaker, BreakerOpen
from stockday.stocks.base import StockNotFound, StockRepository, VersionConflict

log = logging.getLogger("stockday.stock_symbol.pricing")

CACHE_KEY_PREFIX = "price:v1:"
SERIES_KEY_PREFIX = "series:v1:"
# A chart needs no more; also bounds what one cache entry holds whatever the provider sends.
MAX_SERIES_POINTS = 260
# After a failed call, skip stock-price for this long: a dead dependency must cost
# microseconds per page view, not a timeout each time.
FAILURE_BACKOFF_SECONDS = 5.0


class UnhealthyAnswer(Exception):
    """stock-price answered, but with an error status: a failure for its breaker."""


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


class PriceLookup:
    """Attaches market data to a stock without putting the provider on the hot path.

    Prices and series share one circuit breaker: they come from the same stock-price.
    """

    def __init__(
        self,
        *,
        cache: Cache,
        price_client: httpx.AsyncClient,
        repository: StockRepository,
        ttl_seconds: int,
        persist_interval_seconds: int,
    ) -> None:
        self._cache = cache
        self._client = price_client
        self._repository = repository
        self._ttl = ttl_seconds
        self._persist_interval = persist_interval_seconds
        # One failure opens it: the page must not wait on a dead stock-price twice in a row.
        self._breaker = Breaker("stock-price", threshold=1, ttl_seconds=FAILURE_BACKOFF_SECONDS)

    async def price_for(self, stock: Stock) -> Price | None:
        cached = await self._cache.get(CACHE_KEY_PREFIX + stock.symbol)
        if cached is not None:
            return _decode(cached)
        fresh = await self._fetch(stock.symbol)
        if fresh is None:
            return replace(stock.last_price, stale=True) if stock.last_price else None
        await self._cache.set(
            CACHE_KEY_PREFIX + stock.symbol, _encode(fresh), ttl_seconds=self._ttl
        )
        await self._remember(stock, fresh)
        return fresh

    async def series_for(self, symbol: str, interval: Interval) -> PriceSeries | None:
        """The series from the cache, else from stock-price (then cached); None if unavailable."""
        key = f"{SERIES_KEY_PREFIX}{symbol}:{interval.value}"
        cached = await self._cache.get(key)
        if cached is not None:
            try:
                return PriceSeries.decode(cached)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable cached series for %s %s; fetching again", symbol, interval)
        body = await self._ask(f"/api/series/{symbol}", params={"interval": interval.value})
        if body is None:
            return None
        try:
            series = PriceSeries(
                symbol=symbol,
                interval=interval,
                source=str(body["source"]),
                points=tuple(
                    SeriesPoint(date.fromisoformat(bar["date"]), float(bar["close"]))
                    for bar in body["bars"][-MAX_SERIES_POINTS:]
                ),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("stock-price answered an unreadable series for %s", symbol)
            return None
        await self._cache.set(key, series.encode(), ttl_seconds=self._ttl)
        return series

    async def _fetch(self, symbol: str) -> Price | None:
        body = await self._ask(f"/api/quotes/{symbol}")
        if body is None:
            return None
        try:
            return Price(
                value=float(body["price"]),
                previous_close=float(body["previous_close"]),
                as_of=date.fromisoformat(body["as_of"]),
                source=str(body["source"]),
                currency=str(body.get("currency", "USD")),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("stock-price answered an unreadable quote for %s", symbol)
            return None

    async def _ask(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a JSON body from stock-price; None when it has nothing, fails or is skipped."""
        try:
            async with self._breaker.guard():
                response = await self._client.get(path, params=params)
                if response.status_code not in (200, 404):
                    raise UnhealthyAnswer(f"answered {response.status_code}")
        except BreakerOpen:
            return None
        except httpx.HTTPError as exc:
            log.warning("stock-price unreachable for %s: %s", path, type(exc).__name__)
            return None
        except UnhealthyAnswer as exc:
            log.warning("stock-price %s for %s", exc, path)
            return None
        if response.status_code == 404:
            return None
        try:
            return response.json()
        except ValueError:
            log.warning("stock-price answered unreadable JSON for %s", path)
            return None

    async def _remember(self, stock: Stock, price: Price) -> None:
        """Store the price on the stock as the stale fallback, at most once per interval."""
        known = stock.last_price
        age = (utcnow() - stock.updated_at).total_seconds()
        if known is not None and known.as_of == price.as_of and age < self._persist_interval:
            return
        if known == price:
            return
        # A lost race means someone else wrote meanwhile; the next cache miss tries again.
        with contextlib.suppress(VersionConflict, StockNotFound):
            await self._repository.update(stock.with_price(price), expected_version=stock.version)


def _encode(price: Price) -> bytes:
    return json.dumps(price.to_record()).encode()


def _decode(raw: bytes) -> Price:
    return Price.from_record(json.loads(raw))
