"""How stock-price answers its errors, and how its OpenAPI documents them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stockday.domain.stocks import InvalidStock
from stockday.marketdata.base import ProviderError, RateLimited, UnknownSymbol
from stockday.runtime.web.errors import ErrorOut, error_response

log = logging.getLogger("stockday.stock_price")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "The provider has no data for this symbol."},
    422: {"model": ErrorOut, "description": "Invalid symbol or interval."},
    503: {
        "model": ErrorOut,
        "description": "The provider failed; `Retry-After` is set when it is rate limited.",
    },
}


async def invalid_symbol(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, str(exc))


async def unknown_symbol(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc) or "the market-data provider has no data for this symbol")


async def provider_failed(request: Request, exc: Exception) -> JSONResponse:
    name = request.app.state.provider.name
    detail = str(exc) or f"the market-data provider ({name}) failed"
    log.warning("%s failed for %s: %s", name, request.url.path, detail)
    if isinstance(exc, RateLimited):
        return error_response(503, detail, headers={"Retry-After": str(exc.retry_after_seconds)})
    return error_response(503, detail)


def install_price_error_handlers(app: FastAPI) -> None:
    """Invalid symbol 422, no data 404, provider failure 503 (with Retry-After if limited)."""
    app.add_exception_handler(InvalidStock, invalid_symbol)
    app.add_exception_handler(UnknownSymbol, unknown_symbol)
    app.add_exception_handler(ProviderError, provider_failed)
