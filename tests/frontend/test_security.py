"""The frontend's defences: CSRF tokens, security headers, escaping, upload limits, logo types."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stockday.contracts.stocks import LogoOut
from stockday.domain.stocks import LogoState, logo_key
from stockday.frontend import security
from stockday.frontend.views import image_origins, logo_src
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.frontend.site import (
    Site,
    browsing_without_stock_symbol,
    csrf_headers,
    form_fields,
    submit,
    upload_png,
)
from tests.support import images as sample_images
from tests.support.operators import log_in

pytestmark = pytest.mark.anyio

HOSTILE = "<script>alert(1)</script>"


class CountedBody:
    """A streamed request body of ``kib`` chunks of 1 KiB that counts the chunks pulled from it."""

    def __init__(self, kib: int) -> None:
        self.kib = kib
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.kib):
            self.pulled += 1
            yield b"x" * 1024


async def stock_exists(site: Site, symbol: str) -> bool:
    return (await site.symbol_api.get(f"/api/stocks/{symbol}")).status_code == 200


# --- CSRF --------------------------------------------------------------------------------------


async def test_the_form_sets_a_strict_httponly_cookie_and_a_fresh_token_per_page(
    site: Site,
) -> None:
    first = await site.browser.get("/stocks/new")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{security.COOKIE_NAME}=")
    for attribute in ("HttpOnly", "Path=/", "SameSite=strict"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    again = await site.browser.get("/stocks/new")
    assert "set-cookie" not in again.headers  # the secret is kept, not rotated per page
    tokens = [re.search(r'name="csrf_token" value="([^"]+)"', p.text) for p in (first, again)]
    assert tokens[0] and tokens[1] and tokens[0].group(1) != tokens[1].group(1)  # masked anew


async def test_the_home_page_sets_no_cookie(site: Site) -> None:
    await site.symbol_api.post("/api/stocks", json={"symbol": "HOT", "name": "Hot Path"})
    home = await site.browser.get("/")
    assert home.status_code == 200
    assert "set-cookie" not in home.headers  # no form there: nothing to protect, nothing to set


@pytest.mark.parametrize(
    "token",
    ["", "not-a-token", "A" * 86, "A" * 43],
    ids=["missing", "garbage", "wrong-secret", "bare-secret-length"],
)
async def test_a_form_without_a_valid_token_creates_nothing(site: Site, token: str) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "NOPE", "name": "Kept Input", "csrf_token": token})
    response = await site.browser.post("/stocks", data=fields, follow_redirects=False)
    assert response.status_code == 403
    assert "nothing was saved" in response.text
    assert 'value="Kept Input"' in response.text  # the visitor's input comes back...
    retry = dict(re.findall(r'name="(csrf_token|idempotency_key)" value="([^"]*)"', response.text))
    assert retry["csrf_token"]  # ...with a valid token: submitting again works
    assert not await stock_exists(site, "NOPE")
    fields["csrf_token"] = retry["csrf_token"]
    assert (await site.browser.post("/stocks", data=fields)).status_code == 303
    assert await stock_exists(site, "NOPE")


async def test_a_token_is_worthless_without_its_cookie(site: Site) -> None:
    victim = await form_fields(site.browser)
    victim.update({"symbol": "CSRF", "name": "Forged"})
    # Another browser (the attacker's page) has no cookie, or its own.
    async with httpx.AsyncClient(
        transport=site.browser._transport, base_url="http://frontend"
    ) as attacker:
        assert (await attacker.post("/stocks", data=victim)).status_code == 403
        await form_fields(attacker)  # now with a cookie of its own
        assert (await attacker.post("/stocks", data=victim)).status_code == 403
    assert not await stock_exists(site, "CSRF")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.frontend"},
        {"Origin": "https://frontend"},
        {"Origin": "http://frontend:8080"},
        {"Origin": "ftp://frontend"},
        {"Origin": "http://frontend/stocks"},
        {"Origin": "http://user@frontend"},
        {"Origin": "http://frontend:99999"},
        {"Origin": "http://[::1"},
    ],
    ids=[
        "other-origin",
        "opaque-origin",
        "cross-site",
        "sibling-subdomain",
        "other-scheme",
        "other-port",
        "not-http",
        "not-an-origin",
        "with-credentials",
        "bad-port",
        "broken-ipv6",
    ],
)
async def test_a_request_from_another_origin_is_refused_even_with_a_valid_token(
    site: Site, headers: dict[str, str]
) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "XORG", "name": "Cross Origin"})
    response = await site.browser.post("/stocks", data=fields, headers=headers)
    assert response.status_code == 403
    assert not await stock_exists(site, "XORG")


async def test_a_same_origin_request_with_a_valid_token_passes(site: Site) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "SAME", "name": "Same Origin"})
    response = await site.browser.post(
        "/stocks",
        data=fields,
        headers={"Origin": "http://frontend", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert response.status_code == 303


@pytest.mark.parametrize("origin", ["http://frontend:80", "HTTP://FRONTEND"])
async def test_an_origin_is_compared_by_scheme_host_and_port_not_spelling(
    site: Site, origin: str
) -> None:
    fields = await form_fields(site.browser)
    fields.update({"symbol": "SPELT", "name": "Same Origin Spelt Otherwise"})
    response = await site.browser.post(
        "/stocks", data=fields, headers={"Origin": origin}, follow_redirects=False
    )
    assert response.status_code == 303


async def _post_behind_a_balancer(
    site: Site, peer: str, forwarded_proto: str, origin: str, symbol: str
) -> httpx.Response:
    """Post the add-stock form as a balancer at ``peer`` forwards a browser's request."""
    transport = httpx.ASGITransport(app=site.browser._transport.app, client=(peer, 40000))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://frontend") as balancer:
        fields = await form_fields(balancer)
        fields.update({"symbol": symbol, "name": "Behind A Balancer"})
        headers = {"Origin": origin, "X-Forwarded-Proto": forwarded_proto}
        return await balancer.post("/stocks", data=fields, headers=headers)


async def test_behind_a_trusted_balancer_ending_tls_the_https_origin_is_the_sites(
    site: Site,
) -> None:
    # 127.0.0.1 is the default STOCKDAY_TRUSTED_PROXIES: the local stack's HAProxy.
    response = await _post_behind_a_balancer(
        site, "127.0.0.1", "https", "https://frontend", "TLSOK"
    )
    assert response.status_code == 303
    refused = await _post_behind_a_balancer(site, "127.0.0.1", "https", "http://frontend", "PLAIN")
    assert refused.status_code == 403  # a plain-HTTP page may not post to the https site
    assert await stock_exists(site, "TLSOK")
    assert not await stock_exists(site, "PLAIN")


async def test_an_untrusted_peer_cannot_claim_https(site: Site) -> None:
    response = await _post_behind_a_balancer(
        site, "203.0.113.7", "https", "https://frontend", "SPOOF"
    )
    assert response.status_code == 403  # its X-Forwarded-Proto is ignored: the scheme is http
    assert not await stock_exists(site, "SPOOF")


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, trusted_proxies="10.30.0.0/16, 127.0.0.1").trusted_proxies
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings(data_dir=tmp_path, trusted_proxies="10.30.0.0/16, alb.internal")


async def test_an_upload_without_the_token_is_refused_before_its_body_is_read(
    tmp_path: Path,
) -> None:
    body = CountedBody(64)
    async with browsing_without_stock_symbol(Settings(data_dir=tmp_path)) as browser:
        await form_fields(browser)  # has the cookie, but sends no header
        response = await browser.post(
            "/uploads",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 403
        assert "refused" in response.json()["detail"]
        assert body.pulled <= 1  # at most the first chunk ASGI hands over with the request


async def test_a_delete_needs_the_token(site: Site) -> None:
    await site.symbol_api.post("/api/stocks", json={"symbol": "KEEP", "name": "Keep Me"})
    assert (await log_in(site.browser)).status_code == 303
    refused = await site.browser.post("/stocks/KEEP/delete", data={"csrf_token": "x"})
    assert refused.status_code == 403
    assert "nothing was changed" in refused.text
    assert await stock_exists(site, "KEEP")
    fields = await form_fields(site.browser, "/stocks/KEEP/delete")
    done = await site.browser.post("/stocks/KEEP/delete", data=fields, follow_redirects=False)
    assert done.status_code == 303
    assert not await stock_exists(site, "KEEP")


# --- headers -----------------------------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(site: Site) -> None:
    await site.symbol_api.post("/api/stocks", json={"symbol": "HDR", "name": "Headers"})
    for path in ("/", "/stocks/new", "/watchlist", "/stocks/HDR", "/static/app.css", "/nope"):
        response = await site.browser.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    page = await site.browser.get("/stocks/HDR")
    assert page.headers["cache-control"] == "no-store"


async def test_pages_have_no_inline_script_style_or_handlers(site: Site) -> None:
    upload_id = await upload_png(site.browser)
    assert (await submit(site.browser, "INL", "Inline Check", upload_id)).status_code == 303
    await log_in(site.browser)
    for path in ("/", "/stocks/new", "/watchlist", "/stocks/INL", "/stocks/INL/delete"):
        html = (await site.browser.get(path)).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/static/[\w.]+\.js"', tag), (path, tag)
        assert all(
            not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
        )
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "javascript:" not in html


# --- escaping ----------------------------------------------------------------------------------


async def test_a_hostile_name_renders_as_text_on_every_page(site: Site) -> None:
    assert (await submit(site.browser, "XSS", HOSTILE)).status_code == 303
    await log_in(site.browser)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for path in (
        "/stocks/XSS",
        "/stocks/XSS?interval=weekly",
        "/",
        "/?symbol=XSS&interval=monthly",
        "/watchlist",
        "/watchlist?sort=name&order=desc",
        "/stocks/XSS/delete",
    ):
        page = await site.browser.get(path)
        assert page.status_code == 200, path
        assert escaped in page.text, path
        assert "<script>alert" not in page.text, path
    state = await site.browser.get("/stocks/XSS/logo-state")
    assert state.headers["content-type"] == "application/json"


async def test_hostile_addresses_are_not_reflected(site: Site) -> None:
    await site.symbol_api.post("/api/stocks", json={"symbol": "REFL", "name": "Reflected"})
    probe = '"><script>alert(1)</script>'
    for path, params in (
        ("/", {"symbol": probe, "interval": probe}),
        ("/stocks/new", {"symbol": probe}),
        ("/watchlist", {"sort": probe, "order": probe}),
        ("/stocks/REFL", {"interval": probe}),
        (f"/stocks/{probe}", {}),
    ):
        page = await site.browser.get(path, params=params)
        assert page.status_code in (200, 404), path
        assert "<script>alert" not in page.text, path


@pytest.mark.parametrize("typed", ["%C3%9F", "%C4%B1bm"], ids=["sharp-s", "dotless-i"])
async def test_an_address_never_names_the_stock_its_symbol_upper_cases_to(
    site: Site, typed: str
) -> None:
    # Sharp s upper-cases to SS, dotless i to I: neither may show those stocks, nor may an
    # operator delete, hide or show them through it.
    for symbol in ("SS", "IBM"):
        await site.symbol_api.post("/api/stocks", json={"symbol": symbol, "name": "Target"})
    page = await site.browser.get(f"/stocks/{typed}")
    assert page.status_code == 404
    assert "Target" not in page.text
    assert (await log_in(site.browser)).status_code == 303
    fields = await form_fields(site.browser)
    for action in ("delete", "hide", "unhide"):
        answer = await site.browser.post(f"/stocks/{typed}/{action}", data=fields)
        assert answer.status_code == 404, action
    for symbol in ("SS", "IBM"):
        stock = await site.symbol_api.get(f"/api/stocks/{symbol}")
        assert stock.status_code == 200
        assert stock.json()["hidden"] is False


# --- upload limits -----------------------------------------------------------------------------


async def test_a_declared_oversize_upload_is_refused_before_reading_it(tmp_path: Path) -> None:
    small = Settings(data_dir=tmp_path, max_upload_bytes=1000)
    body = CountedBody(200)
    async with browsing_without_stock_symbol(small) as browser:
        headers = {
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(200 * 1024),
            **(await csrf_headers(browser)),
        }
        response = await browser.post("/uploads", content=body, headers=headers)
        assert response.status_code == 413
        assert body.pulled <= 1


async def test_an_oversize_form_creates_nothing(tmp_path: Path) -> None:
    from tests.frontend.site import running_site

    small = Settings(data_dir=tmp_path, max_upload_bytes=2000)
    async with running_site(small) as site:
        fields = await form_fields(site.browser)
        fields.update({"symbol": "BIG", "name": "Too Big"})
        big = sample_images.png(64, 64) + b"\0" * (small.max_upload_request_bytes + 1)
        response = await site.browser.post(
            "/stocks", data=fields, files={"file": ("big.png", big, "image/png")}
        )
        assert response.status_code == 413
        assert "too large" in response.text
        assert not await stock_exists(site, "BIG")


async def test_the_form_states_the_limit_for_the_script(site: Site) -> None:
    form = await site.browser.get("/stocks/new")
    assert f'data-max-bytes="{site.settings.max_upload_bytes}"' in form.text


# --- logos -------------------------------------------------------------------------------------


async def test_a_logo_is_served_only_as_an_image_type(site: Site) -> None:
    upload_id = await upload_png(site.browser)
    assert (await submit(site.browser, "HTML", "Html Logo", upload_id)).status_code == 303
    key = logo_key("HTML", upload_id)
    objects = composition.object_store(site.settings)
    await objects.put(key, b"<html><script>alert(1)</script></html>", content_type="text/html")
    await objects.close()
    reported = await site.symbol_api.put(
        "/api/stocks/HTML/logo", json={"upload_id": upload_id, "state": "ready", "key": key}
    )
    served = await site.browser.get(reported.json()["logo"]["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_logo_sources_are_same_site_https_or_an_allowed_http_origin() -> None:
    def ready(url: str) -> LogoOut:
        return LogoOut(state=LogoState.READY, upload_id="a" * 32, url=url, error=None)

    emulator = ("http://127.0.0.1:5000",)
    signed = "http://127.0.0.1:5000/bucket/logos/X/a.webp?X-Amz-Signature=abc"
    assert logo_src(ready("/logos/X/a.webp")) == "/logos/X/a.webp"
    cdn = "https://cdn.example/logos/X/a.webp"
    assert logo_src(ready(cdn)) == cdn
    assert logo_src(ready(signed)) is None
    assert logo_src(ready(signed), emulator) == signed
    assert logo_src(ready("http://127.0.0.1:50001/bucket/x.webp"), emulator) is None
    assert logo_src(ready("//evil.example/x.webp"), emulator) is None
    assert logo_src(ready("javascript:alert(1)"), emulator) is None
    pending = LogoOut(state=LogoState.PENDING, upload_id=None, url="/logos/X/a.webp", error=None)
    assert logo_src(pending) is None


@pytest.fixture
def no_configured_endpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore finds no endpoint of its own: no AWS_ENDPOINT_URL* variable, no config file."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@pytest.mark.usefixtures("no_configured_endpoints")
async def test_image_origins_follow_the_s3_endpoint_botocore_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = Settings(data_dir=tmp_path, backend="aws")
    assert image_origins(aws) == ()  # AWS itself: https, allowed anyway
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert image_origins(aws) == ("http://127.0.0.1:4566",)
    # The S3 endpoint of its own, as botocore routes S3 calls (and signs logo URLs) to it.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568")
    assert image_origins(aws) == ("http://127.0.0.1:4568",)
    async with browsing_without_stock_symbol(aws) as browser:
        csp = (await browser.get("/stocks/new")).headers["content-security-policy"]
        assert "img-src 'self' https: data: blob: http://127.0.0.1:4568;" in csp
    # STOCKDAY_AWS_ENDPOINT_URL is passed to every client, and botocore puts it first.
    explicit = Settings(data_dir=tmp_path, backend="aws", aws_endpoint_url="http://127.0.0.1:5000")
    assert image_origins(explicit) == ("http://127.0.0.1:5000",)
    assert image_origins(Settings(data_dir=tmp_path)) == ()  # the local backend serves logos


@pytest.mark.usefixtures("no_configured_endpoints")
async def test_the_s3_emulator_origin_is_allowed_for_images_only_on_aws(tmp_path: Path) -> None:
    aws = Settings(data_dir=tmp_path, backend="aws", aws_endpoint_url="http://127.0.0.1:5000")
    assert image_origins(aws) == ("http://127.0.0.1:5000",)
    assert image_origins(Settings(data_dir=tmp_path, aws_endpoint_url="http://x:1")) == ()
    https = Settings(data_dir=tmp_path, backend="aws", aws_endpoint_url="https://s3.example")
    assert image_origins(https) == ()  # https: is allowed anyway
    async with browsing_without_stock_symbol(aws) as browser:
        csp = (await browser.get("/stocks/new")).headers["content-security-policy"]
        assert "img-src 'self' https: data: blob: http://127.0.0.1:5000;" in csp
        assert "script-src 'self';" in csp
