"""JSON shapes of the stock-symbol API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stockday.contracts.prices import PriceFigures
from stockday.contracts.rules import publish_name_rule, publish_symbol_rule
from stockday.domain.prices import Interval
from stockday.domain.stocks import LogoState, Price, Stock


class StockCreate(BaseModel):
    """A new stock. The domain's rules decide (422 saying why); the schema publishes them."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(max_length=32, examples=["AAPL"], json_schema_extra=publish_symbol_rule)
    name: str = Field(examples=["Apple Inc."], json_schema_extra=publish_name_rule)
    upload_id: str | None = Field(default=None, max_length=64, pattern=r"^[0-9a-f]{32}$")


class LogoUpdate(BaseModel):
    """Link a new upload (``pending``), or report the resize result (``ready``/``failed``)."""

    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(max_length=64, pattern=r"^[0-9a-f]{32}$")
    state: Literal["pending", "ready", "failed"] = "pending"
    key: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, max_length=500)


class LogoOut(BaseModel):
    state: LogoState
    upload_id: str | None
    url: str | None
    error: str | None


class PriceOut(PriceFigures):
    value: float
    stale: bool

    @classmethod
    def of(cls, price: Price) -> PriceOut:
        return cls(value=price.value, stale=price.stale, **PriceFigures.fields_of(price))


class StockOut(BaseModel):
    symbol: str
    name: str
    version: int
    logo: LogoOut
    price: PriceOut | None
    created_at: datetime
    updated_at: datetime
    hidden: bool = Field(
        default=False, description="Left out of the random pick and the listing by an operator."
    )

    @classmethod
    def of(cls, stock: Stock, price: Price | None, logo_url: str | None) -> StockOut:
        return cls(
            symbol=stock.symbol,
            name=stock.name,
            version=stock.version,
            logo=LogoOut(
                state=stock.logo.state,
                upload_id=stock.logo.upload_id,
                url=logo_url,
                error=stock.logo.error,
            ),
            price=PriceOut.of(price) if price else None,
            created_at=stock.created_at,
            updated_at=stock.updated_at,
            hidden=stock.hidden,
        )


class SeriesPointOut(BaseModel):
    date: date
    close: float


class SeriesOut(BaseModel):
    """Closing prices for a chart, oldest first."""

    symbol: str
    interval: Interval
    source: str
    points: list[SeriesPointOut] = Field(description="Oldest first.")


class StockWithSeriesOut(StockOut):
    series: SeriesOut | None = Field(
        default=None,
        description="The series asked for with `?series=`; null when not asked or unavailable.",
    )


class Visibility(BaseModel):
    """Whether a stock is hidden from the random pick and the listing (an operator's call)."""

    model_config = ConfigDict(extra="forbid")

    hidden: bool


class RecentStocks(BaseModel):
    """The stocks added last, newest first, hidden ones included: what operators moderate."""

    items: list[StockOut]


class DeadLetterOut(BaseModel):
    message_id: str
    receive_count: int
    dead_at: datetime
    reason: str
    body: str = Field(description="The message body, cut to 500 characters.")


class QueueDeadLetters(BaseModel):
    queue: str
    dead_letters: int = Field(description="How many dead letters the queue has (approximate).")
    items: list[DeadLetterOut] = Field(description="The oldest dead letters, at most a page.")


class DeadLetters(BaseModel):
    queues: list[QueueDeadLetters]


class Redriven(BaseModel):
    queue: str
    moved: int


class RandomPicks(BaseModel):
    """Independent uniform draws over all visible stocks (a stock may come more than once)."""

    items: list[StockOut] = Field(
        description="Each item an independent uniformly random stock with its price; "
        "empty when there are no stocks."
    )


class StockList(BaseModel):
    items: list[StockOut]
    next_cursor: str | None
    total: int


class DirectUploadOut(BaseModel):
    """Post the file as the last field of a multipart form with ``fields`` to ``url``."""

    upload_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


class UploadOut(BaseModel):
    upload_id: str
    content_type: str
    width: int
    height: int
    size: int
