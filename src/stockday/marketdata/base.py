"""The market-data provider port: quotes and price series from an upstream provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from stockday.domain.prices import Interval


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    price: float
    previous_close: float
    as_of: date
    source: str
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: int


class ProviderError(Exception):
    """The provider failed or answered something unusable (answered with 503)."""


class RateLimited(ProviderError):
    """The provider refused because of its rate limit."""

    def __init__(self, message: str, retry_after_seconds: int = 60) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class UnknownSymbol(Exception):
    """The provider has no data for this symbol (answered with 404)."""


class MarketDataProvider(Protocol):
    name: str

    async def quote(self, symbol: str) -> Quote: ...

    async def series(self, symbol: str, interval: Interval) -> list[Bar]:
        """Bars oldest first."""

    async def close(self) -> None: ...
