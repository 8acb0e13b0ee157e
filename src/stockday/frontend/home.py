"""The home page: a random stock with its chart, the most viewed page of the site.

A series changes once a day, so a page view asks stock-symbol for the (small) stock alone, and
for its series only when this worker does not keep its chart: parsing and drawing 100 points is
the largest own cost of a page view. The page's HTML is kept too, by what it shows: rendering
it is the next largest cost, the random pick coming from a prefetched batch. A page with a
per-request part (a CSRF token) is never kept.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from stockday.cache.memory import BoundedMap
from stockday.clients.stock_symbol import SymbolClient
from stockday.contracts.stocks import StockOut
from stockday.domain.prices import Interval
from stockday.frontend import security
from stockday.frontend.chart import DEFAULT_INTERVAL, Chart
from stockday.frontend.picks import RandomPicks
from stockday.frontend.rendering import PAGE_HEADERS
from stockday.frontend.service import chart_context, chart_of

CHART_TTL_SECONDS = 300.0
MISSING_CHART_TTL_SECONDS = 10.0  # no series (stock-price down): ask again soon, not every view
MAX_CHARTS = 4096
HOME_PAGE_TTL_SECONDS = CHART_TTL_SECONDS
MAX_HOME_PAGES = 256


def shown(stock: StockOut) -> tuple[object, ...]:
    """Everything ``stock`` carries, as a hashable value (the contract models are not).

    Its parts (logo, price) hold plain values; built without a model dump, which costs more.
    """
    return tuple(
        [
            tuple(value.__dict__.values()) if isinstance(value, BaseModel) else value
            for value in stock.__dict__.values()
        ]
    )


class HomePages:
    """One worker's home pages: the pick, its chart and its HTML, each kept while valid."""

    def __init__(
        self, symbols: SymbolClient, picks: RandomPicks, templates: Jinja2Templates
    ) -> None:
        self.symbols = symbols
        self.picks = picks
        self.template = templates.get_template("home.html")
        self.charts: BoundedMap[tuple[str, Interval], tuple[Chart | None]] = BoundedMap(MAX_CHARTS)
        self.pages: BoundedMap[tuple[tuple[object, ...], Interval, Chart | None], bytes] = (
            BoundedMap(MAX_HOME_PAGES)
        )

    async def stock(self, symbol: str) -> StockOut | None:
        """The stock asked for by ``symbol`` if there is one, else a random pick (None: none)."""
        stock = await self.symbols.get_stock(symbol[:32]) if symbol.strip() else None
        if stock is None:
            return await self.picks.next()
        return stock

    async def chart(self, symbol: str, interval: Interval) -> Chart | None:
        cached = self.charts.get((symbol, interval))
        if cached is not None:
            return cached[0]
        with_series = await self.symbols.get_stock(symbol, series=interval)
        chart = chart_of(with_series, interval) if with_series is not None else None
        ttl = CHART_TTL_SECONDS if chart is not None else MISSING_CHART_TTL_SECONDS
        self.charts.put((symbol, interval), (chart,), ttl)
        return chart

    def page(
        self, request: Request, stock: StockOut, chosen: Interval, chart: Chart | None
    ) -> Response:
        """The home page of ``stock``: rendered once per worker for what it shows."""
        key = (shown(stock), chosen, chart)
        body = self.pages.get(key)
        if body is not None:
            return HTMLResponse(body, headers=PAGE_HEADERS)

        def link(other: Interval) -> str:
            return "/?" + urlencode({"symbol": stock.symbol, "interval": other}) + "#chart"

        another = "/" if chosen == DEFAULT_INTERVAL else "/?" + urlencode({"interval": chosen})
        tokens = 0

        def csrf_token() -> str:
            nonlocal tokens
            tokens += 1
            return security.token_for(request)

        context = {
            "stock": stock,
            "nav": "home",
            "another": another,
            "flash": None,
            "csrf_token": csrf_token,
            **chart_context(chart, chosen, link),
        }
        body = self.template.render(context).encode()
        if tokens == 0:  # nothing on it belongs to this request alone
            self.pages.put(key, body, HOME_PAGE_TTL_SECONDS)
        response = HTMLResponse(body, headers=PAGE_HEADERS)
        security.set_cookie_if_new(request, response)
        return response
