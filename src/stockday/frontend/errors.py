"""How the frontend answers errors: pages for people, JSON for scripts."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from stockday.clients.stock_symbol import SymbolServiceUnavailable
from stockday.frontend.deps import frontend_of
from stockday.frontend.rendering import RETRY_AFTER_SECONDS
from stockday.runtime.web.errors import error_response

log = logging.getLogger("stockday.frontend")

# Paths whose callers are scripts, not people: their errors stay JSON.
JSON_PREFIXES = ("/api/", "/uploads", "/logos/", "/metrics")


def unavailable_json() -> Response:
    return error_response(
        503,
        "the stock service is unavailable; try again in a moment",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def symbol_service_down(request: Request, exc: SymbolServiceUnavailable) -> Response:
    log.warning("stock-symbol unavailable for %s %s: %s", request.method, request.url.path, exc)
    return frontend_of(request).pages.unavailable_page(request)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Errors of pages as pages; scripts' paths keep FastAPI's JSON answer."""
    if exc.status_code < 400 or request.url.path.startswith(JSON_PREFIXES):
        return await http_exception_handler(request, exc)
    pages = frontend_of(request).pages
    if exc.status_code == 404:
        return pages.error_page(request, 404, "Page not found", "There is no page at this address.")
    return pages.error_page(request, exc.status_code, "Request not handled", str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    app.exception_handler(SymbolServiceUnavailable)(symbol_service_down)
    app.exception_handler(StarletteHTTPException)(http_error)
