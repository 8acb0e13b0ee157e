"""Per-client limits on the site, in-process: page views, creates, uploads and upload bytes
refused with 429 and Retry-After (a page for people, JSON for scripts), nothing stored when
refused, and the client named by X-Forwarded-For only when a trusted proxy sent it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockday.domain.stocks import UPLOADS_PREFIX, upload_key
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.frontend.site import Site, csrf_headers, form_fields, running_site, submit, upload_png
from tests.support import images as sample_images
from tests.support.seeded import seeded_stocks

pytestmark = pytest.mark.anyio

IMAGE = sample_images.jpeg(640, 400)  # tens of KB: the multipart framing is small beside it


def limited(tmp_path: Path, **limits: object) -> Settings:
    unlimited = {
        "rate_limit_pages": "",
        "rate_limit_creates": "",
        "rate_limit_uploads": "",
        "upload_bytes_per_hour": 0,
    }
    return Settings.model_validate({"data_dir": tmp_path, **unlimited, **limits})


async def stored_uploads(settings: Settings) -> set[str]:
    objects = composition.object_store(settings)
    try:
        return {info.key for info in await objects.list(UPLOADS_PREFIX)}
    finally:
        await objects.close()


@pytest.fixture
async def pages_limited(tmp_path: Path) -> AsyncIterator[Site]:
    settings = limited(tmp_path, rate_limit_pages="3/minute")
    async with running_site(settings, repository=seeded_stocks(settings)) as running:
        yield running


async def test_page_views_past_the_limit_get_a_page_that_says_when(pages_limited: Site) -> None:
    browser = pages_limited.browser
    assert [(await browser.get("/watchlist")).status_code for _ in range(3)] == [200] * 3
    refused = await browser.get("/")
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60
    assert "Too many requests" in refused.text
    assert f"try again in {wait} second" in refused.text
    # The page's own files, probes and metrics are not page views.
    for path in ("/static/app.css", "/api/ping", "/api/ready", "/metrics"):
        assert (await browser.get(path)).status_code == 200, path


async def test_scripts_paths_past_the_limit_get_json(pages_limited: Site) -> None:
    for _ in range(3):
        await pages_limited.browser.get("/watchlist")
    refused = await pages_limited.browser.get("/logos/ACME/x.webp")
    assert refused.status_code == 429
    body = refused.json()
    assert body["retry_after"] == int(refused.headers["retry-after"])
    assert body["detail"].startswith("too many requests from this address; try again in ")


async def test_the_client_is_the_address_a_trusted_proxy_names(pages_limited: Site) -> None:
    browser = pages_limited.browser
    for _ in range(3):
        await browser.get("/watchlist", headers={"X-Forwarded-For": "203.0.113.7"})
    spoofing = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the proxy appended the last
    assert (await browser.get("/", headers=spoofing)).status_code == 429
    assert (await browser.get("/", headers={"X-Forwarded-For": "203.0.113.8"})).status_code == 200
    assert (await browser.get("/")).status_code == 200  # the proxy's own address: its own count


async def test_x_forwarded_for_from_anyone_else_is_ignored(tmp_path: Path) -> None:
    settings = limited(tmp_path, rate_limit_pages="3/minute", trusted_proxies="10.0.0.1")
    async with running_site(settings, repository=seeded_stocks(settings)) as site:
        for number in range(3):
            await site.browser.get("/watchlist", headers={"X-Forwarded-For": f"192.0.2.{number}"})
        fresh_identity = {"X-Forwarded-For": "192.0.2.99"}
        assert (await site.browser.get("/", headers=fresh_identity)).status_code == 429


async def test_a_create_past_the_limit_is_refused_and_its_upload_deleted(tmp_path: Path) -> None:
    settings = limited(tmp_path, rate_limit_creates="2/minute")
    async with running_site(settings, repository=seeded_stocks(settings)) as site:
        assert (await submit(site.browser, "RLA", "A Inc.")).status_code == 303
        assert (await submit(site.browser, "RLB", "B Inc.")).status_code == 303
        upload_id = await upload_png(site.browser)
        refused = await submit(site.browser, "RLC", "C Inc.", upload_id)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "nothing was saved. Please try again in " in refused.text
        assert 'value="RLC"' in refused.text  # the visitor's input is kept
        assert (await site.symbol_api.get("/api/stocks/RLC")).status_code == 404
        assert upload_key(upload_id) not in await stored_uploads(settings)


async def test_uploads_past_the_byte_quota_are_refused_and_not_stored(tmp_path: Path) -> None:
    settings = limited(tmp_path, upload_bytes_per_hour=2 * len(IMAGE) + len(IMAGE) // 2)
    async with running_site(settings) as site:
        kept = {upload_key(await upload_png(site.browser, IMAGE)) for _ in range(2)}
        refused = await site.browser.post(
            "/uploads",
            files={"file": ("acme.jpg", IMAGE, "image/jpeg")},
            headers=await csrf_headers(site.browser),
        )
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 60  # the hour's window
        assert "MB an hour); nothing was stored" in refused.json()["detail"]
        assert await stored_uploads(settings) == kept


async def test_uploads_past_their_count_are_refused(tmp_path: Path) -> None:
    settings = limited(tmp_path, rate_limit_uploads="2/minute")
    async with running_site(settings) as site:
        for _ in range(2):
            await upload_png(site.browser)
        refused = await site.browser.post(
            "/uploads",
            files={"file": ("acme.jpg", IMAGE, "image/jpeg")},
            headers=await csrf_headers(site.browser),
        )
        assert refused.status_code == 429
        assert len(await stored_uploads(settings)) == 2


async def test_a_form_carrying_its_file_past_the_byte_quota_stores_nothing(
    tmp_path: Path,
) -> None:
    settings = limited(tmp_path, upload_bytes_per_hour=len(IMAGE) // 2)
    async with running_site(settings) as site:
        fields = await form_fields(site.browser)
        fields.update({"symbol": "RLD", "name": "D Inc."})
        refused = await site.browser.post(
            "/stocks", data=fields, files={"file": ("d.jpg", IMAGE, "image/jpeg")}
        )
        assert refused.status_code == 429
        assert await stored_uploads(settings) == set()
        assert (await site.symbol_api.get("/api/stocks/RLD")).status_code == 404


async def test_a_create_refused_as_a_duplicate_leaves_no_upload(tmp_path: Path) -> None:
    settings = limited(tmp_path)
    async with running_site(settings) as site:
        first = await upload_png(site.browser)
        assert (await submit(site.browser, "DUP", "Dup Inc.", first)).status_code == 303
        second = await upload_png(site.browser)
        assert (await submit(site.browser, "DUP", "Dup again", second)).status_code == 409
        invalid = await upload_png(site.browser)
        assert (await submit(site.browser, "NOT A TICKER", "x", invalid)).status_code == 422
        # The first is the stock's logo (with its marker); the refused ones are gone.
        stored = await stored_uploads(settings)
        assert upload_key(first) in stored
        assert not {upload_key(second), upload_key(invalid)} & stored
