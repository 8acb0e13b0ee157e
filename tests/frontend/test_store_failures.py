"""A store failing behind stock-symbol: the frontend shows its own "try again" page, never 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockday.runtime.settings import Settings
from tests.frontend.site import running_site, submit, upload_png
from tests.support.aws import aws_error, fail_aws_operation, provisioned_settings
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def aws_settings(aws_emulator: ServerProcess, tmp_path: Path) -> Settings:
    return provisioned_settings(aws_emulator, tmp_path)


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


async def test_the_add_stock_form_comes_back_with_try_again_when_the_store_lacks_transactions(
    aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dynalite's answer to every stock write: it has no transactions.
    unknown = aws_error("UnknownOperationException", "TransactWriteItems")
    async with running_site(aws_settings) as site:
        upload_id = await upload_png(site.browser)
        fail_aws_operation(monkeypatch, "TransactWriteItems", unknown)
        page = await submit(site.browser, "ACME", "Acme Corp", upload_id)
    assert page.status_code == 503, page.text
    assert "try again in a moment" in page.text
    assert 'value="Acme Corp"' in page.text  # the visitor's input is kept
    assert page.headers["retry-after"]
