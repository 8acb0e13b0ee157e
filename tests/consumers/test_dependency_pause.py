"""A consumer whose dependency is down holds the message and tries again after a pause,
instead of spending its receives and dead-lettering it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stockday.queues.base import ReceivedMessage
from stockday.queues.sqlite import SqliteQueue
from stockday.runtime.consumer import Consumer, DependencyUnavailable

pytestmark = pytest.mark.anyio

MAX_RECEIVES = 3
OUTAGE_SECONDS = 2.5


async def test_a_short_outage_of_a_dependency_dead_letters_nothing(tmp_path: Path) -> None:
    queue = SqliteQueue(
        tmp_path / "q.sqlite3", "jobs", max_receives=MAX_RECEIVES, poll_interval=0.02
    )
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    attempts: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def handler(message: ReceivedMessage) -> None:
        attempts.append((time.monotonic(), message.receive_count))
        if time.monotonic() < outage_ends:
            raise DependencyUnavailable("stock-symbol unreachable")
        done.set()

    consumer = Consumer(
        name="test",
        queue=queue,
        handler=handler,
        concurrency=1,
        wait_seconds=0.2,
        visibility_timeout=5,
        retry_delay=0.05,  # without the pause, three receives would take 0.1 s
    )
    await queue.send('{"type": "job"}')
    running = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(done.wait(), 15)
    finally:
        consumer.stop()
        await running
    stats = await queue.stats()
    await queue.close()
    assert stats.dead_letters == 0
    assert len(attempts) >= 2
    assert attempts[-1][0] >= outage_ends  # it waited the outage out
    assert {count for _, count in attempts} == {1}  # all on one receive: none spent
    assert consumer.dependency_failures == 0  # reset by the success
