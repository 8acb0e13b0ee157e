"""The Cache contract, run against every adapter (real time: memcached has no injected clock)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from stockday.cache.base import Cache
from stockday.cache.memcached import MemcachedCache
from stockday.cache.memory import MemoryCache
from tests.support.adapters import adapter_fixture
from tests.support.servers import shared_memcached

CacheFactory = Callable[[Path], Awaitable[Cache]]
"""tmp_path -> an empty cache (a shared cache adapter would use a fresh key namespace)."""


async def make_memory_cache(tmp_path: Path) -> Cache:
    return MemoryCache()


async def make_memcached_cache(tmp_path: Path) -> Cache:
    """The session's real memcached, in a key namespace of this test's own."""
    return MemcachedCache(shared_memcached().address, key_prefix=f"test-{uuid.uuid4().hex}:")


# AWS adapters join here; the tests below stay unchanged.
CACHE_FACTORIES = [
    pytest.param(make_memory_cache, id="memory"),
    pytest.param(make_memcached_cache, id="memcached"),
]

pytestmark = pytest.mark.anyio


cache = adapter_fixture("cache", CACHE_FACTORIES)


async def test_get_of_an_unknown_key_misses(cache: Cache) -> None:
    assert await cache.get("price:NOPE") is None


async def test_set_then_get(cache: Cache) -> None:
    await cache.set("price:AAPL", b'{"price": "189.5"}', ttl_seconds=60)
    assert await cache.get("price:AAPL") == b'{"price": "189.5"}'
    assert await cache.get("price:MSFT") is None


async def test_set_overwrites(cache: Cache) -> None:
    await cache.set("price:AAPL", b"old", ttl_seconds=60)
    await cache.set("price:AAPL", b"new", ttl_seconds=60)
    assert await cache.get("price:AAPL") == b"new"


async def test_values_expire_after_their_ttl(cache: Cache) -> None:
    await cache.set("price:AAPL", b"fresh", ttl_seconds=1)
    await cache.set("price:MSFT", b"long-lived", ttl_seconds=60)
    assert await cache.get("price:AAPL") == b"fresh"
    deadline = time.monotonic() + 5
    while await cache.get("price:AAPL") is not None:
        assert time.monotonic() < deadline, "value outlived its 1 s TTL by far"
        await asyncio.sleep(0.05)
    assert await cache.get("price:MSFT") == b"long-lived"


async def test_delete(cache: Cache) -> None:
    await cache.set("price:AAPL", b"x", ttl_seconds=60)
    await cache.delete("price:AAPL")
    assert await cache.get("price:AAPL") is None
    await cache.delete("price:AAPL")  # deleting a missing key is fine
    await cache.delete("price:NEVER")


async def test_large_values(cache: Cache) -> None:
    value = random.Random(1).randbytes(512 * 1024)  # below memcached's default 1 MB item limit
    await cache.set("blob", value, ttl_seconds=60)
    assert await cache.get("blob") == value


async def test_binary_values_are_kept_byte_for_byte(cache: Cache) -> None:
    value = bytes(range(256)) * 4 + b"\r\n\x00END\r\n"
    await cache.set("binary", value, ttl_seconds=60)
    await cache.set("empty", b"", ttl_seconds=60)
    assert await cache.get("binary") == value
    assert await cache.get("empty") == b""
