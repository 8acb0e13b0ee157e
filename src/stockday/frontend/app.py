"""frontend: server-rendered pages; it owns no data, all of it comes from stock-symbol."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jinja2
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive

from stockday.frontend.symbol_client import (
    GENERAL,
    AlreadyExists,
    Refused,
    StockView,
    SymbolClient,
    SymbolServiceUnavailable,
)
from stockday.logging_setup import configure_logging
from stockday.settings import Settings, get_settings
from stockday.web.errors import error_response
from stockday.web.observability import install_observability

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

# Pages are dynamic (home is a random pick) and carry no third-party content at all.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}
# Paths whose callers are scripts, not people: their errors stay JSON.
JSON_PREFIXES = ("/api/", "/uploads", "/logos/", "/metrics")


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


def build_templates() -> Jinja2Templates:
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
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    symbols = SymbolClient(http, timeout_seconds=settings.http_timeout_seconds)
    templates = build_templates()
    upload_limit = settings.max_upload_request_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
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

    install_observability(app, service="frontend", readiness_checks=[symbols.ping])
    app.mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static")

    def page(
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return templates.TemplateResponse(
            request,
            template,
            dict(context or {}),
            status_code=status_code,
            headers={**PAGE_HEADERS, **(headers or {})},
        )

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

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        """A random stock, or an invitation to add the first one."""
        stock = await symbols.random_stock()
        if stock is None:
            return page(request, "empty.html", {"nav": "home"})
        return page(request, "home.html", {"stock": stock, "nav": "home"})

    @app.get("/stocks/new", response_class=HTMLResponse)
    async def new_stock(request: Request, symbol: str = "") -> Response:
        """The add-stock form, with a fresh idempotency key."""
        return form_page(request, StockForm(symbol=symbol.strip()[:32]))

    @app.post("/uploads")
    async def upload(request: Request) -> Response:
        """Forward a logo upload to stock-symbol unchanged and answer what it answered."""
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
        return RedirectResponse(f"/stocks/{quote(stock.symbol, safe='')}", status_code=303)

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
    async def watchlist(request: Request, cursor: str | None = None) -> Response:
        """All stocks, a page at a time, ordered by symbol."""
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
        return page(
            request,
            "watchlist.html",
            {"listing": listing, "first_page": not cursor, "nav": "watchlist"},
        )

    @app.get("/stocks/{symbol}", response_class=HTMLResponse)
    async def stock_page(request: Request, symbol: str) -> Response:
        """One stock; refreshes itself every two seconds while its logo is being processed."""
        stock = await symbols.get_stock(symbol)
        if stock is None:
            return error_page(
                request,
                404,
                "No such stock",
                f"There is no stock {symbol.strip().upper()} on the watchlist.",
                link=(f"/stocks/new?symbol={quote(symbol.strip()[:32], safe='')}", "Add it"),
            )
        return page(request, "stock.html", {"stock": stock, "nav": ""})

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
        }
        if "content-length" in upstream.headers and "content-encoding" not in upstream.headers:
            headers["Content-Length"] = upstream.headers["content-length"]
        return StreamingResponse(
            upstream.aiter_bytes(),
            media_type=upstream.headers.get("content-type", "application/octet-stream"),
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )

    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``: settings from the environment, logging set up."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
