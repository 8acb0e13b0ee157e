"""stock-price: quotes and price series from the market-data provider, as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from stockday.marketdata import build_provider
from stockday.marketdata.base import MarketDataProvider
from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import fastapi_telemetry
from stockday.runtime.web import serving
from stockday.stock_price.errors import install_price_error_handlers
from stockday.stock_price.routes import quotes, series
from stockday.stock_price.service import PriceService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close the provider on shutdown, when the app built it."""
    yield
    if app.state.owns_provider:
        await app.state.provider.close()


def create_app(
    settings: Settings | None = None, provider: MarketDataProvider | None = None
) -> FastAPI:
    """Build the app; the provider is built from settings unless given (then the caller owns it).

    The provider and the service are built here rather than in the lifespan: in-process
    callers (httpx's ASGITransport) serve requests without running the lifespan.
    """
    settings = settings or get_settings()
    market = provider if provider is not None else build_provider(settings)
    app = FastAPI(
        title="stock-price",
        version="1",
        description=(
            f"Quotes and daily/weekly/monthly series from the market-data provider "
            f"({market.name}); 503 when the provider fails."
        ),
        lifespan=lifespan,
        telemetry=fastapi_telemetry(traced=bool(settings.otlp_endpoint)),
    )
    app.state.provider = market
    app.state.owns_provider = provider is None
    app.state.prices = PriceService(market)
    # The provider is deliberately not a readiness check: when it fails, every replica would
    # leave rotation at once; answering 503 quickly lets callers fall back instead.
    serving.install_service_runtime(app, settings, service="stock-price", readiness_checks=[])
    install_price_error_handlers(app)
    serving.include_routes(app, quotes.router, series.router)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``."""
    return serving.app_from_environment("stock-price", create_app)
