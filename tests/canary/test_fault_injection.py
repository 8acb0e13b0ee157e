"""The fault flag that makes a bad canary: a share of requests fail, probes never do."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from stockday.release.traffic import parse_traffic
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app

pytestmark = pytest.mark.anyio


async def status_counts(settings: Settings, path: str, requests: int) -> Counter[int]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return Counter([(await client.get(path)).status_code for _ in range(requests)])


async def test_every_request_fails_at_rate_one_but_probes_answer() -> None:
    settings = Settings(fault_error_rate=1.0)
    assert await status_counts(settings, "/api/quotes/IBM", 20) == {500: 20}
    assert await status_counts(settings, "/api/ping", 20) == {200: 20}
    assert await status_counts(settings, "/metrics", 5) == {200: 5}


async def test_a_fifth_fail_at_rate_point_two_and_metrics_count_them() -> None:
    app = create_app(Settings(fault_error_rate=0.2))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = parse_traffic((await client.get("/metrics")).text, "stock-price")
        statuses = Counter([(await client.get("/api/quotes/IBM")).status_code for _ in range(1000)])
        after = parse_traffic((await client.get("/metrics")).text, "stock-price")
    assert set(statuses) == {200, 500}
    # Binomial(1000, 0.2): mean 200, sd 12.6; 140..260 is beyond 4.7 sd either way.
    assert 140 <= statuses[500] <= 260
    window = after.since(before)
    assert window.requests == 1000
    assert window.errors == statuses[500]


async def test_no_fault_without_the_flag() -> None:
    assert await status_counts(Settings(), "/api/quotes/IBM", 50) == {200: 50}
