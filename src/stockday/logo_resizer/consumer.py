"""logo-resizer: turns a raw upload into a resized logo and announces the result.

Idempotent by construction: the logo key is a function of (symbol, upload id), so a redelivered
job overwrites the same object; the "resized" event may be sent twice, and queue-worker treats a
second one as a no-op.

queue-worker deletes the raw upload once the logo is recorded as ready, so a job delivered again
after that finds no upload. If the logo it would have made is stored, the job was done: the
result is announced again (a no-op for queue-worker) rather than a failure. With neither the
upload nor the logo (the stock was deleted, which deletes both), the job fails for good; a late
"failed" never undoes a ready logo either, as the stock's state machine refuses it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stockday.contracts.messages import (
    REQUESTED_AT_ATTRIBUTE,
    LogoFailed,
    LogoRequested,
    LogoResized,
    MalformedMessage,
    decode,
    encode,
)
from stockday.domain.stocks import logo_key
from stockday.logos.images import RejectedImage
from stockday.logos.workers import ImageWorkers
from stockday.objects.base import ObjectStore
from stockday.queues.base import MessageQueue, ReceivedMessage
from stockday.runtime import composition
from stockday.runtime.consumer import Consumer, HealthEndpoint, serve_consumer
from stockday.runtime.settings import Settings
from stockday.runtime.tracing import message_attributes

log = logging.getLogger("stockday.logo_resizer")

# Jobs in hand at once; how many of them decode at a time is the image workers' business.
CONCURRENCY = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoResizer:
    """Handles logo jobs: raw upload in, resized logo and its announcement out."""

    objects: ObjectStore
    events: MessageQueue
    images: ImageWorkers
    max_side: int
    max_pixels: int

    async def handle(self, message: ReceivedMessage) -> None:
        job = decode(message.body)
        if not isinstance(job, LogoRequested):
            raise MalformedMessage(f"logo-resizer does not handle {job.type} messages")
        # The job was sent when the logo was requested; its result carries that time on.
        requested_at = f"{message.sent_at.timestamp():.3f}"
        upload = await self.objects.get(job.upload_key)
        if upload is None:
            if await self._announce_done(job, requested_at):
                return
            gone = "the uploaded file is gone"
            await self._announce(
                LogoFailed(symbol=job.symbol, upload_id=job.upload_id, error=gone), requested_at
            )
            return
        try:
            logo = await self.images.resize(
                upload.data, max_side=self.max_side, max_pixels=self.max_pixels
            )
        except RejectedImage as exc:
            await self._announce(
                LogoFailed(symbol=job.symbol, upload_id=job.upload_id, error=str(exc)),
                requested_at,
            )
            return
        key = logo_key(job.symbol, job.upload_id)
        await self.objects.put(key, logo.data, content_type=logo.content_type)
        await self._announce_resized(job, key, logo.width, logo.height, requested_at)

    async def _announce_resized(
        self, job: LogoRequested, key: str, width: int, height: int, requested_at: str
    ) -> None:
        await self._announce(
            LogoResized(
                symbol=job.symbol, upload_id=job.upload_id, logo_key=key, width=width, height=height
            ),
            requested_at,
        )

    async def _announce_done(self, job: LogoRequested, requested_at: str) -> bool:
        """Announce the logo again if this job was done already; False if it was not."""
        key = logo_key(job.symbol, job.upload_id)
        stored = await self.objects.get(key)
        if stored is None:
            return False
        try:
            info = await self.images.inspect(
                stored.data,
                max_bytes=max(1, len(stored.data)),
                max_pixels=self.max_pixels,
            )
        except RejectedImage:
            return False  # not a logo we wrote: treat the job as not done
        await self._announce_resized(job, key, info.width, info.height, requested_at)
        return True

    async def _announce(self, event: LogoResized | LogoFailed, requested_at: str) -> None:
        attributes = message_attributes(event.type) | {REQUESTED_AT_ATTRIBUTE: requested_at}
        await self.events.send(encode(event), attributes=attributes)
        log.info("%s %s (upload %s)", event.type, event.symbol, event.upload_id)


async def run(
    settings: Settings, *, health_port: int | None, health_host: str = "127.0.0.1"
) -> None:
    jobs = composition.message_queue(settings, settings.logo_jobs_queue)
    events = composition.message_queue(settings, settings.logo_events_queue)
    objects = composition.object_store(settings)
    images = ImageWorkers(
        threads=settings.image_threads, budget_bytes=settings.image_memory_budget_bytes
    )
    resizer = LogoResizer(
        objects=objects,
        events=events,
        images=images,
        max_side=settings.logo_max_side,
        max_pixels=settings.max_upload_pixels,
    )
    health = HealthEndpoint(health_host, health_port, settings.readiness_timeout_seconds)
    consumer = Consumer.configured(
        settings, name="logo-resizer", queue=jobs, handler=resizer.handle, concurrency=CONCURRENCY
    )
    try:
        await serve_consumer(consumer, health, checks=[jobs.check, events.check, objects.check])
    finally:
        images.close()
        await jobs.close()
        await events.close()
        await objects.close()
