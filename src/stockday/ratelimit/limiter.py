"""Per-client rate limits and quotas, counted on a store every replica shares.

The counting is the ``limits`` library's fixed-window strategy; the store is one of its storages
(memcached on AWS, the SQLite file of ``stockday.ratelimit.sqlite`` locally, its in-process
memory storage in tests). A rule is a name (``pages``, ``creates``, ``upload-bytes``...) and one
or more windows (``10/minute;50/hour``): a hit is allowed when every window still has room.

Two things are kept in each process, in bounded maps: a client refused is refused from memory
until its window resets (an abusive client costs the store nothing), and the hits of a
``batched`` rule (page views, the hot path) reach the store a batch at a time, a fiftieth of
the rule's smallest limit: one write per batch instead of one per page view, for at most a
batch too many per replica. This is our own, small: ``limits`` has no batching.

The limiter degrades, never cascades: a store that fails or is slower than the timeout lets
the request through (fails open), logs it and counts it in
``stockday_rate_limit_fail_open_total``; after a failure the store is left alone for a few
seconds (the project's circuit breaker), so a dead memcached costs nothing per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from prometheus_client import Counter

from stockday.cache.memory import BoundedMap
from stockday.runtime.resilience import Breaker, BreakerOpen

log = logging.getLogger("stockday.ratelimit")

NAMESPACE = "stockday"
BREAKER_SECONDS = 2.0
# A batched rule's hits go to the store in batches of its smallest limit divided by this.
BATCHES_PER_LIMIT = 50
# Clients remembered per process (pending batches, refusals); the least recent are forgotten.
REMEMBERED_CLIENTS = 100_000

RATE_LIMITED = Counter(
    "stockday_rate_limited_total",
    "Requests refused because their client was over a limit.",
    ["rule"],
)
FAIL_OPEN = Counter(
    "stockday_rate_limit_fail_open_total",
    "Requests let through unchecked because the rate-limit store failed or was skipped.",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a hit is allowed; when refused, the seconds until the full window has room."""

    allowed: bool
    retry_after: int = 0


ALLOWED = Verdict(True)


def parse_rule(text: str) -> tuple[RateLimitItem, ...]:
    """``"10/minute;50/hour"`` as limit items; empty text: no limit."""
    return tuple(parse_many(text)) if text.strip() else ()


class ClientLimiter:
    """Named rules counted per client on a shared ``limits`` storage; fails open."""

    def __init__(
        self,
        storage: Storage,
        rules: Mapping[str, Sequence[RateLimitItem]],
        *,
        timeout_seconds: float,
        batched: Collection[str] = (),
        breaker_seconds: float = BREAKER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self._strategy = FixedWindowRateLimiter(storage)
        self._rules = {name: tuple(items) for name, items in rules.items() if items}
        self._batches = {
            name: max(1, min(item.amount for item in items) // BATCHES_PER_LIMIT)
            for name, items in self._rules.items()
            if name in batched
        }
        # A batch is let go with its shortest window: looked up per page view, computed once.
        self._shortest = {
            name: min(item.get_expiry() for item in items) for name, items in self._rules.items()
        }
        self._timeout = timeout_seconds
        self._breaker = Breaker("rate-limit-store", threshold=1, ttl_seconds=breaker_seconds)
        self._breaker_seconds = breaker_seconds
        self._clock = clock
        self._pending: BoundedMap[tuple[str, str], int] = BoundedMap(REMEMBERED_CLIENTS, clock)
        self._refused: BoundedMap[tuple[str, str], float] = BoundedMap(REMEMBERED_CLIENTS, clock)

    def limits(self, rule: str) -> bool:
        """Whether ``rule`` has any window at all (an empty setting turns it off)."""
        return rule in self._rules

    async def hit(self, rule: str, client: str, cost: int = 1) -> Verdict:
        """Count ``cost`` against the client's windows of ``rule``; refused if any is full."""
        if rule not in self._rules:
            return ALLOWED  # no window at all: nothing to count
        key = (rule, client)
        remembered = self._remembered_refusal(key)
        if remembered is not None:
            RATE_LIMITED.labels(rule).inc()
            return remembered
        batch = self._batches.get(rule, 1)
        if batch > 1:
            cost += self._pending.get(key) or 0
            if cost < batch:
                self._pending.put(key, cost, self._shortest[rule])
                return ALLOWED
            self._pending.pop(key)
        verdict = await self._guarded(rule, client, cost, consume=True)
        if not verdict.allowed:
            self._refused.put(key, self._clock() + verdict.retry_after, verdict.retry_after)
        return verdict

    async def test(self, rule: str, client: str, cost: int = 1) -> Verdict:
        """Whether ``cost`` would fit in every window of ``rule``, counting nothing."""
        remembered = self._remembered_refusal((rule, client))
        if remembered is not None:
            return remembered
        return await self._guarded(rule, client, cost, consume=False)

    async def forget(self, rule: str, client: str) -> None:
        """Start every window of ``rule`` afresh for the client; a store failure leaves them."""
        self._pending.pop((rule, client))
        self._refused.pop((rule, client))
        try:
            async with self._breaker.guard(), asyncio.timeout(self._timeout):
                for item in self._rules.get(rule, ()):
                    await self._strategy.clear(item, NAMESPACE, rule, client)
        except Exception as exc:  # the counts then run out with their windows
            log.warning("rate-limit store failed to forget a client of %s: %r", rule, exc)

    def _remembered_refusal(self, key: tuple[str, str]) -> Verdict | None:
        refused_until = self._refused.get(key)
        if refused_until is None:
            return None
        return Verdict(False, max(1, math.ceil(refused_until - self._clock())))

    async def _guarded(self, rule: str, client: str, cost: int, *, consume: bool) -> Verdict:
        items = self._rules.get(rule)
        if not items:
            return ALLOWED
        try:
            async with self._breaker.guard(), asyncio.timeout(self._timeout):
                verdict = await self._check(items, rule, client, cost, consume=consume)
        except BreakerOpen:
            FAIL_OPEN.inc()
            return ALLOWED
        except Exception as exc:  # any store failure: serve the request, say so
            FAIL_OPEN.inc()
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                "rate-limit store failed (%s); requests are let through unchecked for %.0f s",
                reason,
                self._breaker_seconds,
            )
            return ALLOWED
        if not verdict.allowed and consume:
            RATE_LIMITED.labels(rule).inc()
        return verdict

    async def _check(
        self,
        items: Sequence[RateLimitItem],
        rule: str,
        client: str,
        cost: int,
        *,
        consume: bool,
    ) -> Verdict:
        refused: list[RateLimitItem] = []
        for item in items:
            if consume:
                allowed = await self._strategy.hit(item, NAMESPACE, rule, client, cost=cost)
            else:
                allowed = await self._strategy.test(item, NAMESPACE, rule, client, cost=cost)
            if not allowed:
                refused.append(item)
        if not refused:
            return ALLOWED
        resets = [
            await self._strategy.get_window_stats(i, NAMESPACE, rule, client) for i in refused
        ]
        wait = max(stats.reset_time for stats in resets) - self._clock()
        return Verdict(False, max(1, math.ceil(wait)))

    async def close(self) -> None:
        close = getattr(self.storage, "close", None)
        if close is not None:
            await close()
