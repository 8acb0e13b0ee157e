"""The cache port. The cache is an optimisation: every caller must work when it misses or fails."""

from __future__ import annotations

from typing import Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss, expiry or cache failure."""

    async def set(self, key: str, value: bytes, *, ttl_seconds: int) -> None:
        """Store a value; failures are swallowed (and counted), never raised."""

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
