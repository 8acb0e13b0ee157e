"""The logo pipeline on embedded adapters: stock-symbol in-process, both consumers' real loops.

Shared by the consumer tests: the ``pipeline`` fixture (in conftest.py) and small helpers to
run the loops, add stocks and poll with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from stockday.clients.stock_symbol import SymbolClient
from stockday.logo_resizer.consumer import LogoResizer
from stockday.logos.workers import ImageWorkers
from stockday.objects.base import ObjectStore
from stockday.queue_worker.consumer import LogoRecorder
from stockday.queues.base import MessageQueue
from stockday.runtime import composition
from stockday.runtime.consumer import Consumer
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests.support import images as sample_images


@dataclass
class Pipeline:
    settings: Settings
    api: httpx.AsyncClient
    jobs: MessageQueue
    events: MessageQueue
    objects: ObjectStore
    resizer: LogoResizer
    recorder: LogoRecorder
    consumers: list[Consumer]


@asynccontextmanager
async def open_pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    prices = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_price_app(settings)), base_url="http://price"
    )
    api = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_symbol_app(settings, price_client=prices)),
        base_url="http://symbol",
    )
    jobs = composition.message_queue(settings, settings.logo_jobs_queue)
    events = composition.message_queue(settings, settings.logo_events_queue)
    objects = composition.object_store(settings)
    resizer = LogoResizer(
        objects=objects,
        events=events,
        images=ImageWorkers(threads=2, budget_bytes=128 * 1024 * 1024),
        max_side=128,
        max_pixels=25_000_000,
    )
    recorder = LogoRecorder(symbols=SymbolClient(api, timeout_seconds=5), objects=objects)

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
    try:
        yield Pipeline(settings, api, jobs, events, objects, resizer, recorder, consumers)
    finally:
        for c in consumers:
            c.stop()
        await api.aclose()
        await prices.aclose()
        await jobs.close()
        await events.close()
        await objects.close()


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


async def upload(pipeline: Pipeline, image: bytes | None = None) -> str:
    uploaded = await pipeline.api.post(
        "/api/uploads", files={"file": ("l.png", image or sample_images.png(400, 200), "image/png")}
    )
    assert uploaded.status_code == 201, uploaded.text
    upload_id: str = uploaded.json()["upload_id"]
    return upload_id


async def add_stock(pipeline: Pipeline, symbol: str, image: bytes | None = None) -> str:
    upload_id = await upload(pipeline, image)
    created = await pipeline.api.post(
        "/api/stocks", json={"symbol": symbol, "name": symbol, "upload_id": upload_id}
    )
    assert created.status_code == 201
    return upload_id


async def logo_state(pipeline: Pipeline, symbol: str) -> str:
    return str((await pipeline.api.get(f"/api/stocks/{symbol}")).json()["logo"]["state"])


async def drained(pipeline: Pipeline) -> bool:
    """Nothing waiting or in flight on either queue."""
    jobs = await pipeline.jobs.stats()
    events = await pipeline.events.stats()
    return jobs.visible + jobs.in_flight + events.visible + events.in_flight == 0
