"""queue-worker: records logo results on the stock through stock-symbol's API.

stock-symbol stays the only writer of stock data. A result for a stock that is gone, or for an
upload that is no longer the stock's current one, leaves a logo object nobody will use: it is
deleted here so no object is orphaned.
"""

from __future__ import annotations

import logging

import httpx

from stockday import backends
from stockday.consumers.runtime import Consumer, serve_consumer
from stockday.domain.messages import LogoFailed, LogoResized, MalformedMessage, decode
from stockday.objects.base import ObjectStore
from stockday.queues.base import ReceivedMessage
from stockday.settings import Settings

log = logging.getLogger("stockday.queue_worker")

CONCURRENCY = 8


class UpstreamError(Exception):
    """stock-symbol could not take the result now; the message will be retried."""


class LogoRecorder:
    def __init__(self, *, client: httpx.AsyncClient, objects: ObjectStore) -> None:
        self.client = client
        self.objects = objects

    async def handle(self, message: ReceivedMessage) -> None:
        event = decode(message.body)
        if isinstance(event, LogoResized):
            body = {"upload_id": event.upload_id, "state": "ready", "key": event.logo_key}
        elif isinstance(event, LogoFailed):
            body = {"upload_id": event.upload_id, "state": "failed", "error": event.error}
        else:
            raise MalformedMessage(f"queue-worker does not handle {event.type} messages")
        response = await self.client.put(f"/api/stocks/{event.symbol}/logo", json=body)
        if response.status_code == 200:
            log.info("recorded %s for %s", event.type, event.symbol)
            return
        if response.status_code in (404, 409) and isinstance(event, LogoResized):
            await self._drop_if_orphan(event)
            return
        if response.status_code in (404, 409):
            return  # a failure for a stock or upload that no longer matters
        if response.status_code in (400, 422):
            raise MalformedMessage(f"stock-symbol rejected the result: {response.text[:200]}")
        raise UpstreamError(f"stock-symbol answered {response.status_code}")

    async def _drop_if_orphan(self, event: LogoResized) -> None:
        response = await self.client.get(f"/api/stocks/{event.symbol}")
        if response.status_code == 200:
            current = response.json()["logo"]["upload_id"]
            if current == event.upload_id:
                return
        elif response.status_code != 404:
            raise UpstreamError(f"stock-symbol answered {response.status_code}")
        await self.objects.delete(event.logo_key)
        log.info("deleted orphaned logo %s", event.logo_key)


async def run(settings: Settings, *, health_port: int | None) -> None:
    events = backends.message_queue(settings, settings.logo_events_queue)
    objects = backends.object_store(settings)
    async with httpx.AsyncClient(
        base_url=settings.symbol_url, timeout=settings.http_timeout_seconds
    ) as client:
        recorder = LogoRecorder(client=client, objects=objects)
        consumer = Consumer(
            name="queue-worker",
            queue=events,
            handler=recorder.handle,
            concurrency=CONCURRENCY,
            wait_seconds=settings.queue_wait_seconds,
            visibility_timeout=settings.queue_visibility_seconds,
            retry_delay=settings.queue_retry_delay_seconds,
        )

        async def symbol_reachable() -> None:
            try:
                response = await client.get("/api/ping")
            except httpx.HTTPError as exc:
                raise RuntimeError(f"stock-symbol unreachable at {settings.symbol_url}") from exc
            if response.status_code != 200:
                raise RuntimeError(f"stock-symbol answered {response.status_code} to ping")

        try:
            await serve_consumer(
                consumer,
                service="queue-worker",
                health_port=health_port,
                checks=[events.check, objects.check, symbol_reachable],
            )
        finally:
            await events.close()
            await objects.close()
