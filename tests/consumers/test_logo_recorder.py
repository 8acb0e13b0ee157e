"""queue-worker's answers to a refused result (404, 409), against a scripted stock-symbol."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stockday.clients.stock_symbol import SymbolClient
from stockday.contracts.messages import LogoFailed, LogoResized, MalformedMessage, encode
from stockday.domain.stocks import logo_key, upload_key
from stockday.objects.filesystem import FilesystemObjectStore
from stockday.queue_worker.consumer import LogoRecorder, StockBusy, UpstreamError
from stockday.queues.base import ReceivedMessage
from stockday.runtime.consumer import DependencyUnavailable

pytestmark = pytest.mark.anyio

UPLOAD = "a" * 32
RESIZED = LogoResized(
    symbol="RACE", upload_id=UPLOAD, logo_key=logo_key("RACE", UPLOAD), width=2, height=1
)
FAILED = LogoFailed(symbol="RACE", upload_id=UPLOAD, error="not an image")


def message(event: LogoResized | LogoFailed) -> ReceivedMessage:
    return ReceivedMessage(
        message_id="m1",
        body=encode(event),
        receipt="r1",
        receive_count=1,
        sent_at=datetime.now(UTC),
    )


def symbol_service(put_status: int, stock_logo: dict[str, str] | None) -> httpx.MockTransport:
    """PUT answers ``put_status``; GET answers the stock with ``stock_logo`` (404 if None)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(put_status, json={"detail": "refused"})
        if stock_logo is None:
            return httpx.Response(404, json={"detail": "no such stock"})
        return httpx.Response(200, json=stock_json(stock_logo))

    return httpx.MockTransport(answer)


def stock_json(logo: dict[str, str]) -> dict[str, object]:
    """The stock RACE as stock-symbol answers it, with ``logo``."""
    return {
        "symbol": "RACE",
        "name": "Race",
        "version": 3,
        "logo": {"upload_id": None, "url": None, "error": None, **logo},
        "price": None,
        "created_at": "2026-01-02T10:00:00Z",
        "updated_at": "2026-01-02T10:00:00Z",
    }


async def recorder_with(
    tmp_path: Path, transport: httpx.MockTransport
) -> tuple[LogoRecorder, FilesystemObjectStore]:
    store = FilesystemObjectStore(tmp_path)
    await store.put(RESIZED.logo_key, b"logo", content_type="image/webp")
    await store.put(upload_key(UPLOAD), b"raw", content_type="image/png")
    client = httpx.AsyncClient(transport=transport, base_url="http://symbol")
    symbols = SymbolClient(client, timeout_seconds=5)
    return LogoRecorder(symbols=symbols, objects=store), store


@pytest.mark.parametrize("event", [RESIZED, FAILED], ids=["resized", "failed"])
async def test_a_conflict_on_a_logo_still_pending_is_retried(
    tmp_path: Path, event: LogoResized | LogoFailed
) -> None:
    # stock-symbol answers 409 also when its conditional write lost every race; the stock is
    # still waiting for this result, so acknowledging the message would lose it.
    pending = {"state": "pending", "upload_id": UPLOAD}
    recorder, store = await recorder_with(tmp_path, symbol_service(409, pending))
    with pytest.raises(StockBusy):
        await recorder.handle(message(event))
    assert await store.exists(RESIZED.logo_key)
    assert await store.exists(upload_key(UPLOAD))


async def test_a_late_duplicate_for_a_settled_logo_is_dropped(tmp_path: Path) -> None:
    failed = {"state": "failed", "upload_id": UPLOAD}
    recorder, store = await recorder_with(tmp_path, symbol_service(409, failed))
    await recorder.handle(message(RESIZED))
    await recorder.handle(message(FAILED))
    assert await store.exists(upload_key(UPLOAD))  # a failed logo's upload is the janitor's


async def test_a_logo_for_a_replaced_upload_is_deleted(tmp_path: Path) -> None:
    replaced = {"state": "pending", "upload_id": "b" * 32}
    recorder, store = await recorder_with(tmp_path, symbol_service(409, replaced))
    await recorder.handle(message(RESIZED))
    assert not await store.exists(RESIZED.logo_key)


async def test_a_recorded_logo_deletes_its_raw_upload(tmp_path: Path) -> None:
    recorder, store = await recorder_with(tmp_path, symbol_service(200, None))
    await recorder.handle(message(RESIZED))
    assert not await store.exists(upload_key(UPLOAD))
    assert await store.exists(RESIZED.logo_key)
    await recorder.handle(message(RESIZED))  # again: the upload is gone already, no error


async def test_a_recorded_failure_keeps_its_raw_upload(tmp_path: Path) -> None:
    recorder, store = await recorder_with(tmp_path, symbol_service(200, None))
    await recorder.handle(message(FAILED))
    assert await store.exists(upload_key(UPLOAD))


@pytest.mark.parametrize(
    ("put_status", "refusal"),
    [
        (400, MalformedMessage),
        (422, MalformedMessage),
        (403, UpstreamError),
        (302, UpstreamError),
        (500, UpstreamError),
        (503, UpstreamError),
    ],
)
async def test_a_rejected_result_is_dropped_and_a_failing_stock_symbol_retried(
    tmp_path: Path, put_status: int, refusal: type[Exception]
) -> None:
    recorder, store = await recorder_with(tmp_path, symbol_service(put_status, None))
    with pytest.raises(refusal):
        await recorder.handle(message(RESIZED))
    assert await store.exists(RESIZED.logo_key)
    assert await store.exists(upload_key(UPLOAD))


async def test_an_unreachable_stock_symbol_is_a_dependency_to_wait_for(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    recorder, store = await recorder_with(tmp_path, httpx.MockTransport(refused))
    with pytest.raises(DependencyUnavailable):
        await recorder.handle(message(FAILED))
    assert await store.exists(upload_key(UPLOAD))


async def test_a_logo_for_a_deleted_stock_is_deleted(tmp_path: Path) -> None:
    recorder, store = await recorder_with(tmp_path, symbol_service(404, None))
    await recorder.handle(message(RESIZED))
    assert not await store.exists(RESIZED.logo_key)


@pytest.mark.parametrize(
    ("event", "body"),
    [
        (RESIZED, {"upload_id": UPLOAD, "state": "ready", "key": RESIZED.logo_key}),
        (FAILED, {"upload_id": UPLOAD, "state": "failed", "error": "not an image"}),
    ],
    ids=["resized", "failed"],
)
async def test_the_result_is_sent_as_a_logo_update(
    tmp_path: Path, event: LogoResized | LogoFailed, body: dict[str, str]
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"detail": "recorded"})

    recorder, _ = await recorder_with(tmp_path, httpx.MockTransport(answer))
    await recorder.handle(message(event))
    assert [(r.method, r.url.path) for r in sent] == [("PUT", "/api/stocks/RACE/logo")]
    assert json.loads(sent[0].content) == body
