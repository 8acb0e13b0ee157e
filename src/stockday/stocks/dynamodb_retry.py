"""How long an optimistic DynamoDB write keeps retrying after losing a race.

Writes that add or delete stocks all condition on one counter item, so under contention some
of them lose and retry. The bound is a time budget, not a number of attempts: when the
machine or the table is busy every round trip is slower and a write's read-then-write window
wider, so a fixed count runs out while the contention it is waiting out is still ordinary
(a delete, which needs two round trips against an add's one, lost 16 in a row that way).
Full-jitter exponential backoff keeps replicas that collided from colliding again in step.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

# A stock write is an operator's action: a slow answer beats a spurious failure, and a caller
# with a tighter timeout of its own still cancels the wait sooner.
WRITE_BUDGET_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 0.005
BACKOFF_CAP_SECONDS = 0.4

__all__ = ["BACKOFF_BASE_SECONDS", "BACKOFF_CAP_SECONDS", "WRITE_BUDGET_SECONDS", "Retries"]


class Retries:
    """One operation's retries: jittered exponential pauses until its budget is spent."""

    def __init__(
        self,
        rng: random.Random,
        budget_seconds: float = WRITE_BUDGET_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._deadline = clock() + budget_seconds
        self._pauses = 0

    async def pause(self) -> bool:
        """Wait before the next attempt; False (without waiting) once the budget is spent."""
        left = self._deadline - self._clock()
        if left <= 0:
            return False
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(self._pauses, 30))
        self._pauses += 1
        await asyncio.sleep(min(left, self._rng.uniform(0, ceiling)))
        return True
