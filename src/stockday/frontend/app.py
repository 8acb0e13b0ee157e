"""frontend: server-rendered pages; it owns no data, all of it comes from stock-symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from stockday.frontend import security
from stockday.frontend.context import open_frontend
from stockday.frontend.errors import install_error_handlers
from stockday.frontend.quotas import PageViewLimit
from stockday.frontend.rendering import PACKAGE
from stockday.frontend.routes import logos, operators, pages, stocks, uploads
from stockday.frontend.views import image_origins
from stockday.ratelimit.limiter import ClientLimiter
from stockday.runtime.settings import Settings, get_settings
from stockday.runtime.tracing import fastapi_telemetry
from stockday.runtime.web import serving


def create_app(
    settings: Settings | None = None,
    symbol_client: httpx.AsyncClient | None = None,
    limiter: ClientLimiter | None = None,
) -> FastAPI:
    """Build the frontend; when no stock-symbol client (or limiter) is given, own one built
    from settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        frontend = open_frontend(settings, symbol_client, limiter)
        app.state.frontend = frontend
        try:
            yield
        finally:
            await frontend.close()

    app = FastAPI(
        title="frontend",
        version="1",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(traced=bool(settings.otlp_endpoint)),
        # HTML pages only: no API schema to publish.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    # Added first, so it runs innermost: its 429s are counted and get the security headers.
    app.add_middleware(PageViewLimit)
    # Ready as soon as it can render pages: not when stock-symbol answers too. With stock-symbol
    # down a frontend still answers (a page that says so, the typed form kept), which is better
    # than the load balancer taking every frontend out and answering with a bare 503.
    # Pages answer errors as pages (stockday.frontend.errors), not as the APIs' JSON.
    serving.install_service_runtime(app, settings, service="frontend", json_errors=False)
    install_error_handlers(app)
    app.add_middleware(
        security.SecurityHeaders, headers=security.security_headers(image_origins(settings))
    )
    # Outermost: the scheme and client are the browser's before anything reads them. Only
    # the load balancers' X-Forwarded-Proto is believed (their TLS is the site's), and the
    # CSRF origin check compares schemes; uvicorn's own copy of this is off (catalog).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static")
    # The home page first: it is most of the traffic, and routes are tried in order.
    serving.include_routes(
        app, pages.router, stocks.router, operators.router, uploads.router, logos.router
    )
    return app


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory``."""
    return serving.app_from_environment("frontend", create_app)
