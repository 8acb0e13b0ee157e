"""Operators: login, logout, sessions, and what only they may do (in-process frontend)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from stockday.frontend.app import create_app as create_frontend_app
from stockday.frontend.operators import COOKIE_NAME
from stockday.runtime import composition
from stockday.runtime.settings import Settings
from tests.frontend.site import Site, browsing, running_site, submit, upload_png
from tests.support import images as sample_images
from tests.support.operators import OPERATOR_HASH, OPERATOR_PASSWORD, csrf_token, log_in

pytestmark = pytest.mark.anyio


async def add(site: Site, *symbols: str) -> None:
    for symbol in symbols:
        created = await site.symbol_api.post("/api/stocks", json={"symbol": symbol, "name": symbol})
        assert created.status_code == 201, created.text


async def exists(site: Site, symbol: str) -> bool:
    return (await site.symbol_api.get(f"/api/stocks/{symbol}")).status_code == 200


async def hidden(site: Site, symbol: str) -> bool:
    answer = await site.symbol_api.get(f"/api/stocks/{symbol}")
    assert answer.status_code == 200
    return bool(answer.json()["hidden"])


# --- login and the session ----------------------------------------------------------------------


async def test_login_sets_a_strict_httponly_expiring_session(site: Site) -> None:
    response = await log_in(site.browser)
    assert response.status_code == 303
    assert response.headers["location"] == "/operator"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE_NAME}=")
    )
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert f"max-age={site.settings.operator_session_seconds}" in lowered
    assert "secure" not in lowered  # plain http here; https gets Secure
    page = await site.browser.get("/operator")
    assert page.status_code == 200
    assert "Moderation" in page.text


async def test_over_https_the_session_cookie_is_secure(site: Site) -> None:
    site.browser.base_url = "https://frontend"
    response = await log_in(site.browser)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


async def test_a_wrong_password_is_refused_and_gives_no_session(site: Site) -> None:
    response = await log_in(site.browser, "not the password")
    assert response.status_code == 401
    assert "not the operator password" in response.text
    assert COOKIE_NAME not in site.browser.cookies
    assert (await site.browser.get("/operator", follow_redirects=False)).status_code == 303


async def test_login_needs_the_csrf_token(site: Site) -> None:
    await csrf_token(site.browser)
    forged = await site.browser.post(
        "/operator/login", data={"csrf_token": "forged", "password": OPERATOR_PASSWORD}
    )
    assert forged.status_code == 403
    assert COOKIE_NAME not in site.browser.cookies


async def test_failed_logins_are_limited_per_client(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, operator_password_hash=OPERATOR_HASH, operator_login_failures=3
    )
    async with running_site(settings) as site:
        for _ in range(3):
            assert (await log_in(site.browser, "guess")).status_code == 401
        blocked = await log_in(site.browser)  # even the right password, while blocked
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= settings.operator_login_window_seconds
        assert COOKIE_NAME not in site.browser.cookies
        # Another client (another address behind the load balancer) is not blocked.
        site.browser.headers["X-Forwarded-For"] = "192.0.2.7"
        assert (await log_in(site.browser)).status_code == 303


async def test_failed_logins_count_on_every_replica(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, operator_password_hash=OPERATOR_HASH, operator_login_failures=2
    )
    async with running_site(settings) as site:
        # A second frontend replica on the same data directory: the same shared store.
        replica = create_frontend_app(settings, symbol_client=site.symbol_api)
        async with browsing(replica) as other:
            assert (await log_in(site.browser, "guess")).status_code == 401
            assert (await log_in(other, "guess")).status_code == 401
            assert (await log_in(site.browser)).status_code == 429
            assert (await log_in(other)).status_code == 429


async def test_a_successful_login_clears_the_clients_failures(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, operator_password_hash=OPERATOR_HASH, operator_login_failures=2
    )
    async with running_site(settings) as site:
        assert (await log_in(site.browser, "typo")).status_code == 401
        assert (await log_in(site.browser)).status_code == 303
        assert (await log_in(site.browser, "typo")).status_code == 401
        # Two failures in the window, but the first was cleared by the login between them.
        assert (await log_in(site.browser)).status_code == 303


async def test_nobody_is_operator_when_none_is_configured(tmp_path: object) -> None:
    async with running_site(Settings(data_dir=tmp_path)) as site:
        assert (await log_in(site.browser, "anything")).status_code == 401


async def test_logout_ends_the_session(site: Site) -> None:
    await log_in(site.browser)
    token = await csrf_token(site.browser, "/operator")
    out = await site.browser.post(
        "/operator/logout", data={"csrf_token": token}, follow_redirects=False
    )
    assert out.status_code == 303
    assert COOKIE_NAME not in site.browser.cookies
    assert (await site.browser.get("/operator", follow_redirects=False)).status_code == 303


async def test_a_forged_or_expired_session_is_no_session(site: Site) -> None:
    await add(site, "SAFE")
    token = await csrf_token(site.browser, "/stocks/new")
    forged = URLSafeTimedSerializer(b"guessed key", salt="stockday operator session")
    site.browser.cookies.set(COOKIE_NAME, forged.dumps({"role": "operator"}))
    refused = await site.browser.post("/stocks/SAFE/delete", data={"csrf_token": token})
    assert refused.status_code == 401
    assert await exists(site, "SAFE")

    site.browser.cookies.delete(COOKIE_NAME)
    await log_in(site.browser)
    real = site.browser.cookies[COOKIE_NAME]
    site.browser.cookies.delete(COOKIE_NAME)
    # The same cookie, past its lifetime: itsdangerous reads the time it was signed.
    later = time.time() + site.settings.operator_session_seconds + 5
    original_time = time.time
    try:
        time.time = lambda: later  # type: ignore[assignment]
        site.browser.cookies.set(COOKIE_NAME, real)
        expired = await site.browser.post("/stocks/SAFE/delete", data={"csrf_token": token})
    finally:
        time.time = original_time  # type: ignore[assignment]
    assert expired.status_code == 401
    assert await exists(site, "SAFE")


# --- anonymous clients --------------------------------------------------------------------------


async def test_anonymous_clients_add_and_view_and_nothing_more(site: Site) -> None:
    upload_id = await upload_png(site.browser)
    assert (await submit(site.browser, "ANON", "Anonymous", upload_id)).status_code == 303
    assert (await site.browser.get("/stocks/ANON")).status_code == 200
    token = await csrf_token(site.browser, "/stocks/new")
    for action in ("delete", "hide", "unhide"):
        refused = await site.browser.post(f"/stocks/ANON/{action}", data={"csrf_token": token})
        assert refused.status_code == 401, action
        assert "text/html" in refused.headers["content-type"]
        assert "Operators only" in refused.text
        assert 'href="/operator/login"' in refused.text
    logo = await site.browser.post(
        "/stocks/ANON/logo",
        data={"csrf_token": token},
        files={"file": ("x.png", sample_images.png(40, 40), "image/png")},
    )
    assert logo.status_code == 401
    redrive = await site.browser.post(
        "/operator/dead-letters/logo-jobs/redrive", data={"csrf_token": token}
    )
    assert redrive.status_code == 401
    assert (await site.browser.get("/stocks/ANON/delete")).status_code == 401
    assert (await site.browser.get("/operator", follow_redirects=False)).status_code == 303
    assert await exists(site, "ANON")
    assert not await hidden(site, "ANON")


async def test_an_operator_action_still_needs_the_csrf_token(site: Site) -> None:
    await add(site, "CSRF")
    await log_in(site.browser)
    for action in ("delete", "hide"):
        refused = await site.browser.post(f"/stocks/CSRF/{action}", data={"csrf_token": "x"})
        assert refused.status_code == 403, action
    cross = await site.browser.post(
        "/stocks/CSRF/delete",
        data={"csrf_token": await csrf_token(site.browser, "/operator")},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert await exists(site, "CSRF")
    assert not await hidden(site, "CSRF")


# --- what operators do --------------------------------------------------------------------------


async def test_an_operator_hides_and_unhides_a_stock(site: Site) -> None:
    await add(site, "SHOWN", "HIDEME")
    await log_in(site.browser)
    token = await csrf_token(site.browser, "/operator")
    done = await site.browser.post(
        "/stocks/HIDEME/hide", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/operator"
    assert await hidden(site, "HIDEME")
    page = await site.browser.get("/operator")
    assert "HIDEME is hidden" in page.text
    assert 'action="/stocks/HIDEME/unhide"' in page.text
    shown = {(await site.browser.get("/")).text.count("HIDEME") for _ in range(30)}
    assert shown == {0}
    assert "HIDEME" not in (await site.browser.get("/watchlist")).text
    assert (await site.browser.get("/stocks/HIDEME")).status_code == 200  # still readable

    back = await site.browser.post(
        "/stocks/HIDEME/unhide", data={"csrf_token": token}, follow_redirects=False
    )
    assert back.status_code == 303
    assert not await hidden(site, "HIDEME")


async def test_an_operator_deletes_a_stock(site: Site) -> None:
    await add(site, "GONE")
    await log_in(site.browser)
    token = await csrf_token(site.browser, "/operator")
    done = await site.browser.post(
        "/stocks/GONE/delete", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303
    assert not await exists(site, "GONE")


async def test_an_operator_replaces_a_logo(site: Site) -> None:
    await add(site, "LOGO")
    await log_in(site.browser)
    token = await csrf_token(site.browser, "/operator")
    done = await site.browser.post(
        "/stocks/LOGO/logo",
        data={"csrf_token": token},
        files={"file": ("new.png", sample_images.png(90, 30), "image/png")},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    stock = (await site.symbol_api.get("/api/stocks/LOGO")).json()
    assert stock["logo"]["state"] == "pending"
    assert stock["logo"]["upload_id"]
    bad = await site.browser.post(
        "/stocks/LOGO/logo",
        data={"csrf_token": token},
        files={"file": ("new.png", b"not an image", "image/png")},
    )
    assert 400 <= bad.status_code < 500


async def test_the_moderation_page_lists_recent_additions_and_dead_letters(site: Site) -> None:
    await add(site, "OLD", "NEWER")
    await log_in(site.browser)
    page = await site.browser.get("/operator")
    assert page.status_code == 200
    assert page.text.index(">NEWER<") < page.text.index(">OLD<")
    assert "logo-jobs: 0 dead" in page.text
    assert "logo-events: 0 dead" in page.text


async def test_an_operator_redrives_dead_letters(site: Site) -> None:
    queue = composition.message_queue(site.settings, site.settings.logo_jobs_queue)
    try:
        await queue.send('{"type": "logo.requested", "schema_version": 1}')
        for _ in range(site.settings.queue_max_receives + 1):
            await queue.receive(max_messages=1, wait_seconds=0, visibility_timeout=0)
        assert (await queue.stats()).dead_letters == 1
        await log_in(site.browser)
        page = await site.browser.get("/operator")
        assert "logo-jobs: 1 dead" in page.text
        token = await csrf_token(site.browser, "/operator")
        done = await site.browser.post(
            "/operator/dead-letters/logo-jobs/redrive",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert (await queue.stats()).dead_letters == 0
        assert "1 dead letters were sent back" in (await site.browser.get("/operator")).text
        missing = await site.browser.post(
            "/operator/dead-letters/nope/redrive", data={"csrf_token": token}
        )
        assert missing.status_code == 404
    finally:
        await queue.close()
