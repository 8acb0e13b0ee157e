"""The limiter: rules of one or more windows per client, costs, batches, remembered refusals,
and failing open (logged and counted) when its store fails, hangs or is down."""

from __future__ import annotations

import asyncio
import logging

import pytest
from limits import parse_many
from limits.aio.storage import MemcachedStorage, MemoryStorage
from prometheus_client import REGISTRY

from stockday.ratelimit.limiter import ClientLimiter, parse_rule
from tests.frontend.site import closed_port
from tests.support.servers import memcached_server

pytestmark = pytest.mark.anyio


class CountingStorage(MemoryStorage):
    """limits' memory storage, counting the increments that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.increments: list[int] = []

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.increments.append(amount)
        return await super().incr(key, expiry, amount)


class BrokenStorage(CountingStorage):
    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.increments.append(amount)
        raise ConnectionRefusedError("store down")


class HangingStorage(CountingStorage):
    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.increments.append(amount)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def limiter(storage: MemoryStorage, timeout: float = 1.0, **rules: str) -> ClientLimiter:
    parsed = {name.replace("_", "-"): parse_many(text) for name, text in rules.items()}
    return ClientLimiter(storage, parsed, timeout_seconds=timeout, batched={"pages"})


def fail_open_total() -> float:
    return REGISTRY.get_sample_value("stockday_rate_limit_fail_open_total") or 0.0


def refused_total(rule: str) -> float:
    return REGISTRY.get_sample_value("stockday_rate_limited_total", {"rule": rule}) or 0.0


async def test_a_client_is_refused_past_its_limit_and_others_are_not() -> None:
    limits = limiter(MemoryStorage(), creates="3/minute")
    assert [(await limits.hit("creates", "1.2.3.4")).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    refused = await limits.hit("creates", "1.2.3.4")
    assert not refused.allowed and 1 <= refused.retry_after <= 60
    assert (await limits.hit("creates", "5.6.7.8")).allowed


async def test_every_window_of_a_rule_must_have_room() -> None:
    limits = limiter(MemoryStorage(), creates="10/minute;2/hour")
    assert (await limits.hit("creates", "c")).allowed
    assert (await limits.hit("creates", "c")).allowed
    refused = await limits.hit("creates", "c")
    assert not refused.allowed
    assert 60 < refused.retry_after <= 3600  # the hour's window is the one that is full


async def test_a_cost_counts_that_many_and_a_test_counts_nothing() -> None:
    storage = CountingStorage()
    limits = limiter(storage, upload_bytes="1000/hour")
    assert (await limits.test("upload-bytes", "c", cost=600)).allowed
    assert (await limits.hit("upload-bytes", "c", cost=600)).allowed
    assert not (await limits.test("upload-bytes", "c", cost=500)).allowed
    assert (await limits.hit("upload-bytes", "c", cost=400)).allowed  # the test took nothing
    assert not (await limits.hit("upload-bytes", "c", cost=1)).allowed
    assert storage.increments == [600, 400, 1]


async def test_an_empty_rule_is_no_limit_and_never_asks_the_store() -> None:
    storage = BrokenStorage()
    limits = ClientLimiter(storage, {"pages": parse_rule("")}, timeout_seconds=1)
    assert not limits.limits("pages")
    assert all([(await limits.hit("pages", "c")).allowed for _ in range(100)])
    assert storage.increments == []


async def test_a_refused_client_is_refused_from_memory_until_its_window_ends() -> None:
    storage = CountingStorage()
    limits = limiter(storage, creates="2/minute")
    for _ in range(3):
        await limits.hit("creates", "c")
    before = refused_total("creates")
    for _ in range(50):
        assert not (await limits.hit("creates", "c")).allowed
    assert len(storage.increments) == 3  # the 50 refusals cost the store nothing
    assert refused_total("creates") - before == 50


async def test_page_views_reach_the_store_in_batches() -> None:
    storage = CountingStorage()
    limits = limiter(storage, pages="500/minute")  # a batch is a fiftieth: 10 page views
    allowed = 0
    while (await limits.hit("pages", "c")).allowed:
        allowed += 1
        assert allowed < 1000, "never refused"
    assert storage.increments[:3] == [10, 10, 10]
    assert 500 <= allowed < 500 + 10  # at most a batch too many per replica
    assert len(storage.increments) == 51


async def test_a_failing_store_lets_requests_through_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = BrokenStorage()
    limits = limiter(storage, creates="1/minute")
    before = fail_open_total()
    with caplog.at_level(logging.WARNING, logger="stockday.ratelimit"):
        verdicts = [await limits.hit("creates", "c") for _ in range(20)]
    assert all(v.allowed for v in verdicts)
    assert fail_open_total() - before == 20
    # Failed once, then left alone for a few seconds: no timeout or error per request.
    assert len(storage.increments) == 1
    assert "rate-limit store failed (ConnectionRefusedError: store down)" in caplog.text


async def test_a_hanging_store_costs_a_request_the_timeout_at_most() -> None:
    storage = HangingStorage()
    limits = limiter(storage, timeout=0.05, creates="1/minute")
    before = fail_open_total()
    verdict = await asyncio.wait_for(limits.hit("creates", "c"), 5)
    assert verdict.allowed
    assert fail_open_total() - before == 1


async def test_a_memcached_that_is_not_there_fails_open() -> None:
    storage = MemcachedStorage(f"async+memcached://127.0.0.1:{closed_port()}", connect_timeout=0.2)
    limits = ClientLimiter(storage, {"creates": parse_rule("1/minute")}, timeout_seconds=0.5)
    before = fail_open_total()
    assert all([(await limits.hit("creates", "c")).allowed for _ in range(5)])
    assert fail_open_total() - before == 5


async def test_memcached_killed_while_in_use_fails_open_then_counts_again() -> None:
    with memcached_server() as server:
        uri = f"async+memcached://127.0.0.1:{server.port}"
        limits = ClientLimiter(
            MemcachedStorage(uri, connect_timeout=0.2),
            {"creates": parse_rule("2/minute")},
            timeout_seconds=0.5,
            breaker_seconds=0.2,
        )
        assert (await limits.hit("creates", "c")).allowed
        server.process.kill()
        server.process.wait()
        before = fail_open_total()
        assert all([(await limits.hit("creates", "c")).allowed for _ in range(10)])
        assert fail_open_total() - before == 10
