"""The frontend's use cases: what each page shows, adding and deleting stocks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.datastructures import UploadFile

from stockday.clients.stock_symbol import (
    AlreadyExists,
    Refused,
    SymbolClient,
    SymbolServiceUnavailable,
)
from stockday.contracts.stocks import StockOut, StockWithSeriesOut
from stockday.domain.prices import Interval
from stockday.frontend.chart import INTERVAL_LABELS, INTERVALS, Chart, ChartTab, build_chart
from stockday.frontend.forms import StockForm
from stockday.frontend.picks import RandomPicks
from stockday.frontend.rendering import stock_path
from stockday.frontend.views import logo_src

log = logging.getLogger("stockday.frontend")

WATCHLIST_PAGE_SIZE = 50

SortKey = Literal["symbol", "name", "price", "change"]
SORT_KEYS: tuple[SortKey, ...] = ("symbol", "name", "price", "change")


class FormRejected(Exception):
    """The add-stock form comes back to the visitor with its errors, answered with ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def chart_of(stock: StockWithSeriesOut, interval: Interval) -> Chart | None:
    """The chart of the series that came with the stock (None when none came)."""
    if stock.series is None or stock.series.interval != interval:
        return None
    return build_chart(interval, [(p.date, p.close) for p in stock.series.points])


def chart_context(
    chart: Chart | None, interval: Interval, link: Callable[[Interval], str]
) -> dict[str, Any]:
    """What the chart partial needs: the chart (None when there is none) and its tabs."""
    tabs = [ChartTab(i, INTERVAL_LABELS[i], link(i), i == interval) for i in INTERVALS]
    return {"chart": chart, "chart_tabs": tabs, "interval": interval}


def sort_stocks(items: Sequence[StockOut], key: SortKey, descending: bool) -> list[StockOut]:
    """One page of stocks in the order asked for; stocks without a price always come last."""
    if key == "symbol":
        return sorted(items, key=lambda s: s.symbol, reverse=descending)
    if key == "name":
        return sorted(items, key=lambda s: (s.name.casefold(), s.symbol), reverse=descending)
    priced = [(s, s.price) for s in items if s.price is not None]
    unpriced = [s for s in items if s.price is None]
    if key == "price":
        priced.sort(key=lambda pair: pair[1].value, reverse=descending)
    else:
        priced.sort(key=lambda pair: pair[1].change_percent, reverse=descending)
    return [stock for stock, _ in priced] + unpriced


def watchlist_link(**query: str) -> str:
    return "/watchlist?" + urlencode(query)


class Watchlist:
    """One page of the watchlist, sorted as the visitor asked, with its links."""

    def __init__(
        self, listing_items: Sequence[StockOut], cursor: str | None, sort: str, order: str
    ):
        self.key: SortKey = next((k for k in SORT_KEYS if k == sort), "symbol")
        self.descending = order == "desc"
        self.cursor = cursor
        self.items = sort_stocks(listing_items, self.key, self.descending)

    def sort_link(self, column: SortKey) -> str:
        flip = column == self.key and not self.descending
        query = {"sort": column, "order": "desc" if flip else "asc"}
        return watchlist_link(**query, **({"cursor": self.cursor} if self.cursor else {}))

    @property
    def sorting(self) -> dict[str, str]:
        return {"sort": self.key, "order": "desc" if self.descending else "asc"}


class StockSite:
    """The use cases of the pages, over the stock-symbol client."""

    def __init__(self, symbols: SymbolClient, picks: RandomPicks, logo_origins: Sequence[str]):
        self.symbols = symbols
        self.picks = picks
        self.logo_origins = tuple(logo_origins)

    async def stock_page(self, symbol: str, interval: Interval) -> dict[str, Any] | None:
        """What the stock page shows, or None when there is no such stock."""
        stock = await self.symbols.get_stock(symbol, series=interval)
        if stock is None:
            return None
        path = stock_path(stock.symbol)

        def link(other: Interval) -> str:
            return f"{path}?{urlencode({'interval': other})}#chart"

        chart = chart_of(stock, interval)
        return {"stock": stock, "nav": ""} | chart_context(chart, interval, link)

    async def watchlist(self, cursor: str | None, sort: str, order: str) -> dict[str, Any]:
        """One page of the watchlist; raises Refused for a page link stock-symbol rejects."""
        listing = await self.symbols.list_stocks(cursor=cursor, limit=WATCHLIST_PAGE_SIZE)
        page = Watchlist(listing.items, cursor, sort, order)
        sorting = page.sorting
        return {
            "listing": listing,
            "items": page.items,
            "sort": page.key,
            "descending": page.descending,
            "sort_link": page.sort_link,
            "next_link": (
                watchlist_link(cursor=listing.next_cursor, **sorting)
                if listing.next_cursor
                else None
            ),
            "first_link": watchlist_link(**sorting),
            "first_page": not cursor,
            "nav": "watchlist",
        }

    async def stock(self, symbol: str) -> StockOut | None:
        return await self.symbols.get_stock(symbol)

    async def logo_state(self, symbol: str) -> dict[str, str | None] | None:
        """The logo's state, as the stock page's script polls it; None when there is no stock."""
        stock = await self.symbols.get_stock(symbol)
        if stock is None:
            return None
        src = logo_src(stock.logo, self.logo_origins)
        return {"state": stock.logo.state, "src": src, "error": stock.logo.error}

    async def add_stock(self, form: StockForm, file: UploadFile | str | None) -> StockOut:
        """Create the stock of a submitted form, uploading its file first when it came along
        (a browser without script sends the file itself).

        Raises FormRejected (the reasons in ``form.errors``) or SymbolServiceUnavailable.
        """
        if not form.check_rules():
            raise FormRejected(422)
        if not form.upload_id and isinstance(file, UploadFile) and file.filename:
            data = await file.read()
            if data:
                try:
                    form.upload_id = await self.symbols.upload_file(
                        file.filename, data, file.content_type or "application/octet-stream"
                    )
                except Refused as refused:
                    form.errors.update(refused.messages)
                    raise FormRejected(refused.status) from refused
        try:
            stock = await self.symbols.create_stock(
                symbol=form.symbol,
                name=form.name,
                upload_id=form.upload_id or None,
                idempotency_key=form.idempotency_key,
            )
        except AlreadyExists as exists:
            form.errors.update(exists.messages)
            form.existing = exists.existing
            raise FormRejected(409) from exists
        except Refused as refused:
            form.errors.update(refused.messages)
            if "upload_id" in refused.messages:
                form.upload_id = ""  # the upload is unusable; let the visitor pick a file again
            raise FormRejected(refused.status) from refused
        self.picks.forget()  # the new stock may be the next pick here at once
        return stock

    async def discard_upload(self, upload_id: str) -> bool:
        """Delete the upload of a form refused here; False if kept (a stock links it, or
        stock-symbol is down: the janitor then sweeps it after the retention)."""
        try:
            return await self.symbols.discard_upload(upload_id)
        except SymbolServiceUnavailable as exc:
            log.warning("upload %s of a refused form not deleted: %s", upload_id, exc)
            return False

    async def delete_stock(self, symbol: str) -> None:
        """Delete a stock; deleting one that is gone already is not an error."""
        await self.symbols.delete_stock(symbol)
        self.picks.forget()  # nor is it shown here once more

    async def set_hidden(self, symbol: str, hidden: bool) -> StockOut | None:
        """Hide a stock from the random pick, or show it; None when there is no such stock."""
        stock = await self.symbols.set_hidden(symbol, hidden)
        self.picks.forget()  # this replica's prefetched picks may hold it
        return stock
