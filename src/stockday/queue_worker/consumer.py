"""queue-worker: records logo results on the stock through stock-symbol's API.

stock-symbol stays the only writer of stock data. A result for a stock that is gone, or for an
upload that is no longer the stock's current one, leaves a logo object nobody will use: it is
deleted here so no object is orphaned. Once a ``logo.resized`` result is recorded, the raw
upload it was made from is not needed any more and is deleted too; whatever raw uploads remain
are swept by the upload janitor (``stockday.queue_worker.janitor``), which runs in this process.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from stockday.contracts.messages import LogoFailed, LogoResized, MalformedMessage, decode
from stockday.domain.stocks import upload_key
from stockday.objects.base import ObjectStore
from stockday.queue_worker.janitor import UploadJanitor
from stockday.queues.base import ReceivedMessage
from stockday.runtime import composition
from stockday.runtime.consumer import (
    Consumer,
    DependencyUnavailable,
    cancel_and_wait,
    serve_consumer,
)
from stockday.runtime.settings import Settings

log = logging.getLogger("stockday.queue_worker")

CONCURRENCY = 8


class UpstreamError(DependencyUnavailable):
    """stock-symbol is unreachable or failing; the message is retried once it is back."""


class StockBusy(Exception):
    """The stock changed under the write (a lost race); the message is retried soon."""


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
        try:
            response = await self.client.put(f"/api/stocks/{event.symbol}/logo", json=body)
        except httpx.TransportError as exc:  # refused, reset, timed out
            raise UpstreamError(f"stock-symbol unreachable: {type(exc).__name__}") from exc
        if response.status_code == 200:
            log.info("recorded %s for %s", event.type, event.symbol)
            if isinstance(event, LogoResized):
                # The logo is durably ready: its raw upload is done with. Deleting is
                # idempotent, and if it fails the message is retried (the PUT is a no-op then).
                await self.objects.delete(upload_key(event.upload_id))
            return
        if response.status_code in (404, 409):
            await self._settle_refused(event)
            return
        if response.status_code in (400, 422):
            raise MalformedMessage(f"stock-symbol rejected the result: {response.text[:200]}")
        raise UpstreamError(f"stock-symbol answered {response.status_code}")

    async def _settle_refused(self, event: LogoResized | LogoFailed) -> None:
        """Act on a refused result: 404 (the stock is gone) or 409 (the transition does not
        apply: the logo now comes from another upload, is already settled, or the write lost
        its races against concurrent changes)."""
        try:
            response = await self.client.get(f"/api/stocks/{event.symbol}")
        except httpx.TransportError as exc:
            raise UpstreamError(f"stock-symbol unreachable: {type(exc).__name__}") from exc
        if response.status_code == 200:
            logo = response.json()["logo"]
            if logo["upload_id"] == event.upload_id:
                if logo["state"] == "pending":
                    # Still waiting for this very result: the 409 was a lost write race
                    # ("being changed concurrently"), not a refusal. Try again later.
                    raise StockBusy(f"stock {event.symbol} is busy; will retry")
                return  # already ready or failed: a late duplicate changes nothing
        elif response.status_code != 404:
            raise UpstreamError(f"stock-symbol answered {response.status_code}")
        if isinstance(event, LogoResized):
            # A logo nobody will show: delete it so that no object is orphaned.
            await self.objects.delete(event.logo_key)
            log.info("deleted orphaned logo %s", event.logo_key)


async def run(
    settings: Settings, *, health_port: int | None, health_host: str = "127.0.0.1"
) -> None:
    events = composition.message_queue(settings, settings.logo_events_queue)
    objects = composition.object_store(settings)
    async with httpx.AsyncClient(
        base_url=settings.symbol_url, timeout=settings.http_timeout_seconds
    ) as client:
        recorder = LogoRecorder(client=client, objects=objects)
        janitor = UploadJanitor(
            objects=objects, retention_seconds=settings.upload_retention_seconds
        )
        consumer = Consumer(
            name="queue-worker",
            queue=events,
            handler=recorder.handle,
            concurrency=CONCURRENCY,
            wait_seconds=settings.queue_wait_seconds,
            visibility_timeout=settings.queue_visibility_seconds,
            retry_delay=settings.queue_retry_delay_seconds,
            crash_before_ack_file=settings.fault_crash_before_ack_file,
        )

        async def symbol_reachable() -> None:
            try:
                response = await client.get("/api/ping")
            except httpx.HTTPError as exc:
                raise RuntimeError(f"stock-symbol unreachable at {settings.symbol_url}") from exc
            if response.status_code != 200:
                raise RuntimeError(f"stock-symbol answered {response.status_code} to ping")

        sweeping = asyncio.create_task(
            janitor.run(consumer.stopping, interval_seconds=settings.janitor_interval_seconds)
        )
        try:
            await serve_consumer(
                consumer,
                service="queue-worker",
                health_port=health_port,
                host=health_host,
                checks=[events.check, objects.check, symbol_reachable],
                readiness_timeout=settings.readiness_timeout_seconds,
            )
        finally:
            await cancel_and_wait(sweeping)
            await events.close()
            await objects.close()
