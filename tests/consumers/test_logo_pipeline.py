"""logo-resizer and queue-worker running their real loops against embedded adapters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stockday import backends
from stockday.consumers.runtime import Consumer
from stockday.domain.messages import LogoRequested, LogoResized, encode
from stockday.domain.stocks import logo_key, upload_key
from stockday.logo_resizer.consumer import LogoResizer
from stockday.objects.base import ObjectStore
from stockday.queue_worker.consumer import LogoRecorder
from stockday.queues.base import MessageQueue
from stockday.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests import sample_images

pytestmark = pytest.mark.anyio


@dataclass
class Pipeline:
    api: httpx.AsyncClient
    jobs: MessageQueue
    events: MessageQueue
    objects: ObjectStore
    resizer: LogoResizer
    recorder: LogoRecorder
    consumers: list[Consumer]


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    settings = Settings(data_dir=tmp_path, queue_max_receives=3, queue_retry_delay_seconds=0.05)
    prices = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_price_app(settings)), base_url="http://price"
    )
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_symbol_app(settings, price_client=prices)),
        base_url="http://symbol",
    )
    jobs = backends.message_queue(settings, settings.logo_jobs_queue)
    events = backends.message_queue(settings, settings.logo_events_queue)
    objects = backends.object_store(settings)
    resizer = LogoResizer(objects=objects, events=events, max_side=128, max_pixels=25_000_000)
    recorder = LogoRecorder(client=api, objects=objects)

    def consumer(
        name: str, queue: MessageQueue, handler: Callable[..., Awaitable[None]]
    ) -> Consumer:
        return Consumer(
            name=name,
            queue=queue,
            handler=handler,
            concurrency=2,
            wait_seconds=0.2,
            visibility_timeout=5,
            retry_delay=0.05,
        )

    consumers = [
        consumer("resizer", jobs, resizer.handle),
        consumer("worker", events, recorder.handle),
    ]
    yield Pipeline(api, jobs, events, objects, resizer, recorder, consumers)
    for c in consumers:
        c.stop()
    await api.aclose()
    await prices.aclose()


async def running(pipeline: Pipeline) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(c.run()) for c in pipeline.consumers]


async def stop(pipeline: Pipeline, tasks: list[asyncio.Task[None]]) -> None:
    for c in pipeline.consumers:
        c.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def add_stock(pipeline: Pipeline, symbol: str, image: bytes | None = None) -> str:
    uploaded = await pipeline.api.post(
        "/api/uploads", files={"file": ("l.png", image or sample_images.png(400, 200), "image/png")}
    )
    upload_id: str = uploaded.json()["upload_id"]
    created = await pipeline.api.post(
        "/api/stocks", json={"symbol": symbol, "name": symbol, "upload_id": upload_id}
    )
    assert created.status_code == 201
    return upload_id


async def logo_state(pipeline: Pipeline, symbol: str) -> str:
    return str((await pipeline.api.get(f"/api/stocks/{symbol}")).json()["logo"]["state"])


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

    async def done() -> bool:
        stats = await pipeline.jobs.stats()
        events = await pipeline.events.stats()
        return stats.visible + stats.in_flight + events.visible + events.in_flight == 0

    await until(done)
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


async def test_a_logo_for_a_deleted_stock_is_not_orphaned(pipeline: Pipeline) -> None:
    upload_id = await add_stock(pipeline, "GONE")
    [message] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1)
    await pipeline.resizer.handle(message)
    await pipeline.jobs.delete(message.receipt)
    assert await pipeline.objects.exists(logo_key("GONE", upload_id))
    assert (await pipeline.api.delete("/api/stocks/GONE")).status_code == 204
    tasks = await running(pipeline)

    async def drained() -> bool:
        stats = await pipeline.events.stats()
        return stats.visible + stats.in_flight == 0

    await until(drained)
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
