"""stock-symbol: the JSON service that owns the stock data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import fastapi_telemetry
from stockday.runtime.web import serving
from stockday.stock_symbol.context import SymbolContext, build_context
from stockday.stock_symbol.errors import install_stock_error_handlers
from stockday.stock_symbol.routes import logos, moderation, stocks, uploads
from stockday.stocks.base import StockRepository


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Close the adapters (and the price client the app made) on shutdown."""
    yield
    context: SymbolContext = app.state.context
    await context.aclose()


def create_app(
    settings: Settings | None = None,
    *,
    price_client: httpx.AsyncClient | None = None,
    repository: StockRepository | None = None,
) -> FastAPI:
    """Wire adapters from settings and build the app.

    The context is built here, not in the lifespan: misconfiguration then fails at once, and
    in-process callers (httpx's ASGITransport) serve requests without running the lifespan.
    """
    settings = settings or get_settings()
    context = build_context(settings, price_client, repository)
    app = FastAPI(
        title="stock-symbol",
        version="1",
        description="Owns the stocks: create, read, list, delete, random pick, logo state.",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(traced=bool(settings.otlp_endpoint)),
    )
    app.state.context = context
    serving.install_service_runtime(
        app, settings, service="stock-symbol", readiness_checks=context.readiness_checks
    )
    install_stock_error_handlers(app)
    # Moderation first: /api/stocks/recent must not be taken for a stock's symbol.
    serving.include_routes(app, moderation.router, uploads.router, stocks.router, logos.router)
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``."""
    return serving.app_from_environment("stock-symbol", create_app)
