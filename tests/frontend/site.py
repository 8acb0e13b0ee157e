"""The frontend as a browser sees it, in-process, with the real stock-symbol and stock-price."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from stockday.frontend.app import create_app as create_frontend_app
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from stockday.stocks.base import StockRepository
from tests.support import images as sample_images

HIDDEN_FIELD = re.compile(r'<input[^>]*type="hidden"[^>]*name="(\w+)"[^>]*value="([^"]*)"')


@dataclass
class Site:
    """The frontend as a browser sees it, and stock-symbol's API for setting up and checking."""

    browser: httpx.AsyncClient
    symbol_api: httpx.AsyncClient
    settings: Settings


@asynccontextmanager
async def browsing(frontend_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of the frontend served in-process, its lifespan run around the visit."""
    async with (
        frontend_app.router.lifespan_context(frontend_app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=frontend_app), base_url="http://frontend"
        ) as browser,
    ):
        yield browser


@asynccontextmanager
async def running_site(
    settings: Settings,
    price_client: httpx.AsyncClient | None = None,
    repository: StockRepository | None = None,
) -> AsyncIterator[Site]:
    """The three HTTP services wired in-process; ``price_client`` replaces stock-price."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_price_app(settings)), base_url="http://price"
    ) as prices:
        symbol_app = create_symbol_app(
            settings, price_client=price_client or prices, repository=repository
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=symbol_app), base_url="http://symbol"
        ) as symbol_api:
            frontend_app = create_frontend_app(settings, symbol_client=symbol_api)
            async with browsing(frontend_app) as browser:
                yield Site(browser, symbol_api, settings)


@asynccontextmanager
async def browsing_without_stock_symbol(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of a frontend whose stock-symbol is a closed port: every call to it is refused."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed_port()}") as nowhere:
        frontend_app = create_frontend_app(settings, symbol_client=nowhere)
        async with browsing(frontend_app) as browser:
            yield browser


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def form_fields(browser: httpx.AsyncClient, path: str = "/stocks/new") -> dict[str, str]:
    """The hidden fields of a freshly rendered form (its CSRF token, idempotency key...).

    The client keeps the CSRF cookie the page sets, as a browser would.
    """
    page = await browser.get(path)
    assert page.status_code == 200, page.text
    return dict(HIDDEN_FIELD.findall(page.text))


async def csrf_headers(browser: httpx.AsyncClient) -> dict[str, str]:
    """What the upload script sends: the token of the add-stock form in a header."""
    return {"X-CSRF-Token": (await form_fields(browser))["csrf_token"]}


async def upload_png(browser: httpx.AsyncClient, data: bytes | None = None) -> str:
    response = await browser.post(
        "/uploads",
        files={"file": ("acme.png", data or sample_images.png(120, 60), "image/png")},
        headers=await csrf_headers(browser),
    )
    assert response.status_code == 201, response.text
    upload_id = response.json()["upload_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", upload_id)
    return str(upload_id)


async def submit(
    browser: httpx.AsyncClient, symbol: str, name: str, upload_id: str = ""
) -> httpx.Response:
    fields = await form_fields(browser)
    fields.update({"symbol": symbol, "name": name, "upload_id": upload_id})
    return await browser.post("/stocks", data=fields, follow_redirects=False)
