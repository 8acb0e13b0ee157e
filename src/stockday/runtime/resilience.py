"""Circuit breakers and retries for synchronous calls between services.

A breaker per dependency (purgatory): after ``threshold`` consecutive failures, calls fail at
once for ``ttl`` seconds, then one trial call decides whether it closes again; so a dead
dependency costs microseconds, not a timeout per request. Retries (tenacity) are only for
calls that are safe to repeat, only after a connection-level failure (never after a timeout: a
caller never waits more than its timeout), at most once more, after a short random pause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
from prometheus_client import Counter, Gauge
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import OpenedState
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

T = TypeVar("T")

BREAKER_OPEN = Gauge(
    "stockday_breaker_open",
    "1 while calls to a dependency are skipped after failures, else 0.",
    ["dependency"],
)
BREAKER_SKIPPED = Counter(
    "stockday_breaker_skipped_calls_total",
    "Calls to a dependency not made because its breaker was open.",
    ["dependency"],
)

# Failures of the connection, where the request may not have reached the server or the
# server died before answering: worth one more try on another replica.
RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class BreakerOpen(Exception):
    """The dependency failed repeatedly just now; the call was not made."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} is failing; not called for a few seconds")
        self.dependency = dependency


class Breaker:
    """One dependency's circuit breaker, with its state and skipped calls in the metrics."""

    def __init__(self, dependency: str, *, threshold: int, ttl_seconds: float) -> None:
        self.dependency = dependency
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold, default_ttl=ttl_seconds
        )
        self._factory.add_listener(self._on_event)
        self._open = BREAKER_OPEN.labels(dependency)
        self._skipped = BREAKER_SKIPPED.labels(dependency)

    def _on_event(self, name: str, event_type: str, event: object) -> None:
        if isinstance(event, ContextChanged):
            self._open.set(1 if event.state == "opened" else 0)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block unless the breaker is open; an exception in it counts as a failure."""
        breaker = await self._factory.get_breaker(self.dependency)
        try:
            async with breaker:
                yield
        except OpenedState:
            self._skipped.inc()
            raise BreakerOpen(self.dependency) from None


async def retry_idempotent(call: Callable[[], Awaitable[T]]) -> T:
    """Run an idempotent call; once more after a connection failure, 10-50 ms later."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(2),
        wait=wait_random(0.01, 0.05),
        retry=retry_if_exception_type(RETRYABLE),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last failure")
