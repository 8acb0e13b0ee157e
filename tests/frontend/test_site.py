"""The site's features: charts, the live logo state, confirmations, a sortable watchlist, delete."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from stockday.domain.stocks import logo_key
from stockday.frontend.chart import VERTICAL_PADDING, VIEW_HEIGHT, build_chart, parse_interval
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.frontend.site import Site, closed_port, form_fields, running_site, submit, upload_png
from tests.support.operators import log_in
from tests.support.stocks import add_stock_with_a_known_price

pytestmark = pytest.mark.anyio

CHART_FIGURE = re.compile(
    r'<figure class="chart-figure chart-(up|down|flat)" data-interval="(\w+)"'
)
CURRENT_TAB = re.compile(r'data-interval="(\w+)" aria-current="true"')


async def add(site: Site, symbol: str, name: str | None = None) -> None:
    created = await site.symbol_api.post(
        "/api/stocks", json={"symbol": symbol, "name": name or symbol}
    )
    assert created.status_code == 201, created.text


# --- chart -------------------------------------------------------------------------------------


def test_chart_geometry() -> None:
    start = date(2026, 1, 5)
    points = [(start + timedelta(days=i), close) for i, close in enumerate([10.0, 20.0, 15.0])]
    chart = build_chart("daily", points)
    assert chart is not None
    bottom = VIEW_HEIGHT - VERTICAL_PADDING
    assert chart.line == f"0,{bottom} 500,{VERTICAL_PADDING} 1000,{VIEW_HEIGHT // 2}"
    assert chart.area == f"M0,{VIEW_HEIGHT} L{chart.line.replace(' ', ' L')} L1000,{VIEW_HEIGHT} Z"
    assert (chart.low, chart.high, chart.first, chart.last) == (10.0, 20.0, 10.0, 15.0)
    assert chart.direction == "up"
    assert chart.change_percent == pytest.approx(50.0)
    assert (chart.first_day, chart.last_day, chart.count) == (start, points[-1][0], 3)


def test_a_flat_series_is_a_line_across_the_middle_and_one_point_is_no_chart() -> None:
    day = date(2026, 1, 5)
    flat = build_chart("weekly", [(day, 5.0), (day + timedelta(days=7), 5.0)])
    assert flat is not None
    assert flat.line == "0,150 1000,150"
    assert flat.direction == "flat"
    assert build_chart("daily", [(day, 5.0)]) is None
    assert build_chart("daily", []) is None


def test_unknown_intervals_fall_back_to_daily() -> None:
    assert parse_interval("weekly") == "weekly"
    assert parse_interval("WEEKLY") == "daily"
    assert parse_interval(None) == "daily"
    assert parse_interval("'><svg") == "daily"


async def test_home_shows_a_daily_chart_with_tabs_that_keep_the_stock(site: Site) -> None:
    await add(site, "CHRT", "Chart Co")
    home = await site.browser.get("/")
    assert home.status_code == 200
    figure = CHART_FIGURE.search(home.text)
    assert figure is not None and figure.group(2) == "daily"
    assert CURRENT_TAB.findall(home.text) == ["daily"]
    assert 'role="img" aria-labelledby="chart-title"' in home.text
    assert '<title id="chart-title">CHRT closing prices, daily</title>' in home.text
    assert re.search(r"100 trading days from <time", home.text)
    assert 'href="/?symbol=CHRT&amp;interval=weekly#chart"' in home.text
    assert 'href="/">Show me another' in home.text

    weekly = await site.browser.get("/", params={"symbol": "CHRT", "interval": "weekly"})
    figure = CHART_FIGURE.search(weekly.text)
    assert figure is not None and figure.group(2) == "weekly"
    assert CURRENT_TAB.findall(weekly.text) == ["weekly"]
    assert "104 weeks from" in weekly.text
    # Another stock keeps the chosen interval.
    assert 'href="/?interval=weekly">Show me another' in weekly.text


async def test_home_with_an_unknown_symbol_shows_a_random_stock(site: Site) -> None:
    await add(site, "REAL", "Real Co")
    home = await site.browser.get("/", params={"symbol": "GONE", "interval": "monthly"})
    assert home.status_code == 200
    assert '<a href="/stocks/REAL">REAL</a>' in home.text
    assert CURRENT_TAB.findall(home.text) == ["monthly"]


async def test_the_stock_page_switches_its_chart(site: Site) -> None:
    await add(site, "SWCH")
    for interval, count in (("daily", "100 trading days"), ("monthly", "60 months")):
        page = await site.browser.get("/stocks/SWCH", params={"interval": interval})
        figure = CHART_FIGURE.search(page.text)
        assert figure is not None and figure.group(2) == interval
        assert count in page.text
        assert f'href="/stocks/SWCH?interval={interval}#chart"' in page.text


async def test_without_a_series_the_page_still_renders_without_a_chart(tmp_path: Path) -> None:
    dead_prices = httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}")
    async with dead_prices, running_site(Settings(data_dir=tmp_path), dead_prices) as site:
        await add(site, "NOSR", "No Series")
        for path in ("/", "/stocks/NOSR", "/stocks/NOSR?interval=weekly"):
            page = await site.browser.get(path)
            assert page.status_code == 200, path
            assert "The price chart is not available right now." in page.text
            assert "<svg" not in page.text
            assert "No price is known for this stock yet." in page.text


# --- live logo ---------------------------------------------------------------------------------


async def test_logo_state_answers_pending_then_ready(site: Site) -> None:
    upload_id = await upload_png(site.browser)
    assert (await submit(site.browser, "LIVE", "Live Logo", upload_id)).status_code == 303
    pending = await site.browser.get("/stocks/live/logo-state")
    assert pending.status_code == 200
    assert pending.headers["cache-control"] == "no-store"
    assert pending.json() == {"state": "pending", "src": None, "error": None}

    key = logo_key("LIVE", upload_id)
    objects = composition.object_store(site.settings)
    await objects.put(key, b"RIFF....WEBP", content_type="image/webp")
    await objects.close()
    await site.symbol_api.put(
        "/api/stocks/LIVE/logo", json={"upload_id": upload_id, "state": "ready", "key": key}
    )
    ready = (await site.browser.get("/stocks/LIVE/logo-state")).json()
    assert ready == {"state": "ready", "src": f"/logos/LIVE/{upload_id}.webp", "error": None}

    page = await site.browser.get("/stocks/LIVE")
    assert "logo.js" not in page.text  # nothing left to wait for
    assert "data-logo-state-url" not in page.text

    missing = await site.browser.get("/stocks/NOPE/logo-state")
    assert missing.status_code == 404
    assert missing.json()["detail"]


# --- confirmations, watchlist, delete ----------------------------------------------------------


async def test_the_confirmation_after_adding_shows_once(site: Site) -> None:
    created = await submit(site.browser, "ONCE", "Once Only")
    assert created.status_code == 303
    assert "Path=/stocks/ONCE" in created.headers["set-cookie"]
    first = await site.browser.get("/stocks/ONCE")
    assert "ONCE was added to the watchlist." in first.text
    again = await site.browser.get("/stocks/ONCE")
    assert "was added" not in again.text


async def test_a_forged_confirmation_cookie_shows_nothing(site: Site) -> None:
    await add(site, "FAKE")
    site.browser.cookies.set("stockday_flash", "added:<b>x</b>")
    page = await site.browser.get("/stocks/FAKE")
    assert 'class="flash"' not in page.text


async def test_the_watchlist_sorts_a_page_by_any_column(site: Site) -> None:
    for symbol, name in (("AAA", "zebra corp"), ("BBB", "Apple"), ("CCC", "mango")):
        await add(site, symbol, name)

    def order(html: str) -> list[str]:
        return re.findall(r'<tr data-symbol="([^"]+)">', html)

    default = await site.browser.get("/watchlist")
    assert order(default.text) == ["AAA", "BBB", "CCC"]
    assert re.search(r'<th scope="col" aria-sort="ascending">\s*<a class="sort-link"', default.text)

    by_name = await site.browser.get("/watchlist", params={"sort": "name"})
    assert order(by_name.text) == ["BBB", "CCC", "AAA"]  # case-insensitive
    assert 'href="/watchlist?sort=name&amp;order=desc"' in by_name.text  # activate to reverse
    by_name_desc = await site.browser.get("/watchlist", params={"sort": "name", "order": "desc"})
    assert order(by_name_desc.text) == ["AAA", "CCC", "BBB"]
    assert 'aria-sort="descending"' in by_name_desc.text

    listing = (await site.symbol_api.get("/api/stocks")).json()["items"]
    by_price = sorted(listing, key=lambda s: s["price"]["value"], reverse=True)
    priced = await site.browser.get("/watchlist", params={"sort": "price", "order": "desc"})
    assert order(priced.text) == [s["symbol"] for s in by_price]
    by_change = sorted(listing, key=lambda s: s["price"]["change_percent"])
    changed = await site.browser.get("/watchlist", params={"sort": "change"})
    assert order(changed.text) == [s["symbol"] for s in by_change]

    ignored = await site.browser.get("/watchlist", params={"sort": "volume", "order": "up"})
    assert order(ignored.text) == ["AAA", "BBB", "CCC"]


async def test_the_next_page_keeps_the_sort_order(site: Site) -> None:
    for i in range(51):
        await add(site, f"S{i:02d}")
    first = await site.browser.get("/watchlist", params={"sort": "symbol", "order": "desc"})
    assert "sorting applies to this page" in first.text
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link is not None
    assert "sort=symbol&amp;order=desc" in next_link.group(1)
    second = await site.browser.get(next_link.group(1).replace("&amp;", "&"))
    assert re.findall(r'<tr data-symbol="([^"]+)">', second.text) == ["S50"]


async def test_delete_asks_first_then_deletes_and_confirms(site: Site) -> None:
    await add(site, "BYE", "Goodbye Inc.")
    watchlist = await site.browser.get("/watchlist")
    assert 'href="/stocks/BYE/delete">Delete<span class="visually-hidden"> BYE</span>' in (
        watchlist.text
    )
    stock_page = await site.browser.get("/stocks/BYE")
    assert 'href="/stocks/BYE/delete"' in stock_page.text

    assert (await log_in(site.browser)).status_code == 303
    confirm = await site.browser.get("/stocks/bye/delete")
    assert confirm.status_code == 200
    assert "Delete BYE?" in confirm.text
    assert '<form method="post" action="/stocks/BYE/delete"' in confirm.text
    assert (await site.symbol_api.get("/api/stocks/BYE")).status_code == 200  # not yet

    fields = await form_fields(site.browser, "/stocks/BYE/delete")
    deleted = await site.browser.post("/stocks/BYE/delete", data=fields, follow_redirects=False)
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/watchlist"
    assert (await site.symbol_api.get("/api/stocks/BYE")).status_code == 404
    after = await site.browser.get("/watchlist")
    assert "BYE is no longer on the watchlist." in after.text
    assert 'data-symbol="BYE"' not in after.text

    # A second submit (a double click, a back button) is not an error.
    again = await site.browser.post("/stocks/BYE/delete", data=fields, follow_redirects=False)
    assert again.status_code == 303
    assert (await site.browser.get("/stocks/BYE/delete")).status_code == 404


async def test_stale_and_simulated_prices_are_marked(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    await add_stock_with_a_known_price(settings)
    dead_prices = httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}")
    async with dead_prices, running_site(settings, dead_prices) as site:
        home = await site.browser.get("/")
        assert 'class="badge badge-stale"' in home.text
        assert 'class="badge badge-simulated"' in home.text
        assert '<time datetime="2026-11-20">' in home.text
        assert "The price chart is not available right now." in home.text
        watchlist = await site.browser.get("/watchlist")
        row = re.search(r'<tr data-symbol="OLD">.*?</tr>', watchlist.text, re.S)
        assert row is not None
        assert 'class="badge badge-stale"' in row.group(0)
        # "Simulated" is said once for the page, not on every row.
        assert 'class="badge badge-simulated"' not in row.group(0)
        assert re.search(r'Prices: <span class="badge badge-simulated"', watchlist.text)
