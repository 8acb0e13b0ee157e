"""Price series through stock-symbol: fetched from stock-price, cached, and never a failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app

pytestmark = pytest.mark.anyio


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes requests on to stock-price in-process and remembers their paths."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


@dataclass
class Api:
    client: httpx.AsyncClient
    price_calls: CountingTransport

    def series_calls(self) -> list[str]:
        return [path for path in self.price_calls.paths if path.startswith("/api/series/")]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path)
    counting = CountingTransport(httpx.ASGITransport(app=create_price_app(settings)))
    async with httpx.AsyncClient(transport=counting, base_url="http://price") as prices:
        app = create_symbol_app(settings, price_client=prices)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://symbol"
        ) as client:
            yield Api(client, counting)


async def test_a_series_is_closing_prices_oldest_first(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "SER", "name": "Series"})
    for interval, count in (("daily", 100), ("weekly", 104), ("monthly", 60)):
        response = await api.client.get("/api/stocks/ser", params={"series": interval})
        assert response.status_code == 200
        series = response.json()["series"]
        assert (series["symbol"], series["interval"], series["source"]) == (
            "SER",
            interval,
            "simulated",
        )
        assert len(series["points"]) == count
        days = [point["date"] for point in series["points"]]
        assert days == sorted(days)
        assert all(point["close"] > 0 for point in series["points"])


async def test_a_series_is_cached(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "CCH", "name": "Cached"})
    first = await api.client.get("/api/stocks/CCH", params={"series": "weekly"})
    again = await api.client.get("/api/stocks/CCH", params={"series": "weekly"})
    random = await api.client.get("/api/stocks/random", params={"series": "weekly"})
    assert first.json()["series"] == again.json()["series"] == random.json()["series"]
    assert api.series_calls() == ["/api/series/CCH"]


async def test_a_series_comes_only_when_asked_for(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "EMB", "name": "Embedded"})
    plain = (await api.client.get("/api/stocks/EMB")).json()
    assert plain["series"] is None
    assert plain["price"]["value"] > 0
    assert api.series_calls() == []  # not asked, not fetched
    random = (await api.client.get("/api/stocks/random", params={"series": "monthly"})).json()
    assert random["symbol"] == "EMB"
    assert random["price"]["value"] > 0
    assert random["series"]["interval"] == "monthly"
    assert len(random["series"]["points"]) == 60
    listing = (await api.client.get("/api/stocks")).json()
    assert "series" not in listing["items"][0]


async def test_an_unknown_interval_is_422(api: Api) -> None:
    await api.client.post("/api/stocks", json={"symbol": "BAD", "name": "Bad"})
    for path in ("/api/stocks/BAD", "/api/stocks/random"):
        response = await api.client.get(path, params={"series": "hourly"})
        assert response.status_code == 422, path
        assert "series" in response.json()["detail"]


async def test_without_stock_price_a_stock_comes_without_a_series(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, price_url="http://127.0.0.1:9", http_timeout_seconds=0.5)
    app = create_symbol_app(settings)  # its price client points at a closed port
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        await c.post("/api/stocks", json={"symbol": "DOWN", "name": "Down"})
        for path in ("/api/stocks/DOWN", "/api/stocks/random"):
            stock = await c.get(path, params={"series": "daily"})
            assert stock.status_code == 200
            assert stock.json()["series"] is None
            assert stock.json()["price"] is None
