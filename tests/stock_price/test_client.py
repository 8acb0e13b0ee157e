"""The stock-price client: typed answers from the real app, and its breaker around failures."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from stockday.clients.stock_price import StockPriceClient, StockPriceUnavailable
from stockday.contracts.prices import QuoteOut, SeriesOut
from stockday.domain.prices import Interval
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app

pytestmark = pytest.mark.anyio


def client_with(handler: Callable[[httpx.Request], httpx.Response]) -> StockPriceClient:
    return StockPriceClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://price")
    )


def always(status: int, body: object) -> tuple[StockPriceClient, list[str]]:
    """A client of a stock-price that answers every request with ``status`` and JSON ``body``,
    and the paths it was asked for."""
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(status, json=body)

    return client_with(answer), calls


async def test_answers_of_the_real_app_parse_into_the_contract_models() -> None:
    app = create_app(Settings(alpha_vantage_api_key=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://price") as http:
        prices = StockPriceClient(http)
        quote = await prices.quote("AAPL")
        series = await prices.series("AAPL", Interval.WEEKLY)
    assert isinstance(quote, QuoteOut)
    assert quote.symbol == "AAPL"
    assert quote.to_price().change == pytest.approx(quote.change)
    assert isinstance(series, SeriesOut)
    assert series.interval is Interval.WEEKLY
    assert series.bars == sorted(series.bars, key=lambda bar: bar.date)


async def test_no_data_is_none_and_not_a_failure() -> None:
    prices, calls = always(404, {"detail": "no data"})
    assert await prices.quote("NOPE") is None
    assert await prices.series("NOPE", Interval.DAILY) is None
    assert calls == ["/api/quotes/NOPE", "/api/series/NOPE"]


async def test_one_failed_call_opens_the_breaker_and_the_next_call_is_skipped() -> None:
    prices, calls = always(503, {"detail": "provider down"})
    with pytest.raises(StockPriceUnavailable, match="503"):
        await prices.quote("AAPL")
    with pytest.raises(StockPriceUnavailable):
        await prices.quote("AAPL")
    assert calls == ["/api/quotes/AAPL"]


async def test_an_unreadable_answer_fails_the_call_but_not_the_breaker() -> None:
    prices, calls = always(200, {"price": "not a number"})
    for _ in range(2):
        with pytest.raises(StockPriceUnavailable, match="unreadable"):
            await prices.quote("AAPL")
    assert len(calls) == 2


async def test_a_connection_failure_is_unavailable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(StockPriceUnavailable, match="ConnectError"):
        await client_with(answer).quote("AAPL")
