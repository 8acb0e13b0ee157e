"""frontend in-process, driven like a browser, with the real stock-symbol and stock-price."""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from stockday.domain.stocks import logo_key
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.frontend.site import (
    HIDDEN_FIELD,
    Site,
    browsing_without_stock_symbol,
    csrf_headers,
    form_fields,
    submit,
    upload_png,
)
from tests.support import images as sample_images

pytestmark = pytest.mark.anyio


async def test_empty_home_invites_the_first_stock(site: Site) -> None:
    home = await site.browser.get("/")
    assert home.status_code == 200
    assert "No stocks yet" in home.text
    assert 'href="/stocks/new"' in home.text
    assert home.headers["content-type"].startswith("text/html")


async def test_home_page_views_are_counted_under_their_route(site: Site) -> None:
    # The home page skips FastAPI's request handling; its metrics (and the page-view SLO read
    # from them) must still see its route, not "unmatched".
    home_views = re.compile(
        r'^stockday_http_requests_total\{method="GET",route="/",service="frontend",'
        r'status="2xx"\} (\d+)',
        re.M,
    )

    async def counted() -> int:
        found = home_views.search((await site.browser.get("/metrics")).text)
        return int(found.group(1)) if found else 0

    before = await counted()
    assert (await site.browser.get("/")).status_code == 200
    assert await counted() == before + 1


async def test_add_a_stock_with_a_logo(site: Site) -> None:
    form = await site.browser.get("/stocks/new")
    assert 'accept="image/png,image/jpeg,image/gif,image/webp"' in form.text
    assert '<label for="symbol">' in form.text
    fields = dict(HIDDEN_FIELD.findall(form.text))
    assert set(fields) == {"csrf_token", "idempotency_key", "upload_id"}

    upload_id = await upload_png(site.browser)
    fields.update({"symbol": "acme", "name": "Acme Corporation", "upload_id": upload_id})
    created = await site.browser.post("/stocks", data=fields, follow_redirects=False)
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/stocks/ACME"

    page = await site.browser.get(created.headers["location"])
    assert page.status_code == 200
    assert "Acme Corporation" in page.text
    assert '<p class="flash" role="status">ACME was added to the watchlist.</p>' in page.text
    assert "Logo processing" in page.text
    # The script asks for the logo's state; without script the page reloads itself.
    assert 'data-logo-state-url="/stocks/ACME/logo-state"' in page.text
    assert '<script src="/static/logo.js" defer></script>' in page.text
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page.text
    assert ">AC</span>" in page.text  # the placeholder shows the symbol's initials
    assert "simulated data" in page.text

    home = await site.browser.get("/")
    assert home.status_code == 200
    assert "ACME" in home.text
    assert "Acme Corporation" in home.text
    assert re.search(r'class="change-abs">[+-]\d+\.\d\d<', home.text)
    assert re.search(r'class="change-pct">\([+-]\d+\.\d\d%\)<', home.text)
    assert 'href="/">Show me another' in home.text

    watchlist = await site.browser.get("/watchlist")
    assert watchlist.status_code == 200
    assert '<a href="/stocks/ACME">ACME</a>' in watchlist.text
    assert "Acme Corporation" in watchlist.text


async def test_submitting_the_same_form_twice_creates_one_stock(site: Site) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "TWICE", "name": "Double Click Inc."})
    first = await site.browser.post("/stocks", data=fields, follow_redirects=False)
    again = await site.browser.post("/stocks", data=fields, follow_redirects=False)
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["location"] == "/stocks/TWICE"
    listing = (await site.symbol_api.get("/api/stocks")).json()
    assert listing["total"] == 1


async def test_duplicate_symbol_shows_the_form_with_409(site: Site) -> None:
    assert (await submit(site.browser, "MSFT", "Microsoft")).status_code == 303
    duplicate = await submit(site.browser, "msft", "Another Name")
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.text
    assert 'value="Another Name"' in duplicate.text
    assert 'href="/stocks/MSFT"' in duplicate.text  # a way to the existing stock


async def test_bad_symbol_shows_the_message_and_keeps_the_input(site: Site) -> None:
    response = await submit(site.browser, "not a symbol", "Keep Me Ltd")
    assert response.status_code == 422
    error = re.search(r'<p class="field-error" id="symbol-error">([^<]*)</p>', response.text)
    assert error is not None and "is not a ticker" in error.group(1)
    assert 'value="not a symbol"' in response.text
    assert 'value="Keep Me Ltd"' in response.text
    # The re-rendered form carries a key again, so fixing the symbol and resubmitting works.
    assert dict(HIDDEN_FIELD.findall(response.text))["idempotency_key"]


async def test_empty_name_is_shown_next_to_the_name_field(site: Site) -> None:
    response = await submit(site.browser, "OK", "   ")
    assert response.status_code == 422
    assert 'id="name-error">name must not be empty</p>' in response.text


async def test_a_hostile_name_is_escaped_everywhere(site: Site) -> None:
    hostile = "<script>alert(1)</script>"
    assert (await submit(site.browser, "XSS", hostile)).status_code == 303
    for path in ("/stocks/XSS", "/", "/watchlist"):
        page = await site.browser.get(path)
        assert page.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<script>alert(1)" not in page.text

    kept = await submit(site.browser, "XSS", hostile)  # a duplicate: the input is echoed back
    assert kept.status_code == 409
    assert "<script>alert(1)" not in kept.text


async def test_a_text_file_upload_is_refused_with_415_json(site: Site) -> None:
    response = await site.browser.post(
        "/uploads",
        files={"file": ("notes.txt", b"just some text\n", "text/plain")},
        headers=await csrf_headers(site.browser),
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str)


async def test_an_upload_over_the_limit_is_413_before_forwarding(tmp_path: Path) -> None:
    small = Settings(data_dir=tmp_path, max_upload_bytes=1000)
    # Nothing listens behind this frontend: a 413 proves the body was refused before forwarding.
    async with browsing_without_stock_symbol(small) as browser:
        # Larger than the limit plus the allowance for multipart framing.
        big = b"\x89PNG\r\n\x1a\n" + os.urandom(small.max_upload_bytes + 64 * 1024)
        token = await csrf_headers(browser)  # the form itself needs no backend
        response = await browser.post(
            "/uploads", files={"file": ("big.png", big, "image/png")}, headers=token
        )
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 1024

        # Without a Content-Length the body is counted as it arrives.
        chunked = await browser.post(
            "/uploads",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b", **token},
        )
        assert chunked.status_code == 413


async def test_a_form_without_script_uploads_its_file_first(site: Site) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "NOJS", "name": "No Script Co", "upload_id": ""})
    created = await site.browser.post(
        "/stocks",
        data=fields,
        files={"file": ("logo.png", sample_images.png(), "image/png")},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    stock = (await site.symbol_api.get("/api/stocks/NOJS")).json()
    assert stock["logo"]["state"] == "pending"


async def test_a_form_without_script_with_a_bad_file_keeps_the_input(site: Site) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "BADF", "name": "Bad File Co", "upload_id": ""})
    response = await site.browser.post(
        "/stocks", data=fields, files={"file": ("x.png", b"not an image", "image/png")}
    )
    assert response.status_code == 415
    assert 'id="upload_id-error">' in response.text
    assert 'value="Bad File Co"' in response.text
    assert (await site.symbol_api.get("/api/stocks/BADF")).status_code == 404


async def test_a_ready_logo_is_shown_and_served_with_caching_headers(site: Site) -> None:
    upload_id = await upload_png(site.browser)
    assert (await submit(site.browser, "LOGO", "Logo Ltd", upload_id)).status_code == 303
    # Do what logo-resizer and queue-worker would: store a WebP, report it through the API.
    webp = io.BytesIO()
    Image.new("RGB", (64, 32), (10, 120, 200)).save(webp, format="WEBP")
    key = logo_key("LOGO", upload_id)
    objects = composition.object_store(site.settings)
    await objects.put(key, webp.getvalue(), content_type="image/webp")
    await objects.close()
    reported = await site.symbol_api.put(
        "/api/stocks/LOGO/logo", json={"upload_id": upload_id, "state": "ready", "key": key}
    )
    assert reported.status_code == 200, reported.text
    logo_url = reported.json()["logo"]["url"]

    page = await site.browser.get("/stocks/LOGO")
    assert f'<img class="logo logo-large" src="{logo_url}" alt="Logo Ltd logo">' in page.text
    assert 'http-equiv="refresh"' not in page.text
    assert "Logo processing" not in page.text

    served = await site.browser.get(logo_url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert served.content == webp.getvalue()


async def test_missing_logos_are_404(site: Site) -> None:
    assert (await site.browser.get("/logos/missing")).status_code == 404
    assert (await site.browser.get("/logos/NOPE/abc.webp")).status_code == 404
    # A path that tries to climb out of /api/logos/ never reaches stock-symbol's other routes.
    assert (await site.browser.get("/logos/..%2Fstocks")).status_code == 404


async def test_unknown_stock_is_a_404_page(site: Site) -> None:
    for path in ("/stocks/NOSUCH", "/stocks/random", "/stocks/not%20valid"):
        page = await site.browser.get(path)
        assert page.status_code == 404, path
        assert "text/html" in page.headers["content-type"]


async def test_watchlist_is_paginated(site: Site) -> None:
    symbols = [f"W{i:02d}" for i in range(52)]
    for symbol in symbols:
        created = await site.symbol_api.post("/api/stocks", json={"symbol": symbol, "name": symbol})
        assert created.status_code == 201
    first = await site.browser.get("/watchlist")
    assert first.status_code == 200
    assert "52 stocks" in first.text
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link is not None
    second = await site.browser.get(next_link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert '<a href="/stocks/W51">W51</a>' in second.text
    assert '<a href="/stocks/W00">W00</a>' not in second.text
    assert 'rel="next"' not in second.text
    bad = await site.browser.get("/watchlist", params={"cursor": "x" * 100})
    assert bad.status_code == 400


async def test_probes(site: Site) -> None:
    ping = await site.browser.get("/api/ping")
    assert ping.status_code == 200
    assert ping.json()["service"] == "frontend"
    assert (await site.browser.get("/api/ready")).status_code == 200


async def test_stock_symbol_down_gives_503_pages_not_500(settings: Settings) -> None:
    async with browsing_without_stock_symbol(settings) as browser:
        for path in ("/", "/watchlist", "/stocks/ACME"):
            page = await browser.get(path)
            assert page.status_code == 503, path
            assert "stock service is unavailable" in page.text
            assert "Traceback" not in page.text

        fields = await form_fields(browser)  # the form itself needs no backend
        fields.update({"symbol": "DOWN", "name": "Still Typed"})
        kept = await browser.post("/stocks", data=fields)
        assert kept.status_code == 503
        assert 'value="Still Typed"' in kept.text

        upload = await browser.post(
            "/uploads",
            files={"file": ("a.png", sample_images.png(), "image/png")},
            headers=await csrf_headers(browser),
        )
        assert upload.status_code == 503
        assert "unavailable" in upload.json()["detail"]
        assert (await browser.get("/logos/A/b.webp")).status_code == 503
        state = await browser.get("/stocks/ACME/logo-state")  # the polling script's answer
        assert state.status_code == 503
        assert "unavailable" in state.json()["detail"]

        # Still in rotation: its own pages say what is wrong, better than the balancer's 503.
        assert (await browser.get("/api/ping")).status_code == 200
        assert (await browser.get("/api/ready")).status_code == 200
