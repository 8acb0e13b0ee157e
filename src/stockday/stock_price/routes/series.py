"""Series: price bars of a symbol at a daily, weekly or monthly interval."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from stockday.contracts.prices import SeriesOut
from stockday.domain.prices import Interval
from stockday.runtime.web.params import SymbolPath
from stockday.stock_price.deps import PriceServiceDep
from stockday.stock_price.errors import ERROR_RESPONSES

router = APIRouter()

IntervalQuery = Annotated[Interval, Query(description="daily, weekly or monthly")]


@router.get("/api/series/{symbol}", response_model=SeriesOut, responses=ERROR_RESPONSES)
async def get_series(
    symbol: SymbolPath,
    prices: PriceServiceDep,
    interval: IntervalQuery = Interval.DAILY,
) -> SeriesOut:
    """Price bars of a symbol, oldest first."""
    return await prices.series(symbol, interval)
