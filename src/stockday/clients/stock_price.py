"""A typed async client of the stock-price JSON API, answering contracts.prices models."""

from __future__ import annotations

import logging
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from stockday.contracts.prices import QuoteOut, SeriesOut
from stockday.domain.prices import Interval
from stockday.runtime.resilience import Breaker, BreakerOpen

log = logging.getLogger("stockday.clients.stock_price")

M = TypeVar("M", bound=BaseModel)

# After a failed call, skip stock-price for this long: a dead dependency must cost
# microseconds per page view, not a timeout each time.
FAILURE_BACKOFF_SECONDS = 5.0


class StockPriceUnavailable(Exception):
    """stock-price failed, was skipped (its breaker is open) or answered something unusable."""


class _UnhealthyAnswer(Exception):
    """stock-price answered, but with an error status: a failure for its breaker."""


class StockPriceClient:
    """Calls stock-price under a circuit breaker; 404 (no data) is None, failures raise.

    Calls are not retried: one failure opens the breaker, so a page never waits on a dead
    stock-price twice in a row. The timeout is the one of the given httpx client.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._breaker = Breaker("stock-price", threshold=1, ttl_seconds=FAILURE_BACKOFF_SECONDS)

    async def quote(self, symbol: str) -> QuoteOut | None:
        """The latest quote of ``symbol``; None when stock-price has no data for it."""
        return await self._get(f"/api/quotes/{quote(symbol, safe='')}", QuoteOut)

    async def series(self, symbol: str, interval: Interval) -> SeriesOut | None:
        """Price bars of ``symbol``, oldest first; None when stock-price has no data for it."""
        path = f"/api/series/{quote(symbol, safe='')}"
        return await self._get(path, SeriesOut, params={"interval": interval.value})

    async def _get(
        self, path: str, model: type[M], params: dict[str, str] | None = None
    ) -> M | None:
        try:
            async with self._breaker.guard():
                response = await self._http.get(path, params=params)
                if response.status_code not in (200, 404):
                    raise _UnhealthyAnswer(f"answered {response.status_code}")
        except BreakerOpen as exc:
            raise StockPriceUnavailable(str(exc)) from exc
        except httpx.HTTPError as exc:
            log.warning("stock-price unreachable for %s: %s", path, type(exc).__name__)
            raise StockPriceUnavailable(f"unreachable: {type(exc).__name__}") from exc
        except _UnhealthyAnswer as exc:
            log.warning("stock-price %s for %s", exc, path)
            raise StockPriceUnavailable(str(exc)) from exc
        if response.status_code == 404:
            return None
        # An unreadable answer is not a failure for the breaker: stock-price did answer.
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            log.warning("stock-price answered an unreadable %s for %s", model.__name__, path)
            raise StockPriceUnavailable(f"unreadable answer ({exc.error_count()} errors)") from exc
