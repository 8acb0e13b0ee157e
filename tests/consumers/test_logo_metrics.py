"""The logo-processing objectives' events: queue-worker counts each recorded logo by outcome and
times a ready one from its request, which logo-resizer passes on with the result."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from stockday.contracts.messages import (
    REQUESTED_AT_ATTRIBUTE,
    LogoFailed,
    LogoResized,
    encode,
)
from stockday.domain.stocks import logo_key, upload_key
from stockday.queue_worker.consumer import count_recorded
from stockday.queues.base import ReceivedMessage
from tests.consumers.pipeline import Pipeline, add_stock, logo_state, running, stop, until

pytestmark = pytest.mark.anyio

UPLOAD = "b" * 32
RESIZED = LogoResized(
    symbol="TIME", upload_id=UPLOAD, logo_key=logo_key("TIME", UPLOAD), width=2, height=1
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ready_within(seconds: str) -> float:
    return sample("stockday_logo_ready_seconds_bucket", le=seconds)


def result(event: LogoResized | LogoFailed, attributes: dict[str, str]) -> ReceivedMessage:
    return ReceivedMessage(
        message_id="m1",
        body=encode(event),
        receipt="r1",
        receive_count=1,
        sent_at=datetime.now(UTC),
        attributes=attributes,
    )


def test_a_ready_logo_is_timed_from_its_request() -> None:
    requested = f"{time.time() - 7:.3f}"  # seven seconds before the result is recorded
    within_5, within_10 = ready_within("5.0"), ready_within("10.0")
    count_recorded(RESIZED, result(RESIZED, {REQUESTED_AT_ATTRIBUTE: requested}))
    assert ready_within("5.0") == within_5
    assert ready_within("10.0") == within_10 + 1


def test_without_a_usable_request_time_the_result_send_time_is_used() -> None:
    message = result(RESIZED, {REQUESTED_AT_ATTRIBUTE: "not a number"})
    sent_20s_ago = dataclasses.replace(message, sent_at=message.sent_at - timedelta(seconds=20))
    within_10, within_30 = ready_within("10.0"), ready_within("30.0")
    count_recorded(RESIZED, sent_20s_ago)
    assert ready_within("10.0") == within_10
    assert ready_within("30.0") == within_30 + 1


async def test_the_result_carries_the_job_send_time_as_the_request_time(
    pipeline: Pipeline,
) -> None:
    await add_stock(pipeline, "CARRY")
    [job] = await pipeline.jobs.receive(max_messages=1, wait_seconds=1)
    await pipeline.resizer.handle(job)
    [event] = await pipeline.events.receive(max_messages=1, wait_seconds=1)
    carried = float(event.attributes[REQUESTED_AT_ATTRIBUTE])
    assert carried == pytest.approx(job.sent_at.timestamp(), abs=0.001)


async def test_the_pipeline_counts_ready_and_failed_logos(pipeline: Pipeline) -> None:
    ready = sample("stockday_logo_jobs_total", outcome="ready")
    failed = sample("stockday_logo_jobs_total", outcome="failed")
    timed = sample("stockday_logo_ready_seconds_count")
    await add_stock(pipeline, "GOOD")
    bad = await add_stock(pipeline, "BROKE")
    await pipeline.objects.put(upload_key(bad), b"%PDF-1.4 nope", content_type="image/png")
    tasks = await running(pipeline)

    async def settled() -> bool:
        states = {await logo_state(pipeline, s) for s in ("GOOD", "BROKE")}
        return states == {"ready", "failed"}

    await until(settled)
    await stop(pipeline, tasks)
    assert sample("stockday_logo_jobs_total", outcome="ready") == ready + 1
    assert sample("stockday_logo_jobs_total", outcome="failed") == failed + 1
    # Only the ready logo is timed.
    assert sample("stockday_logo_ready_seconds_count") == timed + 1
