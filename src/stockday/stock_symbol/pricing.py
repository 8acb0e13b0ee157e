"""Prices for stocks: cache first, then stock-price, then the last known price marked stale."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import replace
from datetime import date

import httpx

from stockday.cache.base import Cache
from stockday.domain.stocks import Price, Stock, utcnow
from stockday.stocks.base import StockNotFound, StockRepository, VersionConflict

log = logging.getLogger("stockday.stock_symbol.pricing")

CACHE_KEY_PREFIX = "price:v1:"
# After a failed call, skip stock-price for this long: a dead dependency must cost
# microseconds per page view, not a timeout each time.
FAILURE_BACKOFF_SECONDS = 5.0


class PriceLookup:
    """Attaches a price to a stock without putting the market-data provider on the hot path."""

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
        self._unavailable_until = 0.0

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

    async def _fetch(self, symbol: str) -> Price | None:
        if time.monotonic() < self._unavailable_until:
            return None
        try:
            response = await self._client.get(f"/api/quotes/{symbol}")
        except httpx.HTTPError as exc:
            self._unavailable_until = time.monotonic() + FAILURE_BACKOFF_SECONDS
            log.warning("stock-price unreachable for %s: %s", symbol, type(exc).__name__)
            return None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._unavailable_until = time.monotonic() + FAILURE_BACKOFF_SECONDS
            log.warning("stock-price answered %s for %s", response.status_code, symbol)
            return None
        try:
            body = response.json()
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
