"""Image work off the event loop: bounded in threads and in the memory its decodes hold.

Decoding a 25-megapixel upload takes a few hundred milliseconds of CPU and up to a hundred
megabytes. On the event loop it stalls every other request of the replica; unbounded in
threads, a handful at once exhausts the replica's memory. Pillow releases the GIL while it
decodes and resamples, so worker threads (not processes) keep the loop responsive.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache, partial
from typing import TypeVar

import anyio
import anyio.to_thread

from stockday.logos.images import ResizedLogo, UploadInfo, decode_cost, inspect_upload, resize_logo

__all__ = ["ImageWorkers"]

T = TypeVar("T")

# glibc's mallopt parameter number, and the size from which it maps memory straight from the
# system, so that freeing it gives it back.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1024 * 1024


@cache
def give_freed_images_back() -> bool:
    """Make glibc return a decoded image's memory to the system when it is freed.

    By default glibc raises its mmap threshold to the size of the last large block freed, so
    after the first image every image is allocated from heap arenas (one per worker thread)
    that keep it once freed: a replica's memory then grows with every few images instead of
    staying at what its live decodes hold (measured: 290 MB after 20 large images, 68 MB with
    a fixed threshold). No library exposes mallopt; False where the C library has none.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))


class ImageWorkers:
    """Inspects and resizes images in at most ``threads`` worker threads at once, admitting
    each only while the memory of the decodes under way, estimated from their headers, stays
    within ``budget_bytes``.

    Jobs are admitted in arrival order. One larger than the whole budget waits until nothing
    else is being decoded and then runs alone, so it is slow to come but never refused here.
    """

    def __init__(self, *, threads: int, budget_bytes: int) -> None:
        if threads < 1 or budget_bytes < 1:
            raise ValueError("threads and budget_bytes must be positive")
        self.threads = threads
        self.budget_bytes = budget_bytes
        give_freed_images_back()
        self.held_bytes = 0
        self._limiter: anyio.CapacityLimiter | None = None
        self._queue: anyio.Lock | None = None
        self._released: anyio.Condition | None = None

    async def inspect(self, data: bytes, *, max_bytes: int, max_pixels: int) -> UploadInfo:
        """``inspect_upload`` in a worker thread, within the budget."""
        cost = await anyio.to_thread.run_sync(decode_cost, data)
        work = partial(inspect_upload, data, max_bytes=max_bytes, max_pixels=max_pixels)
        return await self._run(cost, work)

    async def resize(self, data: bytes, *, max_side: int, max_pixels: int) -> ResizedLogo:
        """``resize_logo`` in a worker thread, within the budget."""
        cost = await anyio.to_thread.run_sync(partial(decode_cost, data, max_side=max_side))
        work = partial(resize_logo, data, max_side=max_side, max_pixels=max_pixels)
        return await self._run(cost, work)

    async def _run(self, cost: int, work: Callable[[], T]) -> T:
        limiter, queue, released = self._primitives()
        cost = min(cost, self.budget_bytes)
        # anyio's Lock is fair: whoever waits first is admitted first, so a large job is not
        # overtaken forever by small ones that would fit beside the work under way.
        async with queue, released:
            while self.held_bytes + cost > self.budget_bytes:
                await released.wait()
            self.held_bytes += cost
        try:
            # Not abandoned on cancellation: the memory stays held until the thread is done.
            return await anyio.to_thread.run_sync(work, limiter=limiter)
        finally:
            with anyio.CancelScope(shield=True):
                async with released:
                    self.held_bytes -= cost
                    released.notify_all()

    def _primitives(self) -> tuple[anyio.CapacityLimiter, anyio.Lock, anyio.Condition]:
        # Made on first use, inside the event loop that will run the work.
        if self._limiter is None or self._queue is None or self._released is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
            self._queue = anyio.Lock()
            self._released = anyio.Condition()
        return self._limiter, self._queue, self._released
