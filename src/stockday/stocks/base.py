"""The stock repository port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stockday.domain.errors import BackendUnavailable
from stockday.domain.stocks import Stock

__all__ = [
    "BackendUnavailable",
    "StockExists",
    "StockNotFound",
    "StockPage",
    "StockRepository",
    "VersionConflict",
]


class StockExists(Exception):
    """A stock with this symbol is already stored."""

    def __init__(self, existing: Stock) -> None:
        super().__init__(f"stock {existing.symbol} already exists")
        self.existing = existing


class StockNotFound(Exception):
    def __init__(self, symbol: str) -> None:
        super().__init__(f"no stock with symbol {symbol}")
        self.symbol = symbol


class VersionConflict(Exception):
    """The stored stock changed since it was read (optimistic locking)."""

    def __init__(self, symbol: str, expected: int) -> None:
        super().__init__(f"stock {symbol} is no longer at version {expected}")
        self.symbol = symbol
        self.expected = expected


@dataclass(frozen=True, slots=True)
class StockPage:
    items: list[Stock]
    next_cursor: str | None


class StockRepository(Protocol):
    """Stores stocks by symbol.

    ``random`` is uniform over the visible stocks and costs the same however many there are;
    ``update`` is a conditional write on the version the caller read. A hidden stock (see
    ``set_hidden``) is out of ``random``, ``list`` and ``count``, and still found by ``get``.
    """

    async def add(self, stock: Stock) -> None:
        """Store a new stock; raise StockExists if the symbol is taken."""

    async def get(self, symbol: str) -> Stock | None: ...

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> StockPage:
        """Visible stocks ordered by symbol, ``limit`` at a time; pass ``next_cursor`` for the
        next page."""

    async def recent(self, *, limit: int = 50) -> Sequence[Stock]:
        """The ``limit`` stocks added last, newest first, hidden ones included (moderation)."""

    async def update(self, stock: Stock, *, expected_version: int) -> None:
        """Replace the stored stock if it is still at ``expected_version``.

        Raises VersionConflict when it is not, StockNotFound when it is gone.
        """

    async def delete(self, symbol: str) -> Stock | None:
        """Remove a stock; return what was removed, or None."""

    async def set_hidden(self, symbol: str, hidden: bool) -> Stock | None:
        """Take a stock out of the random pick and the listing, or put it back; idempotent.

        Returns the stock as now stored, or None when there is no such stock.
        """

    async def count(self) -> int:
        """How many visible stocks there are (the random pick draws among them)."""

    async def random(self) -> Stock | None:
        """A uniformly random visible stock, or None when there are none."""

    async def check(self) -> None:
        """Raise BackendUnavailable with a one-line reason if the store is not usable."""

    async def close(self) -> None: ...
