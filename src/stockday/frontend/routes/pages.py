"""The pages people read most: home and the watchlist."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from stockday.clients.stock_symbol import Refused
from stockday.frontend.chart import parse_interval
from stockday.frontend.deps import PagesDep, SiteDep, frontend_of
from stockday.runtime.web.serving import PlainRoute

router = APIRouter()


async def home(request: Request) -> Response:
    """A random stock with its chart, or an invitation to add the first one.

    ``?symbol=`` keeps the stock on screen while the visitor switches the chart's interval
    (``?interval=``).
    """
    frontend = frontend_of(request)
    query = request.query_params
    chosen = parse_interval(query.get("interval"))
    stock = await frontend.home.stock(query.get("symbol", ""))
    if stock is None:
        return frontend.pages.page(request, "empty.html", {"nav": "home"})
    chart = await frontend.home.chart(stock.symbol, chosen)
    return frontend.home.page(request, stock, chosen, chart)


# Most of the site's traffic, served by a plain Starlette route: FastAPI's request handling
# (parameter and dependency solving, its exit stacks) would cost more than the page view's own
# work, for two optional query strings and the context that the lifespan stored on the app.
router.routes.append(PlainRoute("/", home, methods=["GET"]))


@router.get("/watchlist", response_class=HTMLResponse)
async def watchlist(
    request: Request,
    pages: PagesDep,
    site: SiteDep,
    cursor: str | None = None,
    sort: str = "symbol",
    order: str = "asc",
) -> Response:
    """All stocks, a page at a time by symbol; each page sorted as the visitor asks."""
    try:
        context = await site.watchlist(cursor, sort, order)
    except Refused:
        return pages.error_page(
            request,
            400,
            "Page link not valid",
            "That watchlist page link is not valid.",
            link=("/watchlist", "First page of the watchlist"),
        )
    return pages.page_with_flash(request, "watchlist.html", context, "/watchlist")
