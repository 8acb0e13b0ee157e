"""The upload janitor: raw uploads older than their retention go (an hour unlinked, 30 days
linked to a stock), younger ones and logos stay."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from stockday.domain.stocks import UPLOADS_PREFIX, logo_key, upload_key, upload_link_key
from stockday.objects.base import ObjectInfo
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.queue_worker.janitor import UploadJanitor
from tests.consumers.pipeline import (
    Pipeline,
    add_stock,
    drained,
    logo_state,
    running,
    stop,
    until,
    upload,
)

pytestmark = pytest.mark.anyio

DAY = 24 * 3600.0
RETENTION = 3600.0
LINKED_RETENTION = 30 * DAY


def deleted_total() -> float:
    return REGISTRY.get_sample_value("stockday_janitor_deleted_uploads_total") or 0.0


def age(pipeline: Pipeline, key: str, seconds: float) -> None:
    """Make an object look ``seconds`` old: the filesystem store reports the file's mtime."""
    path = pipeline.settings.objects_dir / "data" / key
    then = datetime.now(UTC).timestamp() - seconds
    os.utime(path, (then, then))


def test_every_upload_key_is_under_the_janitors_prefix() -> None:
    assert upload_key("0f3a").startswith(UPLOADS_PREFIX)
    assert not logo_key("AAPL", "0f3a").startswith(UPLOADS_PREFIX)


async def test_the_janitor_deletes_expired_uploads_and_keeps_the_rest(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # A logo that failed (its upload stays: replaced by a non-image behind the API's back)...
    failed = await add_stock(pipeline, "FAIL")
    await pipeline.objects.put(upload_key(failed), b"%PDF-1.4 nope", content_type="image/png")
    tasks = await running(pipeline)
    # ...a ready one (its upload is deleted at once)...
    ready = await add_stock(pipeline, "OK")

    async def settled() -> bool:
        states = (await logo_state(pipeline, "FAIL"), await logo_state(pipeline, "OK"))
        return states == ("failed", "ready") and await drained(pipeline)

    await until(settled)
    # ...and uploads never linked to a stock: two abandoned long ago, one just now.
    abandoned = [await upload(pipeline) for _ in range(2)]
    fresh = await upload(pipeline)
    just_young = await upload(pipeline)
    # The failed logo's upload is linked: kept a month, not an hour.
    for key in [upload_key(failed), upload_link_key(failed)]:
        age(pipeline, key, LINKED_RETENTION + DAY)
    for upload_id in abandoned:
        age(pipeline, upload_key(upload_id), RETENTION + 60)
    age(pipeline, upload_key(just_young), RETENTION - 600)

    janitor = UploadJanitor(
        objects=pipeline.objects,
        retention_seconds=RETENTION,
        linked_retention_seconds=LINKED_RETENTION,
    )
    stopping = asyncio.Event()
    before = deleted_total()
    with caplog.at_level(logging.INFO, logger="stockday.queue_worker.janitor"):
        sweeping = asyncio.create_task(
            janitor.run(stopping, interval_seconds=3600, first_sweep_seconds=0.05)
        )

        async def swept() -> bool:
            return "janitor deleted" in caplog.text

        await until(swept)
        stopping.set()
        await asyncio.wait_for(sweeping, 5)
    await stop(pipeline, tasks)

    remaining = {info.key for info in await pipeline.objects.list("uploads/")}
    assert remaining == {upload_key(fresh), upload_key(just_young)}
    assert deleted_total() - before == 4  # the failed upload, its marker, the two abandoned
    [line] = [r.getMessage() for r in caplog.records if "janitor deleted" in r.getMessage()]
    assert line.startswith("janitor deleted 4 of 6 raw uploads and markers")
    # Logos and stocks are not the janitor's business.
    assert await pipeline.objects.exists(logo_key("OK", ready))
    assert (await logo_state(pipeline, "OK"), await logo_state(pipeline, "FAIL")) == (
        "ready",
        "failed",
    )


async def test_age_is_measured_against_the_janitors_clock(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    await store.put(upload_key("a"), b"a", content_type="image/png")
    await store.put(upload_key("b"), b"b", content_type="image/png")
    await store.put(logo_key("A", "a"), b"logo", content_type="image/webp")
    written = {info.key: info.modified_at for info in await store.list("")}
    now = written[upload_key("a")]

    def janitor(at: datetime) -> UploadJanitor:
        return UploadJanitor(objects=store, retention_seconds=RETENTION, clock=lambda: at)

    assert await janitor(now + timedelta(minutes=59)).sweep() == 0
    assert await janitor(now + timedelta(minutes=61)).sweep() == 2
    assert await store.list("uploads/") == []
    assert await store.exists(logo_key("A", "a"))


async def test_a_linked_upload_is_kept_for_the_linked_retention(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    for key in [upload_key("linked"), upload_link_key("linked"), upload_key("orphan")]:
        await store.put(key, b"x", content_type="image/png")
    await store.put(upload_link_key("gone"), b"", content_type="text/plain")  # upload deleted
    now = (await store.list("uploads/"))[0].modified_at

    def janitor(after: timedelta) -> UploadJanitor:
        return UploadJanitor(
            objects=store,
            retention_seconds=RETENTION,
            linked_retention_seconds=LINKED_RETENTION,
            clock=lambda: now + after,
        )

    # Two hours on: the orphan and the marker of a gone upload go, the linked upload stays.
    assert await janitor(timedelta(hours=2)).sweep() == 2
    assert {i.key for i in await store.list("uploads/")} == {
        upload_key("linked"),
        upload_link_key("linked"),
    }
    assert await janitor(timedelta(days=29)).sweep() == 0
    assert await janitor(timedelta(days=31)).sweep() == 2
    assert await store.list("uploads/") == []


async def test_janitors_of_several_replicas_at_once_are_harmless(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    for i in range(20):
        await store.put(upload_key(f"old{i}"), b"x", content_type="image/png")
        then = datetime.now(UTC).timestamp() - RETENTION - DAY
        os.utime(tmp_path / "data" / upload_key(f"old{i}"), (then, then))
    await store.put(upload_key("young"), b"y", content_type="image/png")
    # Every replica lists the same expired uploads and deletes them: no errors, nothing kept.
    replicas = [UploadJanitor(objects=store, retention_seconds=RETENTION) for _ in range(4)]
    counts = await asyncio.gather(*(r.sweep() for r in replicas))
    assert 20 <= sum(counts) <= 80  # each deletion counted by every replica that made it
    assert [info.key for info in await store.list("uploads/")] == [upload_key("young")]
    assert [await r.sweep() for r in replicas] == [0, 0, 0, 0]


class FlakyStore:
    """An object store whose first listings fail, as a store that is briefly down."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.listed = 0
        self.deleted: list[str] = []

    async def list(self, prefix: str) -> list[ObjectInfo]:
        self.listed += 1
        if self.listed <= self.failures:
            raise OSError("store unavailable")
        old = datetime(2000, 1, 1, tzinfo=UTC)
        return [ObjectInfo(key=f"{prefix}gone", size=1, modified_at=old)]

    async def delete(self, key: str) -> None:
        self.deleted.append(key)


async def test_the_janitor_keeps_sweeping_after_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore(failures=2)
    janitor = UploadJanitor(objects=store, retention_seconds=RETENTION)  # type: ignore[arg-type]
    stopping = asyncio.Event()
    sweeping = asyncio.create_task(
        janitor.run(stopping, interval_seconds=0.05, first_sweep_seconds=0.01)
    )

    async def recovered() -> bool:
        return bool(store.deleted)

    await until(recovered)
    stopping.set()
    await asyncio.wait_for(sweeping, 5)
    assert store.deleted[0] == "uploads/gone"
    assert "janitor could not sweep uploads/: store unavailable" in caplog.text


async def test_the_janitor_stops_at_once_when_asked() -> None:
    store = FlakyStore(failures=0)
    janitor = UploadJanitor(objects=store, retention_seconds=RETENTION)  # type: ignore[arg-type]
    stopping = asyncio.Event()
    sweeping = asyncio.create_task(janitor.run(stopping, interval_seconds=3600))
    await asyncio.sleep(0)
    stopping.set()
    await asyncio.wait_for(sweeping, 1)  # not after the first sweep's ten seconds
    assert store.listed == 0
