"""The home page's prefetched random picks: uniform, independent, fresh, and failing as before."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from scipy.stats import chisquare

from stockday.clients.stock_symbol import SymbolServiceUnavailable
from stockday.contracts.stocks import StockOut
from stockday.frontend.app import create_app as create_frontend_app
from stockday.frontend.picks import RandomPicks
from stockday.runtime.settings import Settings
from tests.frontend.site import (
    Site,
    browsing,
    browsing_without_stock_symbol,
    form_fields,
    running_site,
)
from tests.support.operators import log_in
from tests.support.seeded import seeded_stocks

pytestmark = pytest.mark.anyio

SHOWN = re.compile(r'<h1 class="symbol"><a href="/stocks/([A-Z0-9.-]+)">')


def view(symbol: str) -> StockOut:
    return StockOut.model_validate(stock_json(symbol))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Drawer:
    """A fake stock-symbol: uniform draws over ``stocks``, every draw recorded in order."""

    def __init__(self, stocks: list[str], seed: int = 7) -> None:
        self.stocks = stocks
        self.rng = random.Random(seed)
        self.drawn: list[StockOut] = []
        self.calls: list[int] = []
        self.fail: Exception | None = None
        self.failed = asyncio.Event()

    async def __call__(self, count: int) -> list[StockOut]:
        self.calls.append(count)
        await asyncio.sleep(0)  # a real call yields to the other page views
        if self.fail is not None:
            self.failed.set()
            raise self.fail
        batch = [view(self.rng.choice(self.stocks)) for _ in range(count)] if self.stocks else []
        self.drawn += batch
        return batch


async def test_every_draw_is_served_once_in_order_so_the_picks_are_uniform_and_independent() -> (
    None
):
    stocks = [f"S{i}" for i in range(6)]
    drawer = Drawer(stocks)
    picks = RandomPicks(drawer, batch_size=32, max_age_seconds=60.0)
    served: list[StockOut] = []
    for _ in range(100):  # bursts of concurrent page views, as under load
        burst = await asyncio.gather(*(picks.next() for _ in range(37)))
        served += [p for p in burst if p is not None]
    assert len(served) == 3700
    # No pick is served twice or skipped: the page views get the draws themselves, in order.
    assert [id(p) for p in served] == [id(p) for p in drawer.drawn[: len(served)]]
    assert len(drawer.calls) < len(served) / 10  # most page views made no call
    counts = Counter(p.symbol for p in served)
    assert chisquare([counts[s] for s in stocks]).pvalue > 0.001, counts
    follows = Counter(itertools.pairwise(p.symbol for p in served))
    assert chisquare([follows[pair] for pair in itertools.product(stocks, repeat=2)]).pvalue > (
        0.001
    ), follows


async def test_a_pick_older_than_max_age_is_never_served() -> None:
    clock = Clock()
    drawer = Drawer(["OLD", "GONE"])
    picks = RandomPicks(drawer, batch_size=32, max_age_seconds=1.0, clock=clock)
    await picks.next()
    assert picks.queued > 0
    drawer.stocks = ["NEW"]  # GONE deleted and OLD renamed: stock-symbol now draws NEW only
    clock.now += 0.999
    assert (await picks.next()) is not None  # still within the bound: may be an old draw
    clock.now += 0.002
    shown = {(await picks.next()).symbol for _ in range(200)}  # type: ignore[union-attr]
    assert shown == {"NEW"}


async def test_a_quiet_worker_draws_a_few_at_a_time_a_busy_one_full_batches() -> None:
    clock = Clock()
    drawer = Drawer(["Q"])
    picks = RandomPicks(drawer, batch_size=40, max_age_seconds=1.0, clock=clock)
    for _ in range(3):
        await picks.next()
        clock.now += 5.0
    assert drawer.calls == [4, 4, 4]
    for _ in range(400):
        await picks.next()
    assert drawer.calls[-1] == 40


async def test_forget_drops_the_queue_and_the_batch_in_flight() -> None:
    drawer = Drawer(["KEPT", "DELETED"])
    picks = RandomPicks(drawer, batch_size=32, max_age_seconds=60.0)
    await picks.next()
    drawer.stocks = ["KEPT"]
    picks.forget()
    assert picks.queued == 0
    assert {(await picks.next()).symbol for _ in range(100)} == {"KEPT"}  # type: ignore[union-attr]


async def test_no_stocks_is_none_and_is_not_remembered() -> None:
    drawer = Drawer([])
    picks = RandomPicks(drawer, batch_size=32, max_age_seconds=60.0)
    assert await asyncio.gather(*(picks.next() for _ in range(5))) == [None] * 5
    drawer.stocks = ["FIRST"]  # the first stock is shown on the very next page view
    first = await picks.next()
    assert first is not None and first.symbol == "FIRST"


async def test_a_failed_batch_fails_the_waiting_page_views_and_the_next_view_asks_again() -> None:
    drawer = Drawer(["UP"])
    drawer.fail = SymbolServiceUnavailable("stock-symbol down")
    picks = RandomPicks(drawer, batch_size=8, max_age_seconds=60.0)
    results = await asyncio.gather(*(picks.next() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, SymbolServiceUnavailable) for r in results)
    assert len(drawer.calls) == 1  # the waiting page views shared the one call
    drawer.fail = None
    back = await picks.next()
    assert back is not None and back.symbol == "UP"


async def test_a_failed_background_refill_leaves_the_queue_in_use() -> None:
    drawer = Drawer(["BG"])
    picks = RandomPicks(drawer, batch_size=8, max_age_seconds=60.0)
    await picks.next()  # a batch of 4: 3 queued, under half of 8, so a refill starts
    drawer.fail = SymbolServiceUnavailable("stock-symbol down")
    await asyncio.wait_for(drawer.failed.wait(), 5)  # the background refill fails
    drawer.fail = None
    assert [(await picks.next()).symbol for _ in range(10)] == ["BG"] * 10  # type: ignore[union-attr]


async def test_a_visitor_who_leaves_does_not_cancel_the_batch_others_wait_for() -> None:
    release, asked = asyncio.Event(), asyncio.Event()

    async def slow(count: int) -> list[StockOut]:
        asked.set()
        await release.wait()
        return [view("SLOW")] * count

    picks = RandomPicks(slow, batch_size=8, max_age_seconds=60.0)
    leaving = asyncio.create_task(picks.next())
    staying = asyncio.create_task(picks.next())
    await asyncio.wait_for(asked.wait(), 5)  # both views run before this task resumes
    leaving.cancel()
    release.set()
    stayed = await staying
    assert stayed is not None and stayed.symbol == "SLOW"


async def test_without_max_age_every_page_view_asks_for_its_own_pick() -> None:
    drawer = Drawer(["ONE"])
    picks = RandomPicks(drawer, batch_size=32, max_age_seconds=0.0)
    for _ in range(3):
        await picks.next()
    assert drawer.calls == [1, 1, 1]
    assert picks.queued == 0


# --- through the site, with the real stock-symbol ---------------------------------------------


async def add(site: Site, *symbols: str) -> None:
    for symbol in symbols:
        created = await site.symbol_api.post("/api/stocks", json={"symbol": symbol, "name": symbol})
        assert created.status_code == 201, created.text


async def shown(site: Site) -> str:
    home = await site.browser.get("/")
    assert home.status_code == 200
    match = SHOWN.search(home.text)
    assert match is not None, home.text
    return match.group(1)


async def test_home_page_views_are_uniform_over_all_stocks(site: Site) -> None:
    symbols = ("HA", "HB", "HC", "HD")
    await add(site, *symbols)
    counts = Counter([await shown(site) for _ in range(1200)])
    assert chisquare([counts[s] for s in symbols]).pvalue > 0.001, counts


async def test_a_stock_deleted_elsewhere_is_gone_from_the_home_page_within_max_age(
    tmp_path: Path,
) -> None:
    max_age = 0.3
    settings = Settings(data_dir=tmp_path, random_pick_max_age_seconds=max_age)
    async with running_site(settings, repository=seeded_stocks(settings)) as site:
        await add(site, "STAY", "DROP")
        assert {await shown(site) for _ in range(60)} == {"STAY", "DROP"}
        # Deleted through the API, as another worker or replica would: this worker is not told.
        deleted = await site.symbol_api.delete("/api/stocks/DROP")
        assert deleted.status_code == 204
        gone_by = time.monotonic() + max_age
        while time.monotonic() < gone_by:  # until then an earlier draw may still show it
            await asyncio.sleep(0.05)
        assert {await shown(site) for _ in range(200)} == {"STAY"}


async def test_a_stock_deleted_here_is_never_shown_again(site: Site) -> None:
    await add(site, "MINE", "OURS")
    assert {await shown(site) for _ in range(60)} == {"MINE", "OURS"}
    await log_in(site.browser)
    fields = await form_fields(site.browser, "/stocks/OURS/delete")
    deleted = await site.browser.post("/stocks/OURS/delete", data=fields, follow_redirects=False)
    assert deleted.status_code == 303
    assert {await shown(site) for _ in range(100)} == {"MINE"}


def stock_json(symbol: str, *, price: dict[str, object] | None = None) -> dict[str, object]:
    """A stock as stock-symbol answers it."""
    return {
        "symbol": symbol,
        "name": symbol,
        "version": 1,
        "logo": {"state": "none", "upload_id": None, "url": None, "error": None},
        "price": price,
        "created_at": "2026-01-02T10:00:00Z",
        "updated_at": "2026-01-02T10:00:00Z",
    }


def priced_json(symbol: str, *, value: float, stale: bool) -> dict[str, object]:
    price = {
        "value": value,
        "previous_close": 10.0,
        "change": value - 10.0,
        "change_percent": (value - 10.0) * 10,
        "as_of": "2026-01-02",
        "source": "simulated",
        "currency": "USD",
        "stale": stale,
    }
    return stock_json(symbol, price=price)


async def test_kept_home_pages_follow_the_price_and_its_stale_mark(settings: Settings) -> None:
    answer = {"value": 12.5, "stale": False}

    def stock_symbol(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/stocks/random-picks":
            count = int(request.url.params["count"])
            return httpx.Response(200, json={"items": [priced_json("KEPT", **answer)] * count})
        return httpx.Response(404, json={"detail": "no series here"})

    fake = httpx.AsyncClient(transport=httpx.MockTransport(stock_symbol), base_url="http://sym")
    quick = settings.model_copy(update={"random_pick_max_age_seconds": 0.0})
    async with fake, browsing(create_frontend_app(quick, symbol_client=fake)) as browser:
        first, again = await browser.get("/"), await browser.get("/")
        assert first.text == again.text  # the same stock and price: the kept page
        assert "12.50" in first.text and "badge-stale" not in first.text
        assert first.headers["x-request-id"] != again.headers["x-request-id"]
        for page in (first, again):
            assert page.headers["cache-control"] == "no-store"
            assert "script-src 'self'" in page.headers["content-security-policy"]
        answer.update(value=11.0, stale=True)  # stock-price down: the last known price
        stale = await browser.get("/")
        assert "11.00" in stale.text and "badge-stale" in stale.text


async def test_home_page_views_answer_503_while_stock_symbol_is_down(settings: Settings) -> None:
    async with browsing_without_stock_symbol(settings) as browser:
        pages = await asyncio.gather(*(browser.get("/") for _ in range(10)))
        assert [p.status_code for p in pages] == [503] * 10
        assert all("stock service is unavailable" in p.text for p in pages)
