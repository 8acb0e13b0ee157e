"""JSON shapes of the stock-price API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field

from stockday.domain.prices import Interval
from stockday.domain.stocks import Price


class PriceFigures(BaseModel):
    """What a price says besides its value, spelled alike by both APIs."""

    previous_close: float
    change: float
    change_percent: float
    as_of: dt.date
    source: str
    currency: str

    @staticmethod
    def fields_of(price: Price) -> dict[str, Any]:
        # The domain's Price owns the change arithmetic, so every service rounds alike.
        return {
            "previous_close": price.previous_close,
            "change": price.change,
            "change_percent": price.change_percent,
            "as_of": price.as_of,
            "source": price.source,
            "currency": price.currency,
        }


class QuoteOut(PriceFigures):
    symbol: str
    price: float

    @classmethod
    def of(cls, symbol: str, price: Price) -> QuoteOut:
        return cls(symbol=symbol, price=price.value, **PriceFigures.fields_of(price))

    def to_price(self) -> Price:
        """The quote as the domain's price (fresh)."""
        return Price(
            value=self.price,
            previous_close=self.previous_close,
            as_of=self.as_of,
            source=self.source,
            currency=self.currency,
        )


class BarOut(BaseModel):
    date: Annotated[dt.date, Field(description="Trading day; for weekly/monthly the last one.")]
    open: float
    high: float
    low: float
    close: float
    volume: int


class SeriesOut(BaseModel):
    symbol: str
    interval: Interval
    source: str
    bars: Annotated[list[BarOut], Field(description="Oldest first.")]
