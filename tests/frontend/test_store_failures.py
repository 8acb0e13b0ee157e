"""A store failing behind stock-symbol: the frontend shows its own "try again" page, never 500."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stockday.aws.provision import provision
from stockday.runtime.settings import Settings
from tests.frontend.site import running_site
from tests.support.aws import aws_error, fail_aws_operation
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def aws_settings(aws_emulator: ServerProcess, tmp_path: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        backend="aws",
        data_dir=tmp_path,
        aws_endpoint_url=aws_emulator.url,
        dynamodb_table=f"stocks-{suffix}",
        s3_bucket=f"objects-{suffix}",
        logo_jobs_queue=f"jobs-{suffix}",
        logo_events_queue=f"events-{suffix}",
        memcached_servers="127.0.0.1:1",
    )
    provision(settings, say=lambda _: None)
    return settings


async def test_pages_say_try_again_when_the_stock_store_fails(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What dynalite answers to an operation it lacks, on every read of a stock.
    unknown = aws_error("UnknownOperationException", "GetItem")
    async with running_site(aws_settings) as site:
        fail_aws_operation(monkeypatch, "GetItem", unknown)
        for path in ("/", "/stocks/ACME"):
            page = await site.browser.get(path)
            assert page.status_code == 503, (path, page.text)
            assert page.headers["content-type"].startswith("text/html")
            assert "try again" in page.text
            assert page.headers["retry-after"]
