"""Operators' calls: hide or show a stock, recent additions, dead letters and their re-drive.

Internal like every route here: only the frontend (which checks the operator's session) and
queue-worker can reach stock-symbol.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from stockday.contracts.stocks import DeadLetters, RecentStocks, Redriven, StockOut, Visibility
from stockday.runtime.web.params import SymbolPath
from stockday.stock_symbol.deps import ModerationDep
from stockday.stock_symbol.errors import documented

router = APIRouter()


@router.get("/api/stocks/recent", response_model=RecentStocks, responses=documented(422))
async def recent_stocks(
    moderation: ModerationDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> RecentStocks:
    """The stocks added last, newest first, hidden ones included."""
    return await moderation.recent(limit)


@router.put(
    "/api/stocks/{symbol}/visibility", response_model=StockOut, responses=documented(400, 404, 422)
)
async def change_visibility(
    symbol: SymbolPath, body: Visibility, moderation: ModerationDep
) -> StockOut:
    """Hide a stock from the random pick and the listing, or show it again; idempotent."""
    return await moderation.set_hidden(symbol, body.hidden)


@router.get("/api/dead-letters", response_model=DeadLetters)
async def dead_letters(moderation: ModerationDep) -> DeadLetters:
    """Every queue's dead letters: how many, and the oldest with the reason they died."""
    return await moderation.dead_letters()


@router.post(
    "/api/dead-letters/{queue}/redrive", response_model=Redriven, responses=documented(404)
)
async def redrive(queue: str, moderation: ModerationDep) -> Redriven:
    """Move a queue's dead letters back to it for another try."""
    return await moderation.redrive(queue)
