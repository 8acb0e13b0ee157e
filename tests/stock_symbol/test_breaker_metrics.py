"""The price path's breaker is visible in /metrics: open after a failure, skipping calls."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from stockday.runtime.settings import Settings
from stockday.stock_symbol.app import create_app
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


def metric(text: str, name: str) -> float:
    found = re.search(rf'^{name}\{{dependency="stock-price"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_dead_stock_price_opens_the_breaker_and_later_calls_are_skipped(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with httpx.AsyncClient(base_url=dead, timeout=1) as prices:
        app = create_app(Settings(data_dir=tmp_path), price_client=prices)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://symbol"
        ) as api:
            await api.post("/api/stocks", json={"symbol": "BRKR", "name": "Breaker"})
            before = metric(
                (await api.get("/metrics")).text, "stockday_breaker_skipped_calls_total"
            )
            assert (await api.get("/api/stocks/BRKR")).status_code == 200  # fails, opens
            assert (await api.get("/api/stocks/BRKR")).status_code == 200  # skipped
            text = (await api.get("/metrics")).text
    assert metric(text, "stockday_breaker_open") == 1
    assert metric(text, "stockday_breaker_skipped_calls_total") > before
