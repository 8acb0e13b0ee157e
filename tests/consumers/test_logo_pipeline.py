"""logo-resizer and queue-worker running their real loops against embedded adapters."""

from __future__ import annotations

import asyncio

import pytest

from stockday.contracts.messages import (
    LogoFailed,
    LogoRequested,
    LogoResized,
    Message,
    decode,
    encode,
)
from stockday.domain.stocks import logo_key, upload_key
from stockday.queues.base import MessageQueue
from tests.consumers.pipeline import (
    Pipeline,
    add_stock,
    drained,
    logo_state,
    running,
    stop,
    until,
)

pytestmark = pytest.mark.anyio


async def assert_changes_nothing(
    pipeline: Pipeline,
    tasks: list[asyncio.Task[None]],
    symbol: str,
    queue: MessageQueue,
    message: Message,
) -> None:
    """Send ``message`` to a settled pipeline, let it drain, stop the loops: the stock's logo
    and version are as they were."""
    before = (await pipeline.api.get(f"/api/stocks/{symbol}")).json()
    await queue.send(encode(message))
    await until(lambda: drained(pipeline))
    await stop(pipeline, tasks)
    after = (await pipeline.api.get(f"/api/stocks/{symbol}")).json()
    assert after["logo"] == before["logo"]
    assert after["version"] == before["version"]


async def test_logo_becomes_ready(pipeline: Pipeline) -> None:
    tasks = await running(pipeline)
    upload_id = await add_stock(pipeline, "PIPE")

    async def ready() -> bool:
        return await logo_state(pipeline, "PIPE") == "ready"

    await until(ready)
    await stop(pipeline, tasks)
    stored = await pipeline.objects.get(logo_key("PIPE", upload_id))
    assert stored is not None
    assert stored.content_type == "image/webp"
    assert (await pipeline.jobs.stats()).visible == 0
    assert (await pipeline.events.stats()).visible == 0


async def test_malformed_messages_go_to_the_dlq_while_good_ones_flow(pipeline: Pipeline) -> None:
    await pipeline.jobs.send("this is not json")
    await pipeline.jobs.send('{"type": "logo.requested", "schema_version": 1}')
    await pipeline.jobs.send('{"type": "logo.teleported", "schema_version": 1}')
    await pipeline.events.send('{"type": "logo.resized", "schema_version": 99}')
    tasks = await running(pipeline)
    for i in range(5):
        await add_stock(pipeline, f"GOOD{i}")

    async def settled() -> bool:
        states = [await logo_state(pipeline, f"GOOD{i}") for i in range(5)]
        jobs_dlq = (await pipeline.jobs.stats()).dead_letters
        events_dlq = (await pipeline.events.stats()).dead_letters
        return states == ["ready"] * 5 and jobs_dlq == 3 and events_dlq == 1

    await until(settled, timeout=15)
    await stop(pipeline, tasks)
    dead = await pipeline.jobs.dead_letters()
    assert {d.body for d in dead} >= {"this is not json"}
    assert all(d.receive_count == 3 for d in dead)


async def test_a_job_redone_after_a_crash_before_ack_leaves_one_logo(pipeline: Pipeline) -> None:
    upload_id = await add_stock(pipeline, "TWICE")
    # A first consumer does the work but dies before deleting the message.
    [message] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1, visibility_timeout=0.3)
    await pipeline.resizer.handle(message)
    tasks = await running(pipeline)  # the message becomes visible again and is redone

    await until(lambda: drained(pipeline))
    await stop(pipeline, tasks)
    assert await logo_state(pipeline, "TWICE") == "ready"
    logos = await pipeline.objects.list("logos/TWICE/")
    assert [o.key for o in logos] == [logo_key("TWICE", upload_id)]
    before = (await pipeline.api.get("/api/stocks/TWICE")).json()
    # One more duplicate of the result changes nothing: the transition is idempotent.
    duplicate = LogoResized(
        symbol="TWICE",
        upload_id=upload_id,
        logo_key=logo_key("TWICE", upload_id),
        width=1,
        height=1,
    )
    await pipeline.events.send(encode(duplicate))
    [event] = await pipeline.events.receive(max_messages=1, wait_seconds=1)
    await pipeline.recorder.handle(event)
    after = (await pipeline.api.get("/api/stocks/TWICE")).json()
    assert after["version"] == before["version"]
    assert after["logo"] == before["logo"]


async def test_an_upload_that_is_not_an_image_ends_failed(pipeline: Pipeline) -> None:
    upload_id = await add_stock(pipeline, "BAD")
    # Replace the stored upload behind the API's back: the resizer must not trust its input.
    await pipeline.objects.put(upload_key(upload_id), b"%PDF-1.4 nope", content_type="image/png")
    tasks = await running(pipeline)

    async def failed() -> bool:
        return await logo_state(pipeline, "BAD") == "failed"

    await until(failed)
    await stop(pipeline, tasks)
    stock = (await pipeline.api.get("/api/stocks/BAD")).json()
    assert stock["logo"]["error"]
    assert await pipeline.objects.list("logos/") == []
    # The refused upload stays until the janitor's retention is over.
    assert await pipeline.objects.exists(upload_key(upload_id))


async def test_a_logo_for_a_deleted_stock_is_not_orphaned(pipeline: Pipeline) -> None:
    upload_id = await add_stock(pipeline, "GONE")
    [message] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1)
    await pipeline.resizer.handle(message)
    await pipeline.jobs.delete(message.receipt)
    assert await pipeline.objects.exists(logo_key("GONE", upload_id))
    assert (await pipeline.api.delete("/api/stocks/GONE")).status_code == 204
    tasks = await running(pipeline)

    await until(lambda: drained(pipeline))
    await stop(pipeline, tasks)
    assert await pipeline.objects.list("logos/") == []


async def test_stop_releases_unstarted_messages(pipeline: Pipeline) -> None:
    job = LogoRequested(symbol="NONE", upload_id="0" * 32, upload_key=upload_key("0" * 32))
    await pipeline.jobs.send(encode(job))
    consumer = pipeline.consumers[0]
    consumer.stop()
    [message] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1, visibility_timeout=60)
    await consumer._process_batch([message])
    # Released at once, not after the 60 s visibility timeout.
    again = await pipeline.jobs.receive(max_messages=1, wait_seconds=1)
    assert [m.message_id for m in again] == [message.message_id]


async def test_the_raw_upload_is_deleted_once_the_logo_is_ready(pipeline: Pipeline) -> None:
    tasks = await running(pipeline)
    upload_id = await add_stock(pipeline, "TIDY")
    kept = await add_stock(pipeline, "KEPT")  # a second stock: only its own upload may go

    async def upload_gone() -> bool:
        return not await pipeline.objects.exists(upload_key(upload_id))

    await until(upload_gone)
    # Deleted only after the ready state was recorded.
    assert await logo_state(pipeline, "TIDY") == "ready"
    assert await pipeline.objects.exists(logo_key("TIDY", upload_id))
    await until(lambda: drained(pipeline))
    await stop(pipeline, tasks)
    assert await logo_state(pipeline, "KEPT") == "ready"
    assert await pipeline.objects.list("uploads/") == []
    assert {o.key for o in await pipeline.objects.list("logos/")} == {
        logo_key("TIDY", upload_id),
        logo_key("KEPT", kept),
    }


async def test_a_duplicate_job_after_ready_leaves_the_logo_ready(pipeline: Pipeline) -> None:
    tasks = await running(pipeline)
    upload_id = await add_stock(pipeline, "DUP")

    async def settled() -> bool:
        # (Reading the stock also stores its first price: one version, before ``before``.)
        ready = await logo_state(pipeline, "DUP") == "ready"
        gone = not await pipeline.objects.exists(upload_key(upload_id))
        return ready and gone and await drained(pipeline)

    await until(settled)
    # The same job again (a redelivery, a duplicate send): its raw upload is gone by now.
    job = LogoRequested(symbol="DUP", upload_id=upload_id, upload_key=upload_key(upload_id))
    await assert_changes_nothing(pipeline, tasks, "DUP", pipeline.jobs, job)
    assert await pipeline.objects.exists(logo_key("DUP", upload_id))
    assert (await pipeline.jobs.stats()).dead_letters == 0
    assert (await pipeline.events.stats()).dead_letters == 0
    # What the resizer announces for such a job: the stored logo again, not a failure.
    await pipeline.jobs.send(encode(job))
    [message] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1)
    await pipeline.resizer.handle(message)
    [event] = await pipeline.events.receive(max_messages=1, wait_seconds=1)
    announced = decode(event.body)
    assert isinstance(announced, LogoResized)
    assert announced.logo_key == logo_key("DUP", upload_id)
    assert (announced.width, announced.height) == (128, 64)


async def test_a_late_failure_after_ready_leaves_the_logo_ready(pipeline: Pipeline) -> None:
    tasks = await running(pipeline)
    upload_id = await add_stock(pipeline, "LATE")

    async def ready() -> bool:
        return await logo_state(pipeline, "LATE") == "ready" and await drained(pipeline)

    await until(ready)
    # A "failed" for the same upload arriving after "ready" (a resizer replica that found the
    # upload already deleted, before it learned to re-announce): the state machine refuses it.
    late = LogoFailed(symbol="LATE", upload_id=upload_id, error="the uploaded file is gone")
    await assert_changes_nothing(pipeline, tasks, "LATE", pipeline.events, late)
    assert (await pipeline.events.stats()).dead_letters == 0
