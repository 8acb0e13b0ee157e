"""Quotes: the latest price of a symbol."""

from __future__ import annotations

from fastapi import APIRouter

from stockday.contracts.prices import QuoteOut
from stockday.runtime.web.params import SymbolPath
from stockday.stock_price.deps import PriceServiceDep
from stockday.stock_price.errors import ERROR_RESPONSES

router = APIRouter()


@router.get("/api/quotes/{symbol}", response_model=QuoteOut, responses=ERROR_RESPONSES)
async def get_quote(symbol: SymbolPath, prices: PriceServiceDep) -> QuoteOut:
    """The latest quote of a symbol."""
    return await prices.quote(symbol)
