"""Direct uploads: on S3 a browser posts the logo straight to the bucket with a presigned form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stockday.contracts.messages import LogoRequested, decode
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from stockday.stock_price.app import create_app as create_price_app
from stockday.stock_symbol.app import create_app as create_symbol_app
from tests.support import images as sample_images
from tests.support.aws import provisioned_settings
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.anyio


async def symbol_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    price = httpx.ASGITransport(app=create_price_app(settings))
    async with httpx.AsyncClient(transport=price, base_url="http://price") as prices:
        app = create_symbol_app(settings, price_client=prices)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://symbol"
        ) as client:
            yield client


@pytest.fixture
def aws_settings(aws_emulator: ServerProcess, tmp_path: Path) -> Settings:
    return provisioned_settings(aws_emulator, tmp_path)


async def test_a_presigned_upload_can_be_linked_to_a_new_stock(aws_settings: Settings) -> None:
    async for api in symbol_api(aws_settings):
        offered = await api.post("/api/uploads/direct")
        assert offered.status_code == 201, offered.text
        form = offered.json()
        upload_id = form["upload_id"]
        assert form["fields"]["key"] == f"uploads/{upload_id}"

        # What the browser does: the signed fields, its Content-Type, then the file, to S3.
        png = sample_images.png(300, 200)
        async with httpx.AsyncClient(timeout=10) as browser:
            posted = await browser.post(
                form["url"],
                data={**form["fields"], "Content-Type": "image/png"},
                files={"file": ("logo.png", png, "image/png")},
            )
        assert posted.status_code in (200, 201, 204), posted.text

        created = await api.post(
            "/api/stocks", json={"symbol": "DIRECT", "name": "Direct", "upload_id": upload_id}
        )
        assert created.status_code == 201, created.text
        assert created.json()["logo"]["state"] == "pending"

    jobs = composition.message_queue(aws_settings, aws_settings.logo_jobs_queue)
    store = composition.object_store(aws_settings)
    try:
        received = await jobs.receive(wait_seconds=2)
        job = decode(received[0].body)
        assert isinstance(job, LogoRequested)
        assert (job.symbol, job.upload_key) == ("DIRECT", f"uploads/{upload_id}")
        stored = await store.get(f"uploads/{upload_id}")
        assert stored is not None
        assert stored.data == png
    finally:
        await jobs.close()
        await store.close()


async def test_an_upload_id_that_was_never_posted_is_refused(aws_settings: Settings) -> None:
    async for api in symbol_api(aws_settings):
        offered = (await api.post("/api/uploads/direct")).json()
        created = await api.post(
            "/api/stocks",
            json={"symbol": "NOFILE", "name": "No File", "upload_id": offered["upload_id"]},
        )
        assert created.status_code == 422, created.text
        assert (await api.get("/api/stocks/NOFILE")).status_code == 404


async def test_the_local_backend_says_direct_uploads_need_s3(tmp_path: Path) -> None:
    async for api in symbol_api(Settings(data_dir=tmp_path)):
        answer = await api.post("/api/uploads/direct")
        assert answer.status_code == 404
        assert "/api/uploads" in answer.json()["detail"]
