"""The cache port. The cache is an optimisation: every caller must work when it misses or fails."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter

# Shared by every adapter, labelled by backend: the hit ratio is hits / (hits + misses).
CACHE_HITS = Counter("stockday_cache_hits_total", "Cache lookups that found a value.", ["backend"])
CACHE_MISSES = Counter(
    "stockday_cache_misses_total",
    "Cache lookups that found nothing (absent, expired, or the cache failed).",
    ["backend"],
)
CACHE_ERRORS = Counter(
    "stockday_cache_errors_total",
    "Cache operations that failed, or were skipped while their server was backing off.",
    ["backend"],
)


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss, expiry or cache failure."""

    async def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        """Store a value; failures are swallowed (and counted), never raised."""

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
