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
import time

import httpx
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from stockday.clients.stock_symbol import Refused, SymbolClient, SymbolServiceUnavailable
from stockday.contracts.messages import (
    REQUESTED_AT_ATTRIBUTE,
    LogoFailed,
    LogoResized,
    MalformedMessage,
    decode,
)
from stockday.contracts.stocks import LogoUpdate
from stockday.domain.stocks import upload_key, upload_link_key
from stockday.objects.base import ObjectStore
from stockday.queue_worker.janitor import UploadJanitor
from stockday.queues.base import ReceivedMessage
from stockday.runtime import composition
from stockday.runtime.consumer import (
    Consumer,
    DependencyUnavailable,
    HealthEndpoint,
    cancel_and_wait,
    serve_consumer,
)
from stockday.runtime.settings import Settings

log = logging.getLogger("stockday.queue_worker")

CONCURRENCY = 8

# The logo-processing objectives' events (stockday.slo.catalog): each logo recorded, once.
LOGO_JOBS = Counter(
    "stockday_logo_jobs_total",
    "Logo results recorded on their stock, by outcome (ready, failed).",
    ["outcome"],
)
LOGO_READY_SECONDS = Histogram(
    "stockday_logo_ready_seconds",
    "Time from a logo's request (its job sent) to the logo recorded ready.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
for _outcome in ("ready", "failed"):
    LOGO_JOBS.labels(_outcome)  # both series from the start: a ratio needs its zeroes


class UpstreamError(DependencyUnavailable):
    """stock-symbol is unreachable or failing; the message is retried once it is back."""


class StockBusy(Exception):
    """The stock changed under the write (a lost race); the message is retried soon."""


def logo_update(event: LogoResized | LogoFailed) -> LogoUpdate:
    """The change of the stock's logo that ``event`` reports."""
    try:
        if isinstance(event, LogoResized):
            return LogoUpdate(upload_id=event.upload_id, state="ready", key=event.logo_key)
        return LogoUpdate(upload_id=event.upload_id, state="failed", error=event.error)
    except ValidationError as exc:  # stock-symbol would refuse it just the same
        raise MalformedMessage(f"stock-symbol would reject the result: {exc}") from exc


class LogoRecorder:
    def __init__(self, *, symbols: SymbolClient, objects: ObjectStore) -> None:
        self.symbols = symbols
        self.objects = objects

    async def handle(self, message: ReceivedMessage) -> None:
        event = decode(message.body)
        if not isinstance(event, LogoResized | LogoFailed):
            raise MalformedMessage(f"queue-worker does not handle {event.type} messages")
        update = logo_update(event)
        try:
            await self.symbols.change_logo(event.symbol, update)
        except SymbolServiceUnavailable as exc:  # unreachable, failing (5xx), or an odd answer
            raise UpstreamError(str(exc)) from exc
        except Refused as refused:
            if refused.status in (404, 409):
                await self._settle_refused(event)
                return
            if refused.status in (400, 422):
                reason = "; ".join(refused.messages.values())
                raise MalformedMessage(f"stock-symbol rejected the result: {reason}") from refused
            raise UpstreamError(f"stock-symbol answered {refused.status}") from refused
        log.info("recorded %s for %s", event.type, event.symbol)
        count_recorded(event, message)
        if isinstance(event, LogoResized):
            # The logo is durably ready: its raw upload is done with. Deleting is
            # idempotent, and if it fails the message is retried (the PUT is a no-op then).
            await self.objects.delete(upload_key(event.upload_id))
            await self.objects.delete(upload_link_key(event.upload_id))

    async def _settle_refused(self, event: LogoResized | LogoFailed) -> None:
        """Act on a refused result: 404 (the stock is gone) or 409 (the transition does not
        apply: the logo now comes from another upload, is already settled, or the write lost
        its races against concurrent changes)."""
        try:
            stock = await self.symbols.get_stock(event.symbol)
        except SymbolServiceUnavailable as exc:
            raise UpstreamError(str(exc)) from exc
        if stock is not None and stock.logo.upload_id == event.upload_id:
            if stock.logo.state == "pending":
                # Still waiting for this very result: the 409 was a lost write race
                # ("being changed concurrently"), not a refusal. Try again later.
                raise StockBusy(f"stock {event.symbol} is busy; will retry")
            return  # already ready or failed: a late duplicate changes nothing
        if isinstance(event, LogoResized):
            # A logo nobody will show: delete it so that no object is orphaned.
            await self.objects.delete(event.logo_key)
            log.info("deleted orphaned logo %s", event.logo_key)


def count_recorded(event: LogoResized | LogoFailed, message: ReceivedMessage) -> None:
    """Count a recorded result; time a ready one from its request (the result's own send time,
    a later bound, when an older logo-resizer did not pass the request time on)."""
    if isinstance(event, LogoFailed):
        LOGO_JOBS.labels("failed").inc()
        return
    LOGO_JOBS.labels("ready").inc()
    try:
        requested_at = float(message.attributes[REQUESTED_AT_ATTRIBUTE])
    except (KeyError, ValueError):
        requested_at = message.sent_at.timestamp()
    LOGO_READY_SECONDS.observe(max(0.0, time.time() - requested_at))


async def run(
    settings: Settings, *, health_port: int | None, health_host: str = "127.0.0.1"
) -> None:
    events = composition.message_queue(settings, settings.logo_events_queue)
    objects = composition.object_store(settings)
    async with httpx.AsyncClient(
        base_url=settings.symbol_url, timeout=settings.http_timeout_seconds
    ) as client:
        symbols = SymbolClient(client, timeout_seconds=settings.http_timeout_seconds)
        recorder = LogoRecorder(symbols=symbols, objects=objects)
        janitor = UploadJanitor(
            objects=objects,
            retention_seconds=settings.upload_retention_seconds,
            linked_retention_seconds=settings.linked_upload_retention_seconds,
        )
        health = HealthEndpoint(health_host, health_port, settings.readiness_timeout_seconds)
        consumer = Consumer.configured(
            settings,
            name="queue-worker",
            queue=events,
            handler=recorder.handle,
            concurrency=CONCURRENCY,
        )

        sweeping = asyncio.create_task(
            janitor.run(consumer.stopping, interval_seconds=settings.janitor_interval_seconds)
        )
        try:
            await serve_consumer(
                consumer, health, checks=[events.check, objects.check, symbols.ping]
            )
        finally:
            await cancel_and_wait(sweeping)
            await events.close()
            await objects.close()
