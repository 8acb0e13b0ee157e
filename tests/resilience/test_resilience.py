"""Breakers open after repeated failures and skip calls; retries only for connection failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from stockday.clients.stock_symbol import BREAKER_THRESHOLD, SymbolClient
from stockday.runtime.resilience import BREAKER_OPEN, Breaker, BreakerOpen, retry_idempotent

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


async def fail(breaker: Breaker) -> None:
    with pytest.raises(Boom):
        async with breaker.guard():
            raise Boom


async def test_a_breaker_opens_after_its_threshold_and_closes_after_a_good_trial() -> None:
    breaker = Breaker("test-dependency", threshold=2, ttl_seconds=0.3)
    gauge = BREAKER_OPEN.labels("test-dependency")
    await fail(breaker)
    async with breaker.guard():
        pass  # a success resets the count
    await fail(breaker)
    await fail(breaker)
    assert gauge._value.get() == 1
    calls = 0
    with pytest.raises(BreakerOpen):
        async with breaker.guard():
            calls += 1
    assert calls == 0  # open: not even tried
    await asyncio.sleep(0.35)
    async with breaker.guard():
        calls += 1  # half-open: one trial, which succeeds
    assert calls == 1
    assert gauge._value.get() == 0


async def test_retries_once_after_a_connection_failure_only() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("refused")
        return "ok"

    assert await retry_idempotent(flaky) == "ok"
    assert attempts == 2

    attempts = 0

    async def slow() -> str:
        nonlocal attempts
        attempts += 1
        raise httpx.ReadTimeout("too slow")

    with pytest.raises(httpx.ReadTimeout):
        await retry_idempotent(slow)
    assert attempts == 1  # never retried: the caller's timeout is the most it waits


class CountedStockSymbol:
    """A stock-symbol behind a mock transport that counts the requests it sees (``seen``);
    ``answer`` replies to the n-th one, or raises the transport error it meets."""

    def __init__(self, answer: Callable[[int], httpx.Response]) -> None:
        self.seen = 0

        def handler(request: httpx.Request) -> httpx.Response:
            self.seen += 1
            return answer(self.seen)

        http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://symbol")
        self.client = SymbolClient(http, timeout_seconds=1)


async def test_a_get_is_retried_once_when_the_replica_dies_mid_request() -> None:
    def answer(seen: int) -> httpx.Response:
        if seen == 1:
            raise httpx.RemoteProtocolError("server disconnected without a response")
        return httpx.Response(404, json={"detail": "no such stock"})

    symbol = CountedStockSymbol(answer)
    assert await symbol.client.get_stock("ACME") is None
    assert symbol.seen == 2


async def test_uploads_are_not_retried() -> None:
    def answer(seen: int) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected without a response")

    symbol = CountedStockSymbol(answer)
    with pytest.raises(Exception, match="failed"):
        await symbol.client.forward_upload(b"--x--", "multipart/form-data; boundary=x")
    assert symbol.seen == 1


async def test_a_dead_stock_symbol_is_not_called_once_the_breaker_opens() -> None:
    symbol = CountedStockSymbol(lambda seen: httpx.Response(503, json={"detail": "down"}))
    for _ in range(BREAKER_THRESHOLD):
        with pytest.raises(Exception, match="answered 503"):
            await symbol.client.get_stock("ACME")
    assert symbol.seen == BREAKER_THRESHOLD
    with pytest.raises(Exception, match="not called"):
        await symbol.client.get_stock("ACME")
    assert symbol.seen == BREAKER_THRESHOLD


async def test_failed_readiness_probes_do_not_open_the_breaker() -> None:
    """At start-up stock-symbol is not listening yet: probes fail, page views must not."""
    up = False

    def answer(seen: int) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("refused")
        return httpx.Response(404, json={"detail": "no such stock"})

    symbol = CountedStockSymbol(answer)
    for _ in range(BREAKER_THRESHOLD + 2):
        with pytest.raises(Exception, match="failed"):
            await symbol.client.ping()
    up = True
    assert await symbol.client.get_stock("ACME") is None  # called, not refused by an open breaker
