"""The rate-limit storage contract, run against every store the limiter may count on: limits'
in-process memory storage (one process), the SQLite file the local stack's replicas share, and
limits' memcached storage against a real memcached server (AWS).

Each store is opened twice, as two replicas would open it: what one counts, the other sees.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from limits import parse
from limits.aio.storage import MemcachedStorage, MemoryStorage, Storage

from stockday.ratelimit.limiter import ClientLimiter
from stockday.ratelimit.sqlite import SqliteLimitStorage
from tests.support.adapters import adapter_fixture
from tests.support.servers import shared_memcached

pytestmark = pytest.mark.anyio


@dataclass
class Replicas:
    """One store as two replicas see it, and a key prefix of this test's own."""

    first: Storage
    second: Storage
    prefix: str

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def close(self) -> None:
        for storage in {id(self.first): self.first, id(self.second): self.second}.values():
            close = getattr(storage, "close", None)
            if close is not None:
                await close()


async def memory_replicas(tmp_path: Path) -> Replicas:
    storage = MemoryStorage()  # one process only: both "replicas" are the same object
    return Replicas(storage, storage, uuid.uuid4().hex)


async def sqlite_replicas(tmp_path: Path) -> Replicas:
    path = tmp_path / "limits.sqlite3"
    return Replicas(SqliteLimitStorage(path), SqliteLimitStorage(path), uuid.uuid4().hex)


async def memcached_replicas(tmp_path: Path) -> Replicas:
    uri = f"async+memcached://{shared_memcached().address}"
    return Replicas(MemcachedStorage(uri), MemcachedStorage(uri), uuid.uuid4().hex)


StoreFactory = Callable[[Path], Awaitable[Replicas]]

STORES = [
    pytest.param(memory_replicas, id="memory"),
    pytest.param(sqlite_replicas, id="sqlite"),
    pytest.param(memcached_replicas, id="memcached"),
]

store = adapter_fixture("store", STORES)


async def test_incr_returns_the_running_count_and_get_reads_it(store: Replicas) -> None:
    key = store.key("a")
    assert await store.first.get(key) == 0
    assert await store.first.incr(key, 60) == 1
    assert await store.first.incr(key, 60, amount=5) == 6
    assert await store.first.get(key) == 6


async def test_what_one_replica_counts_the_other_sees(store: Replicas) -> None:
    key = store.key("shared")
    await store.first.incr(key, 60, amount=3)
    assert await store.second.incr(key, 60, amount=2) == 5
    assert await store.first.get(key) == 5


async def test_concurrent_hits_of_two_replicas_are_all_counted(store: Replicas) -> None:
    key = store.key("busy")
    await asyncio.gather(
        *(replica.incr(key, 60) for _ in range(100) for replica in (store.first, store.second))
    )
    assert await store.first.get(key) == 200


async def test_keys_are_independent_and_clear_forgets_one(store: Replicas) -> None:
    a, b = store.key("a"), store.key("b")
    await store.first.incr(a, 60, amount=2)
    await store.first.incr(b, 60, amount=7)
    await store.first.clear(a)
    assert (await store.second.get(a), await store.second.get(b)) == (0, 7)


async def test_the_expiry_is_when_the_window_ends(store: Replicas) -> None:
    key = store.key("window")
    before = time.time()
    await store.first.incr(key, 30)
    expiry = await store.second.get_expiry(key)
    assert before + 29 <= expiry <= time.time() + 31


async def test_a_window_that_ended_starts_again_from_zero(store: Replicas) -> None:
    key = store.key("short")
    assert await store.first.incr(key, 1, amount=4) == 4
    deadline = time.monotonic() + 5
    while await store.first.get(key) != 0:
        assert time.monotonic() < deadline, "the count outlived its 1 s window by far"
        await asyncio.sleep(0.05)
    assert await store.second.incr(key, 1) == 1


async def test_the_limiter_refuses_past_the_limit_until_the_window_ends(store: Replicas) -> None:
    rules = {"creates": [parse("3/minute")]}
    first = ClientLimiter(store.first, rules, timeout_seconds=2)
    second = ClientLimiter(store.second, rules, timeout_seconds=2)
    client = store.key("client")
    verdicts = [await replica.hit("creates", client) for replica in (first, second, first)]
    assert all(v.allowed for v in verdicts)
    refused = await second.hit("creates", client)
    assert not refused.allowed
    assert 1 <= refused.retry_after <= 60
    assert (await first.hit("creates", store.key("someone-else"))).allowed


async def test_the_store_says_it_is_healthy(store: Replicas) -> None:
    assert await store.first.check()
