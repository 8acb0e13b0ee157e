"""Any failure of a store answers 503 with a sentence, never 500: whatever AWS (or an emulator
lacking an operation) answers, the adapters raise the port's BackendUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import EndpointConnectionError

from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from stockday.stock_symbol.errors import STORE_UNAVAILABLE
from tests.support import images as sample_images
from tests.support.aws import aws_error, fail_aws_operation, provisioned_settings
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.anyio

STOCK_WRITE_FAILURES = [
    # dynalite has no transactions: it answers every TransactWriteItems so.
    pytest.param(aws_error("UnknownOperationException", "TransactWriteItems"), id="unknown-op"),
    pytest.param(aws_error("ThrottlingException", "TransactWriteItems"), id="throttled"),
    pytest.param(aws_error("AccessDeniedException", "TransactWriteItems"), id="access-denied"),
    pytest.param(
        aws_error(
            "TransactionCanceledException",
            "TransactWriteItems",
            CancellationReasons=[{"Code": "ValidationError"}, {"Code": "None"}, {"Code": "None"}],
        ),
        id="cancelled-for-an-unknown-reason",
    ),
    pytest.param(aws_error("SomethingNewException", "TransactWriteItems", 500), id="unfamiliar"),
    pytest.param(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), id="network"),
]


@pytest.fixture
def aws_settings(aws_emulator: ServerProcess, tmp_path: Path) -> Settings:
    return provisioned_settings(aws_emulator, tmp_path)


@pytest.fixture
async def api(aws_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    price = httpx.ASGITransport(app=create_price_app(aws_settings))
    async with httpx.AsyncClient(transport=price, base_url="http://price") as prices:
        app = create_symbol_app(aws_settings, price_client=prices)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://symbol",
        ) as client:
            yield client


def assert_store_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": STORE_UNAVAILABLE}
    assert response.headers["retry-after"]


async def upload_logo(api: httpx.AsyncClient) -> str:
    png = sample_images.png(64, 64)
    uploaded = await api.post("/api/uploads", files={"file": ("logo.png", png, "image/png")})
    assert uploaded.status_code == 201, uploaded.text
    upload_id: str = uploaded.json()["upload_id"]
    return upload_id


@pytest.mark.parametrize("error", STOCK_WRITE_FAILURES)
async def test_a_failing_stock_write_answers_503(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    upload_id = await upload_logo(api)
    fail_aws_operation(monkeypatch, "TransactWriteItems", error)
    created = await api.post(
        "/api/stocks", json={"symbol": "ACME", "name": "Acme", "upload_id": upload_id}
    )
    assert_store_unavailable(created)


async def test_failing_stock_reads_answer_503(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_aws_operation(monkeypatch, "GetItem", aws_error("AccessDeniedException", "GetItem"))
    for path in ("/api/stocks/ACME", "/api/stocks/random-picks?count=3", "/api/stocks/random"):
        assert_store_unavailable(await api.get(path))


async def test_a_failing_object_store_answers_503(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_aws_operation(monkeypatch, "PutObject", aws_error("AccessDenied", "PutObject", 403))
    png = sample_images.png(64, 64)
    uploaded = await api.post("/api/uploads", files={"file": ("logo.png", png, "image/png")})
    assert_store_unavailable(uploaded)
