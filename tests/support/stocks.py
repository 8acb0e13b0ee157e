"""Stocks stored before a service starts, for the tests of what the services make of them."""

from __future__ import annotations

from datetime import date

from stockday.domain.stocks import Price, Stock
from stockday.runtime import composition
from stockday.runtime.settings import Settings

LAST_KNOWN = Price(value=12.5, previous_close=12.0, as_of=date(2026, 11, 20), source="simulated")


async def add_stock_with_a_known_price(
    settings: Settings, symbol: str = "OLD", name: str = "Old Price Co"
) -> None:
    """Stock ``symbol`` in the repository of ``settings``, its last known price ``LAST_KNOWN``
    (simulated, of 2026-11-20)."""
    repository = composition.stock_repository(settings)
    stock = Stock.new(symbol, name)
    await repository.add(stock)
    await repository.update(stock.with_price(LAST_KNOWN), expected_version=1)
    await repository.close()
