"""MemoryCache specifics: the injected clock, LRU eviction and the hit/miss counters."""

from __future__ import annotations

import pytest

from stockday.cache.memory import MemoryCache
from tests.support.clock import FakeClock

pytestmark = pytest.mark.anyio


async def test_expiry_follows_the_clock() -> None:
    clock = FakeClock(100.0)
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"v", ttl_seconds=10)
    clock.now += 9.999
    assert await cache.get("k") == b"v"
    clock.now += 0.001
    assert await cache.get("k") is None
    assert len(cache) == 0  # an expired entry is dropped when found


async def test_least_recently_used_entry_is_evicted() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode(), ttl_seconds=60)
    assert await cache.get("a") == b"a"  # now b is the least recently used
    await cache.set("d", b"d", ttl_seconds=60)
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]
    assert len(cache) == 3


async def test_overwriting_refreshes_recency_without_growing() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"1", ttl_seconds=60)
    await cache.set("b", b"1", ttl_seconds=60)
    await cache.set("a", b"2", ttl_seconds=60)
    await cache.set("c", b"1", ttl_seconds=60)
    assert len(cache) == 2
    assert await cache.get("a") == b"2"
    assert await cache.get("b") is None


async def test_hits_and_misses_are_counted() -> None:
    clock = FakeClock(100.0)
    cache = MemoryCache(clock=clock)
    await cache.get("absent")
    await cache.set("k", b"v", ttl_seconds=1)
    await cache.get("k")
    await cache.get("k")
    clock.now += 1
    await cache.get("k")  # expired
    assert (cache.hits, cache.misses) == (2, 2)


async def test_non_positive_ttl_drops_the_key() -> None:
    cache = MemoryCache()
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.set("k", b"v", ttl_seconds=0)
    assert await cache.get("k") is None


async def test_a_mutable_value_is_copied() -> None:
    cache = MemoryCache()
    value = bytearray(b"abc")
    await cache.set("k", value, ttl_seconds=60)  # type: ignore[arg-type]
    value[0] = ord("X")
    assert await cache.get("k") == b"abc"


async def test_close_empties_the_cache() -> None:
    cache = MemoryCache()
    await cache.set("k", b"v", ttl_seconds=60)
    await cache.close()
    assert await cache.get("k") is None


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryCache(max_entries=0)
