"""Dependencies of stock-symbol's routes, read from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stockday.stock_symbol.context import SymbolContext
from stockday.stock_symbol.moderation import Moderation
from stockday.stock_symbol.service import StockService


# Async, so FastAPI calls it on the event loop instead of hopping to its thread pool.
async def get_stock_service(request: Request) -> StockService:
    context: SymbolContext = request.app.state.context
    return context.service


StockServiceDep = Annotated[StockService, Depends(get_stock_service)]


async def get_moderation(request: Request) -> Moderation:
    context: SymbolContext = request.app.state.context
    return context.moderation


ModerationDep = Annotated[Moderation, Depends(get_moderation)]
