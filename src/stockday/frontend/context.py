"""The frontend's context: the objects its requests share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from stockday.clients.stock_symbol import SymbolClient
from stockday.frontend.home import HomePages
from stockday.frontend.operators import OperatorGate
from stockday.frontend.picks import RandomPicks
from stockday.frontend.rendering import Pages, build_templates
from stockday.frontend.service import StockSite
from stockday.frontend.views import image_origins
from stockday.ratelimit.limiter import ClientLimiter
from stockday.runtime import composition
from stockday.runtime.settings import Settings


@dataclass
class Frontend:
    settings: Settings
    symbols: SymbolClient
    picks: RandomPicks
    pages: Pages
    site: StockSite
    home: HomePages
    operators: OperatorGate
    limiter: ClientLimiter
    http: httpx.AsyncClient
    owns_http: bool

    async def close(self) -> None:
        await self.picks.close()
        await self.operators.close()
        await self.limiter.close()
        if self.owns_http:
            await self.http.aclose()


def symbol_http(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client of stock-symbol the frontend owns when none is given."""
    return httpx.AsyncClient(
        base_url=settings.symbol_url,
        timeout=settings.http_timeout_seconds,
        # A small pool: httpcore checks every pooled connection on every request, a large cost
        # of a page view with a pool grown to a load's 32 connections, and stock-symbol answers
        # in about a millisecond, so eight in flight per worker suffice.
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
    )


def open_frontend(
    settings: Settings,
    http: httpx.AsyncClient | None = None,
    limiter: ClientLimiter | None = None,
) -> Frontend:
    """The context of a frontend calling stock-symbol through ``http`` (its own when None),
    counting its clients with ``limiter`` (the one the settings configure when None)."""
    owns_http = http is None
    client = http if http is not None else symbol_http(settings)
    symbols = SymbolClient(client, timeout_seconds=settings.http_timeout_seconds)
    picks = RandomPicks(
        symbols.random_picks,
        batch_size=settings.random_pick_batch,
        max_age_seconds=settings.random_pick_max_age_seconds,
    )
    logo_origins = image_origins(settings)
    templates = build_templates(logo_origins)
    shared_limiter = limiter or composition.client_limiter(settings)
    return Frontend(
        settings=settings,
        symbols=symbols,
        picks=picks,
        pages=Pages(templates, max_upload_bytes=settings.max_upload_bytes),
        site=StockSite(symbols, picks, logo_origins),
        home=HomePages(symbols, picks, templates),
        operators=OperatorGate(
            lambda: composition.operator_credentials(settings),
            session_seconds=settings.operator_session_seconds,
            limiter=shared_limiter,
        ),
        limiter=shared_limiter,
        http=client,
        owns_http=owns_http,
    )
