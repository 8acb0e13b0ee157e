"""Operators' use cases: hide and show stocks, recent additions, dead letters and their re-drive.

stock-symbol trusts whoever can reach it (only the frontend and queue-worker can: see
docs/security.md); the frontend is what checks that an operator is asking.
"""

from __future__ import annotations

from collections.abc import Mapping

from stockday.contracts.stocks import (
    DeadLetterOut,
    DeadLetters,
    QueueDeadLetters,
    RecentStocks,
    Redriven,
    StockOut,
)
from stockday.domain.stocks import normalize_symbol
from stockday.queues.base import MessageQueue
from stockday.stock_symbol.presenter import StockPresenter
from stockday.stocks.base import StockNotFound, StockRepository

DEAD_LETTER_PAGE = 20
BODY_SHOWN = 500


class UnknownQueue(LookupError):
    """A dead-letter call names a queue this service does not know."""


class Moderation:
    """Over the stock repository and every queue's dead letters."""

    def __init__(
        self,
        *,
        repository: StockRepository,
        presenter: StockPresenter,
        queues: Mapping[str, MessageQueue],
    ) -> None:
        self._repository = repository
        self._presenter = presenter
        self._queues = dict(queues)

    async def set_hidden(self, symbol: str, hidden: bool) -> StockOut:
        """Hide a stock from the random pick and the listing, or show it again (idempotent)."""
        symbol = normalize_symbol(symbol)
        stock = await self._repository.set_hidden(symbol, hidden)
        if stock is None:
            raise StockNotFound(symbol)
        return await self._presenter.present(stock, with_price=False)

    async def recent(self, limit: int) -> RecentStocks:
        stocks = await self._repository.recent(limit=limit)
        return RecentStocks(
            items=[await self._presenter.present(s, with_price=False) for s in stocks]
        )

    async def dead_letters(self) -> DeadLetters:
        """Every queue's count of dead letters and the oldest of them, with their reasons."""
        queues = []
        for name, queue in self._queues.items():
            stats = await queue.stats()
            letters = await queue.dead_letters(limit=DEAD_LETTER_PAGE)
            items = [
                DeadLetterOut(
                    message_id=letter.message_id,
                    receive_count=letter.receive_count,
                    dead_at=letter.dead_at,
                    reason=letter.reason,
                    body=letter.body[:BODY_SHOWN],
                )
                for letter in letters
            ]
            queues.append(
                QueueDeadLetters(queue=name, dead_letters=stats.dead_letters, items=items)
            )
        return DeadLetters(queues=queues)

    async def redrive(self, queue_name: str) -> Redriven:
        """Move a queue's dead letters back to it for another try."""
        queue = self._queues.get(queue_name)
        if queue is None:
            raise UnknownQueue(f"no queue {queue_name!r}; the queues are {sorted(self._queues)}")
        return Redriven(queue=queue_name, moved=await queue.redrive())
