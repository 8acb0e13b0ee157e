"""The upload janitor: deletes raw uploads that no stock needs any more.

A raw upload (``uploads/<id>``) is needed only until its logo is resized into
``logos/<SYMBOL>/<id>.webp``. queue-worker deletes it right after it has recorded the
``logo.resized`` result on the stock, and a create refused with it deletes it at once; so what
is left under ``uploads/`` is: uploads still waiting for their logo job, uploads of logos that
failed (nothing reads them again, and they show what was refused), and uploads never linked to
a stock (the add-stock form was abandoned after the file was picked, or the client only
uploaded).

A stock that links an upload leaves a marker beside it (``uploads/<id>.linked``, see
``stockday.domain.stocks.upload_link_key``). An upload without one is deleted once older than
``STOCKDAY_UPLOAD_RETENTION_SECONDS`` (an hour by default): anyone can upload, so what nobody
links must not be kept long. One with a marker is kept for
``STOCKDAY_LINKED_UPLOAD_RETENTION_SECONDS`` (30 days), longer than any queue keeps its job,
so a resizer that is down for a while still finds its uploads. A marker whose upload is gone is
deleted too. The age is the object's modification time as the store reports it (the file's
mtime, S3's LastModified). One listing of ``uploads/`` holds both uploads and markers.

It runs inside queue-worker as a background task: a first sweep shortly after the start, then
one every ``STOCKDAY_JANITOR_INTERVAL_SECONDS``, each logging one line with the number deleted
and counting them in ``stockday_janitor_deleted_uploads_total``. Every replica runs it, and
nothing coordinates them: two sweeps at once list the same expired uploads and both delete
them, and deleting a missing object is not an error, so the worst case is a wasted list call
(and such an upload counted once per replica that deleted it). The waits are jittered, so
replicas started together drift apart anyway.

An upload linked within moments of its expiry can be swept before its marker is written; the
logo then ends ``failed`` ("the uploaded file is gone"), as for any upload that is gone.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from stockday.domain.stocks import LINK_SUFFIX, UPLOADS_PREFIX, utcnow
from stockday.objects.base import ObjectInfo, ObjectStore
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


def expired_keys(
    listed: list[ObjectInfo], unlinked_cutoff: datetime, linked_cutoff: datetime
) -> list[str]:
    """The keys of ``listed`` (uploads and link markers) to delete at these cutoffs."""
    linked = {info.key.removesuffix(LINK_SUFFIX) for info in listed if _is_marker(info.key)}
    present = {info.key for info in listed if not _is_marker(info.key)}
    expired = []
    for info in listed:
        if _is_marker(info.key):
            gone = info.key.removesuffix(LINK_SUFFIX) not in present
            if info.modified_at < linked_cutoff or (gone and info.modified_at < unlinked_cutoff):
                expired.append(info.key)
        elif info.modified_at < (linked_cutoff if info.key in linked else unlinked_cutoff):
            expired.append(info.key)
    return expired


def _is_marker(key: str) -> bool:
    return key.endswith(LINK_SUFFIX)


class UploadJanitor:
    def __init__(
        self,
        *,
        objects: ObjectStore,
        retention_seconds: float,
        linked_retention_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.objects = objects
        self.retention = timedelta(seconds=retention_seconds)
        self.linked_retention = timedelta(
            seconds=max(retention_seconds, linked_retention_seconds or retention_seconds)
        )
        self.clock = clock

    async def sweep(self) -> int:
        """Delete every raw upload (and marker) past its retention; return how many.

        Raises if the uploads cannot be listed; a single delete that fails is logged and left
        for the next sweep.
        """
        now = self.clock()
        cutoff = now - self.retention
        listed = await self.objects.list(UPLOADS_PREFIX)
        deleted = 0
        for key in expired_keys(listed, cutoff, now - self.linked_retention):
            try:
                await self.objects.delete(key)
            except Exception as exc:
                log.warning("janitor could not delete %s: %s", key, exc)
                continue
            deleted += 1
            DELETED_UPLOADS.inc()
        log.info(
            "janitor deleted %d of %d raw uploads and markers (unlinked older than %s)",
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
