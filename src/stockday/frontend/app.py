"""frontend: server-rendered pages; it owns no data, all of it comes from stock-symbol."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jinja2
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive

from stockday.cache.memory import BoundedMap
from stockday.clients.stock_symbol import (
    GENERAL,
    AlreadyExists,
    Refused,
    StockView,
    SymbolClient,
    SymbolServiceUnavailable,
)
from stockday.frontend import security
from stockday.frontend.chart import (
    DEFAULT_INTERVAL,
    INTERVAL_LABELS,
    INTERVALS,
    Chart,
    Interval,
    build_chart,
    parse_interval,
)
from stockday.frontend.picks import RandomPicks
from stockday.runtime.logs import configure_logging
from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import configure_tracing
from stockday.runtime.web.errors import error_response
from stockday.runtime.web.observability import install_observability

log = logging.getLogger("stockday.frontend")

PACKAGE = "stockday.frontend"
WATCHLIST_PAGE_SIZE = 50
MAX_TEXT_FIELD = 1000
# Logo keys are immutable (a new logo gets a new upload id), so browsers may keep them a year.
LOGO_CACHE_CONTROL = "public, max-age=31536000, immutable"
LOGO_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_LOGO_PATH = 256
RETRY_AFTER_SECONDS = "5"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# A delete form carries a token and nothing else.
SMALL_FORM_BYTES = 4096
# Logos are served only as the image types the resizer writes; anything else is a download.
LOGO_TYPES = frozenset({"image/webp", "image/png", "image/jpeg", "image/gif"})

# Pages are dynamic (home is a random pick); the security headers come from the middleware.
PAGE_HEADERS = {"Cache-Control": "no-store"}
# Paths whose callers are scripts, not people: their errors stay JSON.
JSON_PREFIXES = ("/api/", "/uploads", "/logos/", "/metrics")

# One-shot confirmations ("ACME was added") travel in a short-lived cookie scoped to the page
# that shows them: no server-side session, and a reload does not repeat them.
FLASH_COOKIE = "stockday_flash"
FLASH_SECONDS = 60
FLASH_VALUE = re.compile(r"(added|deleted):([A-Z0-9][A-Z0-9.-]{0,15})")
FLASH_MESSAGES = {
    "added": "{symbol} was added to the watchlist.",
    "deleted": "{symbol} is no longer on the watchlist.",
}

SortKey = Literal["symbol", "name", "price", "change"]
SORT_KEYS: tuple[SortKey, ...] = ("symbol", "name", "price", "change")


@dataclass(frozen=True)
class Flash:
    kind: str
    symbol: str

    @property
    def message(self) -> str:
        return FLASH_MESSAGES[self.kind].format(symbol=self.symbol)


def read_flash(request: Request) -> Flash | None:
    match = FLASH_VALUE.fullmatch(request.cookies.get(FLASH_COOKIE, ""))
    return Flash(match.group(1), match.group(2)) if match else None


def redirect_with_flash(location: str, kind: str, symbol: str) -> RedirectResponse:
    """A 303 to ``location`` that shows a confirmation there, once."""
    response = RedirectResponse(location, status_code=303)
    value = f"{kind}:{symbol}"
    if not FLASH_VALUE.fullmatch(value):
        return response  # not a ticker: nothing worth confirming, nothing odd in a cookie
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_SECONDS,
        path=location,
        httponly=True,
        samesite="lax",
    )
    return response


def stock_path(symbol: str) -> str:
    return f"/stocks/{quote(symbol, safe='')}"


@dataclass(frozen=True)
class ChartTab:
    interval: Interval
    label: str
    url: str
    current: bool


def chart_of(stock: StockView, interval: Interval) -> Chart | None:
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


# The home page's charts, per worker: a series changes once a day, so the page view asks
# stock-symbol for the (small) stock alone, and for its series only when the chart is not here.
# Parsing and drawing 100 points was the largest own cost of a page view (py-spy).
CHART_TTL_SECONDS = 300.0
MISSING_CHART_TTL_SECONDS = 10.0  # no series (stock-price down): ask again soon, not every view
MAX_CHARTS = 4096
# The home page's HTML, per worker, by what it shows: rendering it was the next largest cost
# once the random pick came from a prefetched batch. A page with a per-request part (a CSRF
# token) is never kept.
HOME_PAGE_TTL_SECONDS = CHART_TTL_SECONDS
MAX_HOME_PAGES = 256


def sort_stocks(items: Sequence[StockView], key: SortKey, descending: bool) -> list[StockView]:
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


class BodyTooLarge(Exception):
    """The request body is larger than the configured upload limit."""


@dataclass
class StockForm:
    """What the add-stock form shows: the visitor's input, its errors, its idempotency key."""

    symbol: str = ""
    name: str = ""
    upload_id: str = ""
    # One key per rendered form: a double submit of the same form creates the stock once.
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    errors: dict[str, str] = field(default_factory=dict)
    existing: StockView | None = None


def format_money(value: float) -> str:
    return f"{value:,.2f}"


def format_signed(value: float) -> str:
    # round() first so a tiny negative change is "+0.00", not "-0.00".
    return f"{round(value, 2) + 0.0:+,.2f}"


def format_percent(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}%"


def image_origins(settings: Settings) -> tuple[str, ...]:
    """Plain-http origins logos may come from: an S3 emulator's (or a test CDN's) endpoint.

    Real logos come from the site itself or over https (a CDN, signed S3 URLs).
    """
    if settings.backend != "aws":
        return ()
    origins = []
    for url in (settings.aws_endpoint_url, settings.logo_cdn_base_url):
        parts = urlsplit(url or "")
        if parts.scheme == "http" and parts.netloc:
            origins.append(f"http://{parts.netloc}")
    return tuple(origins)


def build_templates(http_image_origins: Sequence[str] = ()) -> Jinja2Templates:
    """Templates from the installed package, autoescaped, failing loudly on undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = format_money
    env.filters["signed"] = format_signed
    env.filters["percent"] = format_percent
    env.globals["logo_src"] = lambda logo: logo.src(http_image_origins)
    return Jinja2Templates(env=env)


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole body, refusing it as soon as it passes ``limit`` bytes."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:  # a chunked body has no Content-Length to check up front
            raise BodyTooLarge
    return bytes(body)


def replay(body: bytes) -> Receive:
    """An ASGI receive callable that hands out an already-read body once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:MAX_TEXT_FIELD] if isinstance(value, str) else ""


def valid_idempotency_key(raw: str) -> str:
    """The form's key when it is a UUID; a fresh one when a client sent none or garbage."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return str(uuid.uuid4())


def create_app(
    settings: Settings | None = None, symbol_client: httpx.AsyncClient | None = None
) -> FastAPI:
    """Build the frontend; when no stock-symbol client is given, own one built from settings."""
    settings = settings or get_settings()
    owns_client = symbol_client is None
    http = symbol_client or httpx.AsyncClient(
        base_url=settings.symbol_url,
        timeout=settings.http_timeout_seconds,
        # A small pool: httpcore checks every pooled connection on every request (py-spy showed
        # it near the top of a page view with a pool grown to the load's 32 connections), and
        # stock-symbol answers in about a millisecond, so eight in flight per worker suffice.
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
    )
    symbols = SymbolClient(http, timeout_seconds=settings.http_timeout_seconds)
    picks = RandomPicks(
        symbols.random_picks,
        batch_size=settings.random_pick_batch,
        max_age_seconds=settings.random_pick_max_age_seconds,
    )
    logo_origins = image_origins(settings)
    templates = build_templates(logo_origins)
    upload_limit = settings.max_upload_request_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await picks.close()
        if owns_client:
            await http.aclose()

    app = FastAPI(
        title="frontend",
        version="1",
        lifespan=lifespan,
        # HTML pages only: no API schema to publish.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    install_observability(
        app,
        service="frontend",
        readiness_checks=[symbols.ping],
        readiness_timeout=settings.readiness_timeout_seconds,
        fault_error_rate=settings.fault_error_rate,
    )
    app.add_middleware(security.SecurityHeaders, headers=security.security_headers(logo_origins))
    app.mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static")

    def page(
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Render a page; a form on it gets a CSRF token (and a first visit the cookie)."""
        response = templates.TemplateResponse(
            request,
            template,
            {"csrf_token": lambda: security.token_for(request), "flash": None, **(context or {})},
            status_code=status_code,
            headers={**PAGE_HEADERS, **(headers or {})},
        )
        security.set_cookie_if_new(request, response)
        return response

    def page_with_flash(
        request: Request, template: str, context: Mapping[str, Any], flash_path: str
    ) -> Response:
        """A page that shows, then forgets, the confirmation left for it by a redirect."""
        flash = read_flash(request)
        response = page(request, template, {**context, "flash": flash})
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=flash_path)
        return response

    def error_page(
        request: Request,
        status_code: int,
        title: str,
        message: str,
        *,
        link: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An error as a page; ``link`` is an optional (url, label) to go on from there."""
        context = {"status": status_code, "title": title, "message": message, "link": link}
        return page(request, "error.html", context, status_code=status_code, headers=headers)

    def unavailable_page(request: Request) -> Response:
        return error_page(
            request,
            503,
            "Stock service unavailable",
            "The stock service is unavailable right now. Please try again in a moment.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    def unavailable_json() -> Response:
        return error_response(
            503,
            "the stock service is unavailable; try again in a moment",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    def no_such_stock(request: Request, symbol: str) -> Response:
        return error_page(
            request,
            404,
            "No such stock",
            f"There is no stock {symbol.strip().upper()} on the watchlist.",
            link=(f"/stocks/new?symbol={quote(symbol.strip()[:32], safe='')}", "Add it"),
        )

    def form_page(request: Request, form: StockForm, status_code: int = 200) -> Response:
        return page(
            request,
            "new.html",
            {"form": form, "max_upload_bytes": settings.max_upload_bytes, "nav": "new"},
            status_code=status_code,
        )

    @app.exception_handler(SymbolServiceUnavailable)
    async def symbol_service_down(request: Request, exc: SymbolServiceUnavailable) -> Response:
        log.warning("stock-symbol unavailable for %s %s: %s", request.method, request.url.path, exc)
        return unavailable_page(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Errors of pages as pages; scripts' paths keep FastAPI's JSON answer."""
        if exc.status_code < 400 or request.url.path.startswith(JSON_PREFIXES):
            return await http_exception_handler(request, exc)
        if exc.status_code == 404:
            return error_page(request, 404, "Page not found", "There is no page at this address.")
        return error_page(request, exc.status_code, "Request not handled", str(exc.detail))

    charts: BoundedMap[tuple[str, Interval], tuple[Chart | None]] = BoundedMap(MAX_CHARTS)

    async def cached_chart(symbol: str, interval: Interval) -> Chart | None:
        cached = charts.get((symbol, interval))
        if cached is not None:
            return cached[0]
        with_series = await symbols.get_stock(symbol, series=interval)
        chart = chart_of(with_series, interval) if with_series is not None else None
        ttl = CHART_TTL_SECONDS if chart is not None else MISSING_CHART_TTL_SECONDS
        charts.put((symbol, interval), (chart,), ttl)
        return chart

    home_pages: BoundedMap[tuple[StockView, Interval, Chart | None], bytes] = BoundedMap(
        MAX_HOME_PAGES
    )

    def home_page(
        request: Request, stock: StockView, chosen: Interval, chart: Chart | None
    ) -> Response:
        """The home page of ``stock``: rendered once per worker for what it shows."""
        key = (stock, chosen, chart)
        body = home_pages.get(key)
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
        body = templates.get_template("home.html").render(context).encode()
        if tokens == 0:  # nothing on it belongs to this request alone
            home_pages.put(key, body, HOME_PAGE_TTL_SECONDS)
        response = HTMLResponse(body, headers=PAGE_HEADERS)
        security.set_cookie_if_new(request, response)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        """A random stock with its chart, or an invitation to add the first one.

        ``?symbol=`` keeps the stock on screen while the visitor switches the chart's interval
        (``?interval=``). Both read here rather than declared as parameters: FastAPI's parameter
        machinery was a third of the page view's own time, for two optional strings.
        """
        query = request.query_params
        chosen = parse_interval(query.get("interval"))
        symbol = query.get("symbol", "")
        stock = await symbols.get_stock(symbol[:32]) if symbol.strip() else None
        if stock is None:
            stock = await picks.next()
        if stock is None:
            return page(request, "empty.html", {"nav": "home"})
        chart = await cached_chart(stock.symbol, chosen)
        return home_page(request, stock, chosen, chart)

    @app.get("/stocks/new", response_class=HTMLResponse)
    async def new_stock(request: Request, symbol: str = "") -> Response:
        """The add-stock form, with a fresh idempotency key."""
        return form_page(request, StockForm(symbol=symbol.strip()[:32]))

    @app.post("/uploads")
    async def upload(request: Request) -> Response:
        """Forward a logo upload to stock-symbol unchanged and answer what it answered."""
        # Checked on the headers alone, before a byte of the body is read.
        if not security.valid_request(request, request.headers.get(security.HEADER_NAME)):
            return error_response(
                403, "the upload was refused: reload the page and pick the file again"
            )
        too_large = error_response(
            413, f"upload is larger than the limit of {settings.max_upload_bytes} bytes"
        )
        try:
            # Buffered here (bounded by the limit) so a slow browser ties up only the frontend.
            body = await read_body(request, upload_limit)
        except BodyTooLarge:
            return too_large
        except ClientDisconnect:
            return error_response(400, "the upload was interrupted")
        content_type = request.headers.get("content-type", "application/octet-stream")
        try:
            upstream = await symbols.forward_upload(body, content_type)
        except SymbolServiceUnavailable as exc:
            log.warning("upload not forwarded: %s", exc)
            return unavailable_json()
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "application/json"),
        )

    @app.post("/stocks", response_class=HTMLResponse)
    async def create_stock(request: Request) -> Response:
        """Create a stock from the form; 303 to its page, or the form again with the error."""
        try:
            body = await read_body(request, upload_limit)
            form_data = await Request(request.scope, replay(body)).form(max_files=1, max_fields=20)
        except BodyTooLarge:
            limit_mb = settings.max_upload_bytes / (1024 * 1024)
            return error_page(
                request,
                413,
                "Upload too large",
                f"That form is too large: logos may be at most {limit_mb:g} MB.",
            )
        except (ClientDisconnect, MultiPartException):
            return error_page(request, 400, "Bad form", "The form could not be read; try again.")
        try:
            return await submit(request, form_data)
        finally:
            await form_data.close()  # removes the spooled temporary file of a no-script upload

    async def submit(request: Request, form_data: FormData) -> Response:
        form = StockForm(
            symbol=text_field(form_data, "symbol").strip(),
            name=text_field(form_data, "name"),
            upload_id=text_field(form_data, "upload_id").strip(),
            idempotency_key=valid_idempotency_key(text_field(form_data, "idempotency_key")),
        )
        if form.upload_id and not UPLOAD_ID.fullmatch(form.upload_id):
            form.upload_id = ""
            form.errors["upload_id"] = "the logo upload was not recognised; pick the file again"
            return form_page(request, form, 422)
        if not security.valid_request(request, text_field(form_data, security.FIELD_NAME)):
            # Nothing is created or uploaded; the visitor's own form comes back, ready to send.
            form.errors[GENERAL] = (
                "This form has expired or did not come from this site, so nothing was saved. "
                "Check your input and submit again."
            )
            return form_page(request, form, 403)

        # Without script the browser sends the file itself: upload it first, as the script would.
        file = form_data.get("file")
        if not form.upload_id and isinstance(file, UploadFile) and file.filename:
            data = await file.read()
            if data:
                try:
                    form.upload_id = await symbols.upload_file(
                        file.filename, data, file.content_type or "application/octet-stream"
                    )
                except Refused as refused:
                    form.errors.update(refused.messages)
                    return form_page(request, form, refused.status)
                except SymbolServiceUnavailable as exc:
                    return unavailable_form(request, form, exc)

        try:
            stock = await symbols.create_stock(
                symbol=form.symbol,
                name=form.name,
                upload_id=form.upload_id or None,
                idempotency_key=form.idempotency_key,
            )
        except AlreadyExists as exists:
            form.errors.update(exists.messages)
            form.existing = exists.existing
            return form_page(request, form, 409)
        except Refused as refused:
            form.errors.update(refused.messages)
            if "upload_id" in refused.messages:
                form.upload_id = ""  # the upload is unusable; let the visitor pick a file again
            return form_page(request, form, refused.status)
        except SymbolServiceUnavailable as exc:
            return unavailable_form(request, form, exc)
        picks.forget()  # the new stock may be the next pick here at once
        return redirect_with_flash(stock_path(stock.symbol), "added", stock.symbol)

    def unavailable_form(
        request: Request, form: StockForm, exc: SymbolServiceUnavailable
    ) -> Response:
        """The form again with the visitor's input: resubmitting it is safe (same key)."""
        log.warning("create not done: %s", exc)
        form.errors[GENERAL] = exc.detail or (
            "The stock service is unavailable right now. Your input is kept: "
            "submit again in a moment."
        )
        response = form_page(request, form, 503)
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response

    @app.get("/watchlist", response_class=HTMLResponse)
    async def watchlist(
        request: Request, cursor: str | None = None, sort: str = "symbol", order: str = "asc"
    ) -> Response:
        """All stocks, a page at a time by symbol; each page sorted as the visitor asks."""
        key: SortKey = next((k for k in SORT_KEYS if k == sort), "symbol")
        descending = order == "desc"
        try:
            listing = await symbols.list_stocks(cursor=cursor, limit=WATCHLIST_PAGE_SIZE)
        except Refused:
            return error_page(
                request,
                400,
                "Page link not valid",
                "That watchlist page link is not valid.",
                link=("/watchlist", "First page of the watchlist"),
            )

        def sort_link(column: SortKey) -> str:
            flip = column == key and not descending
            query = {"sort": column, "order": "desc" if flip else "asc"}
            return "/watchlist?" + urlencode({**query, **({"cursor": cursor} if cursor else {})})

        sorting = {"sort": key, "order": "desc" if descending else "asc"}
        context = {
            "listing": listing,
            "items": sort_stocks(listing.items, key, descending),
            "sort": key,
            "descending": descending,
            "sort_link": sort_link,
            "next_link": (
                "/watchlist?" + urlencode({"cursor": listing.next_cursor, **sorting})
                if listing.next_cursor
                else None
            ),
            "first_link": "/watchlist?" + urlencode(sorting),
            "first_page": not cursor,
            "nav": "watchlist",
        }
        return page_with_flash(request, "watchlist.html", context, "/watchlist")

    @app.get("/stocks/{symbol}", response_class=HTMLResponse)
    async def stock_page(request: Request, symbol: str, interval: str = "") -> Response:
        """One stock with its chart; its logo appears by itself once processed."""
        chosen = parse_interval(interval)
        stock = await symbols.get_stock(symbol, series=chosen)
        if stock is None:
            return no_such_stock(request, symbol)
        path = stock_path(stock.symbol)

        def link(other: Interval) -> str:
            return f"{path}?{urlencode({'interval': other})}#chart"

        chart = chart_of(stock, chosen)
        context = {"stock": stock, "nav": ""} | chart_context(chart, chosen, link)
        return page_with_flash(request, "stock.html", context, path)

    @app.get("/stocks/{symbol}/logo-state")
    async def logo_state(symbol: str) -> Response:
        """The logo's state as JSON, polled by the stock page until the logo is ready."""
        try:
            stock = await symbols.get_stock(symbol)
        except SymbolServiceUnavailable as exc:
            log.warning("logo state not fetched: %s", exc)
            return unavailable_json()  # the script asks again later
        if stock is None:
            return error_response(404, "no such stock")
        src = stock.logo.src(logo_origins)
        body = {"state": stock.logo.state, "src": src, "error": stock.logo.error}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/stocks/{symbol}/delete", response_class=HTMLResponse)
    async def confirm_delete(request: Request, symbol: str) -> Response:
        """Ask before deleting: a link can be followed by accident, a form must be submitted."""
        stock = await symbols.get_stock(symbol)
        if stock is None:
            return no_such_stock(request, symbol)
        return page(request, "delete.html", {"stock": stock, "nav": "watchlist"})

    @app.post("/stocks/{symbol}/delete", response_class=HTMLResponse)
    async def delete_stock(request: Request, symbol: str) -> Response:
        """Delete a stock, then back to the watchlist; deleting twice is not an error."""
        try:
            body = await read_body(request, SMALL_FORM_BYTES)
            form_data = await Request(request.scope, replay(body)).form(max_files=0, max_fields=5)
        except (BodyTooLarge, ClientDisconnect, MultiPartException):
            return error_page(request, 400, "Bad form", "The form could not be read; try again.")
        canonical = symbol.strip().upper()
        if not security.valid_request(request, text_field(form_data, security.FIELD_NAME)):
            return error_page(
                request,
                403,
                "Not deleted",
                "That request has expired or did not come from this site, so nothing was deleted.",
                link=(f"{stock_path(canonical)}/delete", "Try again"),
            )
        await symbols.delete_stock(canonical)
        picks.forget()  # nor is it shown here once more
        return redirect_with_flash("/watchlist", "deleted", canonical)

    @app.get("/logos/{path:path}")
    async def logo(path: str) -> Response:
        """Stream a resized logo from stock-symbol with long-lived caching headers."""
        parts = path.split("/")
        if len(path) > MAX_LOGO_PATH or not all(LOGO_SEGMENT.fullmatch(p) for p in parts):
            # Also keeps "..", "." and empty segments from reaching stock-symbol's other routes.
            return error_response(404, "no such logo")
        try:
            upstream = await symbols.open_logo(path)
        except SymbolServiceUnavailable as exc:
            log.warning("logo not fetched: %s", exc)
            return unavailable_json()
        if upstream.status_code != 200:
            try:
                if upstream.status_code == 404:  # stock-symbol's own answer, passed through
                    body = await upstream.aread()
                    media_type = upstream.headers.get("content-type", "application/json")
                    return Response(body, status_code=404, media_type=media_type)
            finally:
                await upstream.aclose()
            return error_response(404, "no such logo")
        headers = {
            "Cache-Control": LOGO_CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
            # Even if a non-image slipped into storage, it could not run anything here.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        if "content-length" in upstream.headers and "content-encoding" not in upstream.headers:
            headers["Content-Length"] = upstream.headers["content-length"]
        declared = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
        return StreamingResponse(
            upstream.aiter_bytes(),
            media_type=declared if declared in LOGO_TYPES else "application/octet-stream",
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )

    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from the environment, logging set up."""
    settings = get_settings()
    configure_logging(settings, "frontend")
    configure_tracing(settings, "frontend")
    return create_app(settings)
