"""Dependencies of stock-price's routes, read from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stockday.stock_price.service import PriceService


# Async, so FastAPI calls it on the event loop instead of hopping to its thread pool.
async def get_price_service(request: Request) -> PriceService:
    service: PriceService = request.app.state.prices
    return service


PriceServiceDep = Annotated[PriceService, Depends(get_price_service)]
