"""A bounded in-process memo of provider answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from stockday.cache.memory import BoundedMap

T = TypeVar("T")

MEMO_MAX_ENTRIES = 1024


class TtlMemo:
    """A bounded in-process memo with per-entry expiry; concurrent misses share one load."""

    def __init__(
        self, max_entries: int = MEMO_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: BoundedMap[Hashable, Any] = BoundedMap(max(1, max_entries), clock)
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, ttl: float, load: Callable[[], Awaitable[T]]) -> T:
        value = self._entries.get(key)
        if value is not None:
            return cast(T, value)
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, ttl, load))
            # Marks a failure as seen even when every waiter went away before it came.
            pending.add_done_callback(_consume_exception)
            self._loading[key] = pending
        # shield: a caller that goes away must not cancel the load the others wait for.
        return cast(T, await asyncio.shield(pending))

    async def _load(self, key: Hashable, ttl: float, load: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await load()
        finally:
            del self._loading[key]
        self._entries.put(key, value, ttl)
        return value


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
