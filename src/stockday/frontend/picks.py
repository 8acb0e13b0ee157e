"""The home page's random stock, drawn a small batch at a time ahead of the page views.

A page view asking stock-symbol for one random stock would spend most of the frontend's time in
the HTTP client. Instead each worker keeps a short queue of picks that stock-symbol drew
for it in one call (``GET /api/stocks/random-picks?count=N``), refilled in the background when
it runs low, so most page views make no backend call at all. What a visitor sees is the same as
if each page view drew its own pick:

- uniform and independent: every pick is a draw of its own over all stocks, and each is served
  to exactly one page view, in the order drawn, whatever it is; the only picks skipped are
  expired ones, chosen by age alone. So the page views see a stream of independent uniform
  draws, as if each had asked for its own.
- fresh: a pick is served at most ``max_age`` seconds after the call that drew it started, so
  a deleted stock stops appearing, and a new one is drawn like any other, within ``max_age``
  (plus that call's own duration) on every worker. A worker that deletes or adds a stock
  itself drops its queue at once.
- the same failures: the batch call goes through the same client (timeout, breaker, one retry
  of a failed connection); a page view that finds the queue empty waits for the call in flight,
  and sees its error (stock-symbol unavailable) as it would have seen its own.

With ``max_age`` 0 there is no queue: each page view asks for its own pick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from stockday.contracts.stocks import StockOut

log = logging.getLogger("stockday.frontend.picks")

# The smallest batch asked for: a quiet site draws a few at a time, not a full batch per view.
MIN_BATCH = 4

FetchPicks = Callable[[int], Awaitable[list[StockOut]]]


class RandomPicks:
    """One worker's queue of prefetched random picks (see the module's docstring)."""

    def __init__(
        self,
        fetch: FetchPicks,
        *,
        batch_size: int,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._batch = max(1, batch_size)
        self._max_age = max_age_seconds
        self._clock = clock
        # (expires_at, pick), oldest draw first.
        self._queue: deque[tuple[float, StockOut]] = deque()
        self._refill: asyncio.Task[int] | None = None
        # Bumped by ``forget``: a batch drawn before it is not queued.
        self._generation = 0
        self._served_since_refill = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def next(self) -> StockOut | None:
        """A uniformly random stock, or None when there are none."""
        if self._max_age <= 0:
            drawn = await self._fetch(1)
            return drawn[0] if drawn else None
        while True:
            pick = self._take()
            if pick is not None:
                return pick
            task = self._refill or self._start_refill()
            # Shielded: a visitor who leaves must not cancel the call others wait for.
            if await asyncio.shield(task) == 0:
                return None  # no stocks at all (as of that call)

    def forget(self) -> None:
        """Drop every queued pick (and the batch in flight): the stocks just changed here."""
        self._queue.clear()
        self._generation += 1

    async def close(self) -> None:
        task = self._refill
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _take(self) -> StockOut | None:
        now = self._clock()
        queue = self._queue
        while queue:
            expires_at, pick = queue.popleft()
            if expires_at > now:
                self._served_since_refill += 1
                if len(queue) < self._batch // 2 and self._refill is None:
                    self._start_refill()
                return pick
        return None

    def _start_refill(self) -> asyncio.Task[int]:
        # As many as were served since the last call, twice over: a busy worker asks for full
        # batches, a quiet one for a few (unused picks expire).
        count = min(self._batch, max(MIN_BATCH, 2 * self._served_since_refill))
        self._served_since_refill = 0
        task = asyncio.create_task(self._draw(count))
        task.add_done_callback(_log_failure)
        self._refill = task
        return task

    async def _draw(self, count: int) -> int:
        """Queue one batch; answer how many stock-symbol drew (0: there are no stocks)."""
        started = self._clock()
        generation = self._generation
        try:
            drawn = await self._fetch(count)
        finally:
            # Cleared before the task completes, so no waiter ever sees a finished task here.
            self._refill = None
        if generation == self._generation:
            expires_at = started + self._max_age
            self._queue.extend((expires_at, pick) for pick in drawn)
        return len(drawn)


def _log_failure(task: asyncio.Task[int]) -> None:
    # Retrieves the exception, so a background refill nobody waited for is not reported as
    # "never retrieved"; page views that waited for it got the error themselves.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.debug("random picks not refilled: %s", error)
