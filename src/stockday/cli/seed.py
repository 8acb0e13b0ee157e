"""`stockday seed`: a few demo stocks with generated logos, added through stock-symbol's API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import httpx
import typer

from stockday.cli.session import console

DEMO_STOCKS = (
    ("AAPL", "Apple Inc."),
    ("MSFT", "Microsoft Corporation"),
    ("NVDA", "NVIDIA Corporation"),
    ("AMZN", "Amazon.com, Inc."),
    ("GOOGL", "Alphabet Inc. Class A"),
    ("BRK.B", "Berkshire Hathaway Inc. Class B"),
    ("KO", "The Coca-Cola Company"),
    ("SAP", "SAP SE"),
)
TIMEOUT_SECONDS = 10.0


async def add_demo_stocks(base_url: str) -> int:
    """Upload each demo logo and create its stock; how many were new (the rest existed)."""
    from stockday.clients.stock_symbol import (
        AlreadyExists,
        Refused,
        SymbolClient,
        SymbolServiceUnavailable,
    )
    from stockday.logos.demo import demo_logo_png

    added = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_SECONDS) as http:
        symbols = SymbolClient(http, timeout_seconds=TIMEOUT_SECONDS)
        for symbol, name in DEMO_STOCKS:
            files = {"file": (f"{symbol}.png", demo_logo_png(symbol), "image/png")}
            upload = await http.post("/api/uploads", files=files)
            upload.raise_for_status()
            try:
                await symbols.create_stock(
                    symbol=symbol,
                    name=name,
                    upload_id=upload.json()["upload_id"],
                    # One key per create: a second seed finds each stock there (409), no replay.
                    idempotency_key=uuid.uuid4().hex,
                )
            except AlreadyExists:
                continue
            except Refused as exc:
                console.print(f"[red]{symbol}: {exc.status} {exc.messages}[/red]")
                raise typer.Exit(1) from None
            except SymbolServiceUnavailable as exc:
                console.print(f"[red]{symbol}: {exc}[/red]")
                raise typer.Exit(1) from None
            added += 1
    return added


def seed(
    port_base: Annotated[int, typer.Option(help="Port base of the running stack")] = 8000,
    symbol_url: Annotated[
        str | None, typer.Option(help="stock-symbol URL (overrides --port-base)")
    ] = None,
) -> None:
    """Add a few demo stocks with generated logos to a running stack."""
    added = asyncio.run(add_demo_stocks(symbol_url or f"http://127.0.0.1:{port_base + 1}"))
    console.print(f"added {added} demo stocks ({len(DEMO_STOCKS) - added} were already there)")
