"""What route handlers are given: the parts of the frontend's context on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stockday.clients.stock_symbol import SymbolClient
from stockday.frontend.context import Frontend
from stockday.frontend.operators import OperatorGate
from stockday.frontend.rendering import Pages
from stockday.frontend.service import StockSite
from stockday.ratelimit.limiter import ClientLimiter
from stockday.runtime.settings import Settings


def frontend_of(request: Request) -> Frontend:
    """The context the lifespan stored; also for handlers that skip dependency resolution."""
    frontend: Frontend = request.app.state.frontend
    return frontend


# Async, so FastAPI calls them on the event loop rather than in its thread pool.
async def get_pages(request: Request) -> Pages:
    return frontend_of(request).pages


async def get_site(request: Request) -> StockSite:
    return frontend_of(request).site


async def get_symbols(request: Request) -> SymbolClient:
    return frontend_of(request).symbols


async def get_app_settings(request: Request) -> Settings:
    return frontend_of(request).settings


async def get_operators(request: Request) -> OperatorGate:
    return frontend_of(request).operators


async def get_limiter(request: Request) -> ClientLimiter:
    return frontend_of(request).limiter


PagesDep = Annotated[Pages, Depends(get_pages)]
SiteDep = Annotated[StockSite, Depends(get_site)]
SymbolsDep = Annotated[SymbolClient, Depends(get_symbols)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
OperatorsDep = Annotated[OperatorGate, Depends(get_operators)]
LimiterDep = Annotated[ClientLimiter, Depends(get_limiter)]
