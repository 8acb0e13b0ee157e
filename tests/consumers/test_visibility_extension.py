"""A job slower than the visibility timeout is handled once, on SQLite and on SQS (moto).

Two consumers share a queue, as two replicas would. The first holds a batch of two messages
but runs one at a time; each job outlasts the visibility timeout several times over. Unless the
runtime keeps every message it holds invisible (the running one and the one still waiting for a
slot), the second consumer receives it meanwhile and the job runs twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from stockday.aws.clients import make_client
from stockday.aws.provision import create_queue
from stockday.queues.base import MessageQueue, ReceivedMessage
from stockday.queues.sqlite import SqliteQueue
from stockday.queues.sqs import SqsQueue
from stockday.runtime.consumer import Consumer
from tests.support.aws import emulator_config

pytestmark = pytest.mark.anyio

VISIBILITY = 1.0  # SQS's shortest: whole seconds
JOB_SECONDS = 2.5  # outlasts the visibility timeout twice
DEADLINE = 30.0

OpenQueue = Callable[[], Awaitable[MessageQueue]]


async def sqlite_queues(tmp_path: Path, name: str) -> OpenQueue:
    async def open_() -> MessageQueue:
        return SqliteQueue(tmp_path / "queues.sqlite3", name, max_receives=5, poll_interval=0.02)

    return open_


async def sqs_queues(tmp_path: Path, name: str) -> OpenQueue:
    config = emulator_config()
    client = make_client("sqs", config)
    try:
        await asyncio.to_thread(create_queue, client, name, max_receives=5)
    finally:
        client.close()

    async def open_() -> MessageQueue:
        return SqsQueue(config, name, max_receives=5)

    return open_


@pytest.fixture(params=[sqlite_queues, sqs_queues], ids=["sqlite", "sqs"])
async def handles(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenQueue]:
    opened: list[MessageQueue] = []
    factory = await request.param(tmp_path, f"slow-{uuid.uuid4().hex[:12]}")

    async def open_() -> MessageQueue:
        queue = await factory()
        opened.append(queue)
        return queue

    yield open_
    for queue in opened:
        await queue.close()


async def test_a_slow_job_is_handled_exactly_once(handles: OpenQueue) -> None:
    first_queue, second_queue = await handles(), await handles()
    sent = {await first_queue.send(f"job {i}") for i in range(2)}
    handled: list[str] = []
    started = asyncio.Event()

    async def slow_job(message: ReceivedMessage) -> None:
        started.set()
        handled.append(message.message_id)
        await asyncio.sleep(JOB_SECONDS)

    def consumer(name: str, queue: MessageQueue) -> Consumer:
        return Consumer(
            name=name,
            queue=queue,
            handler=slow_job,
            concurrency=1,  # receives batches of two, runs one job at a time
            wait_seconds=1,
            visibility_timeout=VISIBILITY,
            retry_delay=0,
        )

    first = consumer("first", first_queue)
    second = consumer("second", second_queue)
    runs = [asyncio.create_task(first.run())]
    await asyncio.wait_for(started.wait(), DEADLINE)
    # The first consumer holds both messages now; the second polls all the while.
    runs.append(asyncio.create_task(second.run()))

    deadline = time.monotonic() + DEADLINE
    while True:
        stats = await first_queue.stats()
        if set(handled) == sent and stats.visible == stats.in_flight == 0:
            break
        assert time.monotonic() < deadline, f"not done: handled {handled}, {stats}"
        await asyncio.sleep(0.1)
    first.stop()
    second.stop()
    await asyncio.wait_for(asyncio.gather(*runs), DEADLINE)

    assert Counter(handled) == dict.fromkeys(sent, 1)
    assert (await first_queue.stats()).dead_letters == 0
