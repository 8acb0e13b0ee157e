"""In-process caching: one bounded LRU map with optional expiry, and the Cache port on it.

Per-process by design (each service instance warms its own); nothing here awaits, so every call
is atomic with respect to other tasks of the event loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import LRUCache

from stockday.cache.base import CACHE_HITS, CACHE_MISSES

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """At most ``max_entries`` values, least recently used evicted first, each with an expiry.

    The one in-process store of the project: the Cache adapter, stock-price's memo, the
    simulated provider's series and the frontend's kept pages all keep their entries here.
    cachetools' LRUCache bounds it; expiry is checked on read, because TLRUCache's per-entry
    timers cost four times as much per read, and reads are on every page view.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        # key -> (expires_at, value)
        self._entries: LRUCache[K, tuple[float, V]] = LRUCache(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]  # expired: free the slot now
            return None
        return entry[1]

    def put(self, key: K, value: V, ttl_seconds: float = math.inf) -> None:
        self._entries[key] = (self._clock() + ttl_seconds, value)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


_HITS = CACHE_HITS.labels("memory")
_MISSES = CACHE_MISSES.labels("memory")


class MemoryCache:
    """Cache port in memory; ``hits`` and ``misses`` count get() outcomes."""

    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: BoundedMap[str, bytes] = BoundedMap(max_entries, clock)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            _MISSES.inc()
        else:
            self.hits += 1
            _HITS.inc()
        return value

    async def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        """Store for ``ttl_seconds``; a TTL of 0 or less just drops the key."""
        if ttl_seconds <= 0:
            self._entries.pop(key)
            return
        self._entries.put(key, bytes(value), ttl_seconds)

    async def delete(self, key: str) -> None:
        self._entries.pop(key)

    async def close(self) -> None:
        self._entries.clear()
