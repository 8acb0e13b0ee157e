"""stock-price in-process (httpx.ASGITransport), with a scripted provider or the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
import pytest
from fastapi import FastAPI

from stockday.marketdata.alphavantage import AlphaVantageProvider
from stockday.marketdata.base import (
    Bar,
    Interval,
    MarketDataProvider,
    ProviderError,
    Quote,
    RateLimited,
    UnknownSymbol,
)
from stockday.marketdata.simulated import SimulatedProvider
from stockday.runtime.settings import Settings
from stockday.stock_price import app as price_app
from stockday.stock_price.app import create_app
from stockday.stock_price.memo import TtlMemo
from tests.marketdata.alphavantage_stub import API_KEY, AlphaVantageStub
from tests.support.clock import FakeClock

pytestmark = pytest.mark.anyio

AS_OF = date(2026, 11, 23)
QUOTE_KEYS = {
    "symbol",
    "price",
    "previous_close",
    "change",
    "change_percent",
    "as_of",
    "source",
    "currency",
}
BAR_KEYS = {"date", "open", "high", "low", "close", "volume"}


@dataclass
class ScriptedProvider:
    """Knows AAPL; raises ``failure`` when set; records every call."""

    name: str = "scripted"
    failure: Exception | None = None
    calls: list[tuple[str, ...]] = field(default_factory=list)
    closed: bool = False

    async def quote(self, symbol: str) -> Quote:
        self.calls.append(("quote", symbol))
        self._check(symbol)
        return Quote(symbol, 101.5, 100.0, AS_OF, self.name)

    async def series(self, symbol: str, interval: Interval) -> list[Bar]:
        self.calls.append(("series", symbol, str(interval)))
        self._check(symbol)
        return [
            Bar(AS_OF - timedelta(days=n), 10.0, 11.0, 9.0, 10.5, 1000 + n) for n in (3, 2, 1, 0)
        ]

    async def close(self) -> None:
        self.closed = True

    def _check(self, symbol: str) -> None:
        if self.failure is not None:
            raise self.failure
        if symbol != "AAPL":
            raise UnknownSymbol(f"no data for {symbol}")


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def api(scripted: ScriptedProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(Settings(), provider=scripted)) as client:
        yield client


@pytest.fixture
async def simulated_api() -> AsyncIterator[tuple[httpx.AsyncClient, SimulatedProvider]]:
    provider = SimulatedProvider(today=lambda: AS_OF)
    async with client_for(create_app(Settings(), provider=provider)) as client:
        yield client, provider


async def test_quote_shape(
    simulated_api: tuple[httpx.AsyncClient, SimulatedProvider],
) -> None:
    client, provider = simulated_api
    response = await client.get("/api/quotes/AAPL")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == QUOTE_KEYS
    quote = await provider.quote("AAPL")
    assert body["symbol"] == "AAPL"
    assert body["price"] == quote.price
    assert body["previous_close"] == quote.previous_close
    assert body["change"] == round(quote.price - quote.previous_close, 4)
    expected_percent = (quote.price - quote.previous_close) / quote.previous_close * 100
    assert body["change_percent"] == pytest.approx(expected_percent, abs=1e-4)
    assert body["as_of"] == AS_OF.isoformat()
    assert body["source"] == "simulated"
    assert body["currency"] == "USD"


async def test_change_is_computed(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/quotes/AAPL")).json()
    assert (body["price"], body["previous_close"]) == (101.5, 100.0)
    assert (body["change"], body["change_percent"]) == (1.5, 1.5)


@pytest.mark.parametrize("interval", list(Interval))
async def test_series_shape(
    simulated_api: tuple[httpx.AsyncClient, SimulatedProvider], interval: Interval
) -> None:
    client, provider = simulated_api
    response = await client.get("/api/series/MSFT", params={"interval": interval.value})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"symbol", "interval", "source", "bars"}
    assert (body["symbol"], body["interval"], body["source"]) == ("MSFT", interval, "simulated")
    expected = await provider.series("MSFT", interval)
    assert len(body["bars"]) == len(expected)
    assert all(set(bar) == BAR_KEYS for bar in body["bars"])
    dates = [bar["date"] for bar in body["bars"]]
    assert dates == sorted(dates)
    assert body["bars"][-1] == {
        "date": expected[-1].day.isoformat(),
        "open": expected[-1].open,
        "high": expected[-1].high,
        "low": expected[-1].low,
        "close": expected[-1].close,
        "volume": expected[-1].volume,
    }


async def test_series_default_to_daily(api: httpx.AsyncClient, scripted: ScriptedProvider) -> None:
    body = (await api.get("/api/series/AAPL")).json()
    assert body["interval"] == "daily"
    assert scripted.calls == [("series", "AAPL", "daily")]
    assert body["bars"][0]["date"] == (AS_OF - timedelta(days=3)).isoformat()


async def test_symbols_are_normalized_before_the_provider_sees_them(
    api: httpx.AsyncClient, scripted: ScriptedProvider
) -> None:
    response = await api.get("/api/quotes/aapl")
    assert response.status_code == 200
    assert response.json()["symbol"] == "AAPL"
    assert scripted.calls == [("quote", "AAPL")]


@pytest.mark.parametrize(
    "symbol", ["%20aapl%20", "%C3%9F", "%C4%B1bm", "%EF%BC%A1"], ids=["spaces", "ss", "ibm", "wide"]
)
async def test_a_symbol_is_ascii_as_sent_never_mapped_to_another(
    api: httpx.AsyncClient, scripted: ScriptedProvider, symbol: str
) -> None:
    response = await api.get(f"/api/quotes/{symbol}")
    assert response.status_code == 422
    assert "is not a ticker" in response.json()["detail"]
    assert scripted.calls == []  # nothing was mapped to another symbol


@pytest.mark.parametrize("path", ["/api/quotes/MSFT", "/api/series/MSFT?interval=weekly"])
async def test_unknown_symbol_is_404(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "no data for MSFT"}


@pytest.mark.parametrize("path", ["/api/quotes/1BAD", "/api/series/$$$?interval=daily"])
async def test_invalid_symbol_is_422_with_a_sentence(
    api: httpx.AsyncClient, scripted: ScriptedProvider, path: str
) -> None:
    response = await api.get(path)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "is not a ticker" in detail
    assert scripted.calls == []


async def test_invalid_interval_is_422(api: httpx.AsyncClient, scripted: ScriptedProvider) -> None:
    response = await api.get("/api/series/AAPL", params={"interval": "hourly"})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("invalid request: query.interval:")
    [problem] = body["errors"]
    assert problem["loc"] == ["query", "interval"]
    assert "daily" in problem["msg"]
    assert scripted.calls == []


@pytest.mark.parametrize("path", ["/api/quotes/AAPL", "/api/series/AAPL?interval=monthly"])
async def test_provider_failure_is_503(
    api: httpx.AsyncClient, scripted: ScriptedProvider, path: str
) -> None:
    scripted.failure = ProviderError("Alpha Vantage answered HTTP 500")
    response = await api.get(path)
    assert response.status_code == 503
    assert response.json() == {"detail": "Alpha Vantage answered HTTP 500"}
    assert "retry-after" not in response.headers


@pytest.mark.parametrize("path", ["/api/quotes/AAPL", "/api/series/AAPL"])
async def test_rate_limit_is_503_with_retry_after(
    api: httpx.AsyncClient, scripted: ScriptedProvider, path: str
) -> None:
    scripted.failure = RateLimited("rate limit reached", retry_after_seconds=120)
    response = await api.get(path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "120"
    assert response.json() == {"detail": "rate limit reached"}


async def test_answers_are_memoized(api: httpx.AsyncClient, scripted: ScriptedProvider) -> None:
    for _ in range(3):
        assert (await api.get("/api/quotes/aapl")).status_code == 200
        assert (await api.get("/api/series/AAPL?interval=weekly")).status_code == 200
    assert (await api.get("/api/series/AAPL?interval=monthly")).status_code == 200
    assert scripted.calls == [
        ("quote", "AAPL"),
        ("series", "AAPL", "weekly"),
        ("series", "AAPL", "monthly"),
    ]


async def test_failures_are_not_memoized(
    api: httpx.AsyncClient, scripted: ScriptedProvider
) -> None:
    scripted.failure = ProviderError("down")
    assert (await api.get("/api/quotes/AAPL")).status_code == 503
    scripted.failure = None
    assert (await api.get("/api/quotes/AAPL")).status_code == 200
    assert len(scripted.calls) == 2


async def test_probes_answer_while_the_provider_fails(
    api: httpx.AsyncClient, scripted: ScriptedProvider
) -> None:
    scripted.failure = ProviderError("down")
    ping = await api.get("/api/ping")
    assert ping.status_code == 200
    assert ping.json()["service"] == "stock-price"
    ready = await api.get("/api/ready")
    assert ready.status_code == 200
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "stockday_http_requests_total" in metrics.text


async def test_alpha_vantage_rate_limit_end_to_end() -> None:
    with AlphaVantageStub() as stub:
        settings = Settings(alpha_vantage_api_key=API_KEY, alpha_vantage_url=stub.url)
        app = create_app(settings)
        assert isinstance(app.state.provider, AlphaVantageProvider)
        async with app.router.lifespan_context(app), client_for(app) as client:
            limited = await client.get("/api/quotes/RATE")
            quote = await client.get("/api/quotes/IBM")
            series = await client.get("/api/series/IBM?interval=weekly")
    assert limited.status_code == 503
    assert limited.headers["retry-after"] == "60"
    assert "rate limit" in limited.json()["detail"]
    assert API_KEY not in limited.text
    assert quote.status_code == 200
    assert quote.json()["source"] == "alphavantage"
    assert series.json()["source"] == "alphavantage"
    assert len(series.json()["bars"]) == 104


async def test_without_a_key_the_provider_is_simulated() -> None:
    app = create_app(Settings(alpha_vantage_api_key=None))
    assert isinstance(app.state.provider, SimulatedProvider)
    async with client_for(app) as client:
        assert (await client.get("/api/quotes/AAPL")).json()["source"] == "simulated"


async def test_the_app_closes_the_provider_it_built_and_only_that(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = ScriptedProvider()

    def build(settings: Settings) -> MarketDataProvider:
        return built

    monkeypatch.setattr(price_app, "build_provider", build)
    owned = create_app(Settings())
    async with owned.router.lifespan_context(owned):
        assert not built.closed
    assert built.closed

    given = ScriptedProvider()
    borrowed = create_app(Settings(), provider=given)
    async with borrowed.router.lifespan_context(borrowed):
        pass
    assert not given.closed


async def test_app_factory_builds_the_service() -> None:
    app = price_app.app_factory()
    assert app.title == "stock-price"
    await app.state.provider.close()


async def test_memo_expires_entries() -> None:
    clock = FakeClock()
    memo = TtlMemo(clock=clock)
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    assert await memo.get("k", 60, load) == 1
    clock.now += 59
    assert await memo.get("k", 60, load) == 1
    clock.now += 2
    assert await memo.get("k", 60, load) == 2


async def test_memo_is_bounded_least_recently_used_first() -> None:
    memo = TtlMemo(max_entries=2)

    async def value(v: str) -> str:
        return v

    await memo.get("a", 60, lambda: value("a"))
    await memo.get("b", 60, lambda: value("b"))
    await memo.get("a", 60, lambda: value("a-again"))  # a is now the most recent
    await memo.get("c", 60, lambda: value("c"))
    assert len(memo) == 2
    assert await memo.get("a", 60, lambda: value("a-reloaded")) == "a"
    assert await memo.get("b", 60, lambda: value("b-reloaded")) == "b-reloaded"


class SuspendingLoad:
    """A memo's load that counts its calls (``calls``) and suspends, as a real load does (the
    other callers arrive meanwhile), then gives ``"value"`` or, if ``failing``, raises."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.failing:
            raise ProviderError("down")
        return "value"


async def test_memo_shares_one_load_between_concurrent_misses() -> None:
    memo = TtlMemo()
    load = SuspendingLoad()
    results = await asyncio.gather(*(memo.get("k", 60, load) for _ in range(10)))
    assert results == ["value"] * 10
    assert load.calls == 1


async def test_memo_shares_failures_but_does_not_keep_them() -> None:
    memo = TtlMemo()
    failing = SuspendingLoad(failing=True)
    results = await asyncio.gather(
        *(memo.get("k", 60, failing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, ProviderError) for r in results)
    assert failing.calls == 1
    assert len(memo) == 0
    with pytest.raises(ProviderError):
        await memo.get("k", 60, failing)
    assert failing.calls == 2


async def test_memo_load_survives_a_caller_that_gives_up() -> None:
    memo = TtlMemo()
    gate = asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await gate.wait()
        return "value"

    quitter = asyncio.ensure_future(memo.get("k", 60, load))
    stayer = asyncio.ensure_future(memo.get("k", 60, load))
    while loads == 0:
        await asyncio.sleep(0)
    quitter.cancel()
    gate.set()
    assert await stayer == "value"
    assert loads == 1
    assert quitter.cancelled()
