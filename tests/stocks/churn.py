"""The churn several replicas or processes put one stock repository through at once."""

from __future__ import annotations

import contextlib

from stockday.domain.stocks import Stock
from stockday.stocks.base import StockExists, StockRepository


async def churn(repository: StockRepository, worker: int, rounds: int) -> None:
    """Add ``rounds`` stocks of this worker's own, race the others to add one SHARED stock,
    delete every third own stock again, and pick a random stock after each round."""
    for i in range(rounds):
        await repository.add(Stock.new(f"W{worker}N{i}", f"Worker {worker} number {i}"))
        with contextlib.suppress(StockExists):
            await repository.add(Stock.new("SHARED", f"from worker {worker}"))
        if i % 3 == 0:
            await repository.delete(f"W{worker}N{i}")
        assert await repository.random() is not None
