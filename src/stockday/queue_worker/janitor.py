"""The upload janitor: deletes raw uploads that no stock needs any more.

A raw upload (``uploads/<id>``) is needed only until its logo is resized into
``logos/<SYMBOL>/<id>.webp``. queue-worker deletes it right after it has recorded the
``logo.resized`` result on the stock, so what is left under ``uploads/`` is: uploads still
waiting for their logo job, uploads of logos that failed (left for the janitor: nothing reads
them again, and they show what was refused), and uploads that were never linked to a stock
(the add-stock form was abandoned after the file was picked).

Once a raw upload is older than ``STOCKDAY_UPLOAD_RETENTION_SECONDS`` (30 days by default) it
was either never linked, or belongs to a logo that failed or was not processed within the
retention (longer than any queue keeps a job): nothing will read it again, so the janitor
deletes it. The age is the object's modification time as the store reports it (the file's
mtime, S3's LastModified).

It runs inside queue-worker as a background task: a first sweep shortly after the start, then
one every ``STOCKDAY_JANITOR_INTERVAL_SECONDS``, each logging one line with the number deleted
and counting them in ``stockday_janitor_deleted_uploads_total``. Every replica runs it, and
nothing coordinates them: two sweeps at once list the same expired uploads and both delete
them, and deleting a missing object is not an error, so the worst case is a wasted list call
(and such an upload counted once per replica that deleted it). The waits are jittered, so
replicas started together drift apart anyway.

An upload linked to a stock within moments of its expiry can be swept before its job runs; the
logo then ends ``failed`` ("the uploaded file is gone"), as for any upload that is gone.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from stockday.domain.stocks import UPLOADS_PREFIX, utcnow
from stockday.objects.base import ObjectStore
from stockday.runtime.consumer import stopped_within

log = logging.getLogger("stockday.queue_worker.janitor")

# "Shortly after the start": late enough not to compete with a replica's warm-up.
FIRST_SWEEP_SECONDS = 10.0
# Each wait is stretched or shrunk by up to this share, so that replicas drift apart.
JITTER = 0.1

DELETED_UPLOADS = Counter(
    "stockday_janitor_deleted_uploads_total",
    "Raw uploads the janitor deleted because they were older than the retention.",
)


class UploadJanitor:
    def __init__(
        self,
        *,
        objects: ObjectStore,
        retention_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.objects = objects
        self.retention = timedelta(seconds=retention_seconds)
        self.clock = clock

    async def sweep(self) -> int:
        """Delete every raw upload older than the retention; return how many were deleted.

        Raises if the uploads cannot be listed; a single delete that fails is logged and left
        for the next sweep.
        """
        cutoff = self.clock() - self.retention
        listed = await self.objects.list(UPLOADS_PREFIX)
        deleted = 0
        for info in listed:
            if info.modified_at >= cutoff:
                continue
            try:
                await self.objects.delete(info.key)
            except Exception as exc:
                log.warning("janitor could not delete %s: %s", info.key, exc)
                continue
            deleted += 1
            DELETED_UPLOADS.inc()
        log.info(
            "janitor deleted %d of %d raw uploads (older than %s)",
            deleted,
            len(listed),
            cutoff.isoformat(timespec="seconds"),
        )
        return deleted

    async def run(
        self,
        stopping: asyncio.Event,
        *,
        interval_seconds: float,
        first_sweep_seconds: float = FIRST_SWEEP_SECONDS,
    ) -> None:
        """Sweep shortly after the start, then every ``interval_seconds``, until ``stopping``."""
        wait = min(first_sweep_seconds, interval_seconds)
        while not await stopped_within(stopping, _jittered(wait)):
            try:
                await self.sweep()
            except Exception as exc:
                # The store is down or refuses the listing: the next sweep tries again.
                log.warning("janitor could not sweep %s: %s", UPLOADS_PREFIX, exc)
            wait = interval_seconds


def _jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)
