"""stock-price: quotes and price series from the market-data provider, as JSON."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar, cast

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from stockday.cache.memory import BoundedMap
from stockday.domain.prices import Interval
from stockday.domain.stocks import InvalidStock, Price, normalize_symbol
from stockday.marketdata import build_provider
from stockday.marketdata.base import (
    Bar,
    MarketDataProvider,
    ProviderError,
    Quote,
    RateLimited,
    UnknownSymbol,
)
from stockday.runtime.logs import configure_logging
from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import configure_tracing
from stockday.runtime.web.errors import ErrorOut, error_response, install_error_handlers
from stockday.runtime.web.observability import install_observability

log = logging.getLogger("stockday.stock_price")
T = TypeVar("T")

# Provider answers are remembered per process, so a burst of page views costs one upstream call
# (Alpha Vantage's free tier allows 25 a day). Failures are not remembered.
QUOTE_TTL_SECONDS = 60.0
SERIES_TTL_SECONDS = 15 * 60.0
MEMO_MAX_ENTRIES = 1024


class QuoteOut(BaseModel):
    symbol: str
    price: float
    previous_close: float
    change: float
    change_percent: float
    as_of: dt.date
    source: str
    currency: str

    @classmethod
    def of(cls, quote: Quote) -> QuoteOut:
        # The domain's Price owns the change arithmetic, so every service rounds alike.
        price = Price(
            value=quote.price,
            previous_close=quote.previous_close,
            as_of=quote.as_of,
            source=quote.source,
            currency=quote.currency,
        )
        return cls(
            symbol=quote.symbol,
            price=quote.price,
            previous_close=quote.previous_close,
            change=price.change,
            change_percent=price.change_percent,
            as_of=quote.as_of,
            source=quote.source,
            currency=quote.currency,
        )


class BarOut(BaseModel):
    date: Annotated[dt.date, Field(description="Trading day; for weekly/monthly the last one.")]
    open: float
    high: float
    low: float
    close: float
    volume: int

    @classmethod
    def of(cls, bar: Bar) -> BarOut:
        return cls(
            date=bar.day,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
        )


class SeriesOut(BaseModel):
    symbol: str
    interval: Interval
    source: str
    bars: Annotated[list[BarOut], Field(description="Oldest first.")]


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "The provider has no data for this symbol."},
    422: {"model": ErrorOut, "description": "Invalid symbol or interval."},
    503: {
        "model": ErrorOut,
        "description": "The provider failed; `Retry-After` is set when it is rate limited.",
    },
}


class TtlMemo:
    """A bounded in-process memo with per-entry expiry; concurrent misses share one load."""

    def __init__(
        self, max_entries: int = MEMO_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: BoundedMap[Hashable, Any] = BoundedMap(max(1, max_entries), clock)
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, ttl: float, load: Callable[[], Awaitable[T]]) -> T:
        value = self._entries.get(key)
        if value is not None:
            return cast(T, value)
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, ttl, load))
            # Marks a failure as seen even when every waiter went away before it came.
            pending.add_done_callback(_consume_exception)
            self._loading[key] = pending
        # shield: a caller that goes away must not cancel the load the others wait for.
        return cast(T, await asyncio.shield(pending))

    async def _load(self, key: Hashable, ttl: float, load: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await load()
        finally:
            del self._loading[key]
        self._entries.put(key, value, ttl)
        return value


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def create_app(
    settings: Settings | None = None, provider: MarketDataProvider | None = None
) -> FastAPI:
    """Build the app; the provider is built from settings unless given (then the caller owns it)."""
    settings = settings or get_settings()
    owns_provider = provider is None
    market: MarketDataProvider = provider if provider is not None else build_provider(settings)
    memo = TtlMemo()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_provider:
            await market.close()

    app = FastAPI(
        title="stock-price",
        version="1",
        description=(
            f"Quotes and daily/weekly/monthly series from the market-data provider "
            f"({market.name}); 503 when the provider fails."
        ),
        lifespan=lifespan,
    )
    app.state.provider = market
    # The provider is deliberately not a readiness check: when it fails, every replica would
    # leave rotation at once; answering 503 quickly lets callers fall back instead.
    install_observability(
        app,
        service="stock-price",
        readiness_checks=[],
        readiness_timeout=settings.readiness_timeout_seconds,
        fault_error_rate=settings.fault_error_rate,
    )
    install_error_handlers(app)

    @app.exception_handler(InvalidStock)
    async def invalid_symbol(request: Request, exc: InvalidStock) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(UnknownSymbol)
    async def unknown_symbol(request: Request, exc: UnknownSymbol) -> JSONResponse:
        return error_response(
            404, str(exc) or "the market-data provider has no data for this symbol"
        )

    @app.exception_handler(ProviderError)
    async def provider_failed(request: Request, exc: ProviderError) -> JSONResponse:
        detail = str(exc) or f"the market-data provider ({market.name}) failed"
        log.warning("%s failed for %s: %s", market.name, request.url.path, detail)
        if isinstance(exc, RateLimited):
            return error_response(
                503, detail, headers={"Retry-After": str(exc.retry_after_seconds)}
            )
        return error_response(503, detail)

    @app.get("/api/quotes/{symbol}", response_model=QuoteOut, responses=ERRORS)
    async def get_quote(symbol: str) -> QuoteOut:
        """The latest quote of a symbol."""
        canonical = normalize_symbol(symbol)
        quote = await memo.get(
            ("quote", canonical), QUOTE_TTL_SECONDS, lambda: market.quote(canonical)
        )
        return QuoteOut.of(quote)

    @app.get("/api/series/{symbol}", response_model=SeriesOut, responses=ERRORS)
    async def get_series(
        symbol: str,
        interval: Annotated[Interval, Query(description="daily, weekly or monthly")] = (
            Interval.DAILY
        ),
    ) -> SeriesOut:
        """Price bars of a symbol, oldest first."""
        canonical = normalize_symbol(symbol)
        bars = await memo.get(
            ("series", canonical, interval),
            SERIES_TTL_SECONDS,
            lambda: market.series(canonical, interval),
        )
        return SeriesOut(
            symbol=canonical,
            interval=interval,
            source=market.name,
            bars=[BarOut.of(bar) for bar in bars],
        )

    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from the environment, logging set up."""
    settings = get_settings()
    configure_logging(settings, "stock-price")
    configure_tracing(settings, "stock-price")
    return create_app(settings)
