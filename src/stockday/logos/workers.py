"""Image work off the event loop: bounded in threads and in the memory its decodes hold.

Decoding a 25-megapixel upload takes a few hundred milliseconds of CPU and up to a hundred
megabytes. On the event loop it stalls every other request of the replica; unbounded in
threads, a handful at once exhausts the replica's memory. Pillow releases the GIL while it
decodes and resamples, so worker threads (not processes) keep the loop responsive; they run
at a lower CPU priority, so that on a busy machine the requests' threads come first.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache, partial
from typing import TypeVar

from stockday.logos.images import ResizedLogo, UploadInfo, decode_cost, inspect_upload, resize_logo

__all__ = ["ImageWorkers"]

T = TypeVar("T")

# glibc's mallopt parameter number, and the size from which it maps memory straight from the
# system, so that freeing it gives it back.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1024 * 1024
# Added to the niceness of the image threads (Linux sets it per thread).
_NICENESS = 10


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


def lower_thread_priority() -> None:
    """Run the calling thread at a lower CPU priority; where that is not possible, as it is."""
    try:
        native = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, native, os.getpriority(os.PRIO_PROCESS, native) + _NICENESS)
    except (AttributeError, OSError):
        pass


class ImageWorkers:
    """Inspects and resizes images in ``threads`` worker threads of their own, admitting each
    job only while the memory of the decodes under way, estimated from their headers, stays
    within ``budget_bytes``.

    Jobs are admitted in arrival order. One larger than the whole budget waits until nothing
    else is being decoded and then runs alone, so it is slow to come but never refused here.
    asyncio and anyio have no weighted semaphore, hence the queue of waiters below.
    """

    def __init__(self, *, threads: int, budget_bytes: int) -> None:
        if threads < 1 or budget_bytes < 1:
            raise ValueError("threads and budget_bytes must be positive")
        self.threads = threads
        self.budget_bytes = budget_bytes
        self.held_bytes = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="image", initializer=lower_thread_priority
        )
        give_freed_images_back()

    async def inspect(self, data: bytes, *, max_bytes: int, max_pixels: int) -> UploadInfo:
        """``inspect_upload`` in a worker thread, within the budget."""
        cost = await asyncio.to_thread(decode_cost, data, max_pixels=max_pixels)
        work = partial(inspect_upload, data, max_bytes=max_bytes, max_pixels=max_pixels)
        return await self._run(cost, work)

    async def resize(self, data: bytes, *, max_side: int, max_pixels: int) -> ResizedLogo:
        """``resize_logo`` in a worker thread, within the budget."""
        cost = await asyncio.to_thread(decode_cost, data, max_pixels=max_pixels, max_side=max_side)
        work = partial(resize_logo, data, max_side=max_side, max_pixels=max_pixels)
        return await self._run(cost, work)

    def close(self) -> None:
        """Stop taking work; what runs finishes."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, cost: int, work: Callable[[], T]) -> T:
        cost = min(cost, self.budget_bytes)
        await self._admit(cost)
        loop = asyncio.get_running_loop()
        try:
            job: Future[T] = self._pool.submit(work)
        except BaseException:
            self._release(cost)
            raise
        # Released when the thread is done, not when the caller stops waiting: a cancelled
        # request does not stop the decode, whose memory stays held until it ends.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, cost))
        return await asyncio.wrap_future(job)

    async def _admit(self, cost: int) -> None:
        if not self._waiting and self.held_bytes + cost <= self.budget_bytes:
            self.held_bytes += cost
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((cost, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(cost)  # admitted just as the caller gave up
            elif (cost, turn) in self._waiting:
                self._waiting.remove((cost, turn))
                self._admit_waiting()
            raise

    def _release(self, cost: int) -> None:
        self.held_bytes -= cost
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        """Admit waiting jobs in order for as long as the first of them fits."""
        while self._waiting and self.held_bytes + self._waiting[0][0] <= self.budget_bytes:
            cost, turn = self._waiting.popleft()
            if turn.done():
                continue  # its caller was cancelled while waiting
            self.held_bytes += cost
            turn.set_result(None)
